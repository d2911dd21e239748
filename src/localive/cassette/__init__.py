"""Cassettes: Live sessions recorded by `localive relay --record DIR` and answered again by `localive serve --replay
DIR` (docs/testing.md). Pure: the format (format.py), what is never written (redact.py), and how a client's message
is matched to the recorded one (match.py). The relay and the replay server are in localive/server/."""
