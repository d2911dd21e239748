"""The Live API's tools: function calling, code execution, search grounding, URL context."""
