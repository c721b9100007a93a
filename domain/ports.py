"""Ports the domain needs from the outside world; entry points wire real adapters in."""

from __future__ import annotations

from typing import Protocol

JSONScalar = str | int | float | bool | None


class Dispatcher(Protocol):
    """Sends background work. Messages carry ids only; actor names are a wire contract."""

    async def send(
        self, actor_name: str, *args: JSONScalar, delay_ms: int | None = None
    ) -> None: ...

    async def ping(self) -> None:
        """Raise if the broker cannot be reached."""
