"""The pure wire layer: parse, normalise and validate client messages; build server messages. No I/O."""
