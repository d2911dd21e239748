"""`LiveSession`: the Live semantics of one connection, driven by parsed client messages.

Inputs arrive through `handle()`; everything the client should receive goes into `outbox`, which the transport
drains. The session owns its generation task and cancels it on interruption and on `aclose()`. No sockets here.

States: AWAITING_SETUP --setup--> ACTIVE --aclose()/failure--> CLOSED. A model turn runs as one task:
``modelTurn`` text pieces → ``generationComplete`` → ``turnComplete`` (+ ``usageMetadata``); an interruption
cancels it and sends ``interrupted`` → ``turnComplete`` instead, keeping in history only what was sent.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass

from localive.engines.llm.base import LLM, ChatMessage
from localive.models.registry import ModelEntry, ModelRegistry
from localive.protocol import messages as wire
from localive.protocol import server_messages as out
from localive.protocol.errors import InvalidArgument, Unimplemented, close_for
from localive.session.config import SessionConfig, content_text, session_config
from localive.session.outbox import Outbox

log = logging.getLogger("localive.session")

INTERRUPT_TIMEOUT_S = 5.0


class State(enum.Enum):
    AWAITING_SETUP = "awaiting_setup"
    ACTIVE = "active"
    CLOSED = "closed"


@dataclass
class Turn:
    role: str  # "user" | "model"
    text: str


class LiveSession:
    def __init__(
        self,
        *,
        registry: ModelRegistry,
        llm_for: Callable[[ModelEntry], LLM],
        session_id: str,
        api_version: str = "v1beta",
        outbox_size: int = 256,
    ) -> None:
        self.session_id = session_id
        self.api_version = api_version
        self.outbox = Outbox(outbox_size)
        self.state = State.AWAITING_SETUP
        self.config: SessionConfig | None = None
        self.history: list[Turn] = []
        self._registry = registry
        self._llm_for = llm_for
        self._llm: LLM | None = None
        self._turn_task: asyncio.Task[None] | None = None
        self._turn_id = 0
        self._started_turn = 0  # the last turn whose task began to run
        self._respond_after_turn = False

    # --- input -------------------------------------------------------------------------------------------

    async def handle(self, message: wire.ClientMessage) -> None:
        """Apply one client message. Raises a LiveError for input that must end the session."""
        if self.state is State.CLOSED:
            return
        if self.state is State.AWAITING_SETUP:
            if not isinstance(message, wire.Setup):
                raise InvalidArgument("The first message must be setup.")
            await self._setup(message)
            return
        match message:
            case wire.Setup():
                raise InvalidArgument("setup may only be sent once, as the first message.")
            case wire.ClientContent():
                await self._client_content(message)
            case wire.RealtimeInput():
                await self._realtime_input(message)
            case wire.ToolResponse():
                ids = ", ".join(str(r.id) for r in message.function_responses) or "none"
                raise InvalidArgument(f"toolResponse for unknown function call id(s): {ids}."[:120])
            case wire.ContextUpdate():
                self._context_update(message)

    async def _setup(self, setup: wire.Setup) -> None:
        config = session_config(setup, self._registry, self.api_version)
        self._llm = self._llm_for(config.model)
        self.config = config
        self.state = State.ACTIVE
        await self.outbox.put(out.setup_complete(self.session_id))

    async def _client_content(self, content: wire.ClientContent) -> None:
        # Any clientContent interrupts the model's current answer (proto semantics).
        await self.interrupt()
        for turn in content.turns or []:
            role = turn.role or "user"
            if role not in ("user", "model"):
                raise InvalidArgument(f"Content role must be 'user' or 'model', not '{role}'.")
            self._append(role, content_text(turn, "clientContent.turns"))
        if content.turn_complete:
            self._start_turn()

    async def _realtime_input(self, realtime: wire.RealtimeInput) -> None:
        assert self.config is not None
        if realtime.audio is not None or realtime.media_chunks:
            raise Unimplemented("Audio input is not available in this localive version yet.")
        if realtime.video is not None:
            raise Unimplemented("Video input is not available in this localive version yet.")
        if (realtime.activity_start or realtime.activity_end) and not self.config.manual_activity:
            raise InvalidArgument(
                "activityStart/activityEnd require realtimeInputConfig.automaticActivityDetection.disabled."
            )
        if realtime.text is not None:
            if self.generating and not self.config.activity_interrupts:
                self._append("user", realtime.text)
                self._respond_after_turn = True
                return
            await self.interrupt()
            self._append("user", realtime.text)
            self._start_turn()

    def _context_update(self, update: wire.ContextUpdate) -> None:
        assert self.config is not None
        if update.tools is not None and update.tools.tools:
            raise Unimplemented("Tools are not supported by localive yet.")
        if update.system_instruction is not None:
            text = content_text(update.system_instruction, "contextUpdate.systemInstruction")
            self.config = _replace_system(self.config, text or None)

    def _append(self, role: str, text: str) -> None:
        if not text:
            return
        if self.history and self.history[-1].role == role:
            self.history[-1].text += "\n\n" + text
        else:
            self.history.append(Turn(role, text))

    # --- turns -------------------------------------------------------------------------------------------

    @property
    def generating(self) -> bool:
        return self._turn_task is not None and not self._turn_task.done()

    def _start_turn(self) -> None:
        self._turn_id += 1
        self._turn_task = asyncio.create_task(self._run_turn(self._turn_id), name=f"turn-{self._turn_id}")

    def chat_messages(self) -> list[ChatMessage]:
        assert self.config is not None
        messages = []
        if self.config.system_instruction:
            messages.append(ChatMessage("system", self.config.system_instruction))
        messages.extend(ChatMessage("user" if t.role == "user" else "assistant", t.text) for t in self.history)
        return messages

    async def _run_turn(self, turn_id: int) -> None:
        assert self.config is not None and self._llm is not None
        self._started_turn = turn_id
        llm = self._llm
        messages = self.chat_messages()
        prompt_tokens = 0
        pieces: list[str] = []
        try:
            prompt_tokens = llm.count_prompt_tokens(messages)
            async for piece in llm.stream(messages, self.config.sampling):
                pieces.append(piece)
                await self.outbox.put(out.model_text(piece), turn=turn_id)
        except asyncio.CancelledError:
            if self.state is State.CLOSED:  # the session is ending: nobody will read the outbox
                raise
            dropped = await self.outbox.drop_turn(turn_id)
            heard = "".join(pieces[: len(pieces) - len(dropped)])
            self._append("model", heard)
            await self._end_interrupted_turn(self._usage(prompt_tokens, heard))
            raise
        except Exception as exc:  # any engine failure ends the session with 1011, logged here
            log.exception("session %s: generation failed", self.session_id)
            await self.outbox.put(close_for(exc))
            return
        reply = "".join(pieces)
        self._append("model", reply)
        await self.outbox.put(out.generation_complete())
        await self.outbox.put(out.turn_complete(self._usage(prompt_tokens, reply)))
        if self._respond_after_turn:
            self._respond_after_turn = False
            self._start_turn()

    async def _end_interrupted_turn(self, usage: out.Usage | None) -> None:
        await self.outbox.put(out.interrupted())
        await self.outbox.put(out.turn_complete(usage))

    def _usage(self, prompt_tokens: int, reply: str) -> out.Usage:
        assert self._llm is not None
        return out.Usage(
            prompt=[out.ModalityCount("TEXT", prompt_tokens)],
            response=[out.ModalityCount("TEXT", self._llm.count_tokens(reply))],
        )

    async def interrupt(self) -> bool:
        """Stop the current model turn, if any (sends interrupted → turnComplete). Returns whether it did."""
        task = self._turn_task
        if task is None or task.done():
            return False
        task.cancel()
        try:
            await asyncio.wait_for(asyncio.shield(task), INTERRUPT_TIMEOUT_S)
        except asyncio.CancelledError:
            if asyncio.current_task() is not None and asyncio.current_task().cancelling():  # type: ignore[union-attr]
                raise
        except TimeoutError:
            log.error("session %s: turn did not stop within %.0f s", self.session_id, INTERRUPT_TIMEOUT_S)
        if self._started_turn != self._turn_id:  # cancelled before it ran: it could not report itself
            await self._end_interrupted_turn(None)
        return True

    async def aclose(self) -> None:
        """End the session: cancel the turn in progress. Safe to call twice."""
        self.state = State.CLOSED
        task = self._turn_task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def _replace_system(config: SessionConfig, text: str | None) -> SessionConfig:
    from dataclasses import replace

    return replace(config, system_instruction=text)
