"""A test run keeps to its own broker namespace and leaves nothing behind.

CI's Redis database and RabbitMQ vhost are shared: every key and queue of a run is
under the run's BATCHGRAPH_BROKER_NAMESPACE, deleted at the end (tests/conftest.py).
"""

from __future__ import annotations

import pytest

from jobs.broker import build_broker, queue_name, queue_of
from jobs.dispatch import DramatiqDispatcher
from tests.conftest import RUN_NAMESPACE, delete_redis_namespace


@pytest.mark.redis
async def test_messages_and_keys_stay_in_the_runs_namespace(redis_url: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        foreign_before = {k for k in client.scan_iter() if not k.startswith(b"bgtest-")}
        broker = build_broker(redis_url)
        # A message nobody consumes: what used to be left in the shared database.
        await DramatiqDispatcher(broker).send("tasktypes.check_in", 1)
        broker.close()
        ours = set(client.scan_iter(match=f"{RUN_NAMESPACE}:*"))
        assert queue_name() == f"{RUN_NAMESPACE}.default"
        assert queue_of("tasktypes.check_in") == f"{RUN_NAMESPACE}.control"
        assert any(b"control" in key for key in ours), ours
        foreign_after = {k for k in client.scan_iter() if not k.startswith(b"bgtest-")}
        assert foreign_after == foreign_before  # nothing written outside the namespace

        assert delete_redis_namespace(redis_url, RUN_NAMESPACE) == len(ours)
        assert list(client.scan_iter(match=f"{RUN_NAMESPACE}:*")) == []
    finally:
        client.close()
