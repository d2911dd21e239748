"""The model registry (Live model names → local pipelines) and the weights that back them."""
