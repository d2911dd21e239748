from localive.engines.llm.base import LLM, ChatMessage, SamplingParams

__all__ = ["LLM", "ChatMessage", "SamplingParams"]
