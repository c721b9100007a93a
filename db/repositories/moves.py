"""The SQL of job state changes: every move set is written by one statement.

One data-modifying statement per set of moves, whatever its size: it updates the
jobs, appends their history rows, counts completed jobs on their recipes and
appends the counter deltas of the batch nodes (``batch_node_delta``, never the
shared ``batch_node`` row). Which moves are allowed is the domain's business
(domain/jobs/moves.py); this module only writes what it is given, under the row
locks its callers took (``lock``) or takes them itself (``move_selected``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from db.enums import JobStatus
from db.jsontext import json_text

FINAL_SQL = "('COMPLETED', 'FAILED', 'CANCELED')"
_COUNT_COLUMNS = ("pending", "blocked", "queued", "running", "completed", "failed", "canceled")


class JobState(NamedTuple):
    """What a move needs to know about a job, read under its row lock."""

    id: int
    status: JobStatus
    attempt: int
    max_attempts: int
    worker: str | None
    batch_id: int
    node: str
    recipe_id: int
    task_type_revision_id: int


class Moved(NamedTuple):
    id: int
    batch_id: int
    node: str
    recipe_id: int
    task_type_revision_id: int
    from_status: JobStatus
    to_status: JobStatus
    attempt: int
    worker: str | None
    capped: bool  # its batch caps how many jobs run at once (maxParallelJobs)


@dataclass(frozen=True, slots=True)
class RowChange:
    """One job's move, fully decided: the values it ends with."""

    id: int
    from_status: JobStatus
    to_status: JobStatus
    attempt: int
    worker: str | None  # job.worker afterwards
    event_worker: str | None
    reason: str
    new_attempt: bool = False
    by_dependency: bool = False
    result: Any = None  # a JSON value, written when set_result
    set_result: bool = False
    error: tuple[str, str, str] | None = None  # (code, message, category), when set_error
    set_error: bool = False
    run_seconds: float | None = None  # COMPLETED: the implementation's own time, if known


@dataclass(frozen=True, slots=True)
class Selection:
    """Jobs chosen by a condition, locked by the statement that moves them.

    ``where`` is SQL over ``j`` (the job) written by this package's callers, never
    from input; values go in ``params``.
    """

    where: str
    params: dict[str, Any]
    order: str = "j.id"
    limit: int | None = None
    skip_locked: bool = False
    join: str = ""


@dataclass(frozen=True, slots=True)
class BulkChange:
    """The same move for every selected job."""

    to_status: JobStatus
    reason: str
    worker: str | None = None  # set as job.worker (RUNNING), else kept
    new_attempt: bool = False
    by_dependency: bool = False
    error: tuple[str, str, str] | None = None


_LOCK = text(
    """SELECT id, status, attempt, max_attempts, worker, batch_id, node, recipe_id,
              task_type_revision_id
       FROM job WHERE id = ANY(CAST(:ids AS bigint[])) ORDER BY id FOR NO KEY UPDATE"""
)
_LOCK_SKIP = text(str(_LOCK) + " SKIP LOCKED")

# The write, after a CTE ``m`` with one row per move. Everything the later parts
# need comes out of ``upd``'s RETURNING: joining CTEs to one another would make the
# planner (which cannot estimate their sizes) loop over them quadratically.
_WRITE = (
    """,
upd AS (
  UPDATE job j SET
    status = m.to_status,
    attempt = m.attempt,
    worker = m.worker,
    canceled_by_dependency = m.by_dependency,
    result = CASE WHEN m.set_result THEN m.result ELSE j.result END,
    error_code = CASE WHEN m.set_error THEN m.error_code ELSE j.error_code END,
    error_message = CASE WHEN m.set_error THEN m.error_message ELSE j.error_message END,
    error_category = CASE WHEN m.set_error THEN m.error_category ELSE j.error_category END,
    queued_at = CASE WHEN m.to_status = 'QUEUED' THEN now() ELSE j.queued_at END,
    started_at = CASE WHEN m.to_status = 'RUNNING' THEN now()
                      WHEN m.new_attempt THEN NULL ELSE j.started_at END,
    completed_at = CASE WHEN m.to_status IN """
    + FINAL_SQL
    + """ THEN now()
                        WHEN m.new_attempt THEN NULL ELSE j.completed_at END,
    -- The run time reported with the completion, never more than completed - started
    -- (least() ignores a NULL: without a report, completed - started).
    run_seconds = CASE WHEN m.to_status = 'COMPLETED' THEN
                         CASE WHEN j.started_at IS NULL THEN m.run_seconds
                              ELSE least(m.run_seconds,
                                         greatest(extract(epoch FROM now() - j.started_at), 0))
                         END
                       WHEN m.new_attempt THEN NULL ELSE j.run_seconds END,
    last_modified_at = now()
  FROM m WHERE j.id = m.id
  RETURNING j.id, j.batch_id, j.node, j.recipe_id, j.task_type_revision_id,
            m.from_status, m.to_status, m.attempt, m.worker, m.event_worker, m.reason,
            CASE WHEN m.to_status = 'COMPLETED' THEN j.run_seconds END AS run_s,
            CASE WHEN m.to_status = 'COMPLETED' AND j.started_at IS NOT NULL
                 THEN greatest(extract(epoch FROM j.completed_at - j.started_at), 0)
            END AS job_s
),
ev AS (
  INSERT INTO job_event (job_id, batch_id, from_status, to_status, attempt, worker, reason)
  SELECT id, batch_id, from_status, to_status, attempt, event_worker, reason
  FROM upd ORDER BY id
),
rc AS (
  UPDATE recipe r SET jobs_completed = r.jobs_completed + c.n
  FROM (SELECT recipe_id, count(*) AS n FROM upd
        WHERE to_status = 'COMPLETED' GROUP BY recipe_id) c
  WHERE r.id = c.recipe_id
),
dl AS (
  INSERT INTO batch_node_delta (batch_id, node, """
    + ", ".join(_COUNT_COLUMNS)
    + """,
      run_seconds_min, run_seconds_max, run_seconds_sum, run_seconds_count,
      job_seconds_min, job_seconds_max, job_seconds_sum, job_seconds_count)
  SELECT batch_id, node, """
    + ",\n         ".join(
        f"count(*) FILTER (WHERE to_status = '{c.upper()}')"
        f" - count(*) FILTER (WHERE from_status = '{c.upper()}')"
        for c in _COUNT_COLUMNS
    )
    + """,
         min(run_s), max(run_s), coalesce(sum(run_s), 0), count(run_s),
         min(job_s), max(job_s), coalesce(sum(job_s), 0), count(job_s)
  FROM upd GROUP BY batch_id, node
)
"""
)
# What a move set reads back: each moved job, or only how many moved.
_ROWS = """SELECT upd.id, upd.batch_id, upd.node, upd.recipe_id, upd.task_type_revision_id,
       upd.from_status, upd.to_status, upd.attempt, upd.worker,
       b.max_parallel_jobs IS NOT NULL
FROM upd JOIN batch b ON b.id = upd.batch_id ORDER BY upd.id"""
_COUNT = "SELECT count(*) FROM upd"

_EXPLICIT = text(
    """WITH m AS (
  SELECT u.id, CAST(u.from_status AS job_status) AS from_status,
         CAST(u.to_status AS job_status) AS to_status, u.attempt, u.worker, u.event_worker,
         u.reason, u.new_attempt, u.by_dependency, u.set_result,
         CAST(u.result AS jsonb) AS result, u.set_error, u.error_code, u.error_message,
         u.error_category, u.run_seconds
  FROM unnest(CAST(:ids AS bigint[]), CAST(:from_status AS text[]), CAST(:to_status AS text[]),
              CAST(:attempt AS int[]), CAST(:worker AS text[]), CAST(:event_worker AS text[]),
              CAST(:reason AS text[]), CAST(:new_attempt AS bool[]),
              CAST(:by_dependency AS bool[]), CAST(:set_result AS bool[]),
              CAST(:result AS text[]), CAST(:set_error AS bool[]), CAST(:error_code AS text[]),
              CAST(:error_message AS text[]), CAST(:error_category AS text[]),
              CAST(:run_seconds AS float8[]))
    AS u(id, from_status, to_status, attempt, worker, event_worker, reason, new_attempt,
         by_dependency, set_result, result, set_error, error_code, error_message,
         error_category, run_seconds)
)"""
    + _WRITE
    + _ROWS
)


def _selected_sql(selection: Selection, change: BulkChange, *, count: bool = False) -> str:
    worker = (
        "NULL"
        if change.new_attempt
        else ("CAST(:b_worker AS text)" if change.worker is not None else "j.worker")
    )
    limit = f" LIMIT {int(selection.limit)}" if selection.limit is not None else ""
    skip = " SKIP LOCKED" if selection.skip_locked else ""
    return (
        f"""WITH m AS (
  SELECT j.id, j.status AS from_status, CAST(:b_to AS job_status) AS to_status,
         j.attempt + {1 if change.new_attempt else 0} AS attempt,
         {worker} AS worker,
         coalesce(CAST(:b_worker AS text), j.worker) AS event_worker,
         CAST(:b_reason AS text) AS reason, {bool(change.new_attempt)} AS new_attempt,
         {bool(change.by_dependency)} AS by_dependency,
         {bool(change.new_attempt)} AS set_result, CAST(NULL AS jsonb) AS result,
         {bool(change.new_attempt or change.error)} AS set_error,
         CAST(:b_code AS text) AS error_code, CAST(:b_message AS text) AS error_message,
         CAST(:b_category AS text) AS error_category, CAST(NULL AS float8) AS run_seconds
  FROM job j {selection.join}
  WHERE ({selection.where}) AND j.status = ANY(CAST(:b_from AS job_status[]))
  ORDER BY {selection.order}{limit}
  FOR NO KEY UPDATE OF j{skip}
)"""
        + _WRITE
        + (_COUNT if count else _ROWS)
    )


class MoveRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def lock(self, ids: Sequence[int], *, skip_locked: bool = False) -> list[JobState]:
        """Lock jobs in id order (a fixed order: two move sets never deadlock)."""
        if not ids:
            return []
        rows = await self._session.execute(
            _LOCK_SKIP if skip_locked else _LOCK, {"ids": sorted(set(ids))}
        )
        return [JobState(row[0], JobStatus(row[1]), *row[2:]) for row in rows]

    async def write(self, changes: Sequence[RowChange]) -> list[Moved]:
        """Apply decided moves to jobs this transaction has locked: one statement."""
        if not changes:
            return []
        ordered = sorted(changes, key=lambda c: c.id)
        params: dict[str, list[Any]] = {
            "ids": [c.id for c in ordered],
            "from_status": [c.from_status.value for c in ordered],
            "to_status": [c.to_status.value for c in ordered],
            "attempt": [c.attempt for c in ordered],
            "worker": [c.worker for c in ordered],
            "event_worker": [c.event_worker for c in ordered],
            "reason": [c.reason for c in ordered],
            "new_attempt": [c.new_attempt for c in ordered],
            "by_dependency": [c.by_dependency for c in ordered],
            "set_result": [c.set_result for c in ordered],
            "result": [
                json_text(c.result) if c.set_result and c.result is not None else None
                for c in ordered
            ],
            "set_error": [c.set_error for c in ordered],
            "error_code": [c.error[0] if c.error else None for c in ordered],
            "error_message": [c.error[1] if c.error else None for c in ordered],
            "error_category": [c.error[2] if c.error else None for c in ordered],
            "run_seconds": [c.run_seconds for c in ordered],
        }
        rows = await self._session.execute(_EXPLICIT, params)
        return [_moved(row) for row in rows]

    async def move_selected(
        self, selection: Selection, change: BulkChange, from_statuses: Sequence[JobStatus]
    ) -> list[Moved]:
        """Lock the selected jobs and move them all the same way: one statement. Only
        jobs in ``from_statuses`` (those the transition table allows) are selected."""
        rows = await self._session.execute(
            text(_selected_sql(selection, change)),
            _bulk_params(selection, change, from_statuses),
        )
        return [_moved(row) for row in rows]

    async def move_selected_count(
        self, selection: Selection, change: BulkChange, from_statuses: Sequence[JobStatus]
    ) -> int:
        """``move_selected`` for a caller that needs only how many moved: nothing is
        read back (a 100,000-job cancel saves a join, a sort and the rows' transfer)."""
        found = await self._session.scalar(
            text(_selected_sql(selection, change, count=True)),
            _bulk_params(selection, change, from_statuses),
        )
        return int(found or 0)


def _bulk_params(
    selection: Selection, change: BulkChange, from_statuses: Sequence[JobStatus]
) -> dict[str, Any]:
    code, message, category = change.error or (None, None, None)
    return {
        **selection.params,
        "b_from": [s.value for s in from_statuses],
        "b_to": change.to_status.value,
        "b_worker": change.worker,
        "b_reason": change.reason,
        "b_code": code,
        "b_message": message,
        "b_category": category,
    }


def _moved(row: Any) -> Moved:
    i, batch, node, recipe, revision, before, after, attempt, worker, capped = row
    return Moved(
        i,
        batch,
        node,
        recipe,
        revision,
        JobStatus(before),
        JobStatus(after),
        attempt,
        worker,
        bool(capped),
    )


# --- creation: a job's first status, with the same history and counters ----------------


@dataclass(frozen=True, slots=True)
class NodePlan:
    name: str
    revision_id: int
    max_attempts: int
    depends_on: tuple[str, ...]
    templated: bool  # parameters rendered by the caller (else: the input item itself)
    # Ready jobs of this node go straight to QUEUED (their history shows the dispatch):
    # what ``dispatch`` would do at once, without a second write of every row.
    queue_now: bool = False


class Created(NamedTuple):
    jobs: int
    queued: list[tuple[int, int]]  # (job id, task type revision id) of the jobs QUEUED


_RECIPES = text(
    """INSERT INTO recipe (batch_id, position, item, previous_recipe_id, job_count,
                    jobs_completed)
SELECT bi.batch_id, bi.position, bi.value, bi.previous_recipe_id,
       coalesce(cardinality(bi.nodes), :all_nodes), 0
FROM batch_item bi
WHERE bi.batch_id = :batch AND bi.position >= :start AND bi.position < :stop
ORDER BY bi.position
ON CONFLICT (batch_id, position) DO NOTHING"""
)

_JOBS = text(
    """WITH n AS (
  SELECT * FROM unnest(CAST(:names AS text[]), CAST(:revisions AS bigint[]),
                       CAST(:attempts AS int[]), CAST(:deps AS text[]), CAST(:ord AS int[]),
                       CAST(:templated AS bool[]), CAST(:queue_now AS bool[]))
    AS n(name, revision_id, max_attempts, deps, ord, templated, queue_now)
),
-- Rendered parameters and input artifacts by "position:node": lookups, not joins (the
-- planner, which knows nothing of this chunk's rows, would loop over a joined list).
maps AS (
  SELECT CAST(:p_map AS jsonb) AS params, CAST(:i_map AS jsonb) AS inputs
),
src AS (
  SELECT r.id AS recipe_id, r.position, n.name, n.revision_id, n.max_attempts, n.ord,
         n.queue_now,
         CASE WHEN n.templated THEN maps.params -> (r.position || ':' || n.name)
              ELSE r.item END AS parameters,
         EXISTS (SELECT 1 FROM unnest(string_to_array(n.deps, ',')) AS dep
                 WHERE dep <> '' AND (bi.nodes IS NULL OR dep = ANY(bi.nodes))) AS waits
  FROM recipe r
  -- One primary-key probe per recipe (LIMIT keeps the planner from flattening it into a
  -- join that scans the whole batch's items for each recipe when its estimates are off).
  CROSS JOIN LATERAL (
    SELECT i.nodes FROM batch_item i
    WHERE i.batch_id = r.batch_id AND i.position = r.position LIMIT 1
  ) bi
  CROSS JOIN n
  CROSS JOIN maps
  WHERE r.batch_id = :batch AND r.position >= :start AND r.position < :stop
    AND (bi.nodes IS NULL OR n.name = ANY(bi.nodes))
),
ins AS (
  INSERT INTO job (workspace_id, batch_id, recipe_id, node, task_type_revision_id, parameters,
                   status, priority, attempt, max_attempts, canceled_by_dependency, queued_at)
  SELECT :workspace, :batch, recipe_id, name, revision_id, parameters,
         CAST(CASE WHEN waits THEN 'BLOCKED' WHEN queue_now THEN 'QUEUED' ELSE 'PENDING' END
              AS job_status),
         :priority, 1, max_attempts, false,
         CASE WHEN queue_now AND NOT waits THEN now() END
  FROM src ORDER BY position, ord
  ON CONFLICT (recipe_id, node) DO NOTHING
  RETURNING id, batch_id, recipe_id, node, status, attempt, task_type_revision_id
),
inp AS (
  INSERT INTO job_input (job_id, artifact_id)
  SELECT ins.id, a.id
  FROM maps
  CROSS JOIN ins
  JOIN recipe r ON r.id = ins.recipe_id
  CROSS JOIN LATERAL jsonb_array_elements_text(maps.inputs -> (r.position || ':' || ins.node))
    AS x(artifact_id)
  JOIN artifact a ON a.id = CAST(x.artifact_id AS bigint)
  WHERE maps.inputs <> '{}'::jsonb
  ON CONFLICT DO NOTHING
),
ev AS (
  INSERT INTO job_event (job_id, batch_id, from_status, to_status, attempt, reason)
  SELECT id, batch_id, s.from_status, s.to_status, attempt, s.reason
  FROM ins
  CROSS JOIN LATERAL (VALUES
      (1, NULL::job_status,
       CASE WHEN status = 'QUEUED' THEN 'PENDING'::job_status ELSE status END, 'created'),
      (2, 'PENDING'::job_status, 'QUEUED'::job_status, CAST(:dispatched AS text))
  ) AS s(k, from_status, to_status, reason)
  WHERE s.k = 1 OR ins.status = 'QUEUED'
  ORDER BY id, s.k
),
dl AS (
  INSERT INTO batch_node_delta (batch_id, node, pending, blocked, queued)
  SELECT batch_id, node, count(*) FILTER (WHERE status = 'PENDING'),
         count(*) FILTER (WHERE status = 'BLOCKED'), count(*) FILTER (WHERE status = 'QUEUED')
  FROM ins GROUP BY batch_id, node
)
SELECT id, status, task_type_revision_id FROM ins ORDER BY id"""
)

_DEPENDENCIES = text(
    """INSERT INTO job_dependency (job_id, depends_on_id)
SELECT j.id, d.id
FROM recipe r
JOIN job j ON j.recipe_id = r.id
JOIN unnest(CAST(:edge_node AS text[]), CAST(:edge_dep AS text[])) AS e(node, dep)
  ON e.node = j.node
JOIN job d ON d.recipe_id = r.id AND d.node = e.dep
WHERE r.batch_id = :batch AND r.position >= :start AND r.position < :stop
ON CONFLICT DO NOTHING"""
)


def _by_key(inputs: Sequence[tuple[int, str, int]]) -> dict[str, list[int]]:
    """Input artifacts by "position:node", as the creation statement looks them up."""
    found: dict[str, list[int]] = {}
    for position, node, artifact in inputs:
        found.setdefault(f"{position}:{node}", []).append(artifact)
    return found


class CreationRepository:
    """Recipes and jobs for a range of a batch's input items, in a few statements."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def items(self, batch_id: int, start: int, stop: int) -> list[tuple[int, Any]]:
        rows = await self._session.execute(
            text(
                "SELECT position, value FROM batch_item WHERE batch_id = :batch"
                " AND position >= :start AND position < :stop ORDER BY position"
            ),
            {"batch": batch_id, "start": start, "stop": stop},
        )
        return [(int(p), v) for p, v in rows]

    async def create(
        self,
        *,
        batch_id: int,
        workspace_id: int,
        priority: int,
        start: int,
        stop: int,
        nodes: Sequence[NodePlan],
        rendered: Sequence[tuple[int, str, Any]] = (),
        inputs: Sequence[tuple[int, str, int]] = (),
        dispatched: str = "",
    ) -> Created:
        """Recipes, jobs (PENDING, or BLOCKED behind a dependency in their run set) with
        their first history row and counter deltas, and dependencies, for the items in
        ``[start, stop)``; what exists already is left alone. Returns the jobs created.

        ``rendered``: (position, node, parameters) for templated nodes; ``inputs``:
        (position, node, artifact id) for the jobs' input artifacts, recorded in the
        same statement (an artifact that expired meanwhile is left out);
        ``dispatched``: the history's reason for jobs queued at once.
        """
        where = {"batch": batch_id, "start": start, "stop": stop}
        await self._session.execute(_RECIPES, {**where, "all_nodes": len(nodes)})
        rows = (
            await self._session.execute(
                _JOBS,
                {
                    **where,
                    "workspace": workspace_id,
                    "priority": priority,
                    "names": [n.name for n in nodes],
                    "revisions": [n.revision_id for n in nodes],
                    "attempts": [n.max_attempts for n in nodes],
                    "deps": [",".join(n.depends_on) for n in nodes],
                    "ord": list(range(len(nodes))),
                    "templated": [n.templated for n in nodes],
                    "queue_now": [n.queue_now for n in nodes],
                    "p_map": json_text({f"{p}:{n}": value for p, n, value in rendered}),
                    "i_map": json_text(_by_key(inputs)),
                    "dispatched": dispatched,
                },
            )
        ).all()
        created = Created(
            len(rows), [(int(i), int(r)) for i, status, r in rows if status == "QUEUED"]
        )
        edges = [(n.name, dep) for n in nodes for dep in n.depends_on]
        if edges and created.jobs:
            await self._session.execute(
                _DEPENDENCIES,
                {**where, "edge_node": [e[0] for e in edges], "edge_dep": [e[1] for e in edges]},
            )
        return created
