"""Token accounting for `usageMetadata`: the real tokenizer for text, documented rates for audio."""

from __future__ import annotations

from localive.engines.llm.base import LLM
from localive.protocol.server_messages import ModalityCount, Usage
from localive.session.speech_out import Playback

AUDIO_TOKENS_PER_S = 32  # Gemini's documented rate for audio


def turn_usage(llm: LLM, prompt_tokens: int, speech_s: float, reply: str, playback: Playback,
               modality: str, video_tokens: int = 0) -> Usage:
    """Prompt: the text tokens the LLM read, plus the user's speech of this turn at 32 tokens/s (what Gemini would
    bill for it), plus video frames at their per-image rate. Response: text tokens, or the audio played at 32
    tokens/s."""
    prompt = [ModalityCount("TEXT", prompt_tokens)]
    if speech_s:
        prompt.append(ModalityCount("AUDIO", round(speech_s * AUDIO_TOKENS_PER_S)))
    if video_tokens:
        prompt.append(ModalityCount("VIDEO", video_tokens))
    if modality == "AUDIO":
        response = [ModalityCount("AUDIO", round(playback.total_s * AUDIO_TOKENS_PER_S))]
    else:
        response = [ModalityCount("TEXT", llm.count_tokens(reply))]
    return Usage(prompt=prompt, response=response)
