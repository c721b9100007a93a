"""batches.create_chunk: called directly (idempotent), and through a real broker end to end."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import dramatiq
import pytest
from dramatiq.asyncio import get_event_loop_thread
from sqlalchemy import func, select

from db.models import Batch, Job, Recipe
from db.session import Database
from domain.batches.rules import CHUNK_SIZE
from jobs import runtime
from jobs.actors import declare_actors
from jobs.actors.batches import create_chunk
from jobs.broker import build_broker, worker_timeout_ms
from jobs.dispatch import DramatiqDispatcher
from tests.factories import (
    RESIZE_SCHEMA,
    RecordingDispatcher,
    make_batch,
    make_task_type,
    two_node_definition,
)


@pytest.fixture
async def task_types(db: Database) -> None:
    await make_task_type(db, "resize", parameters_schema=RESIZE_SCHEMA)
    await make_task_type(db, "thumb")


@pytest.fixture
async def recording(database_url: str) -> AsyncIterator[RecordingDispatcher]:
    runtime.configure(database_url)
    found = RecordingDispatcher()
    runtime.use_dispatcher(found)
    yield found
    runtime.use_dispatcher(None)
    await runtime.dispose()


async def _state(db: Database, batch_id: int) -> tuple[bool, int, int]:
    async with db.read_session() as s:
        done = await s.scalar(select(Batch.is_creation_done).where(Batch.id == batch_id))
        recipes = await s.scalar(
            select(func.count()).select_from(Recipe).where(Recipe.batch_id == batch_id)
        )
        jobs = await s.scalar(select(func.count()).select_from(Job).where(Job.batch_id == batch_id))
    return bool(done), int(recipes or 0), int(jobs or 0)


async def test_one_chunk_per_message_then_the_next_is_sent(
    db: Database, task_types: None, recording: RecordingDispatcher
) -> None:
    items = [{"url": "u", "width": 1}] * (CHUNK_SIZE + 1)
    batch = await make_batch(db, two_node_definition(items), finish_creation=False)
    await create_chunk(batch.id, 0)
    assert await _state(db, batch.id) == (False, CHUNK_SIZE, 2 * CHUNK_SIZE)
    assert recording.sent == [("batches.create_chunk", (batch.id, CHUNK_SIZE))]
    # Redelivered (the worker died after the commit, maybe before sending the next
    # message): nothing is created twice, and the next chunk is sent again.
    await create_chunk(batch.id, 0)
    assert await _state(db, batch.id) == (False, CHUNK_SIZE, 2 * CHUNK_SIZE)
    assert recording.sent == [("batches.create_chunk", (batch.id, CHUNK_SIZE))] * 2
    await create_chunk(batch.id, CHUNK_SIZE)
    await create_chunk(batch.id, CHUNK_SIZE)  # the duplicate: creation is done, no-op
    assert await _state(db, batch.id) == (True, CHUNK_SIZE + 1, 2 * (CHUNK_SIZE + 1))
    assert len(recording.sent) == 2


async def test_unknown_batch_is_ignored(db: Database, recording: RecordingDispatcher) -> None:
    await create_chunk(424242, 0)
    assert recording.sent == []


@pytest.mark.redis
async def test_a_worker_creates_a_large_batch_through_the_broker(
    db: Database, task_types: None, database_url: str, redis_url: str
) -> None:
    broker = build_broker(redis_url)
    declare_actors(broker)
    broker.flush_all()
    runtime.configure(database_url)
    runtime.use_dispatcher(DramatiqDispatcher(broker))
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=worker_timeout_ms(redis_url))
    worker.start()
    try:
        from db.uow import UnitOfWork
        from domain.batches import service as batches
        from tests.factories import ADMIN

        items = [{"url": f"u{i}", "width": 1} for i in range(2 * CHUNK_SIZE + 100)]
        async with UnitOfWork(db.write_session, dispatcher=DramatiqDispatcher(broker)) as uow:
            created = await batches.create_batch(
                uow,
                spec=batches.BatchSpec(
                    workspace="default", title="big", definition=two_node_definition(items)
                ),
                actor=ADMIN,
            )
            await uow.commit()
        assert created.batch is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            state = await _state(db, created.batch.id)
            if state[0]:
                break
            await asyncio.sleep(0.1)
        assert state == (True, len(items), 2 * len(items))
    finally:
        loop_thread = get_event_loop_thread()
        if loop_thread is not None:
            loop_thread.run_coroutine(runtime.dispose())
        worker.stop()
        broker.close()
        runtime.use_dispatcher(None)


async def _run_batch_on_a_real_worker(db: Database, database_url: str, url: str) -> None:
    broker = build_broker(url)
    declare_actors(broker)
    broker.flush_all()
    runtime.configure(database_url)
    runtime.use_dispatcher(DramatiqDispatcher(broker))
    worker = dramatiq.Worker(broker, worker_threads=4, worker_timeout=worker_timeout_ms(url) or 100)
    worker.start()
    try:
        from db.uow import UnitOfWork
        from domain.batches import service as batches
        from tests.factories import ADMIN

        await make_task_type(db, "echo", implementation="builtin.echo")
        definition = {
            "recipe": {
                "nodes": [
                    {"name": "a", "taskType": "echo"},
                    {"name": "b", "taskType": "echo", "dependsOn": ["a"]},
                ]
            },
            "inputs": [{"i": i} for i in range(50)],
        }
        async with UnitOfWork(db.write_session, dispatcher=DramatiqDispatcher(broker)) as uow:
            created = await batches.create_batch(
                uow,
                spec=batches.BatchSpec(workspace="default", title="run", definition=definition),
                actor=ADMIN,
            )
            await uow.commit()
        assert created.batch is not None
        deadline = time.monotonic() + 60
        statuses: dict[str, int] = {}
        while time.monotonic() < deadline:
            async with db.read_session() as s:
                statuses = {
                    str(k): int(v)
                    for k, v in (
                        await s.execute(
                            select(Job.status, func.count())
                            .where(Job.batch_id == created.batch.id)
                            .group_by(Job.status)
                        )
                    ).all()
                }
            if statuses == {"COMPLETED": 100}:
                break
            await asyncio.sleep(0.1)
        assert statuses == {"COMPLETED": 100}
    finally:
        loop_thread = get_event_loop_thread()
        if loop_thread is not None:
            loop_thread.run_coroutine(runtime.dispose())
        worker.stop()
        broker.close()
        runtime.use_dispatcher(None)


@pytest.mark.redis
async def test_a_batch_runs_to_completion_on_a_worker_over_redis(
    db: Database, database_url: str, redis_url: str
) -> None:
    await _run_batch_on_a_real_worker(db, database_url, redis_url)


@pytest.mark.rabbitmq
async def test_a_batch_runs_to_completion_on_a_worker_over_rabbitmq(
    db: Database, database_url: str, rabbitmq_url: str
) -> None:
    await _run_batch_on_a_real_worker(db, database_url, rabbitmq_url)
