"""The transport: ASGI endpoints (Live WebSocket, health), TLS, and the uvicorn runner."""
