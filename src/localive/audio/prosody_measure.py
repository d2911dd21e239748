"""How an utterance was spoken: pitch, loudness and tempo of 16-bit mono PCM (no I/O, no model).

Pitch comes from Praat's autocorrelation tracker (`praat-parselmouth`, extra `voice`): the reference tracker of
phonetics, with its path finder against octave jumps, ~8 ms for 6 s of 16 kHz speech. Loudness and tempo are
numpy on 10 ms frames:

- speech frames: RMS within `_BELOW_LOUDEST_DB` of the loudest frame and above `_FLOOR_DBFS` (so a silent or
  near-silent clip has none); pauses shorter than `_BRIDGE_S` between speech frames count as speech, so
  `speech_s` is the articulation time (long pauses excluded) and `words / speech_s` a speaking rate;
- syllable nuclei (after de Jong & Wempe 2009, "Praat script to detect syllable nuclei"): peaks of the
  smoothed intensity that are voiced, within `_NUCLEUS_BELOW_LOUDEST_DB` of the loudest frame and separated from
  the previous nucleus by a dip of at least `_DIP_DB`.

Every statistic that needs speech (or voicing) is None when there is too little of it.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from localive.audio.prosody import Prosody

FRAME_S = 0.01
PITCH_FLOOR_HZ = 75.0
PITCH_CEILING_HZ = 600.0
_FLOOR_DBFS = -55.0  # quieter frames are never speech (a quiet microphone's noise is ~-60 dBFS)
_BELOW_LOUDEST_DB = 35.0  # frames further below the loudest one are not speech
_BRIDGE_S = 0.25  # shorter pauses inside speech count as speech (stops, breaths between words)
_SMOOTH_S = 0.05  # intensity smoothing before peak picking
_NUCLEUS_BELOW_LOUDEST_DB = 25.0
_DIP_DB = 2.0
_MIN_VOICED_S = 0.2  # less voicing than this gives no pitch statistics
_MIN_SPEECH_S = 0.3  # less speech than this gives no rate statistics

Samples = npt.NDArray[np.float64]


def measure(pcm: bytes | npt.NDArray[np.int16], rate_hz: int, words: int | None = None) -> Prosody:
    """Measure `pcm` (16-bit little-endian mono at `rate_hz`); `words` from a transcript gives `words_per_s`.

    CPU-bound (~2-3 ms of CPU per second of audio, mostly the pitch tracker): run it in an executor from async
    code.
    """
    if rate_hz <= 0:
        raise ValueError("rate_hz must be positive")
    ints = np.frombuffer(pcm, dtype="<i2") if isinstance(pcm, bytes | bytearray | memoryview) else np.asarray(pcm)
    if ints.dtype != np.int16 or ints.ndim != 1:
        raise ValueError(f"expected mono 16-bit samples, got {ints.dtype} of shape {ints.shape}")
    samples: Samples = ints.astype(np.float64) / 32768.0
    duration_s = samples.size / rate_hz
    frame = max(1, round(FRAME_S * rate_hz))
    count = samples.size // frame
    if count == 0:
        return Prosody(duration_s=duration_s, speech_s=0.0, voiced_s=0.0)

    power = np.mean(samples[: count * frame].reshape(count, frame) ** 2, axis=1)
    level_db = _db(power)
    loudest = float(level_db.max())
    speech = level_db >= max(_FLOOR_DBFS, loudest - _BELOW_LOUDEST_DB)
    if not speech.any():
        return Prosody(duration_s=duration_s, speech_s=0.0, voiced_s=0.0)
    articulation = _bridge(speech, round(_BRIDGE_S / FRAME_S))
    speech_s = float(articulation.sum()) * FRAME_S

    pitch_hz = _pitch(samples, rate_hz, count)
    voiced = (pitch_hz > 0) & speech
    voiced_s = float(voiced.sum()) * FRAME_S
    pitch_median_hz = pitch_range_st = pitch_sd_st = None
    if voiced_s >= _MIN_VOICED_S:
        f0 = pitch_hz[voiced]
        f0 = f0[np.abs(np.log2(f0 / np.median(f0))) <= 1.0]  # octave errors (formants, creak) are outliers
        median = float(np.median(f0))
        st = 12.0 * np.log2(f0 / median)
        p10, p90 = np.percentile(st, [10, 90])
        pitch_median_hz, pitch_range_st, pitch_sd_st = median, float(p90 - p10), float(np.std(st))

    speech_levels = level_db[speech]
    words_per_s = syllables_per_s = None
    if speech_s >= _MIN_SPEECH_S:
        if words is not None:
            words_per_s = words / speech_s
        syllables_per_s = _nuclei(power, voiced, loudest) / speech_s
    return Prosody(
        duration_s=duration_s,
        speech_s=speech_s,
        voiced_s=voiced_s,
        pitch_median_hz=pitch_median_hz,
        pitch_range_st=pitch_range_st,
        pitch_sd_st=pitch_sd_st,
        energy_dbfs=float(_db(np.mean(power[speech]))),
        energy_sd_db=float(np.std(speech_levels)),
        words_per_s=words_per_s,
        syllables_per_s=syllables_per_s,
    )


def _db(power: npt.ArrayLike) -> Samples:
    return np.asarray(10.0 * np.log10(np.asarray(power, dtype=np.float64) + 1e-12), dtype=np.float64)


def _bridge(mask: npt.NDArray[np.bool_], max_gap: int) -> npt.NDArray[np.bool_]:
    """`mask` with runs of False no longer than `max_gap` between two True frames set to True."""
    out = mask.copy()
    on = np.flatnonzero(mask)
    gaps = np.diff(on) - 1
    for start, gap in zip(on[:-1], gaps, strict=True):
        if 0 < gap <= max_gap:
            out[start + 1 : start + 1 + gap] = True
    return out


def _pitch(samples: Samples, rate_hz: int, count: int) -> Samples:
    """F0 in Hz on our 10 ms frame grid (frame i centred at (i + 0.5) * FRAME_S); 0 where unvoiced."""
    import parselmouth  # extra `voice`; imported here so that servers without it still start

    sound = parselmouth.Sound(samples, sampling_frequency=float(rate_hz))
    try:
        track = sound.to_pitch_ac(time_step=FRAME_S, pitch_floor=PITCH_FLOOR_HZ, pitch_ceiling=PITCH_CEILING_HZ)
    except parselmouth.PraatError:  # a clip shorter than the analysis window (3 periods of the floor)
        return np.zeros(count)
    times = np.asarray(track.xs(), dtype=np.float64)
    f0 = np.asarray(track.selected_array["frequency"], dtype=np.float64)
    out = np.zeros(count)
    if times.size == 0:
        return out
    index = np.round(times / FRAME_S - 0.5).astype(np.int64)
    keep = (index >= 0) & (index < count)
    out[index[keep]] = f0[keep]
    return out


def _nuclei(power: Samples, voiced: npt.NDArray[np.bool_], loudest_db: float) -> int:
    """Syllable nuclei: voiced peaks of the smoothed intensity with a dip of `_DIP_DB` since the previous one."""
    width = max(1, round(_SMOOTH_S / FRAME_S))
    smooth = _db(np.convolve(power, np.ones(width) / width, mode="same"))
    inner = smooth[1:-1]
    peaks = np.flatnonzero((inner > smooth[:-2]) & (inner >= smooth[2:])) + 1
    peaks = peaks[(smooth[peaks] >= loudest_db - _NUCLEUS_BELOW_LOUDEST_DB) & voiced[peaks]]
    nuclei = 0
    last: int | None = None
    for peak in peaks.tolist():
        if last is None:
            nuclei, last = 1, peak
            continue
        dip = float(smooth[last : peak + 1].min())
        if smooth[peak] - dip >= _DIP_DB and smooth[last] - dip >= _DIP_DB:
            nuclei, last = nuclei + 1, peak
        elif smooth[peak] > smooth[last]:
            last = peak  # the same syllable: keep its highest point
    return nuclei
