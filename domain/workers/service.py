"""Worker use cases: register, heartbeat, disconnect; a lost worker's jobs go back."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from db.enums import WorkerKind
from db.models import Worker
from db.uow import UnitOfWork
from domain.auth.rules import Actor, require_admin
from domain.errors import NotFoundError, Violation, raise_if_invalid
from domain.jobs import execution
from domain.workers.rules import MAX_METADATA_BYTES, free_name, slugify


async def register_fleet(
    uow: UnitOfWork, *, host: str, concurrency: int, dynamic_metadata: dict[str, Any]
) -> Worker:
    """A fleet worker process joins: named after its host (``-2``, ``-3`` on collisions)."""
    await uow.workers.lock_naming()
    name = free_name(host, await uow.workers.names_like(slugify(host)))
    now = datetime.now(UTC)
    worker = Worker(
        name=name,
        kind=WorkerKind.FLEET,
        host=host,
        concurrency=concurrency,
        enabled=True,
        static_metadata={},
        dynamic_metadata=dynamic_metadata,
        connected_at=now,
        last_seen_at=now,
    )
    await uow.workers.insert(worker)
    return worker


async def heartbeat(uow: UnitOfWork, *, worker_id: int, dynamic_metadata: dict[str, Any]) -> bool:
    """Record that the worker is alive. A worker that had been presumed lost connects
    again (its jobs were re-queued meanwhile). False if the worker is unknown."""
    worker = await uow.workers.get(worker_id, for_update=True)
    if worker is None:
        return False
    now = datetime.now(UTC)
    if worker.connected_at is None:
        worker.connected_at = now
        worker.lost_at = None
        worker.disconnected_at = None
    worker.last_seen_at = now
    worker.dynamic_metadata = dynamic_metadata
    await uow.workers.flush()
    return True


async def disconnect(uow: UnitOfWork, *, worker_id: int) -> None:
    """A clean shutdown (its running jobs finished first)."""
    worker = await uow.workers.get(worker_id, for_update=True)
    if worker is not None:
        worker.connected_at = None
        worker.disconnected_at = datetime.now(UTC)
        await requeue_running(uow, worker=worker.name, why="its worker disconnected")
        await uow.workers.flush()


async def mark_lost(uow: UnitOfWork, worker: Worker) -> int:
    """A worker silent past its timeout: lost; its RUNNING jobs go back. Returns how many."""
    worker.connected_at = None
    worker.lost_at = datetime.now(UTC)
    return await requeue_running(uow, worker=worker.name, why=f"worker {worker.name} lost")


async def requeue_running(uow: UnitOfWork, *, worker: str, why: str) -> int:
    """RUNNING → QUEUED as a new attempt (or FAILED with WORKER_LOST when none are left)."""
    return await execution.lose_runs(
        uow, where="j.worker = :worker", params={"worker": worker}, why=why
    )


async def set_static_metadata(
    uow: UnitOfWork, *, worker_id: int, metadata: Any, actor: Actor | None
) -> Worker:
    """What an admin says about a worker (e.g. its architecture, its GPU): it wins over
    what the worker reports, and task types' requirements are matched against both."""
    require_admin(actor)
    raise_if_invalid("Invalid metadata", check_metadata(metadata, "$.metadata"))
    worker = await uow.workers.get(worker_id, for_update=True)
    if worker is None:
        raise NotFoundError(f"No worker with id {worker_id}")
    worker.static_metadata = metadata
    await uow.workers.flush()
    return worker


def check_metadata(metadata: Any, path: str) -> list[Violation]:
    if not isinstance(metadata, dict):
        return [Violation(path, "must be a JSON object")]
    if len(json.dumps(metadata)) > MAX_METADATA_BYTES:
        return [Violation(path, f"must be at most {MAX_METADATA_BYTES} bytes of JSON")]
    return []
