"""API keys, ephemeral tokens and their locked setup fields (server/auth.py, server/tokens_api.py), without sockets."""

from __future__ import annotations

import asyncio
import hmac
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from starlette.requests import Request

from localive.clock import VirtualClock
from localive.engines.llm.emulator import EmulatorLLM
from localive.models.registry import ModelRegistry
from localive.protocol import messages as wire
from localive.protocol.errors import MAX_REASON_BYTES, Close, InvalidArgument, close_for
from localive.server import auth
from localive.server.auth import (
    ANONYMOUS,
    INVALID_KEY,
    MISSING_KEY,
    NO_NEW_SESSIONS,
    TOKEN_EXPIRED,
    TOKEN_NEEDS_CONSTRAINED,
    Access,
    Credential,
    KeyRing,
    MemoryTokenStore,
    Token,
    TokenUsedUp,
    Unauthenticated,
    constrain,
    principal_of,
    read_keys_file,
)
from localive.server.tokens_api import BadRequest, create_token, parse_token_request
from localive.session.engines import Engines
from localive.session.live import LiveSession
from localive.testing.session import send

NOW = 1_000_000.0
MODEL = "models/gemini-2.0-flash-live-001"


def client_setup(**fields: Any) -> wire.Setup:
    return wire.Setup.model_validate({"model": MODEL, **fields})


async def mint(access: Access, *, uses: int = 1, expire_in: float = 1800.0, new_sessions_for: float = 60.0,
         setup: dict[str, Any] | None = None, mask: tuple[str, ...] | None = None) -> str:
    name = auth.new_token_name()
    now = access.clock.time()
    await access.tokens.add(name, Token(now + expire_in, now + new_sessions_for, uses, "p-minter", setup, mask), now)
    return name


# --- API keys ------------------------------------------------------------------------------------------------

def test_no_keys_means_open() -> None:
    ring = KeyRing()
    assert ring.open and ring.accepts(None) and ring.accepts("") and ring.accepts("anything")


def test_configured_keys_accept_only_themselves() -> None:
    ring = KeyRing(["k1", " k2 ", ""])
    assert not ring.open and len(ring) == 2
    assert ring.accepts("k1") and ring.accepts("k2")
    assert not ring.accepts("k3") and not ring.accepts(None) and not ring.accepts("") and not ring.accepts("k1 ")


def test_every_key_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    compare = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return compare(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)  # auth looks it up at each call
    ring = KeyRing(["first", "second", "third"])
    assert ring.accepts("first")
    assert len(calls) == 3, "no early exit on a match"
    assert all(len(a) == len(b) == 32 for a, b in calls), "digests are compared, not the keys"
    calls.clear()
    assert not ring.accepts("x" * 1000)
    assert len(calls) == 3


def test_a_key_may_not_look_like_a_token() -> None:
    with pytest.raises(ValueError, match="auth_tokens/"):
        KeyRing(["auth_tokens/abc"])


def test_keys_file_env_and_options_are_merged(tmp_path: Path) -> None:
    path = tmp_path / "keys.txt"
    path.write_text("# team keys\nfile-a\n\n   file-b   \n  # indented comment\nk1\n", encoding="utf-8")
    assert read_keys_file(path) == ["file-a", "file-b", "k1"]
    ring = KeyRing.load(["k1"], [path], env=" env-a, ,env-b")
    assert len(ring) == 5  # k1 given twice counts once
    for key in ("k1", "file-a", "file-b", "env-a", "env-b"):
        assert ring.accepts(key), key
    assert not ring.accepts("# team keys")
    assert KeyRing.load(env="").open


def test_principal_is_stable_one_way_and_short() -> None:
    assert principal_of(None) == principal_of("") == ANONYMOUS
    p = principal_of("my-secret-key")
    assert p == principal_of("my-secret-key") and p != principal_of("my-secret-kez")
    assert len(p) == 16 and int(p, 16) >= 0 and "secret" not in p


async def test_authenticate_keys() -> None:
    access = Access(KeyRing(["k1"]))
    assert (await access.authenticate("k1", constrained=False)).principal == principal_of("k1")
    assert (await access.authenticate("k1", constrained=True)).gate is None  # a real key also works on Constrained
    with pytest.raises(Unauthenticated) as bad:
        await access.authenticate("k2", constrained=False)
    assert (close_for(bad.value).code, bad.value.reason) == (1008, INVALID_KEY)
    with pytest.raises(Unauthenticated) as missing:
        await access.authenticate(None, constrained=False)
    assert missing.value.reason == MISSING_KEY
    assert (await Access().authenticate(None, constrained=False)).principal == ANONYMOUS


async def test_refusal_reasons_are_short_and_hint_at_no_key() -> None:
    for reason in (INVALID_KEY, MISSING_KEY, TOKEN_EXPIRED, NO_NEW_SESSIONS, TOKEN_NEEDS_CONSTRAINED,
                   TokenUsedUp().reason):
        assert len(reason.encode()) <= MAX_REASON_BYTES
    with pytest.raises(Unauthenticated) as refused:
        await Access(KeyRing(["sekrit"])).authenticate("sekri", constrained=False)
    assert "sekri" not in refused.value.reason


# --- minting -------------------------------------------------------------------------------------------------

def test_mint_defaults() -> None:
    spec = parse_token_request({}, NOW)
    assert spec.uses == 1
    assert spec.expire_at == NOW + 30 * 60 and spec.new_session_until == NOW + 60
    assert spec.setup is None and spec.field_mask is None


def test_mint_explicit_values_snake_or_camel() -> None:
    spec = parse_token_request({"uses": 0, "expire_time": "1970-01-12T14:00:00Z",
                                "newSessionExpireTime": "1970-01-12T13:50:00+00:00"}, NOW)
    assert spec.uses == 0  # unlimited
    assert spec.expire_at == 1_000_800.0 and spec.new_session_until == 1_000_200.0
    short = parse_token_request({"expireTime": "1970-01-12T13:46:50Z"}, NOW)  # 10 s ahead
    assert short.new_session_until == short.expire_at, "the default new-session window ends with the token"


@pytest.mark.parametrize("body, message", [
    ({"uses": -1}, "uses"),
    ({"uses": "two"}, "uses"),
    ({"uses": True}, "uses"),
    ({"expireTime": "1970-01-12T13:46:30Z"}, "future"),  # 10 s ago
    ({"expireTime": "1970-01-13T09:46:40Z"}, "20 hours"),  # exactly 20 h ahead
    ({"newSessionExpireTime": "1970-01-20T00:00:00Z"}, "20 hours"),
    ({"expireTime": "tomorrow"}, "RFC 3339"),
    ({"colour": "red"}, "Unknown name \"colour\""),
    ({"bidiGenerateContentSetup": {"generationConfig": {"temprature": 1}}}, "temprature"),
    ({"bidiGenerateContentSetup": []}, "expected an object"),
    ({"fieldMask": "colour"}, "not a setup field"),
    ({"fieldMask": "generationConfig..temperature"}, "Invalid field mask path"),
    ({"fieldMask": 7}, "comma-separated"),
    ([], "expected an object"),
])
def test_mint_refusals(body: object, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        parse_token_request(body, NOW)


def test_mint_twenty_hours_is_the_limit() -> None:
    assert parse_token_request({"expireTime": "1970-01-13T09:46:39Z"}, NOW).expire_at == NOW + 20 * 3600 - 1


def test_field_mask_as_the_sdks_send_it() -> None:
    python = "model,generationConfig.temperature,generationConfig.temperature,system_instruction"
    spec = parse_token_request({"bidiGenerateContentSetup": {"model": MODEL}, "fieldMask": python}, NOW)
    assert spec.field_mask == ("model", "generationConfig.temperature", "systemInstruction")
    spec = parse_token_request({"fieldMask": "temperature, max_output_tokens,generation_config.top_k"}, NOW)
    assert spec.field_mask == ("generationConfig.temperature", "generationConfig.maxOutputTokens",
                               "generationConfig.topK")
    assert parse_token_request({"fieldMask": ""}, NOW).field_mask is None


def test_token_setup_is_normalised_to_camel_case() -> None:
    spec = parse_token_request({"bidiGenerateContentSetup": {
        "generation_config": {"response_modalities": ["TEXT"]},
        "system_instruction": {"parts": [{"text": "Be brief."}]}}}, NOW)
    assert spec.setup == {"generationConfig": {"responseModalities": ["TEXT"]},
                          "systemInstruction": {"parts": [{"text": "Be brief."}]}}


# --- redemption ----------------------------------------------------------------------------------------------

async def test_hundred_concurrent_redemptions_of_a_one_use_token_give_one_session() -> None:
    access = Access()
    name = await mint(access, uses=1)
    gates = [(await access.authenticate(name, constrained=True)).gate for _ in range(100)]
    results = await asyncio.gather(*(gate(client_setup()) for gate in gates if gate), return_exceptions=True)
    ok = [r for r in results if isinstance(r, wire.Setup)]
    refused = [r for r in results if isinstance(r, TokenUsedUp)]
    assert len(ok) == 1 and len(refused) == 99
    assert (close_for(refused[0]).code, refused[0].reason) == (1011, "Token has been used too many times")


async def test_uses_are_counted_and_zero_is_unlimited() -> None:
    access = Access()
    two, unlimited = await mint(access, uses=2), await mint(access, uses=0)
    for _ in range(2):
        await redeem(access, two)
    with pytest.raises(TokenUsedUp):
        await redeem(access, two)
    for _ in range(50):
        await redeem(access, unlimited)


async def redeem(access: Access, name: str, setup: wire.Setup | None = None) -> wire.Setup:
    gate = (await access.authenticate(name, constrained=True)).gate
    assert gate is not None
    return await gate(setup or client_setup())


async def test_resumption_does_not_take_a_use() -> None:
    access = Access()
    name = await mint(access, uses=1)
    await redeem(access, name)
    resume = client_setup(sessionResumption={"handle": "h-1"})
    for _ in range(3):
        assert (await redeem(access, name, resume)).session_resumption == wire.SessionResumptionConfig(handle="h-1")
    with pytest.raises(TokenUsedUp):
        await redeem(access, name)


async def test_new_sessions_end_before_resumptions_do() -> None:
    clock = VirtualClock(NOW)
    access = Access(clock=clock)
    name = await mint(access, uses=0, expire_in=600, new_sessions_for=60)
    clock.now += 61
    with pytest.raises(Unauthenticated) as late:
        await redeem(access, name)
    assert (close_for(late.value).code, late.value.reason) == (1008, NO_NEW_SESSIONS)
    await redeem(access, name, client_setup(sessionResumption={"handle": "h"}))  # resuming still works
    clock.now += 600
    with pytest.raises(Unauthenticated, match="expired"):
        await access.authenticate(name, constrained=True)


async def test_token_that_expires_between_connect_and_setup_is_refused() -> None:
    clock = VirtualClock(NOW)
    access = Access(clock=clock)
    name = await mint(access, expire_in=10)
    gate = (await access.authenticate(name, constrained=True)).gate
    assert gate is not None
    clock.now += 11
    with pytest.raises(Unauthenticated, match="expired"):
        await gate(client_setup(sessionResumption={"handle": "h"}))


async def test_unknown_token_and_token_on_the_normal_path_are_refused() -> None:
    access = Access()
    with pytest.raises(Unauthenticated) as unknown:
        await access.authenticate("auth_tokens/nope", constrained=True)
    assert unknown.value.reason == INVALID_KEY
    name = await mint(access)
    with pytest.raises(Unauthenticated) as normal:
        await access.authenticate(name, constrained=False)
    assert normal.value.reason == TOKEN_NEEDS_CONSTRAINED
    assert (await access.authenticate(name, constrained=True)).principal == auth.token_principal(name)  # not the key's


async def test_store_forgets_long_expired_tokens_and_has_a_cap() -> None:
    store = MemoryTokenStore(max_tokens=2)
    await store.add("auth_tokens/a", Token(NOW + 10, NOW + 10, 1, "p"), NOW)
    await store.add("auth_tokens/b", Token(NOW + 10, NOW + 10, 1, "p"), NOW)
    with pytest.raises(auth.TokenStoreFull):
        await store.add("auth_tokens/c", Token(NOW + 10, NOW + 10, 1, "p"), NOW)
    later = NOW + 10 + auth.KEPT_AFTER_EXPIRY_S
    await store.add("auth_tokens/c", Token(later + 10, later + 10, 1, "p"), later)
    assert len(store) == 1 and await store.get("auth_tokens/a") is None and await store.get("auth_tokens/c") is not None


EPS = 2.0**-10  # about a millisecond, exact in binary: moments on either side of a deadline stay exact


async def test_token_times_hold_to_the_millisecond_in_virtual_time() -> None:
    """New sessions until newSessionExpireTime, resumptions until expireTime, then refusals; the session a token
    opened is closed at its expireTime (1011), not a millisecond before."""
    clock = VirtualClock(NOW)
    access = Access(clock=clock)
    name = await mint(access, uses=0, expire_in=1800, new_sessions_for=60)
    credential = await access.authenticate(name, constrained=True)
    llm = EmulatorLLM()
    session = LiveSession(registry=ModelRegistry(), engines=Engines(llm_for=lambda entry: llm), session_id="t",
                          principal=credential.principal, setup_gate=credential.gate, clock=clock)
    expiry = credential.watch_expiry(session.outbox)
    assert expiry is not None
    await clock.advance(60 - EPS)
    await send(session, {"setup": {"model": MODEL, "generationConfig": {"responseModalities": ["TEXT"]}}})
    assert "setupComplete" in await session.outbox.get()  # a new session, just in time
    await clock.advance(EPS)
    with pytest.raises(Unauthenticated) as late:
        await redeem(access, name)
    assert late.value.reason == NO_NEW_SESSIONS
    await clock.advance(1800 - 60 - EPS)
    assert len(session.outbox) == 0 and not expiry.done()
    await redeem(access, name, client_setup(sessionResumption={"handle": "h"}))  # resuming: until expireTime
    await clock.advance(EPS)
    assert expiry.done() and await session.outbox.get() == Close(1011, TOKEN_EXPIRED)
    assert clock.time() == NOW + 1800
    with pytest.raises(Unauthenticated, match="expired"):
        await access.authenticate(name, constrained=True)
    with pytest.raises(Unauthenticated, match="expired"):
        await redeem_with(credential, client_setup(sessionResumption={"handle": "h"}))
    await session.aclose()


async def redeem_with(credential: Credential, setup: wire.Setup) -> wire.Setup:
    assert credential.gate is not None
    return await credential.gate(setup)


async def test_only_a_token_has_an_expiry_watch() -> None:
    class Sink:
        async def put(self, message: Close) -> None:
            raise AssertionError(message)

    assert (await Access().authenticate("k", constrained=False)).watch_expiry(Sink()) is None


# --- locked fields -------------------------------------------------------------------------------------------

CLIENT = {"model": "models/client-model", "generationConfig": {"responseModalities": ["AUDIO"], "temperature": 1.0},
          "outputAudioTranscription": {}, "sessionResumption": {"handle": "h"}}


def test_no_constraints_leave_the_setup_alone() -> None:
    assert constrain(CLIENT, None, None) is CLIENT


def test_without_a_mask_the_token_setup_is_the_setup() -> None:
    locked = {"model": "models/locked", "generationConfig": {"responseModalities": ["TEXT"]}}
    assert constrain(CLIENT, locked, None) == {**locked, "sessionResumption": {"handle": "h"}}
    no_model = constrain(CLIENT, {"systemInstruction": {"parts": [{"text": "SI"}]}}, None)
    assert no_model["model"] == "models/client-model" and "generationConfig" not in no_model
    enables = constrain(CLIENT, {"model": "m", "sessionResumption": {"transparent": True}}, None)
    assert enables["sessionResumption"] == {"transparent": True, "handle": "h"}


def test_a_mask_takes_only_its_paths_from_the_token() -> None:
    locked = {"model": "models/locked", "generationConfig": {"temperature": 0.2, "topK": 3}}
    mask = ("model", "generationConfig.temperature", "generationConfig.maxOutputTokens", "outputAudioTranscription")
    effective = constrain(CLIENT, locked, mask)
    assert effective == {"model": "models/locked", "generationConfig": {"responseModalities": ["AUDIO"],
                                                                        "temperature": 0.2},
                         "sessionResumption": {"handle": "h"}}
    assert CLIENT["generationConfig"] == {"responseModalities": ["AUDIO"], "temperature": 1.0}, "not mutated"


def test_a_mask_path_can_create_nested_fields_and_reads_snake_case() -> None:
    effective = constrain({"model": "m"}, {"generationConfig": {"speechConfig": {"voiceConfig": {"x": 1}}}},
                          ("generation_config.speech_config",))
    assert effective == {"model": "m", "generationConfig": {"speechConfig": {"voiceConfig": {"x": 1}}}}


async def test_gate_applies_locked_fields_to_the_wire_setup() -> None:
    access = Access()
    locked = {"generationConfig": {"responseModalities": ["TEXT"], "temperature": 0.2},
              "systemInstruction": {"parts": [{"text": "You are a pirate."}]}}
    name = await mint(access, setup=locked)
    asked = client_setup(generationConfig={"responseModalities": ["AUDIO"]}, tools=[{"googleSearch": {}}])
    effective = await redeem(access, name, asked)
    assert effective.model == MODEL
    assert effective.generation_config == wire.GenerationConfig(response_modalities=["TEXT"], temperature=0.2)
    assert effective.system_instruction is not None and effective.tools is None


async def test_an_invalid_effective_setup_takes_no_use() -> None:
    access = Access()
    name = await mint(access, mask=("model",))  # locks the model to "unset": no setup can be valid
    with pytest.raises(InvalidArgument, match="model"):
        await redeem(access, name)
    token = await access.tokens.get(name)
    assert token is not None and token.used == 0


# --- the REST endpoint ---------------------------------------------------------------------------------------

async def post(access: Access, body: object, *, key: str | None = "k1", version: str = "v1alpha",
               query: str = "") -> tuple[int, dict[str, Any]]:
    headers = [(b"content-type", b"application/json")]
    if key is not None:
        headers.append((b"x-goog-api-key", key.encode()))
    app = SimpleNamespace(state=SimpleNamespace(localive=SimpleNamespace(access=access)))
    scope = {"type": "http", "method": "POST", "path": f"/{version}/auth_tokens", "headers": headers,
             "query_string": query.encode(), "path_params": {"version": version}, "app": app}
    chunks = [json.dumps(body).encode()]

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": chunks.pop() if chunks else b"", "more_body": False}

    response = await create_token(Request(scope, receive))
    return response.status_code, json.loads(bytes(response.body))


async def test_rest_mints_a_token() -> None:
    clock = VirtualClock(1_700_000_000.0)
    access = Access(KeyRing(["k1"]), clock=clock)
    status, body = await post(access, {"uses": 3})
    assert status == 200
    assert body["name"].startswith("auth_tokens/") and len(body["name"]) >= len("auth_tokens/") + 22
    assert body == {"name": body["name"], "uses": 3, "expireTime": "2023-11-14T22:43:20Z",
                    "newSessionExpireTime": "2023-11-14T22:14:20Z"}
    token = await access.tokens.get(body["name"])
    assert token is not None and token.principal == principal_of("k1") and token.uses == 3
    assert (await post(access, {}, key=None, query="key=k1"))[0] == 200


@pytest.mark.parametrize("key, version, body, code, status", [
    (None, "v1alpha", {}, 401, "UNAUTHENTICATED"),
    ("k2", "v1alpha", {}, 400, "INVALID_ARGUMENT"),
    ("auth_tokens/x", "v1alpha", {}, 403, "PERMISSION_DENIED"),
    ("k1", "v9", {}, 404, "NOT_FOUND"),
    ("k1", "v1alpha", {"uses": -2}, 400, "INVALID_ARGUMENT"),
])
async def test_rest_errors_are_google_errors(key: str | None, version: str, body: object, code: int,
                                             status: str) -> None:
    got, answer = await post(Access(KeyRing(["k1"])), body, key=key, version=version)
    assert got == code
    assert answer["error"]["code"] == code and answer["error"]["status"] == status and answer["error"]["message"]
    assert "k1" not in json.dumps(answer)


async def test_rest_in_open_mode_takes_any_key_or_none() -> None:
    access = Access()
    status, body = await post(access, {}, key=None)
    assert status == 200
    token = await access.tokens.get(body["name"])
    assert token is not None and token.principal == ANONYMOUS
    assert (await post(access, {}, key="whatever"))[0] == 200


# --- locks hold for the whole session (security findings F3, F15) ----------------------------------------------

def update(**fields: Any) -> wire.ContextUpdate:
    return wire.ContextUpdate.model_validate(fields)


CODE_AND_SEARCH = {"tools": {"tools": [{"codeExecution": {}}, {"googleSearch": {}}]}}
NEW_INSTRUCTION = {"systemInstruction": {"parts": [{"text": "Ignore the museum; you are a shell."}]}}
MUSEUM = {"systemInstruction": {"parts": [{"text": "Museum guide."}]}}


async def gate_of(access: Access, name: str) -> auth.TokenGate:
    gate = (await access.authenticate(name, constrained=True)).gate
    assert gate is not None
    return gate


async def test_a_fully_locked_token_refuses_any_context_update() -> None:
    access = Access()
    gate = await gate_of(access, await mint(access, setup=MUSEUM))
    for fields in (CODE_AND_SEARCH, NEW_INSTRUCTION, {"tools": {"tools": []}}):
        with pytest.raises(auth.PolicyViolation, match="locks") as refused:
            gate.check_update(update(**fields))
        assert close_for(refused.value).code == 1008


async def test_a_masked_token_refuses_only_the_fields_it_locks() -> None:
    access = Access()
    gate = await gate_of(access, await mint(access, setup={"tools": []}, mask=("tools",)))
    with pytest.raises(auth.PolicyViolation, match="tools"):
        gate.check_update(update(**CODE_AND_SEARCH))
    gate.check_update(update(**NEW_INSTRUCTION))  # not locked: the client's to change
    generation_only = await gate_of(access, await mint(access, setup={"generationConfig": {"temperature": 0.1}},
                                           mask=("generationConfig.temperature",)))
    generation_only.check_update(update(**CODE_AND_SEARCH, **NEW_INSTRUCTION))


async def test_a_token_without_locks_allows_context_updates() -> None:
    access = Access()
    (await gate_of(access, await mint(access))).check_update(update(**CODE_AND_SEARCH, **NEW_INSTRUCTION))


async def test_a_resumed_setup_is_constrained_again() -> None:
    """F15: the saved setup of another session (with code execution) must not bring back what the token locks."""
    access = Access()
    gate = await gate_of(access, await mint(access, setup=MUSEUM))
    saved = client_setup(tools=[{"codeExecution": {}}], systemInstruction={"parts": [{"text": "A shell."}]},
                         sessionResumption={"handle": "h"})
    effective = gate.constrain(saved)
    assert effective.tools is None
    assert effective.system_instruction is not None
    assert effective.system_instruction.parts[0].text == "Museum guide."
    assert effective.session_resumption is not None and effective.session_resumption.handle == "h"


async def test_each_token_is_its_own_principal() -> None:
    access = Access()
    first, second = await mint(access), await mint(access)
    principals = {(await access.authenticate(name, constrained=True)).principal for name in (first, second)}
    assert len(principals) == 2 and principal_of("k1") not in principals


# --- the token store is bounded per minter (security finding F9) ----------------------------------------------

async def test_one_minter_cannot_fill_the_store_for_everyone() -> None:
    store = MemoryTokenStore(max_tokens=100)
    quota = auth.Quota(tokens=3, setup_bytes=1000)
    for i in range(3):
        await store.add(f"auth_tokens/a{i}", Token(NOW + 10, NOW + 10, 1, "greedy"), NOW, quota)
    with pytest.raises(auth.TokenStoreFull):
        await store.add("auth_tokens/a3", Token(NOW + 10, NOW + 10, 1, "greedy"), NOW, quota)
    await store.add("auth_tokens/b0", Token(NOW + 10, NOW + 10, 1, "someone else"), NOW, quota)


async def test_expired_tokens_count_for_nothing_but_still_say_expired() -> None:
    store = MemoryTokenStore(max_tokens=2)
    await store.add("auth_tokens/a", Token(NOW + 10, NOW + 10, 1, "p"), NOW)
    await store.add("auth_tokens/b", Token(NOW + 10, NOW + 10, 1, "p"), NOW)
    await store.add("auth_tokens/c", Token(NOW + 30, NOW + 30, 1, "p"), NOW + 11)  # a and b expired: room again
    assert len(store) == 1
    with pytest.raises(Unauthenticated, match="expired"):
        await store.redeem("auth_tokens/a", NOW + 12, new_session=True)


async def test_locked_setups_are_bounded_in_bytes() -> None:
    store = MemoryTokenStore()
    quota = auth.Quota(tokens=100, setup_bytes=10_000)
    big = {"systemInstruction": {"parts": [{"text": "x" * 4000}]}}
    await store.add("auth_tokens/a", Token(NOW + 10, NOW + 10, 1, "p", big), NOW, quota)
    await store.add("auth_tokens/b", Token(NOW + 10, NOW + 10, 1, "p", big), NOW, quota)
    with pytest.raises(auth.TokenStoreFull):
        await store.add("auth_tokens/c", Token(NOW + 10, NOW + 10, 1, "p", big), NOW, quota)
    token = await store.get("auth_tokens/a")
    assert token is not None and token.locked_setup == big


def test_a_huge_locked_setup_is_refused_at_minting() -> None:
    body = {"bidiGenerateContentSetup": {"systemInstruction": {"parts": [{"text": "x"} for _ in range(20_000)]}}}
    with pytest.raises(BadRequest):
        parse_token_request(body, NOW)


def test_new_sessions_cannot_outlive_the_token() -> None:
    """Informational finding: a newSessionExpireTime after expireTime was accepted and echoed back."""
    from datetime import UTC, datetime

    def at(seconds: float) -> str:
        return datetime.fromtimestamp(NOW + seconds, UTC).isoformat()

    spec = parse_token_request({"expireTime": at(600), "newSessionExpireTime": at(3600)}, NOW)
    assert spec.new_session_until == spec.expire_at == NOW + 600
