"""What works in languages other than English: transcription round trips, spoken answers, translations.

    python -m benchmarks.languages [--languages es,fr,de,hi,ja] [--out FILE]

For each language:
(a) Transcription round trip: the fallback voice (espeak-ng, engines/tts/espeak.py) speaks SENTENCES; Whisper
    base transcribes them with the language hint (what a session with speechConfig.languageCode or one
    languageCodes entry does) and with detection (languageAuto). Word and character error rates against the
    sentence (punctuation and case ignored), and the language Whisper detected.
(b) A spoken answer: a real server (`localive serve`, default models and speech engines) gets a typed QUESTION
    in a session with speechConfig.languageCode set and AUDIO output. Is the answer's text in that language
    (script share for hi/ja, stop words for es/fr/de: `text_language`)? Is its speech heard back by Whisper,
    detecting the language, as that language, and how close is Whisper's transcript to the text spoken?
(c) A translation: a session with translationConfig.targetLanguageCode = the language gets ENGLISH_SOURCE typed;
    is the answer in the target language?
Results: docs/languages.md. Needs localive[voice,llm] and espeak-ng; a few minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import sys
import tempfile
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localive.audio.pcm import Pcm16
from localive.audio.resample import resample
from localive.bench.machine import collect as machine
from localive.bench.server import BenchError, start_server
from localive.bench.voice import MODEL, VoiceSession
from localive.testing.text import text_language

TAGS = {"es": "es-ES", "fr": "fr-FR", "de": "de-DE", "hi": "hi-IN", "ja": "ja-JP"}
SENTENCES = {
    "es": ["El tren sale de la estación a las ocho de la mañana.",
           "Me gustaría reservar una mesa para dos personas esta noche.",
           "¿Puedes decirme dónde está la farmacia más cercana?"],
    "fr": ["Le train part de la gare à huit heures du matin.",
           "Je voudrais réserver une table pour deux personnes ce soir.",
           "Pouvez-vous me dire où se trouve la pharmacie la plus proche ?"],
    "de": ["Der Zug fährt um acht Uhr morgens vom Bahnhof ab.",
           "Ich möchte heute Abend einen Tisch für zwei Personen reservieren.",
           "Können Sie mir sagen, wo die nächste Apotheke ist?"],
    "hi": ["ट्रेन सुबह आठ बजे स्टेशन से निकलती है।",
           "मैं आज रात दो लोगों के लिए एक मेज़ बुक करना चाहता हूँ।",
           "क्या आप मुझे बता सकते हैं कि सबसे नज़दीकी दवाखाना कहाँ है?"],
    "ja": ["電車は朝八時に駅を出発します。",
           "今夜二人で席を予約したいです。",
           "きょうは とても いい てんきですね。"],  # kana only: espeak-ng reads kana, not kanji
}
QUESTIONS = {
    "es": "¿Puedes recomendarme un libro para leer este verano?",
    "fr": "Peux-tu me recommander un livre à lire cet été ?",
    "de": "Kannst du mir ein Buch für den Sommer empfehlen?",
    "hi": "क्या आप मुझे गर्मियों में पढ़ने के लिए एक किताब सुझा सकते हैं?",
    "ja": "夏に読むおすすめの本を教えてください。",
}
ENGLISH_SOURCE = "Good morning. Where is the train station, please?"
MAX_TOKENS = 80
TIMEOUT_S = 240.0

# --- pure measures ----------------------------------------------------------------------------------------


def normalised(text: str) -> str:
    """Lower case, punctuation and symbols removed, blanks collapsed (keeps every script's letters and marks)."""
    kept = "".join(c if unicodedata.category(c)[0] in "LMN" or c.isspace() else " " for c in text.lower())
    return " ".join(kept.split())


def _distance(a: Sequence[str], b: Sequence[str]) -> int:
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        previous, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (x != y))
    return row[-1]


def wer(reference: str, hypothesis: str) -> float:
    ref = normalised(reference).split()
    return _distance(ref, normalised(hypothesis).split()) / max(1, len(ref))


def cer(reference: str, hypothesis: str) -> float:
    ref = normalised(reference).replace(" ", "")
    return _distance(ref, normalised(hypothesis).replace(" ", "")) / max(1, len(ref))


# --- (a) transcription round trip -------------------------------------------------------------------------


@dataclass
class RoundTrip:
    language: str
    sentence: str
    hinted: str  # Whisper's transcript with the language hint
    detected_language: str | None  # Whisper's detection
    audio_s: float
    asr_s: float

    @property
    def wer(self) -> float:
        return wer(self.sentence, self.hinted)

    @property
    def cer(self) -> float:
        return cer(self.sentence, self.hinted)


async def round_trips(languages: Sequence[str]) -> list[RoundTrip]:
    from localive.engines.asr.whisper import WhisperASR
    from localive.engines.tts.espeak import EspeakTTS
    from localive.models.weights import WHISPER_BASE, ensure_model_dir

    tts = EspeakTTS()
    tts.load()
    if tts.problem:
        raise BenchError(tts.problem)
    asr = WhisperASR(ensure_model_dir(WHISPER_BASE))
    asr.load()
    trips: list[RoundTrip] = []
    try:
        for lang in languages:
            for sentence in SENTENCES[lang]:
                audio = resample(await tts.synthesize(sentence, "Puck", TAGS[lang]), 16000)
                hinted = await asr.transcribe(audio, TAGS[lang])
                detected = await asr.transcribe(audio, detect_among=())
                trips.append(RoundTrip(lang, sentence, hinted.text, detected.language, audio.duration_s,
                                       hinted.compute_s))
            print(f"  (a) {lang}: done", file=sys.stderr, flush=True)
    finally:
        asr.close()
        tts.close()
    return trips


# --- (b) spoken answers and (c) translations through a real server ----------------------------------------


@dataclass
class Answer:
    language: str
    kind: str  # "answer" (speechConfig.languageCode) or "translation" (translationConfig)
    prompt: str
    text: str = ""  # the output transcription (AUDIO) or the text parts (TEXT)
    audio: bytes = b""  # 24 kHz PCM
    seconds: float = 0.0
    heard_language: str | None = None  # Whisper's detection on the spoken answer
    heard: str = ""  # Whisper's transcript of it, with the language hint
    error: str = ""

    @property
    def text_language(self) -> str | None:
        return text_language(self.text)


def _setup(lang: str, kind: str) -> dict[str, Any]:
    generation: dict[str, Any] = {"responseModalities": ["AUDIO"], "temperature": 0, "maxOutputTokens": MAX_TOKENS,
                                  "speechConfig": {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Kore"}}}}
    if kind == "answer":
        generation["speechConfig"]["languageCode"] = TAGS[lang]
    else:
        generation["translationConfig"] = {"targetLanguageCode": TAGS[lang]}
    return {"setup": {"model": MODEL, "generationConfig": generation, "outputAudioTranscription": {}}}


async def _one(url: str, answer: Answer) -> None:
    import json

    started = time.perf_counter()
    session = await VoiceSession.open(url, _setup(answer.language, answer.kind), timeout_s=TIMEOUT_S)
    try:
        await session.ws.send(json.dumps({"clientContent": {
            "turns": [{"role": "user", "parts": [{"text": answer.prompt}]}], "turnComplete": True}}))
        deadline = time.perf_counter() + TIMEOUT_S
        texts: list[str] = []
        audio: list[bytes] = []
        while True:
            _, message = await session.receive(deadline)
            content = message.get("serverContent", {})
            if "outputTranscription" in content:
                texts.append(content["outputTranscription"].get("text", ""))
            for part in content.get("modelTurn", {}).get("parts", []):
                if "inlineData" in part:
                    audio.append(base64.b64decode(part["inlineData"]["data"]))
            if content.get("generationComplete") or content.get("turnComplete"):
                break
        answer.text = "".join(texts).strip()
        answer.audio = b"".join(audio)
        answer.seconds = time.perf_counter() - started
    finally:
        await session.close()


async def answers(languages: Sequence[str], workdir: Path) -> list[Answer]:
    from localive.engines.asr.whisper import WhisperASR
    from localive.models.weights import WHISPER_BASE, ensure_model_dir

    print("starting a server on the default models and speech engines…", file=sys.stderr, flush=True)
    server = start_server(workdir)
    results = [Answer(lang, kind, QUESTIONS[lang] if kind == "answer" else ENGLISH_SOURCE)
               for lang in languages for kind in ("answer", "translation")]
    try:
        for answer in results:
            try:
                await _one(server.live_url, answer)
            except BenchError as exc:
                answer.error = str(exc).splitlines()[0][:200]
            print(f"  (b/c) {answer.language} {answer.kind}: {answer.text[:60]!r}", file=sys.stderr, flush=True)
    finally:
        server.stop()
    asr = WhisperASR(ensure_model_dir(WHISPER_BASE))
    asr.load()
    try:
        for answer in results:
            if answer.audio:
                speech = resample(Pcm16(answer.audio, 24000), 16000)
                answer.heard_language = (await asr.transcribe(speech, detect_among=())).language
                answer.heard = (await asr.transcribe(speech, TAGS[answer.language])).text
    finally:
        asr.close()
    return results


# --- report -----------------------------------------------------------------------------------------------


@dataclass
class Report:
    trips: list[RoundTrip]
    answers: list[Answer] = field(default_factory=list)
    wall_s: float = 0.0


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def report(result: Report, languages: Sequence[str]) -> str:
    lines = ["## Languages (`python -m benchmarks.languages`)", "",
             machine(("faster-whisper", "ctranslate2", "llama-cpp-python")).one_line(),
             f"{result.wall_s:.0f} s in all.", "",
             "(a) Transcription round trip: espeak-ng (the fallback voice, Puck) speaks each sentence, Whisper base "
             "transcribes it with the language hint; error rates against the sentence; the language Whisper "
             "detects without a hint.", "",
             "| language | sentences | WER | CER | detected as (no hint) | Whisper s per s of audio |",
             "|---|---|---|---|---|---|"]
    for lang in languages:
        trips = [t for t in result.trips if t.language == lang]
        detected = ", ".join(str(t.detected_language) for t in trips)
        rtf = sum(t.asr_s for t in trips) / max(1e-9, sum(t.audio_s for t in trips))
        lines.append(f"| {lang} | {len(trips)} | {_mean([t.wer for t in trips]):.2f} | "
                     f"{_mean([t.cer for t in trips]):.2f} | {detected} | {rtf:.3f} |")
    lines += ["", "| language | sentence | heard (hint) |", "|---|---|---|"]
    lines += [f"| {t.language} | {t.sentence} | {t.hinted} |" for t in result.trips]
    if result.answers:
        lines += ["", "(b) Spoken answer to a typed question (speechConfig.languageCode) and (c) translation of "
                  f"\"{ENGLISH_SOURCE}\" (translationConfig), Qwen2.5-Coder-0.5B, temperature 0, at most "
                  f"{MAX_TOKENS} tokens, spoken by the fallback voice; Whisper then hears the audio without a hint.",
                  "", "| language | session | text in the language? | speech heard as | CER of Whisper vs text | "
                  "seconds | answer (output transcription) |", "|---|---|---|---|---|---|---|"]
        for a in result.answers:
            if a.error:
                lines.append(f"| {a.language} | {a.kind} | error | | | | {a.error} |")
                continue
            in_language = "yes" if a.text_language == a.language else f"no ({a.text_language})"
            text = a.text.replace("|", "/").replace("\n", " ")
            lines.append(f"| {a.language} | {a.kind} | {in_language} | {a.heard_language} | "
                         f"{cer(a.text, a.heard):.2f} | {a.seconds:.1f} | {text} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--languages", default=",".join(TAGS), help="comma-separated, of " + ", ".join(TAGS))
    parser.add_argument("--no-server", action="store_true", help="only (a), the transcription round trips")
    parser.add_argument("--out", type=Path, default=None, help="also write the Markdown report to this file")
    args = parser.parse_args(argv)
    languages = [lang.strip() for lang in args.languages.split(",") if lang.strip()]
    unknown = [lang for lang in languages if lang not in TAGS]
    if unknown:
        parser.error(f"unknown languages {unknown}; choose from {sorted(TAGS)}")
    started = time.perf_counter()
    try:
        result = Report(asyncio.run(round_trips(languages)))
        if not args.no_server:
            with tempfile.TemporaryDirectory(prefix="localive-bench-languages-") as tmp:
                result.answers = asyncio.run(answers(languages, Path(tmp)))
    except BenchError as exc:
        print(f"benchmarks.languages: {exc}", file=sys.stderr)
        return 1
    result.wall_s = time.perf_counter() - started
    text = report(result, languages)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
