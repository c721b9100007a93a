"""job history without its redundant foreign key to batch

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30

``job_event.batch_id`` copies the event's job's ``batch_id`` (history is written only
by the one move path, from the job rows it updates in the same statement), and
``job_event.job_id`` keeps its foreign key: an event can never outlive its job, nor
its job's batch. The second check cost one index probe and a row lock per history
row: 0.37 s of a 100,000-job ``cancelBatch`` (3.3 s), and a share of every creation
chunk and group commit.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_constraint("fk_job_event_batch_id_batch", "job_event", type_="foreignkey")


def downgrade() -> None:
    op.create_foreign_key(
        "fk_job_event_batch_id_batch",
        "job_event",
        "batch",
        ["batch_id"],
        ["id"],
        ondelete="CASCADE",
    )
