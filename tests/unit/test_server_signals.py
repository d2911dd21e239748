"""Server signals Gemini sends beside the answer: voiceActivity, outputTranscription {finished}, waitingForInput,
and a seeded history (historyConfig.initialHistoryInClientContent). Sessions with the shipped fakes; every message
is also read back through the Python SDK's own parser."""

from __future__ import annotations

import asyncio

import pytest
from google.genai import _live_converters, types

from localive.clock import SYSTEM_CLOCK, Clock, VirtualClock
from localive.engines.llm.emulator import EmulatorLLM, EmulatorScript
from localive.engines.tts.fake import ToneTTS
from localive.engines.turn.base import FakeEndOfTurn
from localive.engines.vad.energy import EnergyVAD
from localive.models.registry import ModelRegistry
from localive.protocol import server_messages as out
from localive.protocol.errors import Close
from localive.session.engines import Engines
from localive.session.live import LiveSession
from localive.session.outbox import Outbox
from localive.session.speech_out import Playback, finish_transcription
from localive.stores.sqlite import SqliteStore
from localive.testing.audio import tone_frame
from localive.testing.session import drain_turn, send
from tests.unit.test_session_voice import SCRIPT, ListASR, make_session, setup


def sdk(message: dict) -> types.LiveServerMessage:
    """Parse a server message exactly as google-genai's `AsyncSession._receive` does (Gemini API mode)."""
    mapped = _live_converters._LiveServerMessage_from_mldev(message)
    assert mapped, f"the SDK maps nothing of {message}"
    return types.LiveServerMessage._from_response(response=mapped, kwargs=types.LiveServerMessage().model_dump())


def offset_s(activity: types.VoiceActivity) -> float:
    assert activity.audio_offset is not None and activity.audio_offset.endswith("s")
    return float(activity.audio_offset[:-1])


async def pending(session: LiveSession, wait_s: float = 0.3) -> list[dict]:
    """The messages the session has sent by now (waiting `wait_s` for stragglers)."""
    messages = []
    while True:
        try:
            message = await asyncio.wait_for(session.outbox.get(), wait_s)
        except TimeoutError:
            return messages
        assert not isinstance(message, Close), message
        messages.append(message)


def content(messages: list[dict], key: str) -> list[dict]:
    return [m["serverContent"] for m in messages if key in m.get("serverContent", {})]


# --- voiceActivity ------------------------------------------------------------------------------------------

async def test_the_vad_tells_where_speech_starts_and_ends_in_the_input_stream() -> None:
    session = make_session(ListASR("hello there"))
    await send(session, setup())
    await session.outbox.get()
    await send(session, tone_frame(0.5, loud=False))
    await send(session, tone_frame(0.6, loud=True))
    await send(session, tone_frame(0.7, loud=False))  # > 500 ms of silence ends the turn
    messages = await drain_turn(session)
    parsed = [sdk(m) for m in messages]
    activity = [(i, p.voice_activity) for i, p in enumerate(parsed) if p.voice_activity is not None]
    assert [a.voice_activity_type for _, a in activity] == [types.VoiceActivityType.ACTIVITY_START,
                                                            types.VoiceActivityType.ACTIVITY_END]
    (start_at, start), (end_at, end) = activity
    assert offset_s(start) == pytest.approx(0.5, abs=0.1)  # where the tone begins in the stream
    assert offset_s(end) == pytest.approx(1.1, abs=0.1)  # where it stops, not where the silence window ran out
    transcribed = next(i for i, p in enumerate(parsed) if p.server_content and p.server_content.input_transcription)
    assert start_at < end_at < transcribed  # the turn's answer comes after the end of speech
    assert all(p.server_content is None for p in (parsed[start_at], parsed[end_at]))  # a message of its own
    await session.aclose()


async def test_no_voice_activity_with_manual_activity_signals() -> None:
    session = make_session(ListASR("hi"))
    await send(session, setup("TEXT", realtimeInputConfig={"automaticActivityDetection": {"disabled": True}}))
    await session.outbox.get()
    await send(session, {"realtimeInput": {"activityStart": {}}})
    await send(session, tone_frame(0.4, loud=True))
    await send(session, {"realtimeInput": {"activityEnd": {}}})
    messages = await drain_turn(session)
    assert content(messages, "modelTurn") and not [m for m in messages if "voiceActivity" in m]
    await session.aclose()


def test_voice_activity_wire_form() -> None:
    assert out.voice_activity("ACTIVITY_START", 1.25) == {
        "voiceActivity": {"type": "ACTIVITY_START", "audioOffset": "1.250s"}}
    assert out.duration(-0.001) == "0.000s" and out.duration(61.5) == "61.500s"


# --- outputTranscription {finished: true} --------------------------------------------------------------------

async def spoken_turn(transcribe: bool = True, modality: str = "AUDIO") -> list[dict]:
    session = make_session(ListASR())
    extra = {} if transcribe else {"outputAudioTranscription": None}
    frame = setup(modality, **extra)
    frame["setup"] = {k: v for k, v in frame["setup"].items() if v is not None}
    await send(session, frame)
    await session.outbox.get()
    await send(session, {"clientContent": {"turns": [{"role": "user", "parts": [{"text": "hello, how are you?"}]}],
                                           "turnComplete": True}})
    messages = await drain_turn(session)
    await session.aclose()
    return messages


async def test_a_spoken_answer_ends_its_transcription_with_finished_before_generation_complete() -> None:
    messages = await spoken_turn()
    transcription = [sdk(m).server_content.output_transcription for m in messages  # type: ignore[union-attr]
                     if "outputTranscription" in m.get("serverContent", {})]
    assert len(transcription) >= 2
    assert all(t.text and not t.finished for t in transcription[:-1])
    assert transcription[-1].finished is True and transcription[-1].text is None  # once, with no text
    assert "".join(t.text or "" for t in transcription).strip() == "You said: hello, how are you?"
    keys = [next(iter(m.get("serverContent", {"other": 0}))) for m in messages]
    finished = max(i for i, k in enumerate(keys) if k == "outputTranscription")
    assert keys[finished + 1:] == ["generationComplete", "turnComplete"]
    assert "modelTurn" not in keys[finished:]  # after the last audio


async def test_no_output_transcription_unless_asked_for_or_with_text_answers() -> None:
    assert not content(await spoken_turn(transcribe=False), "outputTranscription")
    assert not content(await spoken_turn(modality="TEXT"), "outputTranscription")


async def test_an_interrupted_answer_ends_its_transcription_before_interrupted() -> None:
    clock = VirtualClock()
    session = make_session(ListASR(), ms_per_char=40.0, clock=clock)
    await send(session, setup())
    await session.outbox.get()
    await send(session, {"clientContent": {"turns": [{"role": "user", "parts": [{"text": "slow"}]}],
                                           "turnComplete": True}})
    await clock.advance(0.2)  # the model writes a word every 30 ms (virtual): it is in the middle of its answer
    first = await asyncio.wait_for(session.outbox.get(), 5)  # the first clause's transcription: it speaks
    assert first["serverContent"]["outputTranscription"]["text"]
    await send(session, {"clientContent": {"turns": [{"role": "user", "parts": [{"text": "stop"}]}],
                                           "turnComplete": False}})
    messages = await drain_turn(session)
    transcription = content(messages, "outputTranscription")
    assert [t["outputTranscription"] for t in transcription if t["outputTranscription"].get("finished")] == [
        {"finished": True}]
    keys = [next(iter(m["serverContent"])) for m in messages]
    assert keys[-3:] == ["outputTranscription", "interrupted", "turnComplete"]
    await session.aclose()


async def finished_sent(playback: Playback, dropped: list[dict]) -> bool:
    outbox = Outbox()
    await finish_transcription(outbox, playback, dropped=dropped)
    return len(outbox) == 1


async def test_an_interruption_finishes_only_a_transcription_the_client_was_sent() -> None:
    piece = out.output_transcription("Hello. ")
    assert not await finished_sent(Playback(), [])  # nothing said
    assert not await finished_sent(Playback(transcribed=2), [piece, piece])  # all of it was still queued
    assert await finished_sent(Playback(transcribed=2), [piece])
    done = out.output_transcription_finished()
    assert not await finished_sent(Playback(transcribed=2, transcription_finished=True), [])  # already ended
    assert await finished_sent(Playback(transcribed=2, transcription_finished=True), [done])  # its end was dropped


# --- waitingForInput (semantic turn-taking) -------------------------------------------------------------------

def semantic_session(finished: float, ms_per_char: float = 2.0, clock: Clock = SYSTEM_CLOCK) -> LiveSession:
    """A session whose end-of-turn model judges every pause finished (1.0) or unfinished (0.0)."""
    llm = EmulatorLLM(SCRIPT, clock=clock)
    # every pass hears the sentence: the one worked ahead in a pause (session/foresight.py), the turn's own
    engines = Engines(llm_for=lambda entry: llm, asr=ListASR(*["turn off the lights in the kitchen"] * 4),
                      tts=ToneTTS(ms_per_char=ms_per_char, clock=clock), vad_factory=EnergyVAD,
                      end_of_turn=FakeEndOfTurn(finished), semantic_families=frozenset({"half-cascade"}))
    return LiveSession(registry=ModelRegistry(), engines=engines, session_id="semantic", clock=clock)


async def test_a_pause_judged_mid_sentence_tells_the_client_the_model_waits_for_more() -> None:
    session = semantic_session(finished=0.0)
    await send(session, setup("TEXT"))
    await session.outbox.get()
    await send(session, tone_frame(0.5, loud=True))
    await send(session, tone_frame(0.4, loud=False))  # a 200 ms pause is judged: not finished
    held = await pending(session)
    assert [next(iter(m)) for m in held] == ["voiceActivity", "serverContent"]
    assert sdk(held[1]).server_content == types.LiveServerContent(waiting_for_input=True)  # and nothing else
    assert not session.generating
    await send(session, tone_frame(0.4, loud=True))  # the user goes on
    await send(session, tone_frame(2.2, loud=False))  # and stops: the longer silence window ends the turn
    messages = await drain_turn(session)
    kinds = [next(iter(m.get("serverContent", m))) for m in messages]
    # the second pause is held too; the same speech goes on (no new start) until it ends
    assert kinds[:3] == ["waitingForInput", "voiceActivity", "inputTranscription"], kinds
    assert kinds.count("waitingForInput") == 1 and messages[1]["voiceActivity"]["type"] == "ACTIVITY_END"
    assert content(messages, "modelTurn") and session.history[-1].role == "model"
    await session.aclose()


async def test_a_pause_judged_finished_ends_the_turn_without_waiting_for_input() -> None:
    session = semantic_session(finished=1.0)
    await send(session, setup("TEXT"))
    await session.outbox.get()
    await send(session, tone_frame(0.5, loud=True))
    await send(session, tone_frame(0.4, loud=False))
    messages = await drain_turn(session)
    assert not content(messages, "waitingForInput") and content(messages, "modelTurn")
    await session.aclose()


async def test_no_waiting_for_input_while_the_model_talks() -> None:
    clock = VirtualClock()
    session = semantic_session(finished=0.0, ms_per_char=40.0, clock=clock)
    await send(session, setup())
    await session.outbox.get()
    await send(session, {"clientContent": {"turns": [{"role": "user", "parts": [{"text": "slow"}]}],
                                           "turnComplete": True}})
    await clock.advance(0.1)
    assert len(session.outbox) > 0  # the model has started to speak (a word every 30 ms, in virtual time)
    await clock.advance(0.3)
    await send(session, tone_frame(0.3, loud=True))  # the user says something short (a backchannel?) and pauses
    await send(session, tone_frame(0.4, loud=False))
    messages = await drain_turn(session, 60, clock)
    assert [m["voiceActivity"]["type"] for m in messages if "voiceActivity" in m] == ["ACTIVITY_START"]
    assert not content(messages, "waitingForInput") and not content(messages, "interrupted")
    await session.aclose()


# --- historyConfig.initialHistoryInClientContent ------------------------------------------------------------------

def text_session() -> LiveSession:
    script = EmulatorScript.from_dict({"reply": [{"match": "^which turn", "text": "This is turn {turn}."}]})
    llm = EmulatorLLM(script)
    return LiveSession(registry=ModelRegistry(), engines=Engines(llm_for=lambda entry: llm), session_id="seed")


def user(text: str) -> dict:
    return {"role": "user", "parts": [{"text": text}]}


def model(text: str) -> dict:
    return {"role": "model", "parts": [{"text": text}]}


SEEDED = {"historyConfig": {"initialHistoryInClientContent": True}}


async def test_a_seeded_history_is_not_answered_and_informs_the_next_turn() -> None:
    session = text_session()
    await send(session, setup("TEXT", **SEEDED))
    await session.outbox.get()
    await send(session, {"clientContent": {"turns": [user("Hi, I am Ada."), model("Hello Ada.")],
                                           "turnComplete": False}})
    await send(session, {"clientContent": {"turns": [user("I like maths.")], "turnComplete": True}})
    assert await pending(session) == [] and not session.generating  # the history ends with a user turn: no answer
    await send(session, {"realtimeInput": {"text": "which turn is this?"}})
    messages = await drain_turn(session)
    assert "".join(p["text"] for c in content(messages, "modelTurn") for p in c["modelTurn"]["parts"]) == \
        "This is turn 3."  # the two seeded user turns are in the model's context
    # after the history, clientContent behaves as usual
    await send(session, {"clientContent": {"turns": [user("which turn now?")], "turnComplete": True}})
    assert content(await drain_turn(session), "modelTurn")
    assert [t.role for t in session.history] == ["user", "model", "user", "user", "model", "user", "model"]
    await session.aclose()


async def test_a_seeded_history_may_end_with_the_model() -> None:
    session = text_session()
    await send(session, setup("TEXT", **SEEDED))
    await session.outbox.get()
    await send(session, {"clientContent": {"turns": [user("Hi."), model("Hello, how can I help?")],
                                           "turnComplete": True}})
    await send(session, {"clientContent": {"turns": [user("which turn?")], "turnComplete": True}})
    messages = await drain_turn(session)
    assert content(messages, "modelTurn")[0]["modelTurn"]["parts"][0]["text"].startswith("This")
    await session.aclose()


async def test_without_history_config_the_closing_turn_is_answered() -> None:
    session = text_session()
    await send(session, setup("TEXT"))
    await session.outbox.get()
    await send(session, {"clientContent": {"turns": [user("Hi, I am Ada.")], "turnComplete": True}})
    assert content(await drain_turn(session), "modelTurn")
    await session.aclose()


async def test_a_seeded_history_is_in_the_next_resumption_handle() -> None:
    llm = EmulatorLLM()
    session = LiveSession(registry=ModelRegistry(), engines=Engines(llm_for=lambda entry: llm), session_id="r",
                          store=SqliteStore(":memory:"))
    await send(session, setup("TEXT", sessionResumption={}, **SEEDED))
    await session.outbox.get()
    assert "sessionResumptionUpdate" in await session.outbox.get()  # the handle at setup: no history yet
    await send(session, {"clientContent": {"turns": [user("Hi, I am Ada.")], "turnComplete": True}})
    (update,) = await pending(session)
    assert update["sessionResumptionUpdate"]["resumable"] and update["sessionResumptionUpdate"]["newHandle"]
    await session.aclose()
