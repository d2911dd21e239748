"""Admission to the remote backends a session uses (engines/remote_backend.py): refused with 1013 (try again later)
while one is known to be down or serves as many sessions as it may; otherwise a slot on it is held until the
session ends. Embedded engines have neither and always admit."""

from __future__ import annotations

from localive.engines.llm.base import SessionSlots
from localive.protocol.errors import Overloaded


class BackendSlots:
    def __init__(self) -> None:
        self._held: list[SessionSlots] = []

    async def admit(self, engine: object, stage: str) -> None:
        reachable = getattr(engine, "reachable", None)
        if reachable is not None and not await reachable():
            raise Overloaded(f"The {stage} backend is not reachable now; try again later.")
        slots = getattr(engine, "slots", None)
        if isinstance(slots, SessionSlots) and slots not in self._held:
            if not slots.take():
                raise Overloaded(f"The {stage} backend is serving as many sessions as it may; try again later.")
            self._held.append(slots)

    def give_back(self) -> None:
        while self._held:
            self._held.pop().give_back()
