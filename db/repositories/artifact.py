"""Artifacts, their files and relations: reads and writes in a constant number of
statements whatever the number of files (creation) or artifacts (lineage)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Select, delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from db.enums import RelationType
from db.models import Artifact, ArtifactCategory, FileStore, Workspace
from db.repositories.pagination import Page, SortKey, count, keyset_page

# A file is complete when it is empty or some store holds its bytes in full.
FILE_COMPLETE = "(f.size = 0 OR EXISTS (SELECT 1 FROM file_in_store s WHERE s.file_id = f.id))"
# An artifact is complete when every one of its files is.
ARTIFACT_COMPLETE = (
    "NOT EXISTS (SELECT 1 FROM artifact_file af JOIN file f ON f.id = af.file_id"
    " WHERE af.artifact_id = a.id AND NOT " + FILE_COMPLETE + ")"
)


class FileEntry(NamedTuple):
    artifact_id: int
    path: str
    file_id: int
    sha256: str
    size: int
    content_type: str
    complete: bool


class RelationRow(NamedTuple):
    source_id: int
    target_id: int
    type: RelationType


@dataclass(frozen=True, slots=True)
class ArtifactFilter:
    public_only: bool = False
    workspace: str | None = None
    category: str | None = None
    created_by_job_id: int | None = None


@dataclass(frozen=True, slots=True)
class Lineage:
    nodes: list[tuple[Artifact, int]]  # (artifact, depth from the start)
    edges: list[RelationRow]
    truncated: bool


_UPSERT_FILES = text(
    """INSERT INTO file (sha256, size)
SELECT u.sha256, u.size
FROM unnest(CAST(:sha AS text[]), CAST(:size AS bigint[])) AS u(sha256, size)
ORDER BY u.sha256, u.size
ON CONFLICT (sha256, size) DO UPDATE SET size = EXCLUDED.size
RETURNING id, sha256, size"""
)

_ADD_FILES = text(
    """INSERT INTO artifact_file (artifact_id, path, file_id, content_type)
SELECT :artifact, u.path, u.file_id, u.content_type
FROM unnest(CAST(:paths AS text[]), CAST(:files AS bigint[]), CAST(:types AS text[]))
  AS u(path, file_id, content_type)"""
)

_MISSING = text(
    """SELECT af.path FROM artifact_file af JOIN file f ON f.id = af.file_id
WHERE af.artifact_id = :artifact AND NOT """
    + FILE_COMPLETE
    + " ORDER BY af.path"
)

_ENTRY_COLUMNS = (
    "af.artifact_id, af.path, f.id, f.sha256, f.size, af.content_type, " + FILE_COMPLETE
)


def _artifact_json(alias: str) -> str:
    return (
        f"json_build_object('id', {alias}.id, 'workspace_id', {alias}.workspace_id,"
        f" 'category', {alias}.category, 'data', {alias}.data,"
        f" 'created_by_job_id', {alias}.created_by_job_id,"
        f" 'created_by_token_id', {alias}.created_by_token_id,"
        f" 'created_by', {alias}.created_by, 'expire_at', {alias}.expire_at,"
        f" 'created_at', {alias}.created_at)"
    )


def _artifact_from_json(raw: dict[str, Any]) -> Artifact:
    def when(value: str | None) -> datetime | None:
        return datetime.fromisoformat(value) if value else None

    return Artifact(
        id=raw["id"],
        workspace_id=raw["workspace_id"],
        category=raw["category"],
        data=raw["data"],
        created_by_job_id=raw["created_by_job_id"],
        created_by_token_id=raw["created_by_token_id"],
        created_by=raw["created_by"],
        expire_at=when(raw["expire_at"]),
        created_at=when(raw["created_at"]),
    )


def lineage_sql(*, upstream: bool, downstream: bool, private: bool = True) -> str:
    """One recursive statement: the artifacts reachable from ``:start`` within ``:depth``
    hops along relations of ``:types`` (outgoing = upstream: what it was built using or
    extends; incoming = downstream), through readable workspaces only, with the
    relations among them. UNION keeps one row per (artifact, depth), so cycles end and
    the work is bounded by depth × artifacts; nodes are capped at ``:cap``, nearest first."""
    branches = []
    if upstream:
        branches.append(
            "SELECT r.target_id AS id FROM artifact_relation r WHERE r.source_id = w.id"
            " AND r.type = ANY(CAST(:types AS artifact_relation_type[]))"
        )
    if downstream:
        branches.append(
            "SELECT r.source_id AS id FROM artifact_relation r WHERE r.target_id = w.id"
            " AND r.type = ANY(CAST(:types AS artifact_relation_type[]))"
        )
    step = " UNION ALL ".join(branches)
    # Callers who read every workspace need no visibility join at each step.
    visible = (
        ""
        if private
        else " JOIN artifact a ON a.id = x.id JOIN workspace ws ON ws.id = a.workspace_id"
        " AND ws.public"
    )
    return f"""WITH RECURSIVE walk(id, depth) AS (
  SELECT CAST(:start AS bigint), 0
  UNION
  SELECT x.id, w.depth + 1
  FROM walk w CROSS JOIN LATERAL ({step}) x{visible}
  WHERE w.depth < :depth
),
reached AS (SELECT id, min(depth) AS depth FROM walk GROUP BY id),
kept AS (SELECT id, depth FROM reached ORDER BY depth, id LIMIT :cap),
edges AS (
  SELECT r.source_id, r.target_id, r.type FROM artifact_relation r
  WHERE r.source_id IN (SELECT id FROM kept) AND r.target_id IN (SELECT id FROM kept)
    AND r.type = ANY(CAST(:types AS artifact_relation_type[]))
  ORDER BY r.source_id, r.target_id, r.type
  LIMIT :edge_cap + 1
)
SELECT
  (SELECT coalesce(json_agg(json_build_object('a', {_artifact_json("a")}, 'depth', k.depth)
                            ORDER BY k.depth, k.id), '[]')
   FROM kept k JOIN artifact a ON a.id = k.id) AS nodes,
  (SELECT count(*) FROM reached) AS reached,
  (SELECT coalesce(json_agg(json_build_array(e.source_id, e.target_id, e.type)), '[]')
   FROM edges e) AS edges"""


class ArtifactRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def flush(self) -> None:
        await self._session.flush()

    # --- stores ---------------------------------------------------------------------

    async def store_of_workspace(self, workspace_id: int) -> FileStore:
        """The workspace's store, or the default one."""
        found = await self._session.scalar(
            select(FileStore).where(
                FileStore.id
                == func.coalesce(
                    select(Workspace.file_store_id)
                    .where(Workspace.id == workspace_id)
                    .scalar_subquery(),
                    select(FileStore.id).where(FileStore.is_default.is_(True)).scalar_subquery(),
                )
            )
        )
        if found is None:  # pragma: no cover - migrations seed the default store
            raise LookupError("no default file store")
        return found

    async def stores_holding(self, file_id: int) -> list[FileStore]:
        rows = await self._session.scalars(
            select(FileStore)
            .where(
                FileStore.id.in_(
                    text("SELECT store_id FROM file_in_store WHERE file_id = :file").bindparams(
                        file=file_id
                    )
                )
            )
            .order_by(FileStore.id)
        )
        return list(rows)

    async def store_by_name(self, name: str) -> FileStore | None:
        return await self._session.scalar(select(FileStore).where(FileStore.name == name))

    async def stores(self) -> list[FileStore]:
        return list(await self._session.scalars(select(FileStore).order_by(FileStore.name)))

    def add(self, row: Any) -> None:
        self._session.add(row)

    # --- categories -----------------------------------------------------------------

    async def category(self, workspace_id: int, name: str) -> ArtifactCategory | None:
        return await self._session.scalar(
            select(ArtifactCategory).where(
                ArtifactCategory.workspace_id == workspace_id, ArtifactCategory.name == name
            )
        )

    async def categories(self, workspace_id: int) -> list[ArtifactCategory]:
        return list(
            await self._session.scalars(
                select(ArtifactCategory)
                .where(ArtifactCategory.workspace_id == workspace_id)
                .order_by(ArtifactCategory.name)
            )
        )

    # --- creation -------------------------------------------------------------------

    async def upsert_files(self, files: Sequence[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """The file rows of these (sha256, size), made where missing: one statement.

        Rows are taken in key order and conflicts wait for the other writer, so two
        creations sharing files neither deadlock nor miss each other's rows."""
        unique = sorted(set(files))
        if not unique:
            return {}
        rows = await self._session.execute(
            _UPSERT_FILES, {"sha": [f[0] for f in unique], "size": [f[1] for f in unique]}
        )
        return {(str(sha), int(size)): int(i) for i, sha, size in rows}

    async def add_files(self, artifact_id: int, entries: Sequence[tuple[str, int, str]]) -> None:
        """(path, file id, content type) for each file of a new artifact: one statement."""
        if entries:
            await self._session.execute(
                _ADD_FILES,
                {
                    "artifact": artifact_id,
                    "paths": [e[0] for e in entries],
                    "files": [e[1] for e in entries],
                    "types": [e[2] for e in entries],
                },
            )

    async def missing_paths(self, artifact_id: int) -> list[str]:
        """Sorted paths whose bytes no store holds yet (empty files are complete)."""
        rows = await self._session.scalars(_MISSING, {"artifact": artifact_id})
        return [str(p) for p in rows]

    async def mark_stored(self, file_id: int, store_id: int) -> None:
        await self._session.execute(
            text(
                "INSERT INTO file_in_store (file_id, store_id) VALUES (:file, :store)"
                " ON CONFLICT DO NOTHING"
            ),
            {"file": file_id, "store": store_id},
        )

    async def stored_in(self, file_ids: Sequence[int], store_id: int) -> set[int]:
        rows = await self._session.scalars(
            text(
                "SELECT file_id FROM file_in_store WHERE store_id = :store"
                " AND file_id = ANY(CAST(:ids AS bigint[]))"
            ),
            {"store": store_id, "ids": list(file_ids)},
        )
        return {int(i) for i in rows}

    # --- reads ----------------------------------------------------------------------

    async def get(self, artifact_id: int, *, for_update: bool = False) -> Artifact | None:
        stmt = select(Artifact).where(Artifact.id == artifact_id)
        if for_update:
            stmt = stmt.with_for_update(key_share=True)
        return await self._session.scalar(stmt)

    async def get_many(self, ids: Sequence[int]) -> list[Artifact | None]:
        rows = await self._session.scalars(select(Artifact).where(Artifact.id.in_(ids)))
        by_id = {row.id: row for row in rows}
        return [by_id.get(i) for i in ids]

    async def entry(self, artifact_id: int, path: str) -> FileEntry | None:
        row = (
            await self._session.execute(
                text(
                    f"SELECT {_ENTRY_COLUMNS} FROM artifact_file af JOIN file f ON f.id ="
                    " af.file_id WHERE af.artifact_id = :artifact AND af.path = :path"
                ),
                {"artifact": artifact_id, "path": path},
            )
        ).first()
        return FileEntry(*row) if row is not None else None

    async def entries(self, artifact_ids: Sequence[int]) -> list[list[FileEntry]]:
        """Every file of each artifact, by path (for DataLoaders)."""
        rows = await self._session.execute(
            text(
                f"SELECT {_ENTRY_COLUMNS} FROM artifact_file af JOIN file f ON f.id = af.file_id"
                " WHERE af.artifact_id = ANY(CAST(:ids AS bigint[]))"
                " ORDER BY af.artifact_id, af.path"
            ),
            {"ids": list(artifact_ids)},
        )
        grouped: dict[int, list[FileEntry]] = {i: [] for i in artifact_ids}
        for row in rows:
            grouped[int(row[0])].append(FileEntry(*row))
        return [grouped[i] for i in artifact_ids]

    async def first_entries(
        self, artifact_ids: Sequence[int], *, first: int, after: str | None = None
    ) -> list[Page[FileEntry]]:
        """A page of files per artifact, by path, in one statement."""
        rows = await self._session.execute(
            text(
                f"SELECT * FROM (SELECT {_ENTRY_COLUMNS}, row_number() OVER"
                " (PARTITION BY af.artifact_id ORDER BY af.path) AS n"
                " FROM artifact_file af JOIN file f ON f.id = af.file_id"
                " WHERE af.artifact_id = ANY(CAST(:ids AS bigint[]))"
                " AND (CAST(:after AS text) IS NULL OR af.path > CAST(:after AS text))) x"
                " WHERE n <= :first + 1 ORDER BY 1, 2"
            ),
            {"ids": list(artifact_ids), "after": after, "first": first},
        )
        grouped: dict[int, list[FileEntry]] = {i: [] for i in artifact_ids}
        for row in rows:
            grouped[int(row[0])].append(FileEntry(*row[:7]))
        pages = []
        for i in artifact_ids:
            found = grouped[i]
            items = found[:first]
            pages.append(
                Page(items=items, keys=[(e.path,) for e in items], has_next=len(found) > first)
            )
        return pages

    async def file_counts(self, artifact_ids: Sequence[int]) -> list[tuple[int, int, int]]:
        """(files, bytes, missing files) per artifact."""
        rows = await self._session.execute(
            text(
                "SELECT af.artifact_id, count(*), coalesce(sum(f.size), 0),"
                f" count(*) FILTER (WHERE NOT {FILE_COMPLETE})"
                " FROM artifact_file af JOIN file f ON f.id = af.file_id"
                " WHERE af.artifact_id = ANY(CAST(:ids AS bigint[])) GROUP BY af.artifact_id"
            ),
            {"ids": list(artifact_ids)},
        )
        found = {int(a): (int(n), int(b), int(m)) for a, n, b, m in rows}
        return [found.get(i, (0, 0, 0)) for i in artifact_ids]

    async def incomplete(self, artifact_ids: Sequence[int]) -> set[int]:
        rows = await self._session.scalars(
            text(
                "SELECT a.id FROM artifact a WHERE a.id = ANY(CAST(:ids AS bigint[]))"
                f" AND NOT {ARTIFACT_COMPLETE}"
            ),
            {"ids": list(artifact_ids)},
        )
        return {int(i) for i in rows}

    def _listing(self, flt: ArtifactFilter) -> Select[Artifact]:
        stmt = select(Artifact)
        if flt.public_only or flt.workspace is not None:
            stmt = stmt.join(Workspace, Workspace.id == Artifact.workspace_id)
        if flt.public_only:
            stmt = stmt.where(Workspace.public.is_(True))
        if flt.workspace is not None:
            stmt = stmt.where(Workspace.name == flt.workspace)
        if flt.category is not None:
            stmt = stmt.where(Artifact.category == flt.category)
        if flt.created_by_job_id is not None:
            stmt = stmt.where(Artifact.created_by_job_id == flt.created_by_job_id)
        return stmt

    async def page(
        self, flt: ArtifactFilter, *, after: SortKey | None, first: int
    ) -> Page[Artifact]:
        return await keyset_page(
            self._session, self._listing(flt), key=[Artifact.id], after=after, first=first
        )

    async def count(self, flt: ArtifactFilter) -> int:
        return await count(self._session, self._listing(flt))

    # --- jobs -----------------------------------------------------------------------

    async def inputs_of(self, job_ids: Sequence[int]) -> list[list[int]]:
        rows = await self._session.execute(
            text(
                "SELECT job_id, artifact_id FROM job_input"
                " WHERE job_id = ANY(CAST(:ids AS bigint[])) ORDER BY job_id, artifact_id"
            ),
            {"ids": list(job_ids)},
        )
        grouped: dict[int, list[int]] = {i: [] for i in job_ids}
        for job, artifact in rows:
            grouped[int(job)].append(int(artifact))
        return [grouped[i] for i in job_ids]

    async def outputs_of(self, job_ids: Sequence[int]) -> list[list[int]]:
        rows = await self._session.execute(
            select(Artifact.created_by_job_id, Artifact.id)
            .where(Artifact.created_by_job_id.in_(job_ids))
            .order_by(Artifact.created_by_job_id, Artifact.id)
        )
        grouped: dict[int, list[int]] = {i: [] for i in job_ids}
        for job, artifact in rows:
            if job is not None:
                grouped[int(job)].append(int(artifact))
        return [grouped[i] for i in job_ids]

    # --- relations ------------------------------------------------------------------

    async def add_relations(self, rows: Sequence[RelationRow]) -> int:
        """Idempotent: an existing (source, target, type) is left alone. How many were new."""
        if not rows:
            return 0
        result = await self._session.execute(
            text(
                "INSERT INTO artifact_relation (source_id, target_id, type)"
                " SELECT u.s, u.t, CAST(u.k AS artifact_relation_type)"
                " FROM unnest(CAST(:s AS bigint[]), CAST(:t AS bigint[]), CAST(:k AS text[]))"
                " AS u(s, t, k) ON CONFLICT DO NOTHING RETURNING 1"
            ),
            {
                "s": [r.source_id for r in rows],
                "t": [r.target_id for r in rows],
                "k": [r.type.value for r in rows],
            },
        )
        return len(result.all())

    async def remove_relation(self, row: RelationRow) -> bool:
        result = await self._session.execute(
            text(
                "DELETE FROM artifact_relation WHERE source_id = :s AND target_id = :t"
                " AND type = CAST(:k AS artifact_relation_type) RETURNING 1"
            ),
            {"s": row.source_id, "t": row.target_id, "k": row.type.value},
        )
        return result.first() is not None

    async def relations(
        self,
        artifact_ids: Sequence[int],
        *,
        outgoing: bool,
        types: Sequence[RelationType],
        first: int,
    ) -> list[list[RelationRow]]:
        """Per artifact, its first relations from it (``outgoing``) or to it."""
        mine, other = ("source_id", "target_id") if outgoing else ("target_id", "source_id")
        rows = await self._session.execute(
            text(
                f"SELECT source_id, target_id, type FROM (SELECT r.*, row_number() OVER"
                f" (PARTITION BY r.{mine} ORDER BY r.{other}, r.type) AS n"
                f" FROM artifact_relation r WHERE r.{mine} = ANY(CAST(:ids AS bigint[]))"
                " AND r.type = ANY(CAST(:types AS artifact_relation_type[]))) x"
                f" WHERE n <= :first ORDER BY {mine}, {other}, type"
            ),
            {"ids": list(artifact_ids), "types": [t.value for t in types], "first": first},
        )
        grouped: dict[int, list[RelationRow]] = {i: [] for i in artifact_ids}
        for source, target, kind in rows:
            row = RelationRow(int(source), int(target), RelationType(kind))
            grouped[row.source_id if outgoing else row.target_id].append(row)
        return [grouped[i] for i in artifact_ids]

    async def lineage(
        self,
        start: int,
        *,
        upstream: bool,
        downstream: bool,
        depth: int,
        types: Sequence[RelationType],
        cap: int,
        edge_cap: int,
        private: bool,
    ) -> Lineage:
        """The lineage graph around ``start``: one statement (see lineage_sql)."""
        row = (
            await self._session.execute(
                text(lineage_sql(upstream=upstream, downstream=downstream, private=private)),
                {
                    "start": start,
                    "depth": depth,
                    "types": [t.value for t in types],
                    "cap": cap,
                    "edge_cap": edge_cap,
                },
            )
        ).one()
        nodes_raw, reached, edges_raw = row
        nodes = [(_artifact_from_json(n["a"]), int(n["depth"])) for n in _json(nodes_raw)]
        edges = [RelationRow(int(s), int(t), RelationType(k)) for s, t, k in _json(edges_raw)]
        truncated = int(reached) > cap or len(edges) > edge_cap
        return Lineage(nodes=nodes, edges=edges[:edge_cap], truncated=truncated)

    # --- expiry ---------------------------------------------------------------------

    async def expire(self, now: datetime, *, limit: int) -> tuple[int, list[tuple[int, str]]]:
        """Delete expired artifacts that no live artifact still needs (one reachable from
        a live one through relations is kept), then the files no artifact references.
        Returns how many artifacts went, and (file id, sha256) of the files whose bytes
        may now be deleted from stores."""
        deleted = await self._session.scalar(
            text(
                """WITH RECURSIVE expired AS (
  SELECT id FROM artifact WHERE expire_at <= :now ORDER BY id LIMIT :limit
),
needed(id) AS (
  SELECT r.target_id FROM artifact_relation r JOIN artifact s ON s.id = r.source_id
  WHERE r.target_id IN (SELECT id FROM expired) AND (s.expire_at IS NULL OR s.expire_at > :now)
  UNION
  SELECT r.target_id FROM artifact_relation r JOIN needed n ON r.source_id = n.id
),
gone AS (
  DELETE FROM artifact a WHERE a.id IN (SELECT id FROM expired)
    AND a.id NOT IN (SELECT id FROM needed)
  RETURNING a.id
)
SELECT count(*) FROM gone"""
            ),
            {"now": now, "limit": limit},
        )
        orphans = await self._session.execute(
            text(
                """DELETE FROM file f WHERE NOT EXISTS
  (SELECT 1 FROM artifact_file af WHERE af.file_id = f.id)
RETURNING f.id, f.sha256"""
            )
        )
        return int(deleted or 0), [(int(i), str(s)) for i, s in orphans]

    async def delete_artifacts(self, ids: Sequence[int]) -> None:
        await self._session.execute(delete(Artifact).where(Artifact.id.in_(ids)))


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


class InputFileRow(NamedTuple):
    artifact_id: int
    category: str
    data: dict[str, Any]
    path: str | None  # None: an artifact without files
    sha256: str | None
    size: int | None
    content_type: str | None
    store_id: int | None  # a store holding the bytes (None for empty files)


async def input_files(session: AsyncSession, job_id: int) -> list[InputFileRow]:
    """Every file of every input artifact of a job, with a store that holds it: one statement."""
    rows = await session.execute(
        text(
            """SELECT a.id, a.category, a.data, af.path, f.sha256, f.size, af.content_type,
       (SELECT min(s.store_id) FROM file_in_store s WHERE s.file_id = f.id)
FROM job_input ji JOIN artifact a ON a.id = ji.artifact_id
LEFT JOIN artifact_file af ON af.artifact_id = a.id
LEFT JOIN file f ON f.id = af.file_id
WHERE ji.job_id = :job ORDER BY a.id, af.path"""
        ),
        {"job": job_id},
    )
    return [InputFileRow(*row) for row in rows]
