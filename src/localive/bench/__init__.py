"""`localive bench`: latency, throughput, CPU/memory per session, and server overhead vs raw llama.cpp."""
