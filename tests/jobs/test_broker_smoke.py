"""Through a real broker: a message sent after commit is run by a real Dramatiq worker."""

from __future__ import annotations

import asyncio
import time

import dramatiq
import pytest
from dramatiq.asyncio import get_event_loop_thread
from sqlalchemy import select

from db.models import TaskType
from db.session import Database
from jobs import runtime
from jobs.actors import declare_actors
from jobs.broker import build_broker, worker_timeout_ms
from jobs.dispatch import DramatiqDispatcher
from tests.factories import make_task_type


async def _round_trip(url: str, db: Database, database_url: str) -> float:
    broker = build_broker(url)
    declare_actors(broker)
    broker.flush_all()
    runtime.configure(database_url)
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=worker_timeout_ms(url) or 100)
    worker.start()
    try:
        tt = await make_task_type(db, "smoke")
        dispatcher = DramatiqDispatcher(broker)
        await dispatcher.ping()
        started = time.monotonic()
        await dispatcher.send("tasktypes.check_in", tt.id)
        deadline = started + 15
        while time.monotonic() < deadline:
            async with db.read_session() as s:
                checked = await s.scalar(
                    select(TaskType.last_check_in_at).where(TaskType.id == tt.id)
                )
            if checked is not None:
                return time.monotonic() - started
            await asyncio.sleep(0.02)
        pytest.fail("the worker did not run the message within 15 s")
    finally:
        loop_thread = get_event_loop_thread()
        if loop_thread is not None:
            loop_thread.run_coroutine(runtime.dispose())
        worker.stop()
        broker.close()


@pytest.mark.redis
async def test_redis_round_trip(db: Database, database_url: str, redis_url: str) -> None:
    elapsed = await _round_trip(redis_url, db, database_url)
    assert elapsed < 15


@pytest.mark.rabbitmq
async def test_rabbitmq_round_trip(db: Database, database_url: str, rabbitmq_url: str) -> None:
    elapsed = await _round_trip(rabbitmq_url, db, database_url)
    assert elapsed < 15
