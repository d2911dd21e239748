"""A closed-mouth "mm-hm" made by formant synthesis (Praat's KlattGrid, through praat-parselmouth).

The embedded voices cannot hum: hibari renders "Mm-hm" as /mhm/ with an open vowel between the m's (Whisper hears
"Mama"), piper's espeak-ng front end says "hmm" as /həm/. A listener's hum is voiced throughout with the lips
closed: a nasal murmur (a low first formant, a nasal pole near 270 Hz and a zero near 900 Hz, weak upper
formants), a short breathy dip for the /h/, and usually a rising second part. This builds exactly that, so the
backchannel decision can be measured on a hum that is one.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

RATE_HZ = 16000
DURATION_S = 0.55
_H_START_S, _H_END_S = 0.22, 0.30  # the breathy /h/ between the two hums
_PAD_S = 0.2  # silence before and after, as the synthesised voices have


def closed_mouth_hum(f0_hz: float, *, rise: float = 1.25, first_formant_hz: float = 280.0,
                     rate_hz: int = RATE_HZ) -> npt.NDArray[np.int16]:
    """"Mm-hm" at pitch `f0_hz`, its second part ending `rise` times higher (1.0: flat), as 16-bit PCM at
    `rate_hz` with 0.2 s of silence around it (peak at -10 dBFS)."""
    try:
        from parselmouth.praat import call
    except ImportError as exc:
        raise RuntimeError("the hum needs praat-parselmouth: pip install 'localive[voice]'") from exc

    grid = call("Create KlattGrid", "hum", 0, DURATION_S, 6, 1, 1, 6, 1, 1, 1)
    for t, ratio in ((0.02, 1.0), (_H_START_S, 0.95), (_H_END_S, 1.0), (DURATION_S - 0.02, rise)):
        call(grid, "Add pitch point", t, f0_hz * ratio)
    voicing = ((0.0, 0), (0.03, 60), (_H_START_S, 60), (_H_START_S + 0.03, 40), (_H_END_S - 0.02, 40),
               (_H_END_S, 62), (DURATION_S - 0.05, 60), (DURATION_S, 0))
    for t, db in voicing:
        call(grid, "Add voicing amplitude point", t, db)
    for t, db in ((_H_START_S, 0), (_H_START_S + 0.03, 45), (_H_END_S - 0.03, 45), (_H_END_S, 0)):
        call(grid, "Add aspiration amplitude point", t, db)
    formants = ((first_formant_hz, 80), (1100, 300), (2300, 400), (3300, 500), (4300, 600))
    for number, (frequency, bandwidth) in enumerate(formants, start=1):
        call(grid, "Add oral formant frequency point", number, 0.1, frequency)
        call(grid, "Add oral formant bandwidth point", number, 0.1, bandwidth)
    call(grid, "Add nasal formant frequency point", 1, 0.1, 270)
    call(grid, "Add nasal formant bandwidth point", 1, 0.1, 100)
    call(grid, "Add nasal antiformant frequency point", 1, 0.1, 900)
    call(grid, "Add nasal antiformant bandwidth point", 1, 0.1, 200)
    sound = call(call(grid, "To Sound"), "Resample", rate_hz, 50)
    samples = np.asarray(sound.values[0], dtype=np.float64)
    samples = samples / (float(np.abs(samples).max()) + 1e-12) * 10.0 ** (-10.0 / 20.0)
    pad = np.zeros(round(_PAD_S * rate_hz))
    return np.round(np.concatenate([pad, samples, pad]) * 32767.0).astype(np.int16)
