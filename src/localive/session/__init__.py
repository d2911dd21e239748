"""The Live semantics of one connection, without sockets: setup, turns, interruption, history, usage."""
