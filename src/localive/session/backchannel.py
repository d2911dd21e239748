"""Backchannels: the short "mm-hm", "yeah", "okay" a listener says while someone else talks.

With semantic turn-taking, speech that starts while the model is talking does not cut it off at once: if it is
still going after BARGE_IN_AFTER_S it is a barge-in (the model stops); if it ends sooner, its words decide — a
backchannel is let pass (the model keeps talking, nothing is answered), anything else interrupts and is answered.

Such a short utterance is transcribed with LISTENER_WORDS as Whisper's previous text: without it Whisper writes
many listener sounds as words ("the" for espeak's "yeah", "Emma" for a hum), with it as the listener's words far
more often (docs/turn-taking.md); the neural voices' "Mm-hm", which has a vowel in it, stays "Mama". Requests
("Wait.", "Stop.", "Hold on.") keep their words. Speech in which nothing is recognised at all (a cough, a hum
Whisper calls silence) is not an interruption either: there is nothing to answer. "Huh?" asks to hear it again:
it interrupts ("Huh." does not). Measured in all 30 voices and on formant-synthesised hums by
`python -m benchmarks.backchannels` (docs/turn-taking-benchmark.md).
"""

from __future__ import annotations

import re

BARGE_IN_AFTER_S = 0.6  # speech longer than this while the model talks is a barge-in, whatever it says
MAX_WORDS = 3
LISTENER_WORDS = "Mm-hm. Uh-huh. Yeah. Right. Okay."  # the prior given to the transcriber (see above)

_WORDS = frozenset("""
mm mmm mhm mm-hm mm-hmm um-hm um-hmm uh-hm hmm hm uh-huh uh huh aha ah oh yeah yep yes ya yup ok okay right sure alright
i see got it cool nice great wow really true totally exactly indeed
""".split())
_TOKEN = re.compile(r"[a-z]+(?:-[a-z]+)*")
_HUM = re.compile(r"[mh]+(?:-[mh]+)*")  # "mm", "m-m-hm", "hmm": closed-mouth sounds, however spelled
_REPAIR = re.compile(r"\s*huh\s*\?+\s*", re.IGNORECASE)  # "Huh?" asks to hear it again (a "Huh." does not)


def is_backchannel(text: str) -> bool:
    """A few listener words and nothing else ("Mm-hm.", "Yeah, yeah.", "Oh, I see."); not "Huh?"."""
    if _REPAIR.fullmatch(text):
        return False
    words = _TOKEN.findall(text.lower())
    return 0 < len(words) <= MAX_WORDS and all(w in _WORDS or _HUM.fullmatch(w) for w in words)


def lets_the_model_go_on(text: str) -> bool:
    """What a short utterance during the model's answer must say for the answer to go on: a backchannel, or
    nothing recognisable."""
    return not _TOKEN.findall(text.lower()) or is_backchannel(text)
