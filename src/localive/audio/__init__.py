"""Audio values that always carry their format, and the conversions the Live API needs."""
