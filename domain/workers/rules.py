"""Workers (debusine): names from host names, connected-ness, metadata overlay."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from db.enums import JobStatus, WorkerKind

DEFAULT_TIMEOUT_SECONDS = 20  # + a maintenance tick of 10 s: lost within 30 s
MAX_NAME = 100
MAX_HOST = 255
MAX_METADATA_BYTES = 16 * 1024


def slugify(host: str) -> str:
    """``build1.example.org`` → ``build1-example-org``."""
    slug = re.sub(r"[^a-z0-9]+", "-", host.lower()).strip("-")
    return (slug or "worker")[:MAX_NAME]


def free_name(host: str, taken: Collection[str]) -> str:
    """The slug, or the first of ``slug-2``, ``slug-3``, … that is free."""
    base = slugify(host)
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def is_connected(
    *,
    connected_at: datetime | None,
    last_seen_at: datetime | None,
    now: datetime,
    timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS,
) -> bool:
    """Connected and heard from within the timeout (timed out only when strictly past it)."""
    if connected_at is None or last_seen_at is None:
        return False
    return now - last_seen_at <= timedelta(seconds=timeout_seconds)


def metadata(static: Mapping[str, Any], dynamic: Mapping[str, Any]) -> dict[str, Any]:
    """What the worker reports, overlaid by what an admin set: static wins."""
    return {**dynamic, **static}


EXTERNAL = "external"  # the implementation of task types run by pull workers
NO_PULL_WORKER = "no connected worker offers this task type"
NO_WORKER_MEETS = "no connected worker offers this task type and meets its requirements"
BLOCKED_REASON = "waiting for the jobs it depends on to complete"
PENDING_REASON = "waiting for a free slot: its batch runs at most maxParallelJobs jobs at once"


def contains(have: Any, want: Any) -> bool:
    """PostgreSQL's jsonb containment (``have @> want``), which claims use to match a
    task type's requirements against a worker's metadata."""
    if isinstance(want, dict):
        return isinstance(have, dict) and all(
            k in have and contains(have[k], v) for k, v in want.items()
        )
    if isinstance(want, list):
        return isinstance(have, list) and all(any(contains(h, w) for h in have) for w in want)
    return _same(have, want)  # (an array holding a scalar contains it only at the top level)


def _same(a: Any, b: Any) -> bool:
    """Equal JSON scalars (true is not 1; 1 is 1.0)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and a == b


@dataclass(frozen=True, slots=True)
class Candidate:
    """A connected worker, as far as taking a job is concerned."""

    kind: WorkerKind
    enabled: bool
    token_enabled: bool | None  # None: no token (fleet workers)
    metadata: Mapping[str, Any] = field(default_factory=dict)


def may_take(
    worker: Candidate,
    *,
    task_type: str,
    implementation: str,
    requirements: Mapping[str, Any] | None = None,
) -> bool:
    """Whether this worker would claim a QUEUED job of this task type: its metadata
    meets the requirements, and it is a pull worker with an enabled token whose
    allow-list (which wins) or deny-list lets it, or a fleet worker that has the
    implementation."""
    if not worker.enabled or not contains(dict(worker.metadata), dict(requirements or {})):
        return False
    if implementation == EXTERNAL:
        if worker.kind is not WorkerKind.EXTERNAL or worker.token_enabled is False:
            return False
        allow = worker.metadata.get("tasks_allowlist")
        if isinstance(allow, list):
            return task_type in allow
        deny = worker.metadata.get("tasks_denylist") or []
        return not (isinstance(deny, list) and task_type in deny)
    offered = worker.metadata.get("implementations") or []
    return (
        worker.kind is WorkerKind.FLEET and isinstance(offered, list) and implementation in offered
    )


def waiting_reason(
    *,
    status: JobStatus,
    task_type: str,
    implementation: str,
    connected: Iterable[Candidate],
    requirements: Mapping[str, Any] | None = None,
) -> str | None:
    """Why a job that is not running yet is still waiting, when something is in its way;
    None when it is not waiting, or a connected worker would take it."""
    if status is JobStatus.BLOCKED:
        return BLOCKED_REASON
    if status is JobStatus.PENDING:
        return PENDING_REASON
    if status is not JobStatus.QUEUED:
        return None
    if any(
        may_take(w, task_type=task_type, implementation=implementation, requirements=requirements)
        for w in connected
    ):
        return None
    if requirements:
        return NO_WORKER_MEETS
    if implementation == EXTERNAL:
        return NO_PULL_WORKER
    return f"no connected fleet worker has the implementation {implementation!r}"
