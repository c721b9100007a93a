"""metrics: the run time of a job, per-node percentiles, durations redefined (issue 12)

Run duration becomes the implementation's own time (``job.run_seconds``: measured by
the fleet, reported by pull workers, else completed - started) and job duration
becomes completed - started. Both equal the old run duration for the jobs already
completed (they have no measured run time), so the stored aggregates convert exactly:
job := old run, and run := old run. Percentiles are computed once here for every node
with COMPLETED jobs; from then on the ``counters.fold`` periodic task keeps them.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_AGGREGATES = ("min", "max", "sum", "count")
# greatest() ignores NULLs: without the CASE an untimed job would count as 0 s.
_JOB_SECONDS = (
    "CASE WHEN j.started_at IS NOT NULL"
    " THEN greatest(extract(epoch FROM j.completed_at - j.started_at), 0) END"
)


def upgrade() -> None:
    op.add_column("job", sa.Column("run_seconds", sa.Double(), nullable=True))
    op.create_index(
        "ix_job_completed_by_node",
        "job",
        ["batch_id", "node"],
        unique=False,
        postgresql_where=sa.text("status = 'COMPLETED'"),
    )
    for column in ("run_seconds_p50", "run_seconds_p95", "job_seconds_p50", "job_seconds_p95"):
        op.add_column("batch_node", sa.Column(column, sa.Double(), nullable=True))
    op.add_column(
        "batch_node",
        sa.Column("percentiles_completed", sa.Integer(), nullable=False, server_default="0"),
    )
    op.add_column(
        "batch_node", sa.Column("percentiles_at", sa.DateTime(timezone=True), nullable=True)
    )

    op.execute(
        f"UPDATE job j SET run_seconds = {_JOB_SECONDS}"
        " WHERE j.status = 'COMPLETED' AND j.started_at IS NOT NULL"
    )
    copy = ", ".join(f"job_seconds_{a} = run_seconds_{a}" for a in _AGGREGATES)
    op.execute(f"UPDATE batch_node SET {copy}")
    op.execute(f"UPDATE batch_node_delta SET {copy}")
    op.execute(
        f"""UPDATE batch_node b SET
              run_seconds_p50 = p.run_p[1], run_seconds_p95 = p.run_p[2],
              job_seconds_p50 = p.job_p[1], job_seconds_p95 = p.job_p[2],
              percentiles_completed = p.n, percentiles_at = now()
            FROM (SELECT j.batch_id, j.node,
                         percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP
                           (ORDER BY j.run_seconds) AS run_p,
                         percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP
                           (ORDER BY {_JOB_SECONDS}) AS job_p,
                         count(*) AS n
                  FROM job j WHERE j.status = 'COMPLETED'
                  GROUP BY j.batch_id, j.node) p
            WHERE b.batch_id = p.batch_id AND b.node = p.node"""
    )


def downgrade() -> None:
    # Back to run = completed - started and job = completed - created, recomputed from
    # the jobs; the unfolded deltas keep their counts and lose their durations (the
    # jobs they came from are counted here already: a delta commits with its job).
    op.execute(
        "UPDATE batch_node_delta SET "
        + ", ".join(f"{p}_seconds_{a} = NULL" for p in ("run", "job") for a in ("min", "max"))
        + ", "
        + ", ".join(f"{p}_seconds_{a} = 0" for p in ("run", "job") for a in ("sum", "count"))
    )
    run = _JOB_SECONDS
    job = (
        "CASE WHEN j.completed_at IS NOT NULL"
        " THEN greatest(extract(epoch FROM j.completed_at - j.created_at), 0) END"
    )
    op.execute(
        f"""UPDATE batch_node b SET
              run_seconds_min = s.run_min, run_seconds_max = s.run_max,
              run_seconds_sum = coalesce(s.run_sum, 0), run_seconds_count = s.run_n,
              job_seconds_min = s.job_min, job_seconds_max = s.job_max,
              job_seconds_sum = coalesce(s.job_sum, 0), job_seconds_count = s.job_n
            FROM (SELECT n.batch_id, n.node,
                         min({run}) AS run_min, max({run}) AS run_max, sum({run}) AS run_sum,
                         count({run}) AS run_n,
                         min({job}) AS job_min, max({job}) AS job_max, sum({job}) AS job_sum,
                         count({job}) AS job_n
                  FROM batch_node n
                  LEFT JOIN job j ON j.batch_id = n.batch_id AND j.node = n.node
                   AND j.status = 'COMPLETED'
                  GROUP BY n.batch_id, n.node) s
            WHERE b.batch_id = s.batch_id AND b.node = s.node"""
    )
    op.drop_column("batch_node", "percentiles_at")
    op.drop_column("batch_node", "percentiles_completed")
    for column in ("job_seconds_p95", "job_seconds_p50", "run_seconds_p95", "run_seconds_p50"):
        op.drop_column("batch_node", column)
    op.drop_index(
        "ix_job_completed_by_node",
        table_name="job",
        postgresql_where=sa.text("status = 'COMPLETED'"),
    )
    op.drop_column("job", "run_seconds")
