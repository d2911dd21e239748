"""Session resumption: the conversation saved at each resumable point (a handle sent as
``sessionResumptionUpdate``), and restored from a handle at setup. Only with ``sessionResumption`` and a store."""

from __future__ import annotations

from localive.protocol import messages as wire
from localive.protocol import server_messages as out
from localive.protocol.errors import PolicyViolation
from localive.session import snapshot
from localive.session.history import History
from localive.session.outbox import Outbox
from localive.session.watchdog import STORE_STAGE, Watchdog
from localive.stores.base import SessionStore, new_handle


class Resumption:
    def __init__(self, store: SessionStore | None, principal: str, session_id: str, started_at: float) -> None:
        self.store = store
        self.principal = principal  # who connected: handles are bound to it
        self.config: wire.SessionResumptionConfig | None = None  # None: this session is not resumable
        self.session_key = session_id  # stays the same across resumptions (names the snapshot chain)
        self.started_at = started_at  # the session's first connection (restored on resumption)
        self.setup_dump: dict[str, object] = {}  # the setup in force, as saved with each snapshot

    @property
    def enabled(self) -> bool:
        return self.config is not None and self.store is not None

    async def restore(self, setup: wire.Setup, handle: str, watchdog: Watchdog) -> tuple[wire.Setup, History]:
        """A saved conversation and its setup, which the new setup's fields override."""
        assert self.store is not None
        saved = await watchdog.bounded(STORE_STAGE, self.store.load(handle, self.principal))
        if saved is None:
            raise PolicyViolation("Session resumption handle is invalid or has expired.")
        state = snapshot.loads(saved)
        self.session_key = state.session_key
        self.started_at = state.started_at
        fresh = setup.model_dump(by_alias=True, exclude_none=True, mode="json")
        return wire.Setup.model_validate({**state.setup, **fresh}), History(state.history, state.deferred)

    async def checkpoint(self, history: History, consumed: int, outbox: Outbox, watchdog: Watchdog, *,
                         in_turn: bool) -> None:
        """At a resumable point: save the conversation and send its handle (only when enabled). `consumed`: the
        index of the last client message whose effect it holds; `in_turn`: a model turn saves (the watchdog
        bounds it already)."""
        if self.config is None or self.store is None:
            return
        handle = new_handle()
        state = snapshot.State(self.setup_dump, list(history), history.deferred, self.session_key, consumed,
                               self.started_at)
        save = self.store.save(handle, session_key=self.session_key, principal=self.principal,
                               state=snapshot.dumps(state))
        if in_turn:
            with watchdog.stage(STORE_STAGE):
                await save
        else:
            await watchdog.bounded(STORE_STAGE, save)
        await outbox.put(out.resumption_update(handle, True, consumed if self.config.transparent else None))

    async def session_ended(self, watchdog: Watchdog) -> None:
        """Start the handles' expiry clock (a store that fails or hangs here is bounded by the watchdog)."""
        if self.config is not None and self.store is not None:
            await watchdog.bounded(STORE_STAGE, self.store.session_ended(self.session_key))
