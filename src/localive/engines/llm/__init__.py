from localive.engines.llm.base import LLM, ChatMessage, ModelNotInstalled, SamplingParams

__all__ = ["LLM", "ChatMessage", "ModelNotInstalled", "SamplingParams"]
