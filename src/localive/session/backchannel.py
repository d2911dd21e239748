"""Backchannels: the short "mm-hm", "yeah", "okay" a listener says while someone else talks.

With semantic turn-taking, speech that starts while the model is talking does not cut it off at once: if it is
still going after BARGE_IN_AFTER_S it is a barge-in (the model stops); if it ends sooner, its words decide — a
backchannel is let pass (the model keeps talking, nothing is answered), anything else interrupts and is answered.
"""

from __future__ import annotations

import re

BARGE_IN_AFTER_S = 0.6  # speech longer than this while the model talks is a barge-in, whatever it says
MAX_WORDS = 3

_WORDS = frozenset("""
mm mmm mhm mm-hm mm-hmm hmm hm uh-huh uh huh aha ah oh yeah yep yes ya yup ok okay right sure alright
i see got it cool nice great wow really true totally exactly indeed
""".split())
_TOKEN = re.compile(r"[a-z]+(?:-[a-z]+)*")


def is_backchannel(text: str) -> bool:
    """A few listener words and nothing else ("Mm-hm.", "Yeah, yeah.", "Oh, I see.")."""
    words = _TOKEN.findall(text.lower())
    return 0 < len(words) <= MAX_WORDS and all(w in _WORDS for w in words)
