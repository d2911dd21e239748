"""Voice in the session state machine, with shipped fakes: tone TTS, energy VAD, a scripted ASR."""

from __future__ import annotations

import asyncio
import base64

import pytest

from localive.audio.pcm import Pcm16
from localive.clock import SYSTEM_CLOCK, Clock, VirtualClock
from localive.engines.asr.base import Transcript
from localive.engines.llm.addressed import SENTINEL
from localive.engines.llm.base import ChatMessage
from localive.engines.llm.emulator import EmulatorLLM, EmulatorScript
from localive.engines.tts.fake import ToneTTS
from localive.engines.turn.base import FakeEndOfTurn
from localive.engines.vad.energy import EnergyVAD
from localive.models.registry import ModelRegistry
from localive.protocol.errors import Unimplemented
from localive.session import lifecycle
from localive.session.backchannel import LISTENER_WORDS, is_backchannel, lets_the_model_go_on
from localive.session.engines import Engines
from localive.session.live import LiveSession
from localive.testing.audio import tone_frame
from localive.testing.session import drain_turn, send

SCRIPT = EmulatorScript.from_dict({"reply": [
    {"match": "slow", "text": "one, two, three, four, five, six, seven, eight, nine, ten.", "delay_ms": 30},
    {"match": "count", "text": "One two three. Four five six seven eight nine ten eleven. That is all."},
]})


class ListASR:
    name = "list"
    sample_rate_hz = 16000

    def __init__(self, *texts: str) -> None:
        self.texts = list(texts)
        self.heard: list[float] = []
        self.expected: list[str | None] = []

    async def transcribe(self, audio: Pcm16, language: str | None = None, expect: str | None = None) -> Transcript:
        self.heard.append(audio.duration_s)
        self.expected.append(expect)
        return Transcript(self.texts.pop(0) if self.texts else "", audio_s=audio.duration_s)

    def close(self) -> None:
        pass


def make_session(asr: ListASR, ms_per_char: float = 2.0, clock: Clock = SYSTEM_CLOCK) -> LiveSession:
    llm = EmulatorLLM(SCRIPT, clock=clock)
    engines = Engines(llm_for=lambda entry: llm, asr=asr, tts=ToneTTS(ms_per_char=ms_per_char, clock=clock),
                      vad_factory=EnergyVAD)
    return LiveSession(registry=ModelRegistry(), engines=engines, session_id="v1", clock=clock)


def setup(modality: str = "AUDIO", **extra: object) -> dict:
    return {"setup": {"model": "gemini-2.0-flash-live-001", "generationConfig": {"responseModalities": [modality]},
                      "outputAudioTranscription": {}, "inputAudioTranscription": {}, **extra}}


def kinds(messages: list[dict]) -> list[str]:
    out = []
    for m in messages:
        content = m.get("serverContent", {})
        for key in ("inputTranscription", "outputTranscription", "interrupted", "generationComplete",
                    "turnComplete"):
            if key in content:
                out.append(key)
        if "modelTurn" in content:
            out.append("audio" if "inlineData" in content["modelTurn"]["parts"][0] else "text")
    return out


async def test_spoken_answer_to_speech() -> None:
    asr = ListASR("hello there")
    session = make_session(asr)
    await send(session, setup())
    await session.outbox.get()
    await send(session, tone_frame(0.2, loud=False))
    await send(session, tone_frame(0.6, loud=True))
    await send(session, tone_frame(0.7, loud=False))  # > 500 ms of silence ends the turn
    messages = await drain_turn(session)
    k = kinds(messages)
    assert k[0] == "inputTranscription" and k[1] == "outputTranscription" and "audio" in k
    assert k[-2:] == ["generationComplete", "turnComplete"]
    content = [m["serverContent"] for m in messages if "serverContent" in m]  # (and voiceActivity messages)
    assert content[0]["inputTranscription"]["text"] == "hello there"
    assert 0.6 <= asr.heard[0] <= 1.4
    audio = [m for m in messages if "modelTurn" in m.get("serverContent", {})]
    part = audio[0]["serverContent"]["modelTurn"]["parts"][0]["inlineData"]
    assert part["mimeType"] == "audio/pcm;rate=24000" and len(base64.b64decode(part["data"])) <= 9600
    usage = messages[-1]["usageMetadata"]
    assert usage["responseTokensDetails"][0]["modality"] == "AUDIO"
    assert {d["modality"] for d in usage["promptTokensDetails"]} == {"TEXT", "AUDIO"}
    assert [t.role for t in session.history] == ["user", "model"]
    await session.aclose()


# --- playback in virtual time: what the user heard, and when the turn is over ------------------------------------

async def spoken_answer(clock: VirtualClock) -> tuple[LiveSession, list[tuple[str, float]]]:
    """A voice session that has sent its whole spoken answer (at once, in virtual time: no delays), and the
    answer's clauses as the client sees them: each outputTranscription, and the seconds of audio after it."""
    session = make_session(ListASR("stop"), ms_per_char=40.0, clock=clock)
    await send(session, setup())
    await session.outbox.get()
    await send(session, {"clientContent": {"turns": [{"role": "user", "parts": [{"text": "count"}]}],
                                           "turnComplete": True}})
    clauses: list[tuple[str, float]] = []
    while "generationComplete" not in (content := (await asyncio.wait_for(session.outbox.get(), 5))["serverContent"]):
        if "text" in content.get("outputTranscription", {}):
            clauses.append((content["outputTranscription"]["text"].strip(), 0.0))
        elif "modelTurn" in content:
            chunk = base64.b64decode(content["modelTurn"]["parts"][0]["inlineData"]["data"])
            clauses[-1] = (clauses[-1][0], clauses[-1][1] + len(chunk) / 2 / 24000)
    assert len(clauses) == 3 and clauses[1][0].split()[0] == "Four"
    return session, clauses


async def test_turn_complete_comes_when_the_audio_has_played_out() -> None:
    clock = VirtualClock()
    session, clauses = await spoken_answer(clock)
    playing_s = sum(seconds for _, seconds in clauses)
    await clock.advance(playing_s - 0.001)
    assert len(session.outbox) == 0  # the client is still playing: the turn is not over
    await clock.advance(0.002)
    assert len(session.outbox) == 1  # and now it is
    assert (await session.outbox.get())["serverContent"].get("turnComplete")
    await session.aclose()


async def test_barge_in_keeps_exactly_the_words_heard_before_it() -> None:
    clock = VirtualClock()
    session, clauses = await spoken_answer(clock)
    (first, first_s), (second, second_s) = clauses[:2]
    await clock.advance(first_s + 0.6 * second_s)  # the user listens to the first clause and 60 % of the second
    await send(session, tone_frame(0.3, loud=True))  # then speaks
    messages = await drain_turn(session)
    k = kinds(messages)
    assert "interrupted" in k and k[-1] == "turnComplete"
    words = second.split()  # 8 words: 60 % of them is 4.8, so 4 were heard
    assert session.history[-1].role == "model"
    assert session.history[-1].text == f"{first} {' '.join(words[:4])}"
    await session.aclose()


async def test_manual_activity_ignores_audio_outside_and_answers_at_activity_end() -> None:
    asr = ListASR("hi")
    session = make_session(asr)
    await send(session, setup("TEXT", realtimeInputConfig={"automaticActivityDetection": {"disabled": True}}))
    await session.outbox.get()
    await send(session, tone_frame(0.5, loud=True))  # ignored: no activity yet
    await send(session, {"realtimeInput": {"activityStart": {}}})
    await send(session, tone_frame(0.25, loud=True))
    await send(session, {"realtimeInput": {"activityEnd": {}}})
    messages = await drain_turn(session)
    text = "".join(m["serverContent"]["modelTurn"]["parts"][0]["text"] for m in messages
                   if "modelTurn" in m.get("serverContent", {}))
    assert text == "You said: hi"
    assert asr.heard == [0.25]
    await session.aclose()


async def test_sounds_without_words_get_no_answer() -> None:
    session = make_session(ListASR(""))
    await send(session, setup("TEXT"))
    await session.outbox.get()
    await send(session, tone_frame(0.4, loud=True))
    await send(session, tone_frame(0.7, loud=False))
    await send(session, {"realtimeInput": {"text": "hi"}})  # the next input is answered normally
    messages = await drain_turn(session)
    assert [t.text for t in session.history] == ["hi", "You said: hi"]
    assert "inputTranscription" not in kinds(messages)
    await session.aclose()


# --- affective dialog -------------------------------------------------------------------------------------------

class RecordingLLM(EmulatorLLM):
    """The emulator, keeping every prompt it was given."""

    def __init__(self) -> None:
        super().__init__(SCRIPT)
        self.prompts: list[list[ChatMessage]] = []

    def stream(self, messages, params, functions=()):  # type: ignore[no-untyped-def]
        self.prompts.append(list(messages))
        return super().stream(messages, params, functions)


async def typed_turn(affective: bool, text: str) -> tuple[RecordingLLM, ToneTTS]:
    llm, tts = RecordingLLM(), ToneTTS(ms_per_char=1.0)
    engines = Engines(llm_for=lambda entry: llm, asr=ListASR(), tts=tts, vad_factory=EnergyVAD)
    session = LiveSession(registry=ModelRegistry(), engines=engines, session_id="affect")
    config = {"responseModalities": ["AUDIO"], **({"enableAffectiveDialog": True} if affective else {})}
    await send(session, {"setup": {"model": "gemini-2.5-flash-preview-native-audio-dialog",
                                   "generationConfig": config}})
    await session.outbox.get()
    await send(session, {"clientContent": {"turns": [{"role": "user", "parts": [{"text": text}]}],
                                           "turnComplete": True}})
    await drain_turn(session)
    await session.aclose()
    return llm, tts


async def test_affective_dialog_tells_the_model_and_adapts_the_voice() -> None:
    llm, tts = await typed_turn(True, "This is terrible, I am so annoyed with this printer.")
    system = llm.prompts[0][0]
    assert system.role == "system" and "The user sounds" in system.text and "empathy" in system.text
    assert tts.requests and all(r.delivery.rate < 1.0 and r.delivery.gain_db < 0 for r in tts.requests)


async def test_without_affective_dialog_nothing_changes() -> None:
    llm, tts = await typed_turn(False, "This is terrible, I am so annoyed with this printer.")
    assert all("The user sounds" not in m.text for m in llm.prompts[0])
    assert tts.requests and all(r.delivery.is_neutral for r in tts.requests)


# --- backchannels (semantic turn-taking) -------------------------------------------------------------------------

def semantic_session(asr: ListASR) -> tuple[LiveSession, VirtualClock]:
    clock = VirtualClock()
    llm = EmulatorLLM(SCRIPT, clock=clock)
    engines = Engines(llm_for=lambda entry: llm, asr=asr, tts=ToneTTS(ms_per_char=40.0, clock=clock),
                      vad_factory=EnergyVAD, end_of_turn=FakeEndOfTurn(1.0),
                      semantic_families=frozenset({"half-cascade"}))
    return LiveSession(registry=ModelRegistry(), engines=engines, session_id="bc", clock=clock), clock


async def while_the_model_counts(session: LiveSession, clock: VirtualClock, *frames: dict) -> list[dict]:
    """The user's `frames` while the model counts to ten (a word every 30 ms, in virtual time)."""
    await send(session, setup())
    await session.outbox.get()
    await send(session, {"clientContent": {"turns": [{"role": "user", "parts": [{"text": "slow"}]}],
                                           "turnComplete": True}})
    await clock.advance(0.1)
    assert len(session.outbox) > 0  # the model has started to speak
    await clock.advance(0.3)
    for frame in frames:
        await send(session, frame)
    return await drain_turn(session, 60, clock)


async def test_a_backchannel_does_not_interrupt_the_model() -> None:
    asr = ListASR("Mm-hm.")
    session, clock = semantic_session(asr)
    messages = await while_the_model_counts(session, clock, tone_frame(0.3, loud=True), tone_frame(0.4, loud=False))
    assert "interrupted" not in kinds(messages) and asr.heard  # heard, judged, let pass
    assert asr.expected == [LISTENER_WORDS]  # transcribed as a listener's words
    assert [t.role for t in session.history] == ["user", "model"] and "ten" in session.history[-1].text
    await session.aclose()


async def test_a_short_sound_with_no_words_does_not_interrupt_the_model() -> None:
    asr = ListASR("")  # a cough, or a hum Whisper calls silence
    session, clock = semantic_session(asr)
    messages = await while_the_model_counts(session, clock, tone_frame(0.3, loud=True), tone_frame(0.4, loud=False))
    assert "interrupted" not in kinds(messages) and asr.heard
    assert [t.role for t in session.history] == ["user", "model"] and "ten" in session.history[-1].text
    await session.aclose()


async def test_a_short_utterance_with_words_interrupts_and_is_answered() -> None:
    session, clock = semantic_session(ListASR("wait, stop"))
    messages = await while_the_model_counts(session, clock, tone_frame(0.3, loud=True), tone_frame(0.4, loud=False))
    assert "interrupted" in kinds(messages)
    answer = await drain_turn(session, 60, clock)  # the new turn answers what was said
    assert "audio" in kinds(answer) and session.history[-2].text == "wait, stop"
    await session.aclose()


async def test_long_speech_while_the_model_talks_is_a_barge_in_before_it_ends() -> None:
    asr = ListASR("let me tell you something else entirely")
    session, clock = semantic_session(asr)
    messages = await while_the_model_counts(session, clock, tone_frame(0.8, loud=True))  # still speaking: no end yet
    assert "interrupted" in kinds(messages) and not asr.heard  # cut off at 0.6 s of speech, before it ended
    await session.aclose()


@pytest.mark.parametrize(("text", "backchannel"), [
    ("Mm-hm.", True), ("Yeah, yeah.", True), ("Oh, I see.", True), ("okay", True), ("Uh-huh", True),
    ("M-m-hm.", True), ("Hmmm.", True), ("Um-hm.", True), ("Mama", False), ("Hm, what?", False),
    ("Wait.", False), ("Yeah but what about Paris?", False), ("", False), ("No.", False), ("Stop", False),
    ("Huh.", True), ("Huh?", False),
])
def test_is_backchannel(text: str, backchannel: bool) -> None:
    assert is_backchannel(text) is backchannel
    assert lets_the_model_go_on(text) is (backchannel or not text)


def test_nothing_recognisable_lets_the_model_go_on() -> None:
    assert lets_the_model_go_on("...") and lets_the_model_go_on(" ") and not lets_the_model_go_on("Why?")


# --- proactive audio ------------------------------------------------------------------------------------------------

COOK = "You are a cooking assistant. You help the user with recipes, ingredients and kitchen techniques."


async def spoken_turns(proactive: bool, *texts: str) -> list[list[dict]]:
    llm = EmulatorLLM(SCRIPT)
    session = LiveSession(registry=ModelRegistry(), engines=Engines(
        llm_for=lambda entry: llm, judge_for=lambda entry: llm, asr=ListASR(*texts), tts=ToneTTS(ms_per_char=1.0),
        vad_factory=EnergyVAD), session_id="pro")
    extra = {"proactivity": {"proactiveAudio": True}} if proactive else {}
    await send(session, {"setup": {"model": "gemini-2.5-flash-preview-native-audio-dialog",
                                   "generationConfig": {"responseModalities": ["AUDIO"]},
                                   "systemInstruction": {"parts": [{"text": COOK}]},
                                   "inputAudioTranscription": {}, **extra}})
    await session.outbox.get()
    turns = []
    for _ in texts:
        await send(session, tone_frame(0.5, loud=True))
        await send(session, tone_frame(0.7, loud=False))
        turns.append(await drain_turn(session))
    await send(session, {"clientContent": {"turns": [{"role": "user", "parts": [{"text": "Honey, the kids!"}]}],
                                           "turnComplete": True}})
    turns.append(await drain_turn(session))
    await session.aclose()
    return turns


async def test_proactive_audio_stays_silent_for_side_talk_and_answers_the_assistant() -> None:
    moves: list[tuple[lifecycle.Phase, lifecycle.Trigger, lifecycle.Phase | None]] = []
    with lifecycle.observing(lambda *move: moves.append(move)):
        side, cooking, typed = await spoken_turns(True, "Honey, can you pick up the kids at five?",
                                                  "What recipes use ingredients from my kitchen?")
    judged = [(trigger.value, end and end.value) for start, trigger, end in moves if start.value == "judging"]
    assert judged == [("nothing to answer", "complete"), ("addressed", "generating")]  # session/lifecycle.py
    assert all(end is not None for _, _, end in moves)
    assert kinds(side) == ["inputTranscription", "turnComplete"]  # heard, not answered: no audio at all
    assert "audio" in kinds(cooking) and "generationComplete" in kinds(cooking)
    assert "audio" in kinds(typed)  # typed text is always meant for the model


async def test_without_proactive_audio_everything_is_answered() -> None:
    side, _, _ = await spoken_turns(False, "Honey, can you pick up the kids at five?",
                                    "What recipes use ingredients from my kitchen?")
    assert "audio" in kinds(side)


async def test_proactive_audio_is_refused_where_the_server_has_no_judge() -> None:
    session = LiveSession(registry=ModelRegistry(), engines=Engines(
        llm_for=lambda entry: EmulatorLLM(SCRIPT), asr=ListASR(), tts=ToneTTS(ms_per_char=1.0),
        vad_factory=EnergyVAD), session_id="nojudge")
    with pytest.raises(Unimplemented, match="no judge"):
        await send(session, {"setup": {"model": "gemini-2.5-flash-preview-native-audio-dialog",
                                       "proactivity": {"proactiveAudio": True}}})
    await session.aclose()


class PreparingLLM(EmulatorLLM):
    """The emulator, keeping what the session asked it to prepare for the proactive judge."""

    def __init__(self) -> None:
        super().__init__(SCRIPT)
        self.prepared: list[tuple[list[list[ChatMessage]], list[ChatMessage] | None]] = []

    async def prepare_scoring(self, chats, question=None):  # type: ignore[no-untyped-def]
        self.prepared.append((list(chats), question))


@pytest.mark.parametrize("proactive", [True, False])
async def test_the_judges_prompts_are_prepared_while_the_user_listens(proactive: bool) -> None:
    question = "What recipes use ingredients from my kitchen?"
    llm = PreparingLLM()
    session = LiveSession(registry=ModelRegistry(), engines=Engines(
        llm_for=lambda entry: llm, judge_for=lambda entry: llm, asr=ListASR(question), tts=ToneTTS(ms_per_char=1.0),
        vad_factory=EnergyVAD), session_id="prep")
    extra = {"proactivity": {"proactiveAudio": True}} if proactive else {}
    await send(session, {"setup": {"model": "gemini-2.5-flash-preview-native-audio-dialog",
                                   "generationConfig": {"responseModalities": ["AUDIO"]},
                                   "systemInstruction": {"parts": [{"text": COOK}]}, **extra}})
    await session.outbox.get()
    await send(session, tone_frame(0.5, loud=True))
    await send(session, tone_frame(0.7, loud=False))
    assert "audio" in kinds(await drain_turn(session))
    for _ in range(3):
        await asyncio.sleep(0)
    await session.aclose()
    if not proactive:
        assert llm.prepared == []
        return
    assert len(llm.prepared) == 2  # at setup, and once the answer was generated
    (first, _), (chats, asked) = llm.prepared
    assert [(m.role, m.text) for m in first[0]] == [("system", COOK)]
    assert [m.role for m in chats[0]] == ["system", "user", "assistant"] and chats[0][1].text == question
    assert asked is not None and SENTINEL in asked[-1].text and question in asked[-1].text
