"""localive: a self-hosted, offline implementation of the Gemini Live API."""

__version__ = "0.1.0"
