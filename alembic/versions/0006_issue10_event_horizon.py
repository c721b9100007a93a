"""event horizon: job events announced per statement, a horizon below which they are final,
token changes announced

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30

* One notification per INSERT statement on ``job_event`` (not per row): a bulk
  transition of 100,000 jobs sends one, ``{"batches": [...], "min": id, "max": id}``
  (``batches`` is null when a statement touches more than 500 batches: "any").
* The replay window. Event ids come from a sequence when a row is inserted, but
  transactions commit in another order: an event with a smaller id can become
  visible after a larger one was delivered, and a subscriber resuming after the
  larger id would never see it. So every statement that inserts events first takes a
  shared transaction lock whose key carries the sequence value it started from
  (``job_event_writer``); ``job_event_horizon()`` answers the largest id below which
  no event can still appear: the smallest such value among writers still running,
  else the sequence's last value. Readers deliver events in id order up to the
  horizon only, so "after event N" always means the same set of events. Waiting is
  bounded by the event-writing transactions in flight, not by any other work.
* Token changes (enabled, expiry, role, deletion) are announced on
  ``batchgraph_tokens``, so API processes drop a cached token at once.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JOB_EVENTS = "batchgraph_job_events"
TOKENS = "batchgraph_tokens"
# Advisory lock keys (int4, int4): the first carries this tag in its high 16 bits.
TAG = 0x6267
MAX_BATCHES = 500


def upgrade() -> None:
    op.execute("DROP TRIGGER job_event_notify ON job_event")
    op.execute("DROP FUNCTION notify_job_event()")
    op.execute(f"""
        CREATE FUNCTION job_event_writer() RETURNS trigger AS $$
        DECLARE
          start bigint := COALESCE(pg_sequence_last_value('job_event_id_seq'), 0);
        BEGIN
          PERFORM pg_advisory_xact_lock_shared(
            ({TAG} << 16) | ((start >> 31) & 65535)::int, (start & 2147483647)::int);
          RETURN NULL;
        END $$ LANGUAGE plpgsql
    """)
    op.execute("""
        CREATE TRIGGER job_event_writer BEFORE INSERT ON job_event
        FOR EACH STATEMENT EXECUTE FUNCTION job_event_writer()
    """)
    op.execute(f"""
        CREATE FUNCTION notify_job_events() RETURNS trigger AS $$
        DECLARE
          batches bigint[];
          low bigint;
          high bigint;
        BEGIN
          SELECT array_agg(DISTINCT batch_id), min(id), max(id)
            INTO batches, low, high FROM inserted;
          IF low IS NOT NULL THEN
            PERFORM pg_notify('{JOB_EVENTS}', json_build_object(
              'batches', CASE WHEN cardinality(batches) <= {MAX_BATCHES} THEN batches END,
              'min', low, 'max', high)::text);
          END IF;
          RETURN NULL;
        END $$ LANGUAGE plpgsql
    """)
    op.execute("""
        CREATE TRIGGER job_events_notify AFTER INSERT ON job_event
        REFERENCING NEW TABLE AS inserted
        FOR EACH STATEMENT EXECUTE FUNCTION notify_job_events()
    """)
    # The sequence is read before the locks: a writer whose lock is not seen yet
    # allocates its ids after this read, so above the value returned.
    op.execute(f"""
        CREATE FUNCTION job_event_horizon() RETURNS bigint AS $$
        DECLARE
          last bigint := COALESCE(pg_sequence_last_value('job_event_id_seq'), 0);
          oldest bigint;
        BEGIN
          SELECT min(((l.classid::bigint & 65535) << 31) | l.objid::bigint) INTO oldest
            FROM pg_locks l
           WHERE l.locktype = 'advisory' AND l.objsubid = 2
             AND (l.classid::bigint >> 16) = {TAG};
          RETURN least(last, COALESCE(oldest, last));
        END $$ LANGUAGE plpgsql
    """)
    op.execute(f"""
        CREATE FUNCTION notify_token() RETURNS trigger AS $$
        BEGIN
          IF TG_OP = 'DELETE' THEN
            PERFORM pg_notify('{TOKENS}', json_build_object('id', OLD.id)::text);
          ELSIF NEW.enabled IS DISTINCT FROM OLD.enabled
             OR NEW.expires_at IS DISTINCT FROM OLD.expires_at
             OR NEW.role IS DISTINCT FROM OLD.role THEN
            PERFORM pg_notify('{TOKENS}', json_build_object('id', NEW.id)::text);
          END IF;
          RETURN NULL;
        END $$ LANGUAGE plpgsql
    """)
    op.execute("""
        CREATE TRIGGER token_notify AFTER UPDATE OR DELETE ON token
        FOR EACH ROW EXECUTE FUNCTION notify_token()
    """)


def downgrade() -> None:
    op.execute("DROP TRIGGER token_notify ON token")
    op.execute("DROP FUNCTION notify_token()")
    op.execute("DROP FUNCTION job_event_horizon()")
    op.execute("DROP TRIGGER job_events_notify ON job_event")
    op.execute("DROP FUNCTION notify_job_events()")
    op.execute("DROP TRIGGER job_event_writer ON job_event")
    op.execute("DROP FUNCTION job_event_writer()")
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
