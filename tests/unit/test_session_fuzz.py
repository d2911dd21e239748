"""Property-based test of the session (issue 17, §5): random sequences of valid and invalid client frames through a
`LiveSession` with fakes, in virtual time — setups of every kind, typed and spoken input, activity signals, tool
responses to real and bogus calls, interruptions, a client that stops reading, disconnects at any point, a
second connection that resumes the first, and connections that reach their time limit (goAway, then 1011).

Driven only through the public surface (the protocol's parser, `handle`, `outbox`, `aclose`) by
tests/support/fuzz_client.py, which also states the invariants; for every scenario:

- no exception escapes but the protocol's own errors (each becomes the close the transport would send);
- every close code is one the protocol allows, its reason fits a close frame, and none blames the server (the
  fakes never fail, so that would be an unexpected exception); nothing is logged at ERROR;
- handle() returns, and the session goes quiet, within bounds (a hang fails, it does not stall the test);
- after aclose() no task the session started is left, and no task of it ended with an exception nobody saw;
- everything sent is a well-formed server message (google-genai's own parser reads it), setupComplete first;
- every move of the turn lifecycle is one its table allows (session/lifecycle.py);
- every model turn ends with turnComplete unless the connection ended first; within a turn, `interrupted` comes
  last before turnComplete, and no model part follows generationComplete;
- a client that ends well (stops talking, answers every function call, asks a last question) gets an answer: a
  turnComplete that was not interrupted.

Profiles (LOCALIVE_FUZZ): `ci` (the default, what scripts/test.sh runs: 2,000 scenarios, the same ones every run),
`quick` (200, for a local run while editing) and `explore` (20,000 new random ones each run, to look for new bugs;
add what it finds below as an @example).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from localive.models.registry import ModelRegistry
from localive.session import lifecycle
from tests.support.fuzz_client import (
    MUTATIONS,
    PROBE,
    UTTERANCES,
    Connection,
    Disconnect,
    ErrorLog,
    Scenario,
    Send,
    Server,
    Speak,
    StopReading,
    Wait,
    run_scenario,
)
from tests.support.virtual_time import VirtualTimeLoop, run_virtual

_BASE = settings(deadline=None, database=None, print_blob=True,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
PROFILES = {
    "ci": settings(_BASE, max_examples=2000, derandomize=True),
    "quick": settings(_BASE, max_examples=200, derandomize=True),
    "explore": settings(_BASE, max_examples=20_000),
}
PROFILE = PROFILES[os.environ.get("LOCALIVE_FUZZ", "ci")]
if "LOCALIVE_FUZZ_EXAMPLES" in os.environ:  # e.g. a longer exploration, or a smoke run
    PROFILE = settings(PROFILE, max_examples=int(os.environ["LOCALIVE_FUZZ_EXAMPLES"]))

REGISTRY = ModelRegistry()
CAPABLE = ["gemini-2.0-flash-live-001", "localive-emulator"]  # TEXT and AUDIO, every tool
MODELS = [*(e.name for e in REGISTRY), "models/gemini-2.0-flash-live-001", "gemini-no-such-model"]
NATIVE_AUDIO = {e.name for e in REGISTRY if e.response_modalities == {"AUDIO"}}
AFFECTIVE_AND_PROACTIVE = [e.name for e in REGISTRY if e.affective_dialog and e.proactive_audio]


def rarely(strategy: st.SearchStrategy, one_in: int = 4) -> st.SearchStrategy:
    """`strategy`'s value one time in `one_in`, else None (shrinks to None)."""
    return st.sampled_from([False] * (one_in - 1) + [True]).flatmap(lambda on: strategy if on else st.none())


def weighted(*choices: tuple[int, st.SearchStrategy]) -> st.SearchStrategy:
    """One of the strategies, each chosen in proportion to its weight (st.one_of weighs its branches alike);
    shrinks toward the first."""
    indices = [i for i, (weight, _) in enumerate(choices) for _ in range(weight)]
    return st.sampled_from(indices).flatmap(lambda i: choices[i][1])


# --- what a client sends ------------------------------------------------------------------------------------
# Valid frames (valid for most setups: activity signals need manual activity, audio a voice server, video a vision
# one), and one send in INVALID_ONE_IN is an invalid frame: each ends its connection, so more would leave few
# scenarios long enough to reach the states worth testing.

INVALID_ONE_IN = 30

phrases = weighted((6, st.sampled_from([*UTTERANCES, "hi", "slow please", PROBE])),
                   (5, st.sampled_from(["turn on the lights", "weather?", "long task", "primes", "bad args"])),
                   (2, st.text(max_size=12).filter(lambda s: "<<" not in s)),
                   (1, st.just("<<words:3000>>")))
text_parts = st.builds(lambda text: {"text": text}, phrases)
replayed_parts = st.sampled_from([  # history given as clientContent: tool exchanges, thoughts, a picture
    {"functionResponse": {"name": "turn_on_the_lights", "response": {"output": "on"}, "id": "replayed-1"}},
    {"text": "a thought", "thought": True},
    {"executableCode": {"code": "print(1)", "language": "PYTHON"}},
    {"codeExecutionResult": {"outcome": "OUTCOME_OK", "output": "1"}},
    {"inlineData": {"mimeType": "image/png", "data": "<<png>>"}},
])
contents = weighted(
    (12, st.fixed_dictionaries({"parts": st.lists(weighted((8, text_parts), (1, replayed_parts)), max_size=3)},
                               optional={"role": st.sampled_from(["user", "user", "user", "model"])})),
    (1, st.just({"role": "model", "parts": [{"text": "Let me look."}, {"functionCall": {
        "name": "turn_on_the_lights", "args": {}, "id": "replayed-1"}}]})))
client_content = st.builds(lambda turns, complete: {"clientContent": {"turns": turns, "turnComplete": complete}},
                           st.lists(contents, max_size=3), st.booleans())

audio = st.builds(lambda sound, ms, rate: {"mimeType": f"audio/pcm;rate={rate}",
                                          "data": f"<<audio:{sound}:{ms}:{rate}>>"},
                  st.sampled_from(["silence", "tone", "tone", "hum"]), st.sampled_from([20, 100, 250, 600]),
                  st.sampled_from([16000, 24000, 8000]))
realtime_input = weighted(
    (4, st.builds(lambda blob: {"realtimeInput": {"audio": blob}}, audio)),
    (3, st.builds(lambda text: {"realtimeInput": {"text": text}}, phrases)),
    (1, st.sampled_from([{"realtimeInput": {"activityStart": {}}}, {"realtimeInput": {"activityEnd": {}}}])),
    (1, st.sampled_from([{"realtimeInput": {"audioStreamEnd": True}},
                         {"realtimeInput": {"video": {"mimeType": "image/png", "data": "<<png>>"}}},
                         {"realtimeInput": {}}])),
    (1, st.builds(lambda blob: {"realtimeInput": {"mediaChunks": [blob]}}, audio)),
    (1, st.fixed_dictionaries({}, optional={"audio": audio, "text": phrases, "audioStreamEnd": st.booleans()}
                              ).map(lambda body: {"realtimeInput": body})),
)
SCHEDULING = [None, None, "SILENT", "WHEN_IDLE", "INTERRUPT", "SCHEDULING_UNSPECIFIED"]


def _function_response(k: int, body: dict, scheduling: str | None, will_continue: bool | None,
                       id_kind: str = "real", name_kind: str = "right") -> dict:
    """A response to the client's k-th function call (counted from the end if negative)."""
    response: dict = {"response": body}
    if id_kind != "none":
        response["id"] = f"<<call:{k}>>" if id_kind == "real" else "function-call-bogus-1"
    if name_kind != "none":
        response["name"] = f"<<callname:{k}>>" if name_kind == "right" else "wrong_name"
    if scheduling is not None:
        response["scheduling"] = scheduling
    if will_continue is not None:
        response["willContinue"] = will_continue
    return response


function_responses = st.builds(
    _function_response, st.integers(-2, 2),
    st.sampled_from([{"output": "ok"}, {}, {"error": "failed"}, {"output": "x", "scheduling": "INTERRUPT"}]),
    st.sampled_from(SCHEDULING), st.sampled_from([None, None, True, False]),
    name_kind=st.sampled_from(["right", "right", "none"]))
tool_response = st.builds(lambda responses: {"toolResponse": {"functionResponses": responses}},
                          st.lists(function_responses, min_size=1, max_size=2))

LIGHTS = {"name": "turn_on_the_lights"}
WEATHER = {"name": "get_weather", "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}},
                                                 "required": ["city"]}}
LONG = {"name": "long_task", "behavior": "NON_BLOCKING"}
LONG_BLOCKING = {"name": "long_task"}
BAD_DECLARATIONS = [{"name": "bad name!"}, {"name": "x", "parameters": {"type": "NOT_A_TYPE"}}]
tools = st.builds(
    lambda functions, code: ([{"functionDeclarations": functions}] if functions else [])
    + ([{"codeExecution": {}}] if code or not functions else []),
    st.lists(st.sampled_from([LIGHTS, WEATHER, LONG, LONG, LONG_BLOCKING]), max_size=3, unique_by=lambda f: f["name"])
    | st.just([LIGHTS, WEATHER, LONG]) | st.just([LIGHTS, WEATHER, LONG_BLOCKING]),
    st.sampled_from([False, False, True]))
context_update = st.one_of(
    st.builds(lambda text: {"contextUpdate": {"systemInstruction": {"parts": [{"text": text}]}}}, phrases),
    st.builds(lambda tool_list: {"contextUpdate": {"tools": {"tools": tool_list}}}, tools),
    st.just({"contextUpdate": {"tools": {}}}),
)
valid_frames = weighted((6, realtime_input), (5, client_content), (3, tool_response), (1, context_update))

BAD_TOOLS = [*([{"functionDeclarations": [d]}] for d in BAD_DECLARATIONS),
             [{"functionDeclarations": [LIGHTS, LIGHTS]}], [{"googleSearch": {}}], [{"urlContext": {}}],
             [{"computerUse": {}}]]
invalid_frames = st.one_of(
    st.builds(Send, valid_frames, st.sampled_from(MUTATIONS)),
    st.builds(Send, st.sampled_from([
        {"setup": {"model": "localive-emulator"}},  # setup again
        {"clientContent": {"turns": [{"parts": [{"text": "x"}]}] * 1001, "turnComplete": True}},  # too many turns
        {"clientContent": {"turns": [{"role": "tool", "parts": [{"text": "x"}]}]}},
        {"clientContent": {"turns": [{"parts": [{"functionCall": {"name": "turn_on_the_lights"}}]}]}},
        {"clientContent": {"turns": [{"role": "system", "parts": [{"text": "x"}]}]}},
        {"clientContent": {"turns": [{"parts": [{}]}], "turnComplete": True}},
        {"clientContent": {"turns": [{"parts": [{"fileData": {"fileUri": "gs://bucket/file"}}]}]}},
        {"clientContent": {"turns": [{"parts": [{"inlineData": {"mimeType": "image/png", "data": "<<notpng>>"}}]}],
                           "turnComplete": True}},
        {"clientContent": {"turns": [{"parts": [{"inlineData": {"mimeType": "audio/pcm", "data": "<<png>>"}}]}]}},
        {"realtimeInput": {"audio": {"mimeType": "audio/pcm;rate=16000", "data": "<<audio:odd:100:16000>>"}}},
        {"realtimeInput": {"audio": {"mimeType": "audio/wav", "data": "<<audio:tone:100:16000>>"}}},
        {"realtimeInput": {"audio": {"mimeType": "audio/pcm;rate=1", "data": "<<audio:tone:100:16000>>"}}},
        {"realtimeInput": {"video": {"mimeType": "image/jpeg", "data": "<<notpng>>"}}},
        {"realtimeInput": {"video": {"mimeType": "image/gif", "data": "<<png>>"}}},
        {"realtimeInput": {"mediaChunks": [{"mimeType": "image/png", "data": "<<png>>"}]}},
        {"toolResponse": {"functionResponses": [{"id": "function-call-bogus-1", "response": {}}]}},
        {"toolResponse": {"functionResponses": [{"response": {}}]}},
        {"toolResponse": {"functionResponses": [{"id": "<<call:0>>", "name": "wrong_name", "response": {}}]}},
        {"toolResponse": {"functionResponses": [{"id": "<<call:0>>"}, {"id": "<<call:0>>"}]}},  # answered twice
        {"contextUpdate": {"systemInstruction": {"parts": [{"fileData": {"fileUri": "gs://bucket/file"}}]}}},
        {"noSuchMessage": {}},
    ])),
    st.builds(lambda tool_list: Send({"contextUpdate": {"tools": {"tools": tool_list}}}), st.sampled_from(BAD_TOOLS)),
)
sends = weighted((INVALID_ONE_IN - 1, st.builds(Send, valid_frames)), (1, invalid_frames))
speech = weighted(
    (12, st.builds(Speak, st.sampled_from([100, 300, 700, 1500]), st.sampled_from([0, 300, 700, 2500]),
                   st.sampled_from([40, 100, 500]), st.sampled_from([16000, 16000, 24000]))),
    (1, st.just(Speak(31_000, 700, 500))),  # longer than an utterance may be (MAX_UTTERANCE_S): cut at 30 s
)
steps = weighted((6, sends), (3, speech), (3, st.builds(Wait, st.sampled_from([0.0, 0.01, 0.1, 0.5, 2.0, 10.0]))),
                 (1, st.builds(StopReading, st.sampled_from([0.5, 5.0, 20.0]))))


# --- setups ------------------------------------------------------------------------------------------------

BAD_SETUP_FIELDS = [
    {"generationConfig": {"responseModalities": ["TEXT", "AUDIO"]}},
    {"generationConfig": {"responseModalities": ["IMAGE"]}},
    {"generationConfig": {"candidateCount": 2}},
    {"generationConfig": {"responseMimeType": "application/json"}},
    {"generationConfig": {"speechConfig": {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "NoSuchVoice"}}}}},
    {"generationConfig": {"speechConfig": {"languageCode": "not a tag"}}},
    {"generationConfig": {"translationConfig": {"targetLanguageCode": ""}}},
    {"generationConfig": {"translationConfig": {"targetLanguageCode": "fr"}, "speechConfig": {"languageCode": "de"}}},
    {"generationConfig": {"responseModalities": ["AUDIO"], "enableAffectiveDialog": True}},  # not on every model
    {"proactivity": {"proactiveAudio": True}},  # not on every model
    {"tools": [{"codeExecution": {}}]},  # not on every server
    {"generationConfig": {"mediaResolution": "NOPE"}},
    {"contextWindowCompression": {"triggerTokens": 0}},
    {"contextWindowCompression": {"slidingWindow": {"targetTokens": -1}}},
    {"inputAudioTranscription": {"wordTimestamp": True}},
    {"proactivity": {"proactiveVideo": True}},
    {"explicitVadSignal": True},
    {"avatarConfig": {}},
    *({"tools": tool_list} for tool_list in BAD_TOOLS),
    {"systemInstruction": {"parts": [{"inlineData": {"mimeType": "image/png", "data": "<<png>>"}}]}},
    {"realtimeInputConfig": {"activityHandling": "SOMETIMES"}},
    {"sessionResumption": {"handle": "no-such-handle"}},
]


@st.composite
def setups(draw: st.DrawFn, server: Server, resuming: bool = False, resumable: bool = False) -> Send:
    """A setup this server accepts (model, modality and tools fit it); one in ten has a field it refuses."""
    model = draw(weighted((12, st.sampled_from(CAPABLE)), (1, st.sampled_from(MODELS))))
    setup: dict = {"model": model}
    generation: dict = {}
    audio_only = model in NATIVE_AUDIO
    modalities = ["AUDIO"] if audio_only else ["TEXT", "TEXT", "AUDIO", "text"] if server.voice else ["TEXT"]
    if (modality := draw(st.sampled_from([*modalities, None] if server.voice else modalities))) is not None:
        generation["responseModalities"] = [modality]
    for key, values in (("maxOutputTokens", [1, 8, 64, 2048]), ("temperature", [0.0, 2.0]),
                        ("speechConfig", [{"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Kore"}}},
                                          {"languageCode": "en-GB"}]),
                        ("thinkingConfig", [{"includeThoughts": True, "thinkingBudget": 16},
                                            {"thinkingBudget": 0}, {"includeThoughts": True}])):
        if (value := draw(rarely(st.sampled_from(values), 6))) is not None:
            generation[key] = value
    activity: dict = draw(st.fixed_dictionaries({}, optional={
        "disabled": st.booleans(), "silenceDurationMs": st.sampled_from([0, 100, 500, 2000]),
        "prefixPaddingMs": st.sampled_from([0, 20, 300]),
        "startOfSpeechSensitivity": st.sampled_from(["START_SENSITIVITY_LOW", "START_SENSITIVITY_HIGH"]),
        "endOfSpeechSensitivity": st.sampled_from(["END_SENSITIVITY_LOW", "END_SENSITIVITY_HIGH"])}))
    realtime: dict = {"automaticActivityDetection": activity} if activity else {}
    if (handling := draw(rarely(st.sampled_from(["NO_INTERRUPTION", "START_OF_ACTIVITY_INTERRUPTS"]), 3))):
        realtime["activityHandling"] = handling
    if (coverage := draw(rarely(st.sampled_from(["TURN_INCLUDES_ALL_INPUT", "TURN_INCLUDES_ONLY_ACTIVITY"]), 6))):
        realtime["turnCoverage"] = coverage
    if realtime:
        setup["realtimeInputConfig"] = realtime
    optional = {
        "systemInstruction": st.builds(lambda text: {"parts": [{"text": text}]}, phrases),
        "sessionResumption": st.sampled_from([{}, {"transparent": True}]),
        "contextWindowCompression": st.sampled_from([{}, {"triggerTokens": 50, "slidingWindow": {"targetTokens": 10}},
                                                     {"slidingWindow": {"targetTokens": 0}}]),
        "inputAudioTranscription": st.sampled_from([{}, {"languageCodes": ["en-US", "fr-FR"]},
                                                    {"customVocabulary": ["localive"]}]),
        "outputAudioTranscription": st.just({}),
        "historyConfig": st.just({"initialHistoryInClientContent": True}),
    }
    for key, strategy in optional.items():
        if (value := draw(rarely(strategy, 3))) is not None:
            setup[key] = value
    translation = draw(rarely(st.sampled_from([{"targetLanguageCode": "fr"},
                                               {"targetLanguageCode": "en", "echoTargetLanguage": True}]), 10))
    if translation is not None:  # (tools cannot be combined with it)
        generation["translationConfig"] = translation
    elif (tool_list := draw(rarely(tools, 2))) is not None:
        if kept := [t for t in tool_list if server.sandbox or "codeExecution" not in t]:
            setup["tools"] = kept
    if server.voice and (feature := draw(rarely(st.sampled_from(["enableAffectiveDialog", "proactivity"]), 8))):
        setup["model"] = draw(st.sampled_from(AFFECTIVE_AND_PROACTIVE))
        generation["responseModalities"] = ["AUDIO"]
        if feature == "proactivity":
            setup["proactivity"] = {"proactiveAudio": True}
        else:
            generation["enableAffectiveDialog"] = True
    if generation:
        setup["generationConfig"] = generation
    if resumable:
        setup["sessionResumption"] = setup.get("sessionResumption") or {}
    if resuming and draw(st.sampled_from([True, True, False])):
        setup["sessionResumption"] = {**setup.get("sessionResumption", {}), "handle": "<<handle>>"}
    if (bad := draw(rarely(st.sampled_from(BAD_SETUP_FIELDS), 10))) is not None:
        key, value = next(iter(bad.items()))
        setup[key] = {**setup[key], **value} if isinstance(value, dict) and isinstance(setup.get(key), dict) \
            else value
    return Send({"setup": setup}, draw(rarely(st.sampled_from(MUTATIONS), 30)))


disconnects = st.one_of(
    st.builds(Disconnect),
    st.builds(Disconnect, st.builds(Send, valid_frames), st.sampled_from([0, 1, 2, 5, 20])),
)


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    server = draw(st.builds(Server, voice=st.sampled_from([True] * 7 + [False]),
                            vision=st.sampled_from([True] * 3 + [False]), sandbox=st.sampled_from([True] * 7 + [False]),
                            end_of_turn=st.sampled_from([None, None, 1.0, 0.0]),
                            context_tokens=st.sampled_from([32768, 32768, 2048])))
    connections = []
    count = draw(st.sampled_from([1, 1, 1, 2]))
    for number in range(count):
        setup = draw(setups(server, resuming=number > 0, resumable=count > 1 and number == 0))
        end = draw(weighted((2, st.none()), (1, disconnects)))
        connections.append(Connection(setup, tuple(draw(st.lists(steps, min_size=1, max_size=25))), end))
    return Scenario(server, draw(st.sampled_from([256, 256, 8, 2])), tuple(connections),
                    draw(rarely(st.sampled_from([4.0, 20.0]), 6)))


# --- regressions: scenarios that found bugs ----------------------------------------------------------------

def _silence(ms: int = 20) -> Send:
    return Send({"realtimeInput": {"audio": {"mimeType": "audio/pcm;rate=16000",
                                             "data": f"<<audio:silence:{ms}:16000>>"}}})


def _text_setup(**fields: object) -> Send:
    return Send({"setup": {"model": "gemini-2.0-flash-live-001",
                           "generationConfig": {"responseModalities": ["TEXT"]}, **fields}})


_SEMANTIC = Server(voice=True, vision=False, sandbox=True, end_of_turn=1.0)
_RESUMABLE_TEXT = _text_setup(sessionResumption={})
_RESUMING_TEXT = _text_setup(sessionResumption={"handle": "<<handle>>"})
# Semantic turn-taking: a short utterance while the model talks is judged by a backchannel task, which called
# _user_input while the reader task was in it: one turn started twice (the first left running after aclose, or
# both taking the same transcription: IndexError), one interruption sent twice.
BACKCHANNEL_RACE_TWO_TURNS = Scenario(_SEMANTIC, 2, (
    Connection(_RESUMABLE_TEXT, (_silence(),)),
    Connection(_RESUMING_TEXT, (_silence(), _silence(), _silence(), Speak(100, 300, 40), StopReading(0.5),
                                Speak(100, 300, 40), _silence(), Speak(100, 0, 40))),
))
BACKCHANNEL_RACE_INTERRUPTED_TWICE = Scenario(_SEMANTIC, 2, (
    Connection(_RESUMABLE_TEXT, (Send({"realtimeInput": {"text": ""}}),)),
    Connection(_RESUMING_TEXT, (_silence(), _silence(), Speak(100, 300, 40), StopReading(0.5), Speak(100, 300, 40),
                                Send({"realtimeInput": {"text": ""}}))),
))



def _interrupt_while_not_reading(seconds: float) -> Scenario:
    return Scenario(Server(vision=False), 2, (Connection(_text_setup(), (
        Send({"clientContent": {"turns": [], "turnComplete": False}}),
        Send({"realtimeInput": {"text": "<<words:3000>>"}}),
        Speak(100, 0, 40),
        Send({"realtimeInput": {"text": "hello there"}}),
        Send({"contextUpdate": {"systemInstruction": {"parts": [{"text": ""}]}}}),
        _silence(),
        StopReading(seconds),
        _silence(),
    )),))


# A client that stops reading while it interrupts the model: the interrupted turn cannot send its end, interrupt()
# gave up after INTERRUPT_TIMEOUT_S and the session went on with that turn running beside the next one, owned by
# nobody (logged at ERROR: "turn did not stop within 5 s"); now the session ends (1011, the client's fault). At
# 5 s the client reads again just as interrupt() gives up, when the turn has just stopped: no error then.
INTERRUPT_WHILE_NOT_READING = _interrupt_while_not_reading(20.0)
INTERRUPT_AS_THE_CLIENT_READS_AGAIN = _interrupt_while_not_reading(5.0)

# Semantic turn-taking: a short utterance while the model talks is transcribed by a task of the backchannel task's
# own; when aclose() cancelled the backchannel task, that transcription was cancelled but not waited for, and was
# still running when aclose() returned.
BACKCHANNEL_TRANSCRIPTION_AFTER_ACLOSE = Scenario(_SEMANTIC, 256, (Connection(
    Send({"setup": {"model": "gemini-2.0-flash-live-001", "generationConfig": {"responseModalities": ["AUDIO"]}}}),
    (_silence(), _silence(), Send({"realtimeInput": {"text": "<<words:3000>>"}}), Speak(100, 300, 100),
     Send({"realtimeInput": {"activityStart": {}}}))),))


# --- the test ----------------------------------------------------------------------------------------------

ERRORS = ErrorLog()


def check(scenario: Scenario) -> list[str]:
    async def main(loop: VirtualTimeLoop) -> list[str]:
        happened = await run_scenario(scenario, REGISTRY)
        unseen = [t for t in loop.tasks if t.done() and getattr(t, "_log_traceback", False)]  # asyncio's own flag
        assert not unseen, [(t.get_name(), t.exception()) for t in unseen]
        assert not loop.errors, loop.errors
        return happened

    moves: list[tuple[lifecycle.Phase, lifecycle.Trigger, lifecycle.Phase | None]] = []
    with ERRORS.watching() as logged, lifecycle.observing(lambda *move: moves.append(move)):
        happened = run_virtual(main)
    assert not logged, [(r.getMessage(), r.exc_info) for r in logged]
    # the session only ever made the turn lifecycle's transitions (session/lifecycle.py's table)
    refused = [(start.value, trigger.value) for start, trigger, end in moves if end is None]
    assert not refused, refused
    return [*happened, *sorted({f"phase reached: {end.value}" for _, _, end in moves if end is not None})]


@PROFILE
@given(scenarios())
@example(BACKCHANNEL_RACE_TWO_TURNS)
@example(BACKCHANNEL_RACE_INTERRUPTED_TWICE)
@example(INTERRUPT_WHILE_NOT_READING)
@example(INTERRUPT_AS_THE_CLIENT_READS_AGAIN)
@example(BACKCHANNEL_TRANSCRIPTION_AFTER_ACLOSE)
def test_no_client_can_break_a_session(scenario: Scenario) -> None:
    for what in check(scenario):
        event(what)  # pytest --hypothesis-show-statistics: how often each outcome came up
