"""An LLM behind any OpenAI-compatible `/v1/chat/completions` endpoint (vLLM, SGLang, Ollama, llama.cpp's server,
llama-cpp-python's server, a hosted API), streamed over server-sent events.

One `httpx2.AsyncClient` per backend keeps connections pooled. A turn is one streaming request; closing the
iterator (the user barged in, the session ended) closes the HTTP response at once, which is how every one of these
servers learns that it should stop generating. Failures of the backend (unreachable, a timeout on connect or on
the first token, an HTTP error, a broken stream) raise `BackendError`, which closes the session with 1011 and a
reason naming the stage; the API key is only ever sent in the Authorization header, never logged or reported.

Function calls, per backend (`--llm-tools`, `llm_tools` in the models file):

- `native` (default): the backend's own `tools` (streamed `tool_calls` deltas). A server started without a
  tool-call parser either answers HTTP 400 to `tools` (vLLM), which fails the turn with a reason saying what to do,
  or lets the chat template render them and returns the model's call as text (llama-cpp-python's default chat
  handler; see below).
- `json-schema`: no `tools` are sent. The functions are described in the system message as Qwen's/hermes chat
  templates render them (`<tools>…</tools>`, answer with `<tool_call>{…}</tool_call>`), and the history's calls and
  results are written as text the same way (`tool_call`s in the assistant's text, `<tool_response>` as the user),
  which any chat server takes.

Either way a call written as text (`<tool_call>{…}`, a JSON object, a ```json fence) is recognised as the embedded
engine does (calls.call_intent) and, when it does not parse or fit, asked for again under a JSON Schema
(`response_format`: OpenAI's `json_schema` form, which vLLM, SGLang and llama.cpp's server enforce; a server that
refuses it by name, as llama-cpp-python's does, is asked in its `json_object`-with-`schema` form from then on).

Proactive audio: chat completions give no log-probabilities of the prompt, so the judge cannot compare how likely
the utterance is under two system prompts (`can_score_continuations` is False) and asks the yes/no question alone
(session/proactive.py): log P(yes) - log P(no) from the first reply token's top logprobs, where the backend
returns them; where it returns none or refuses them (found out on the first question, remembered and logged once;
or `--llm-no-logprobs`), a greedy answer held to a JSON Schema that allows only {"answer": "yes"|"no"}.

Token counts: `count_tokens` and `count_prompt_tokens` run on the event loop, so they cannot ask the server; they
estimate (4 characters a token, documented in docs/engines.md). Where the server streams `usage`
(`stream_options.include_usage`: vLLM, SGLang, llama.cpp's server; not llama-cpp-python's), its prompt count is
left in REPORTED_PROMPT_TOKENS for the session's usageMetadata.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import re
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import httpx2
import jsonschema_rs

from localive.engines.llm.base import (
    REPORTED_PROMPT_TOKENS,
    SESSION_ID,
    BackendError,
    CalledFunction,
    ChatMessage,
    FunctionCalls,
    FunctionSpec,
    SamplingParams,
)
from localive.engines.llm.calls import CALL_MAX_TOKENS, MAX_PARALLEL_CALLS, call_intent, strict
from localive.engines.remote_backend import BackendHealth, SessionSlots

log = logging.getLogger("localive.engines")

STAGE = "LLM backend"
CHARS_PER_TOKEN = 4  # the estimate where the server cannot be asked (see module docstring)
MESSAGE_OVERHEAD_TOKENS = 4  # role markers and separators of a chat template, per message
DEFAULT_MAX_TOKENS = 1024
TOP_LOGPROBS = 20  # the most OpenAI's API returns (vLLM's default limit too)
CHOICE_MAX_TOKENS = 32  # {"answer": "yes"} with room for the whitespace a grammar allows
API_KEY_ENV = "LOCALIVE_LLM_API_KEY"
TOOLS_REFUSED = "HTTP 400 to tools; start the server with its tool-call parser or use --llm-tools json-schema"


@dataclass(frozen=True)
class RemoteSettings:
    """Where a remote LLM is and how long to wait for it."""

    base_url: str  # e.g. http://127.0.0.1:8000/v1
    model: str | None = None  # the served model's name (None: the first the server lists at /v1/models)
    api_key: str | None = field(default=None, repr=False)
    connect_timeout_s: float = 5.0
    first_token_timeout_s: float = 30.0  # from sending the request to its first streamed piece
    read_timeout_s: float = 30.0  # between two streamed pieces afterwards
    max_sessions: int | None = None  # concurrent sessions on this backend; more are refused with 1013
    context_tokens: int = 32768
    may_start_down: bool = False  # a backend down at start: serve starts, its sessions get 1013 until it answers
    tools: str = "native"  # models.registry.TOOL_MODES: the server's `tools`, or functions described in the prompt
    logprobs: bool = True  # ask for the first token's logprobs (proactive audio); False: a constrained answer

    @property
    def chat_url(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"

    @property
    def models_url(self) -> str:
        return self.base_url.rstrip("/") + "/models"


def redact_url(url: str) -> str:
    """The URL without user:password (safe to print)."""
    return re.sub(r"//[^/@]*@", "//", url)


def check_backend(settings: RemoteSettings) -> str:
    """Ask the backend for its models (GET /v1/models, synchronously, at start). Returns the model name to use;
    raises BackendError with one clear line when the backend is down, refuses the key, or lacks the model."""
    where = redact_url(settings.base_url)
    try:
        response = httpx2.get(settings.models_url, headers=_auth(settings.api_key),
                              timeout=httpx2.Timeout(settings.first_token_timeout_s,
                                                     connect=settings.connect_timeout_s))
    except httpx2.HTTPError as exc:
        raise BackendError(STAGE, f"cannot reach {where}: {_describe(exc)}") from None
    if response.status_code in (401, 403):
        raise BackendError(STAGE, f"{where} refused the API key (HTTP {response.status_code}); set "
                                  f"{API_KEY_ENV}")
    if response.status_code != 200:
        raise BackendError(STAGE, f"{where}/models answered HTTP {response.status_code}; is it an "
                                  "OpenAI-compatible /v1 URL?")
    try:
        names = [str(m["id"]) for m in response.json()["data"]]
    except (ValueError, KeyError, TypeError):
        raise BackendError(STAGE, f"{where}/models did not answer an OpenAI model list") from None
    if settings.model is None:
        if not names:
            raise BackendError(STAGE, f"{where} serves no model")
        return names[0]
    if names and settings.model not in names:
        raise BackendError(STAGE, f"{where} does not serve model '{settings.model}' (it serves: "
                                  f"{', '.join(names[:5])})")
    return settings.model


# What a call asked for again reads as when the server's answer is still not a declared call (a server that honours
# `json_object` but not its `schema`): a name no function has, so that the session ends the turn with
# MALFORMED_FUNCTION_CALL instead of an empty answer.
UNREADABLE_CALL = CalledFunction("(a call that names no declared function)", {})


class OpenAIChatLLM:
    """Implements the LLM interface over a remote OpenAI-compatible chat completions endpoint."""

    def __init__(self, settings: RemoteSettings, *, name: str | None = None) -> None:
        self.settings = settings
        self.model = settings.model or ""
        self.name = name or f"{self.model}@{redact_url(settings.base_url)}"
        self.context_tokens = settings.context_tokens
        self.slots = SessionSlots(settings.max_sessions)
        self._client: httpx2.AsyncClient | None = None
        # known down (at start, or a connection failed): new sessions are refused with 1013 until it answers
        self.health = BackendHealth(self._answers, timeout_s=settings.connect_timeout_s)
        self.can_score_continuations = False  # chat completions give no prompt logprobs
        self.schema_form = "json_schema"  # how response_format carries a schema ("json_object": llama-cpp-python's)
        self.logprobs = settings.logprobs  # False once the backend turned out to return none (reply_start_logprobs)

    async def reachable(self) -> bool:
        """Whether a new session may use the backend (remote_backend.BackendHealth): a session is refused with
        1013 rather than failing later."""
        return await self.health.reachable()

    async def _answers(self) -> bool:
        return (await self._http().get(self.settings.models_url)).status_code == 200

    def _http(self) -> httpx2.AsyncClient:
        if self._client is None:  # created on the serving loop, at first use
            s = self.settings
            self._client = httpx2.AsyncClient(
                timeout=httpx2.Timeout(s.read_timeout_s, connect=s.connect_timeout_s),
                limits=httpx2.Limits(max_connections=None, max_keepalive_connections=32),
                headers=_auth(s.api_key))
        return self._client

    # --- token counts (estimates: these run on the event loop) ------------------------------------------

    def count_tokens(self, text: str) -> int:
        return math.ceil(len(text) / CHARS_PER_TOKEN)

    def count_prompt_tokens(self, messages: list[ChatMessage], functions: Sequence[FunctionSpec] = ()) -> int:
        text = sum(self.count_tokens(m.text) + MESSAGE_OVERHEAD_TOKENS for m in messages)
        calls = sum(self.count_tokens(c.name + c.args_json()) for m in messages for c in m.calls)
        declared = sum(self.count_tokens(json.dumps(t)) for t in tools_payload(functions))
        return text + calls + declared

    # --- generation ------------------------------------------------------------------------------------

    def request_body(self, messages: list[ChatMessage], params: SamplingParams,
                     functions: Sequence[FunctionSpec] = (), *, stream: bool = True) -> dict[str, Any]:
        native = self.settings.tools == "native"
        payload = chat_payload(messages) if native else text_chat_payload(messages, functions)
        body: dict[str, Any] = {"model": self.model, "messages": payload, "stream": stream,
                                "max_tokens": params.max_output_tokens or DEFAULT_MAX_TOKENS}
        if stream:
            body["stream_options"] = {"include_usage": True}
        body.update(sampling_payload(params))
        if functions and native:
            body["tools"] = tools_payload(functions)
            body["tool_choice"] = "auto"
        session = SESSION_ID.get()
        if session:
            body["user"] = session_tag(session)
        return body

    def _headers(self) -> dict[str, str]:
        session = SESSION_ID.get()
        return {"X-Session-Id": session_tag(session)} if session else {}

    async def stream(self, messages: list[ChatMessage], params: SamplingParams,
                     functions: Sequence[FunctionSpec] = ()) -> AsyncIterator[str | FunctionCalls]:
        body = self.request_body(messages, params, functions)
        calls = ToolCallCollector()
        held, decided, calling = "", not functions, False
        async for delta in self._deltas(body):
            calls.add(delta.get("tool_calls"))
            piece = delta.get("content")
            if not isinstance(piece, str) or not piece:
                continue
            if decided and not calling:
                yield piece
                continue
            held += piece
            if calling:
                continue  # a call written as text: read it to its end
            intent = call_intent(held)
            if intent is None:
                continue
            decided, calling = True, intent
            if not calling:
                yield held
        native = calls.calls()
        if calling:
            text_calls = parse_text_calls(held, functions)
            if text_calls is None or not fit_their_schemas(text_calls, functions):
                # a call that does not parse, or whose arguments do not fit (a small model invents some): asked
                # again with the output held to the declared schemas, as the embedded engine's grammar does
                text_calls = await self._constrained_calls(messages, params, functions)
            yield FunctionCalls(_unique((*native, *text_calls)))
            return
        if held and not decided:
            yield held
        if native:
            yield FunctionCalls(native)

    async def _constrained_calls(self, messages: list[ChatMessage], params: SamplingParams,
                                 functions: Sequence[FunctionSpec]) -> tuple[CalledFunction, ...]:
        """The call asked for again, its output held to the declared schemas (servers without a tool parser)."""
        body = self.request_body(messages, params, functions, stream=False)
        body["max_tokens"] = CALL_MAX_TOKENS
        body.pop("stop", None)
        data = await self._post_constrained(body, calls_schema(functions))
        try:
            text = str(data["choices"][0]["message"].get("content") or "")
        except (KeyError, IndexError, TypeError, AttributeError):
            raise BackendError(STAGE, "answered a malformed chat completion") from None
        return parse_text_calls(text, functions) or (UNREADABLE_CALL,)

    async def _post_constrained(self, body: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
        """A request whose answer is held to `schema`: in OpenAI's `json_schema` form, or — once the server has
        refused that form by name (llama-cpp-python's: HTTP 500 "Input should be 'text' or 'json_object'") — in
        the `json_object`-with-`schema` form it takes, remembered for this backend and logged once."""
        if self.schema_form == "json_schema":
            response = await self._send({**body, "response_format": response_format(schema, "json_schema")})
            if not refuses_schema_form(response.status_code, response.text):
                return self._completion(response, body)
            self.schema_form = "json_object"
            log.warning("%s refused response_format json_schema; asking with json_object and a schema from now on",
                        self.name)
        return await self._post({**body, "response_format": response_format(schema, "json_object")})

    async def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._completion(await self._send(body), body)

    async def _send(self, body: dict[str, Any]) -> httpx2.Response:
        """A non-streamed request; failures to get any answer raise BackendError."""
        try:
            async with asyncio.timeout(self.settings.first_token_timeout_s):
                return await self._http().post(self.settings.chat_url, json=body, headers=self._headers())
        except TimeoutError:
            raise BackendError(STAGE, f"no answer within {self.settings.first_token_timeout_s:g} s") from None
        except httpx2.HTTPError as exc:
            self.health.failed(exc)  # a refused connection: new sessions get 1013 until it answers again
            raise BackendError(STAGE, _describe(exc)) from None

    def _completion(self, response: httpx2.Response, body: dict[str, Any]) -> dict[str, Any]:
        """The chat completion a response holds; BackendError for an HTTP error or anything else."""
        if response.status_code != 200:
            raise self._refusal(response.status_code, response.text, body)
        try:
            data = response.json()
        except ValueError:
            raise BackendError(STAGE, "answered something that is not JSON") from None
        if not isinstance(data, dict):
            raise BackendError(STAGE, "answered something that is not a chat completion")
        return data

    async def _deltas(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """The choice deltas of a streaming request. The response is closed when the caller stops iterating."""
        client = self._http()
        first = True
        try:
            async with asyncio.timeout(self.settings.first_token_timeout_s) as deadline:
                async with client.stream("POST", self.settings.chat_url, json=body,
                                         headers=self._headers()) as response:
                    if response.status_code != 200:
                        text = (await response.aread()).decode("utf-8", "replace")
                        raise self._refusal(response.status_code, text, body)
                    parser = SSEParser()
                    async for chunk in response.aiter_text():
                        for data in parser.feed(chunk):
                            if data == "[DONE]":
                                return
                            event = _event(data)
                            usage = event.get("usage")
                            if isinstance(usage, dict) and isinstance(usage.get("prompt_tokens"), int):
                                REPORTED_PROMPT_TOKENS.set(usage["prompt_tokens"])  # the caller's context
                            if first and _has_output(event):
                                first = False
                                deadline.reschedule(None)  # read timeouts between pieces are httpx2's
                            for choice in event.get("choices") or ():
                                delta = choice.get("delta") if isinstance(choice, dict) else None
                                if isinstance(delta, dict) and (delta.get("content") or delta.get("tool_calls")):
                                    yield delta  # only after the first-token deadline is off (above)
                    if not parser.done:
                        raise BackendError(STAGE, "the stream ended before [DONE]")
        except TimeoutError:
            raise BackendError(STAGE, f"no first token within {self.settings.first_token_timeout_s:g} s") from None
        except httpx2.HTTPError as exc:
            self.health.failed(exc)  # a refused connection: new sessions get 1013 until it answers again
            raise BackendError(STAGE, _describe(exc)) from None

    def _detail(self, text: str) -> str:
        key = self.settings.api_key
        return _detail(text.replace(key, "***") if key else text)

    def _refusal(self, status: int, text: str, body: dict[str, Any]) -> BackendError:
        """The error for a request the server answered with `status`. A 400 to a request with `tools` is a server
        started without a tool-call parser (vLLM answers so): said plainly, with what to do — never retried
        without the tools, which would silently change what the model can do."""
        if status == 400 and "tools" in body:
            log.warning("LLM backend %s answered HTTP 400 to a request with tools%s",
                        redact_url(self.settings.base_url), self._detail(text))
            return BackendError(STAGE, TOOLS_REFUSED)
        return BackendError(STAGE, f"HTTP {status}{self._detail(text)}")

    # --- proactive-audio scoring ----------------------------------------------------------------------

    async def continuation_logprobs(self, chats: Sequence[list[ChatMessage]], text: str) -> list[float]:
        raise BackendError(STAGE, "cannot score a continuation over chat completions (can_score_continuations is "
                                  "False: the judge asks the yes/no question alone)")

    async def reply_start_logprobs(self, chat: list[ChatMessage], starts: Sequence[Sequence[str]]) -> list[float]:
        """From the first generated token's top logprobs (`logprobs: true`, `top_logprobs: 20`, one token): each
        group's words that appear there (with or without a leading space), summed as probabilities; absent words
        count as impossible. Where the backend returns no logprobs (found out once, then remembered and logged) or
        `settings.logprobs` is off, or none of the words is among the top tokens: the constrained answer (see
        `_constrained_choice`), 0.0 for the chosen group and -inf for the others."""
        if self.logprobs:
            top = await self._first_token_logprobs(chat)
            if top is None:
                self.logprobs = False
                log.warning("%s returned no logprobs: proactive audio's judge asks it a constrained yes/no "
                            "question from now on (docs/proactive-audio.md)", self.name)
            else:
                scores = reply_start_scores(top, starts)
                if any(score > -math.inf for score in scores):
                    return scores
                log.info("%s: none of %s among the first token's top logprobs; asking for a constrained answer",
                         self.name, "/".join(g[0] for g in starts if g))
        return await self._constrained_choice(chat, starts)

    async def _first_token_logprobs(self, chat: list[ChatMessage]) -> list[tuple[str, float]] | None:
        """The first reply token's top logprobs; None when the backend returns none or refuses to (an HTTP error
        whose text names logprobs, as llama-cpp-python's server started with --logits_all false answers)."""
        body = self.request_body(chat, SamplingParams(temperature=0.0, max_output_tokens=1), stream=False)
        body.update(logprobs=True, top_logprobs=TOP_LOGPROBS)
        response = await self._send(body)
        if refuses_logprobs(response.status_code, response.text):
            return None
        return first_token_top_logprobs(self._completion(response, body))

    async def _constrained_choice(self, chat: list[ChatMessage], starts: Sequence[Sequence[str]]) -> list[float]:
        """Which group the reply starts with, asked for as JSON held to a schema that allows only each group's
        first word (`response_format` json_object with `schema`, as for function calls), greedily."""
        body = self.request_body(choice_messages(chat, starts),
                                 SamplingParams(temperature=0.0, max_output_tokens=CHOICE_MAX_TOKENS), stream=False)
        data = await self._post_constrained(body, choice_schema(starts))
        try:
            text = str(data["choices"][0]["message"].get("content") or "")
        except (KeyError, IndexError, TypeError, AttributeError):
            raise BackendError(STAGE, "answered a malformed chat completion") from None
        chosen = chosen_group(text, starts)
        if chosen is None:
            raise BackendError(STAGE, f"answered the {'/'.join(g[0] for g in starts if g)} question with "
                                      f"something else{_detail(text)}")
        return [0.0 if index == chosen else -math.inf for index in range(len(starts))]

    async def prepare_scoring(self, chats: Sequence[list[ChatMessage]],
                              question: list[ChatMessage] | None = None) -> None:
        return None  # nothing to prepare: the server keeps its own prefix cache

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


# --- the wire format (pure functions; unit-tested with recorded bytes) -------------------------------------


def session_tag(session_key: str) -> str:
    """An opaque, stable id for a session (a hash: the server's own session key stays inside localive)."""
    return "localive-" + hashlib.sha256(session_key.encode("utf-8")).hexdigest()[:24]


def call_id(message_index: int, call_index: int) -> str:
    """A call's id from its place in the history: stable from turn to turn, so a server's prefix cache holds."""
    return f"call_{message_index}_{call_index}"


def chat_payload(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    """ChatMessages as OpenAI chat messages: an assistant's calls as `tool_calls` with ids, each tool result
    with the `tool_call_id` of the call it answers (the earliest unanswered call of that name before it). A
    result with no such call (a history that lost it; code execution's output) is told as a user message
    instead, which every server takes. Consecutive user messages (a code result and what follows it, turns the
    model did not answer) are joined into one: chat templates that insist on alternating roles refuse them."""
    out: list[dict[str, Any]] = []
    for index, message, answered in _matched(messages):
        if message.role == "assistant" and message.calls:
            out.append({"role": "assistant", "content": message.text, "tool_calls": [
                {"id": call_id(index, n), "type": "function", "function": {"name": c.name,
                                                                          "arguments": c.args_json()}}
                for n, c in enumerate(message.calls)]})
        elif message.role == "tool" and answered is not None:
            out.append({"role": "tool", "tool_call_id": answered, "content": message.text})
        elif message.role == "tool":
            out.append({"role": "user", "content": _unmatched_result(message)})
        else:
            out.append({"role": message.role, "content": message.text})
    return _alternating(out)


def _alternating(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`messages` with each run of plain user messages joined into one (by a blank line)."""
    joined: list[dict[str, Any]] = []
    for message in messages:
        if joined and message.keys() == {"role", "content"} and message["role"] == "user" \
                and joined[-1].keys() == {"role", "content"} and joined[-1]["role"] == "user":
            joined[-1] = {"role": "user", "content": f"{joined[-1]['content']}\n\n{message['content']}"}
        else:
            joined.append(message)
    return joined


def _matched(messages: Sequence[ChatMessage]) -> Iterator[tuple[int, ChatMessage, str | None]]:
    """Each message with its index and, for a tool result, the id of the call it answers (None: no such call)."""
    open_calls: list[tuple[str, str]] = []  # (id, name) of calls not yet answered
    for index, message in enumerate(messages):
        answered = None
        if message.role == "assistant" and message.calls:
            open_calls = [(call_id(index, n), c.name) for n, c in enumerate(message.calls)]
        elif message.role == "tool":
            match = next((k for k, (_, name) in enumerate(open_calls) if name == message.name), None)
            if match is not None:
                answered, _ = open_calls.pop(match)
        else:
            open_calls = []
        yield index, message, answered


def _unmatched_result(message: ChatMessage) -> str:
    return f"(result of {message.name or 'a tool'}) {message.text}"


def tools_payload(functions: Sequence[FunctionSpec]) -> list[dict[str, Any]]:
    return [{"type": "function", "function": {"name": f.name, "description": f.description,
                                              "parameters": f.parameters}} for f in functions]


TOOLS_PROMPT = """# Tools

You may call one or more functions to assist with the user query.

You are provided with function signatures within <tools></tools> XML tags:
<tools>
{tools}
</tools>

For each function call, return a json object with function name and arguments within <tool_call></tool_call> \
XML tags:
<tool_call>
{{"name": <function-name>, "arguments": <args-json-object>}}
</tool_call>"""


def tools_prompt(functions: Sequence[FunctionSpec]) -> str:
    """The declared functions as Qwen's and hermes chat templates put them in the system message."""
    return TOOLS_PROMPT.format(tools="\n".join(json.dumps(t, ensure_ascii=False) for t in tools_payload(functions)))


def text_chat_payload(messages: Sequence[ChatMessage],
                      functions: Sequence[FunctionSpec] = ()) -> list[dict[str, Any]]:
    """ChatMessages for a server that is not given `tools` (`--llm-tools json-schema`): only system, user and
    assistant messages with text, as the chat templates of Qwen and hermes render tool use — the functions in the
    system message, each call as `<tool_call>{…}</tool_call>` after the assistant's text, a call's result as the
    user's `<tool_response>…</tool_response>` (other results as in `chat_payload`). Consecutive user messages are
    joined (some templates insist on turns that alternate)."""
    out: list[dict[str, Any]] = []
    for _, message, answered in _matched(messages):
        if message.role == "assistant" and message.calls:
            written = [f'<tool_call>\n{{"name": {json.dumps(c.name)}, "arguments": {c.args_json()}}}\n</tool_call>'
                       for c in message.calls]
            out.append({"role": "assistant", "content": "\n".join(p for p in (message.text, *written) if p)})
        elif message.role == "tool":
            _add_user_text(out, f"<tool_response>\n{message.text}\n</tool_response>" if answered is not None
                           else _unmatched_result(message))
        elif message.role == "user":
            _add_user_text(out, message.text)
        else:
            out.append({"role": message.role, "content": message.text})
    if functions:
        described = tools_prompt(functions)
        if out and out[0]["role"] == "system":
            out[0] = {"role": "system", "content": f"{out[0]['content']}\n\n{described}"}
        else:
            out.insert(0, {"role": "system", "content": described})
    return out


def _add_user_text(out: list[dict[str, Any]], text: str) -> None:
    if out and out[-1]["role"] == "user":
        out[-1] = {"role": "user", "content": f"{out[-1]['content']}\n{text}"}
    else:
        out.append({"role": "user", "content": text})


def sampling_payload(params: SamplingParams) -> dict[str, Any]:
    """The set SamplingParams as request fields (top_k is not OpenAI's, but vLLM, SGLang and llama.cpp take it)."""
    fields: dict[str, Any] = {"temperature": params.temperature, "top_p": params.top_p, "top_k": params.top_k,
                              "seed": params.seed, "presence_penalty": params.presence_penalty,
                              "frequency_penalty": params.frequency_penalty,
                              "stop": list(params.stop) or None}
    return {k: v for k, v in fields.items() if v is not None}


def calls_schema(functions: Sequence[FunctionSpec]) -> dict[str, Any]:
    """A JSON Schema for one call of a declared function: {"name": …, "arguments": {…}}."""
    alternatives = [{"type": "object", "properties": {"name": {"const": f.name}, "arguments": strict(f.parameters)},
                     "required": ["name", "arguments"], "additionalProperties": False} for f in functions]
    return alternatives[0] if len(alternatives) == 1 else {"oneOf": alternatives}


def response_format(schema: dict[str, Any], form: str) -> dict[str, Any]:
    """`response_format` holding the output to `schema`: OpenAI's form (`json_schema`, strict) or the
    `json_object`-with-`schema` form of llama-cpp-python's server (llama.cpp's server takes both)."""
    if form == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": "answer", "strict": True, "schema": schema}}
    return {"type": "json_object", "schema": schema}


def refuses_schema_form(status: int, text: str) -> bool:
    """Whether an answer to a `json_schema` response_format is the server refusing that form (an HTTP error that
    names it: llama-cpp-python's 500 "Input should be 'text' or 'json_object'", or a 400/422 from another)."""
    lowered = text.lower()
    return status in (400, 422, 500, 501) and ("json_schema" in lowered or "response_format" in lowered)


def refuses_logprobs(status: int, text: str) -> bool:
    """Whether an answer to a request for logprobs is the server refusing them: an HTTP error that names them
    (llama-cpp-python's server without logits_all: 500 "logprobs is not supported …"; a server whose limit is
    below TOP_LOGPROBS: 400)."""
    return status in (400, 422, 500, 501) and "logprobs" in text.lower()


def first_token_top_logprobs(data: dict[str, Any]) -> list[tuple[str, float]] | None:
    """(token, logprob) of the first reply token's top alternatives in a chat completion; None when it carries no
    logprobs (the server ignores or withholds them)."""
    try:
        choice = data["choices"][0]
        logprobs = choice.get("logprobs")
    except (KeyError, IndexError, TypeError, AttributeError):
        raise BackendError(STAGE, "answered a malformed chat completion") from None
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    if not content or not isinstance(content, list) or not isinstance(content[0], dict):
        return None
    top = content[0].get("top_logprobs")
    if not top:
        return None
    try:
        return [(str(t["token"]), float(t["logprob"])) for t in top]
    except (KeyError, TypeError, ValueError):
        raise BackendError(STAGE, "answered malformed logprobs") from None


def reply_start_scores(top: Sequence[tuple[str, float]], starts: Sequence[Sequence[str]]) -> list[float]:
    """For each group of words: log of the summed probability of the top tokens that are one of its words, with
    or without surrounding spaces ("Yes", " Yes"); -inf where none is among them."""
    seen = dict(top)  # one entry per distinct token
    result = []
    for group in starts:
        words = {w.strip() for w in group}
        total = sum(math.exp(logprob) for token, logprob in seen.items() if token.strip() in words)
        result.append(math.log(total) if total > 0 else -math.inf)
    return result


def choice_schema(starts: Sequence[Sequence[str]]) -> dict[str, Any]:
    """A JSON Schema for {"answer": <the first word of one group>}, nothing else."""
    return {"type": "object", "properties": {"answer": {"enum": [g[0] for g in starts if g]}},
            "required": ["answer"], "additionalProperties": False}


def choice_messages(chat: Sequence[ChatMessage], starts: Sequence[Sequence[str]]) -> list[ChatMessage]:
    """`chat` with the JSON form of the answer asked for at the end of its last message (for servers that take
    no schema, and so that the model is not surprised by the one it is held to)."""
    forms = " or ".join(json.dumps({"answer": g[0]}) for g in starts if g)
    *earlier, last = chat
    return [*earlier, replace(last, text=f"{last.text}\nReply in JSON: {forms}.")]


def chosen_group(text: str, starts: Sequence[Sequence[str]]) -> int | None:
    """Which group a constrained answer chose: {"answer": word} (or, from a server that ignored the schema, a
    reply that starts with the word); None when it is none of them."""
    try:
        value = json.loads(text)
        answer = str(value.get("answer", "")) if isinstance(value, dict) else str(value)
    except json.JSONDecodeError:
        match = re.match(r"\W*(\w+)", text)
        answer = match.group(1) if match else ""
    for index, group in enumerate(starts):
        if answer.strip().lower() in {w.strip().lower() for w in group}:
            return index
    return None


def fit_their_schemas(calls: Sequence[CalledFunction], functions: Sequence[FunctionSpec]) -> bool:
    """Whether each call's arguments fit its function's parameters, closed to undeclared properties."""
    schemas = {f.name: f.parameters for f in functions}
    return all(c.name in schemas and jsonschema_rs.validator_for(strict(schemas[c.name])).is_valid(c.args)
               for c in calls)


_TAGS = re.compile(r"</?tool_call>|```(?:json|tool_call)?", re.IGNORECASE)


def parse_text_calls(text: str, functions: Sequence[FunctionSpec]) -> tuple[CalledFunction, ...] | None:
    """Calls a model wrote as text (JSON objects, bare or in <tool_call> tags or a ```json fence), when each
    names a declared function with an object of arguments; None when the text does not parse so."""
    declared = {f.name for f in functions}
    decoder = json.JSONDecoder()
    rest = _TAGS.sub("\n", text)
    calls: list[CalledFunction] = []
    position = 0
    while True:
        start = min((i for i in (rest.find("{", position), rest.find("[", position)) if i >= 0), default=-1)
        if start < 0:
            break
        if rest[position:start].strip():
            return None
        try:
            value, position = decoder.raw_decode(rest, start)
        except json.JSONDecodeError:
            return None
        for item in value if isinstance(value, list) else [value]:
            if not isinstance(item, dict) or item.get("name") not in declared:
                return None
            args = item.get("arguments", item.get("parameters", {}))
            if isinstance(args, str):
                try:
                    args = json.loads(args)
                except json.JSONDecodeError:
                    return None
            if not isinstance(args, dict):
                return None
            calls.append(CalledFunction(str(item["name"]), args))
    if rest[position:].strip() or not calls:
        return None
    return _unique(calls)[:MAX_PARALLEL_CALLS]


class ToolCallCollector:
    """Streamed `tool_calls` deltas (by index: the id and name once, the arguments in fragments) into calls."""

    def __init__(self) -> None:
        self._parts: dict[int, dict[str, str]] = {}

    def add(self, deltas: object) -> None:
        if not isinstance(deltas, list):
            return
        for delta in deltas:
            if not isinstance(delta, dict):
                continue
            index = delta.get("index")
            part = self._parts.setdefault(index if isinstance(index, int) else len(self._parts),
                                          {"name": "", "arguments": ""})
            function = delta.get("function") or {}
            if isinstance(function, dict):
                if function.get("name"):
                    part["name"] = str(function["name"])
                if function.get("arguments"):
                    part["arguments"] += str(function["arguments"])

    def calls(self) -> tuple[CalledFunction, ...]:
        """The calls; one whose arguments are not a JSON object comes out under a name no function has, so that
        the session reports it as a malformed call (MALFORMED_FUNCTION_CALL) instead of calling with guesses."""
        found: list[CalledFunction] = []
        for _, part in sorted(self._parts.items()):
            if not part["name"]:
                continue
            try:
                args = json.loads(part["arguments"] or "{}")
            except json.JSONDecodeError:
                args = None
            if isinstance(args, dict):
                found.append(CalledFunction(part["name"], args))
            else:
                found.append(CalledFunction(f"{part['name']} (arguments are not a JSON object)", {}))
        return _unique(found)


class SSEParser:
    """Server-sent events: `data:` lines joined per event (a blank line ends one); comments and other fields
    are skipped. `feed` takes text as it arrives, in any split."""

    def __init__(self) -> None:
        self._buffer = ""
        self._data: list[str] = []
        self.done = False

    def feed(self, text: str) -> list[str]:
        self._buffer += text
        events: list[str] = []
        while True:
            cut = re.search(r"\r\n|\r|\n", self._buffer)
            if cut is None:
                break
            line, self._buffer = self._buffer[:cut.start()], self._buffer[cut.end():]
            if not line:
                if self._data:
                    events.append("\n".join(self._data))
                    self._data = []
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            if name == "data":
                self._data.append(value.removeprefix(" "))
        if "[DONE]" in events:
            self.done = True
        return events


def _event(data: str) -> dict[str, Any]:
    try:
        event = json.loads(data)
    except json.JSONDecodeError:
        raise BackendError(STAGE, "streamed something that is not JSON") from None
    if not isinstance(event, dict):
        raise BackendError(STAGE, "streamed something that is not a chat completion chunk")
    if "error" in event:
        error = event["error"]
        message = error.get("message") if isinstance(error, dict) else error
        raise BackendError(STAGE, f"reported an error{_detail(str(message))}")
    return event


def _has_output(event: dict[str, Any]) -> bool:
    for choice in event.get("choices") or ():
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if isinstance(delta, dict) and (delta.get("content") or delta.get("tool_calls")):
            return True
    return False


def _unique(calls: Sequence[CalledFunction]) -> tuple[CalledFunction, ...]:
    """The calls without repeats (arguments are dicts: compared, not hashed)."""
    kept: list[CalledFunction] = []
    for call in calls:
        if call not in kept:
            kept.append(call)
    return tuple(kept)


def _auth(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def _describe(exc: httpx2.HTTPError) -> str:
    """What went wrong, in words, without the exception's text (which may quote a URL with credentials)."""
    if isinstance(exc, httpx2.ConnectTimeout):
        return "connect timed out"
    if isinstance(exc, httpx2.ConnectError):
        return "connection refused or unreachable"
    if isinstance(exc, httpx2.ReadTimeout):
        return "stopped streaming (read timed out)"
    if isinstance(exc, httpx2.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx2.RemoteProtocolError | httpx2.ReadError):
        return "the connection broke mid-answer"
    return type(exc).__name__


def _detail(text: str) -> str:
    """A short, single-line excerpt of a server's error text (it never holds our key: only we send that)."""
    line = " ".join(text.split())[:60]
    return f": {line}" if line else ""
