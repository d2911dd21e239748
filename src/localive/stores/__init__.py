"""Resumable session state between connections: the `SessionStore` interface and its SQLite and Redis stores."""
