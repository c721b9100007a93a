"""Small typed factories, one per aggregate, going through the domain like users do."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from db.enums import CachePolicy, JobStatus, TokenRole
from db.models import TaskType, Token, Workspace
from db.session import Database
from db.uow import UnitOfWork
from domain.auth import service as auth
from domain.auth.rules import Actor
from domain.jobs import moves
from domain.jobs.moves import Move
from domain.jobs.rules import Initiator
from domain.tasktypes import service as tasktypes
from domain.tasktypes.rules import RevisionFields
from domain.workspaces import service as workspaces

ADMIN = Actor(token_id=0, owner="tests", role=TokenRole.ADMIN)


async def make_token(
    db: Database,
    *,
    role: TokenRole = TokenRole.ADMIN,
    owner: str = "alice",
    enabled: bool = True,
    expires_at: datetime | None = None,
) -> tuple[Token, str]:
    async with UnitOfWork(db.write_session) as uow:
        created = await auth.create_token(
            uow,
            owner=owner,
            role=role,
            expires_at=None,
            now=datetime.now(UTC),
            actor=ADMIN,
            enabled=enabled,
        )
        if expires_at is not None:  # allow already-expired tokens in tests
            created.token.expires_at = expires_at
        await uow.commit()
    return created.token, created.secret


async def make_workspace(db: Database, name: str, *, public: bool = False) -> Workspace:
    async with UnitOfWork(db.write_session) as uow:
        row = await workspaces.create_workspace(uow, name=name, public=public, actor=ADMIN)
        await uow.commit()
    return row


def revision_fields(**overrides: Any) -> RevisionFields:
    base: dict[str, Any] = {
        "description": "",
        "parameters_schema": {"type": "object"},
        "result_schema": {"type": "object"},
        "implementation": "external",
        "timeout_seconds": None,
        "max_attempts": 3,
        "cache_policy": CachePolicy.NONE,
    }
    return RevisionFields(**{**base, **overrides})


async def make_task_type(
    db: Database,
    name: str = "resize",
    *,
    workspace: str = "default",
    check_in_timeout_seconds: int = 30,
    **fields: Any,
) -> TaskType:
    async with UnitOfWork(db.write_session) as uow:
        row = await tasktypes.create_task_type(
            uow,
            spec=tasktypes.TaskTypeSpec(
                workspace=workspace,
                name=name,
                fields=revision_fields(**fields),
                check_in_timeout_seconds=check_in_timeout_seconds,
            ),
            actor=ADMIN,
        )
        await uow.commit()
    return row


class RecordingDispatcher:
    """The domain's Dispatcher port, recording what would be sent (the real broker path
    is tested in tests/jobs)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, tuple[object, ...]]] = []

    async def send(self, actor_name: str, *args: object, delay_ms: int | None = None) -> None:
        self.sent.append((actor_name, args))

    async def ping(self) -> None:
        return None


RESIZE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["url", "width"],
    "properties": {"url": {"type": "string"}, "width": {"type": "integer", "minimum": 1}},
}


def two_node_definition(items: list[dict[str, Any]]) -> dict[str, Any]:
    """resize (the item) → thumb (depends on resize)."""
    return {
        "recipe": {
            "nodes": [
                {"name": "resize", "taskType": "resize"},
                {
                    "name": "thumb",
                    "taskType": "thumb",
                    "dependsOn": ["resize"],
                    "parameters": {"source": "{{item.url}}", "size": 64},
                },
            ]
        },
        "inputs": items,
    }


async def make_batch(
    db: Database,
    definition: dict[str, Any] | None = None,
    *,
    title: str = "b",
    previous: Any = None,
    finish_creation: bool = True,
) -> Any:
    """Create a batch through the domain and (by default) run its creation chunks."""
    from domain.batches import service as batches

    dispatcher = RecordingDispatcher()
    async with UnitOfWork(db.write_session, dispatcher=dispatcher) as uow:
        created = await batches.create_batch(
            uow,
            spec=batches.BatchSpec(
                workspace="default", title=title, definition=definition, previous=previous
            ),
            actor=ADMIN,
            # Small batches are created at once; finish_creation=False leaves it to chunks.
            inline_limit=batches.CHUNK_SIZE if finish_creation else 0,
        )
        await uow.commit()
    assert created.batch is not None
    if finish_creation:
        await run_creation(db, created.batch.id)
    return created.batch


async def run_creation(db: Database, batch_id: int, cursor: int = 0) -> int:
    """Run create_chunk until creation is done, as the actor would. Returns chunks run."""
    from domain.batches import service as batches

    chunks = 0
    next_cursor: int | None = cursor
    while next_cursor is not None:
        async with UnitOfWork(db.write_session) as uow:
            outcome = await batches.create_chunk(uow, batch_id=batch_id, cursor=next_cursor)
            await uow.commit()
        next_cursor = outcome.next_cursor
        chunks += 1
    return chunks


async def move_job(
    uow: UnitOfWork,
    job_id: int,
    target: JobStatus,
    by: Initiator,
    *,
    worker: str | None = "w",
    error: tuple[str, str, str] | None = None,
) -> None:
    """One move on the one path, as a worker or the system would make it."""
    completed = target is JobStatus.COMPLETED
    failed = target is JobStatus.FAILED
    await moves.apply(
        uow,
        [
            Move(
                job_id,
                target,
                by,
                worker=worker,
                result={} if completed else None,
                error=error or (("FAILED", "failed", "DOMAIN") if failed else None),
            )
        ],
    )


async def live_nodes(db: Database, batch_id: int) -> dict[str, Any]:
    """The batch's node counters as readers see them (folded + pending deltas)."""
    from db.repositories.batch import BatchRepository

    async with db.read_session() as s:
        [nodes] = await BatchRepository(s).nodes([batch_id])
    return {n.node: n for n in nodes}


async def fold_counters(db: Database) -> None:
    """What the ``counters.fold`` periodic task does."""
    from db.repositories import counters

    async with db.write_session() as s:
        await counters.fold(s)
        await s.commit()
