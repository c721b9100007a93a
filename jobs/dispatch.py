"""The Dramatiq implementation of the domain's Dispatcher port."""

from __future__ import annotations

import asyncio

import dramatiq
from dramatiq import Message

from domain.ports import JSONScalar
from jobs.broker import ping, queue_of


class DramatiqDispatcher:
    def __init__(self, broker: dramatiq.Broker, *, queue: str | None = None) -> None:
        """``queue``: send everything there (tests); else each actor's own queue."""
        self._broker = broker
        self._queue_name = queue

    async def send(self, actor_name: str, *args: JSONScalar, delay_ms: int | None = None) -> None:
        message: Message[object] = Message(
            queue_name=self._queue_name or queue_of(actor_name),
            actor_name=actor_name,
            args=args,
            kwargs={},
            options={},
        )
        # Broker I/O is blocking; keep it off the event loop.
        await asyncio.to_thread(self._broker.enqueue, message, delay=delay_ms)

    async def ping(self) -> None:
        await asyncio.to_thread(ping, self._broker)

    def close(self) -> None:
        self._broker.close()
