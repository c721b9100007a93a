"""Artifact use cases on a real PostgreSQL: races, relations, lineage, expiry, statements."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from db.enums import RelationType
from db.filestores.factory import Stores
from db.session import Database
from db.uow import UnitOfWork
from domain.artifacts import service, uploads
from domain.artifacts.rules import FileSpec
from domain.errors import ConflictError, NotFoundError, ValidationFailedError
from tests.conftest import StatementCounter
from tests.factories import ADMIN

BUILT = RelationType.BUILT_USING


def spec(
    files: dict[str, bytes], workspace: str = "default", **extra: object
) -> service.ArtifactSpec:
    return service.ArtifactSpec(
        workspace=workspace,
        category="text",
        files=[FileSpec(p, len(d), hashlib.sha256(d).hexdigest()) for p, d in files.items()],
        **extra,  # type: ignore[arg-type]
    )


async def make(db: Database, files: dict[str, bytes], **extra: object) -> service.Created:
    async with UnitOfWork(db.write_session) as uow:
        created = await service.create_artifact(uow, spec=spec(files, **extra), actor=ADMIN)
        await uow.commit()
    return created


async def body(data: bytes):  # type: ignore[no-untyped-def]
    yield data


async def store_bytes(
    db: Database, stores: Stores, artifact_id: int, path: str, data: bytes
) -> None:
    await uploads.put(
        lambda: UnitOfWork(db.write_session),
        stores,
        artifact_id=artifact_id,
        path=path,
        content_range=None,
        content_length=len(data),
        body=body(data),
        actor=ADMIN,
    )


@pytest.fixture
def stores(tmp_path: Path) -> Stores:
    return Stores(tmp_path / "files")


async def complete(db: Database, ids: list[int]) -> set[int]:
    async with db.read_session() as s:
        from db.repositories.artifact import ArtifactRepository

        incomplete = await ArtifactRepository(s).incomplete(ids)
    return set(ids) - incomplete


async def test_two_creations_racing_over_shared_files(db: Database, stores: Stores) -> None:
    """Two sessions create artifacts over the same files at once: neither is complete
    until the bytes are stored, whoever made the file rows (debusine's race)."""
    shared = {"common.bin": b"c" * 5000, "other.bin": b"o" * 10}

    async def create(name: str, hold: asyncio.Event, go: asyncio.Event) -> service.Created:
        async with UnitOfWork(db.write_session) as uow:
            created = await service.create_artifact(
                uow, spec=spec({**shared, name: name.encode()}), actor=ADMIN
            )
            hold.set()
            await go.wait()  # both transactions are open, their rows not committed yet
            await uow.commit()
        return created

    held = [asyncio.Event(), asyncio.Event()]
    go = asyncio.Event()
    first = asyncio.create_task(create("one", held[0], go))
    await held[0].wait()
    second = asyncio.create_task(create("two", held[1], go))
    await asyncio.sleep(0.2)  # the second waits on the first's file rows
    go.set()
    a, b = await asyncio.gather(first, second)
    assert a.paths_to_upload == ["common.bin", "one", "other.bin"]
    assert b.paths_to_upload == ["common.bin", "other.bin", "two"]
    async with db.read_session() as s:
        assert await s.scalar(text("SELECT count(*) FROM file")) == 4
    ids = [a.artifact.id, b.artifact.id]
    assert await complete(db, ids) == set()
    # The first uploads the shared files: the second is still incomplete (its own file).
    for path in ("common.bin", "other.bin"):
        await store_bytes(db, stores, a.artifact.id, path, shared[path])
    await store_bytes(db, stores, a.artifact.id, "one", b"one")
    assert await complete(db, ids) == {a.artifact.id}
    await store_bytes(db, stores, b.artifact.id, "two", b"two")
    assert await complete(db, ids) == set(ids)


async def test_creation_statements_do_not_grow_with_files(
    db: Database, sql_counter: StatementCounter
) -> None:
    counts = []
    for n in (3, 300):
        files = {f"f{i:04d}": f"content {n} {i}".encode() for i in range(n)}
        before = sql_counter.count
        await make(db, files)
        counts.append(sql_counter.count - before)
    assert counts[0] == counts[1]


async def relate(db: Database, source: int, target: int, kind: RelationType = BUILT) -> None:
    async with UnitOfWork(db.write_session) as uow:
        await service.add_relation(uow, source_id=source, target_id=target, type=kind, actor=ADMIN)
        await uow.commit()


async def test_relations_rules(db: Database, stores: Stores) -> None:
    a = (await make(db, {})).artifact.id
    b = (await make(db, {})).artifact.id
    pending = (await make(db, {"x": b"x"})).artifact.id
    await relate(db, a, b)
    await relate(db, a, b)  # idempotent
    await relate(db, a, b, RelationType.EXTENDS)  # another type: another relation
    async with db.read_session() as s:
        assert await s.scalar(text("SELECT count(*) FROM artifact_relation")) == 2
    with pytest.raises(ValidationFailedError):
        await relate(db, a, a)
    with pytest.raises(NotFoundError):
        await relate(db, a, 999_999)
    with pytest.raises(ConflictError, match="still have files to upload"):
        await relate(db, a, pending)
    with pytest.raises(ConflictError):
        await relate(db, pending, a)
    await store_bytes(db, stores, pending, "x", b"x")
    await relate(db, pending, a)
    async with UnitOfWork(db.write_session) as uow:
        _, removed = await service.remove_relation(
            uow, source_id=a, target_id=b, type=BUILT, actor=ADMIN
        )
        _, again = await service.remove_relation(
            uow, source_id=a, target_id=b, type=BUILT, actor=ADMIN
        )
        await uow.commit()
    assert (removed, again) == (True, False)


async def test_lineage_is_one_statement_cycle_safe_and_bounded(
    db: Database, sql_counter: StatementCounter
) -> None:
    from db.repositories.artifact import ArtifactRepository

    ids = [(await make(db, {})).artifact.id for _ in range(6)]
    a, b, c, d, e, f = ids
    # a → b → c → d, c → a (a cycle), a → e (EXTENDS), f → a (downstream of a)
    for source, target in ((a, b), (b, c), (c, d), (c, a)):
        await relate(db, source, target)
    await relate(db, a, e, RelationType.EXTENDS)
    await relate(db, f, a)

    async def lineage(**kw: object) -> tuple[dict[int, int], set[tuple[int, int]], bool]:
        args: dict[str, object] = {
            "upstream": True,
            "downstream": False,
            "depth": 10,
            "types": list(RelationType),
            "cap": 100,
            "edge_cap": 100,
            "private": True,
        }
        args.update(kw)
        async with db.read_session() as s:
            before = sql_counter.count
            found = await ArtifactRepository(s).lineage(a, **args)  # type: ignore[arg-type]
            assert sql_counter.count - before == 1
        return (
            {n.id: depth for n, depth in found.nodes},
            {(x.source_id, x.target_id) for x in found.edges},
            found.truncated,
        )

    nodes, edges, cut = await lineage()
    assert nodes == {a: 0, b: 1, e: 1, c: 2, d: 3}
    assert (c, a) in edges
    assert (f, a) not in edges
    assert not cut
    nodes, _, _ = await lineage(depth=1)
    assert nodes == {a: 0, b: 1, e: 1}
    nodes, _, _ = await lineage(types=[BUILT])
    assert e not in nodes
    nodes, _, _ = await lineage(upstream=False, downstream=True)
    assert nodes == {a: 0, f: 1, c: 1, b: 2}
    nodes, _, cut = await lineage(cap=2)
    assert len(nodes) == 2
    assert cut


async def test_expiry_keeps_what_live_artifacts_need(db: Database, tmp_path: Path) -> None:
    stores = Stores(tmp_path / "files")
    old = datetime.now(UTC) - timedelta(days=2)

    async def at(when: datetime, files: dict[str, bytes], seconds: int | None) -> int:
        async with UnitOfWork(db.write_session) as uow:
            created = await service.create_artifact(
                uow, spec=spec(files, expire_after_seconds=seconds), actor=ADMIN, now=when
            )
            await uow.commit()
        for path, data in files.items():
            await store_bytes(db, stores, created.artifact.id, path, data)
        return created.artifact.id

    live = await at(old, {}, 0)  # never expires
    needed = await at(old, {"n": b"needed"}, 60)  # expired, but live → needed
    needed_too = await at(old, {}, 60)  # expired, reached through `needed`
    gone = await at(old, {"g": b"gone bytes"}, 60)  # expired, nobody needs it
    shared = await at(old, {"s": b"shared"}, 60)  # expired; its bytes are used elsewhere
    keeps = await at(datetime.now(UTC), {"s": b"shared"}, 3600)  # not expired yet
    await relate(db, live, needed)
    await relate(db, needed, needed_too)
    await relate(db, gone, live)  # gone's relations do not keep anything
    store = stores.open(1, "LOCAL", {})
    gone_sha = hashlib.sha256(b"gone bytes").hexdigest()
    assert await store.has(gone_sha)

    async with UnitOfWork(db.write_session, file_stores=stores) as uow:
        outcome = await service.expire_artifacts(uow, datetime.now(UTC))
        await uow.commit()
    assert outcome == "2 artifacts and 1 files deleted"
    from domain.periodic.service import REGISTRY

    assert REGISTRY["artifacts.expire"].run is service.expire_artifacts  # in the registry
    async with db.read_session() as s:
        left = set(await s.scalars(text("SELECT id FROM artifact")))
    assert left == {live, needed, needed_too, keeps}
    assert not await store.has(gone_sha)
    assert await store.has(hashlib.sha256(b"shared").hexdigest())
    assert await store.has(hashlib.sha256(b"needed").hexdigest())
    assert shared not in left


async def test_anonymous_lineage_does_not_cross_private_workspaces(db: Database) -> None:
    from db.repositories.artifact import ArtifactRepository
    from tests.factories import make_workspace

    await make_workspace(db, "open", public=True)
    public = [(await make(db, {}, workspace="open")).artifact.id for _ in range(2)]
    hidden = (await make(db, {})).artifact.id  # the private "default" workspace
    await relate(db, public[0], hidden)
    await relate(db, hidden, public[1])
    async with db.read_session() as s:
        repo = ArtifactRepository(s)
        args = {
            "upstream": True,
            "downstream": False,
            "depth": 5,
            "types": list(RelationType),
            "cap": 100,
            "edge_cap": 100,
        }
        anonymous = await repo.lineage(public[0], private=False, **args)  # type: ignore[arg-type]
        token = await repo.lineage(public[0], private=True, **args)  # type: ignore[arg-type]
    assert [n.id for n, _ in anonymous.nodes] == [public[0]]
    assert [n.id for n, _ in token.nodes] == [public[0], hidden, public[1]]
