"""event notifications: NOTIFY job events and worker changes in their own transaction

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JOB_EVENTS = "batchgraph_job_events"
WORKERS = "batchgraph_workers"


def upgrade() -> None:
    # A trigger fires inside the inserting transaction: a rolled-back change
    # announces nothing, and every path that writes an event is covered.
    op.execute(f"""
        CREATE FUNCTION notify_job_event() RETURNS trigger AS $$
        BEGIN
          PERFORM pg_notify('{JOB_EVENTS}', json_build_object(
            'id', NEW.id, 'job', NEW.job_id, 'batch', NEW.batch_id)::text);
          RETURN NULL;
        END $$ LANGUAGE plpgsql
    """)
    op.execute("""
        CREATE TRIGGER job_event_notify AFTER INSERT ON job_event
        FOR EACH ROW EXECUTE FUNCTION notify_job_event()
    """)
    op.execute(f"""
        CREATE FUNCTION notify_worker() RETURNS trigger AS $$
        BEGIN
          IF TG_OP = 'INSERT'
             OR NEW.connected_at IS DISTINCT FROM OLD.connected_at
             OR NEW.enabled IS DISTINCT FROM OLD.enabled THEN
            PERFORM pg_notify('{WORKERS}', json_build_object('id', NEW.id)::text);
          END IF;
          RETURN NULL;
        END $$ LANGUAGE plpgsql
    """)
    op.execute("""
        CREATE TRIGGER worker_notify AFTER INSERT OR UPDATE ON worker
        FOR EACH ROW EXECUTE FUNCTION notify_worker()
    """)


def downgrade() -> None:
    op.execute("DROP TRIGGER worker_notify ON worker")
    op.execute("DROP FUNCTION notify_worker()")
    op.execute("DROP TRIGGER job_event_notify ON job_event")
    op.execute("DROP FUNCTION notify_job_event()")
