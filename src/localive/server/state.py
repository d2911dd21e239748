"""What the endpoints share: settings, the model registry, the loaded engines, and admission control."""

from __future__ import annotations

from dataclasses import dataclass, field

from localive.engines.llm.pool import LLMPool
from localive.models.registry import ModelRegistry
from localive.server.auth import Access
from localive.session.engines import Engines
from localive.session.lifetime import LOCAL_LIMITS, Limits
from localive.session.store import SessionStore


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8765
    plain_port: int | None = None
    max_sessions: int = 100
    max_message_bytes: int = 1024 * 1024
    outbox_size: int = 256
    setup_timeout_s: float = 30.0


@dataclass
class ServerState:
    settings: ServerSettings
    registry: ModelRegistry
    llms: LLMPool
    engines: Engines
    store: SessionStore | None = None  # resumable session state (None: sessionResumption is refused)
    limits: Limits = LOCAL_LIMITS  # connection lifetime, GoAway, session age without compression
    access: Access = field(default_factory=Access)  # API keys and ephemeral tokens (default: open)
    active_sessions: int = 0
    sessions_served: int = field(default=0)

    def admit(self) -> bool:
        """Take a session slot; False when the server is full (the client gets 1013)."""
        if self.active_sessions >= self.settings.max_sessions:
            return False
        self.active_sessions += 1
        self.sessions_served += 1
        return True

    def release(self) -> None:
        self.active_sessions -= 1
