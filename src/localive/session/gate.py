"""What a credential (an ephemeral token) enforces on the session it opens (`SetupGate`)."""

from __future__ import annotations

from typing import Protocol

from localive.protocol import messages as wire


class SetupGate(Protocol):
    """What a credential (an ephemeral token) enforces on its session; each method raises a LiveError to refuse."""

    async def __call__(self, setup: wire.Setup) -> wire.Setup:
        """Admit the session: check (and may rewrite) its setup before it is applied."""
        ...

    def constrain(self, setup: wire.Setup) -> wire.Setup:
        """Apply the locks again to a setup restored from a resumed session."""
        ...

    def check_update(self, update: wire.ContextUpdate) -> None:
        """Refuse a contextUpdate that changes a locked field."""
        ...
