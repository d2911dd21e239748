"""Vision engines: what a video frame shows, as text the LLM can read."""
