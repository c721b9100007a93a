"""The Dramatiq broker from BROKER_URL: RabbitMQ (amqp://) or Redis (redis://, unix://)."""

from __future__ import annotations

from typing import Any

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import AsyncIO

from db.config import settings

DEFAULT_QUEUE = "default"
# Batch creation and check-ins go through their own queue, taken before jobs: the next
# chunk of a large batch never waits behind the jobs.run messages of the previous one.
CONTROL_QUEUE = "control"
CONTROL_ACTORS = frozenset({"batches.create_chunk", "tasktypes.check_in"})
DRAMATIQ_NAMESPACE = "dramatiq"
# An idle Redis consumer polls with back-off up to the worker timeout; at the
# default 1,000 ms the median pick-up is ~190–260 ms, at 10 ms ~4 ms (bench/
# broker_pickup.py), for about 2 % of a core per idle worker process.
REDIS_WORKER_TIMEOUT_MS = 10


def queue_name(kind: str = DEFAULT_QUEUE) -> str:
    """A queue of batchgraph's (``default`` for jobs, ``control`` for the rest), as
    ``<namespace>.<kind>`` when BATCHGRAPH_BROKER_NAMESPACE is set (a test run, or
    deployments sharing a broker)."""
    namespace = settings().broker_namespace
    return f"{namespace}.{kind}" if namespace else kind


def queue_of(actor_name: str) -> str:
    return queue_name(CONTROL_QUEUE if actor_name in CONTROL_ACTORS else DEFAULT_QUEUE)


def build_broker(url: str) -> dramatiq.Broker:
    broker: dramatiq.Broker
    if url.startswith(("amqp://", "amqps://")):
        broker = RabbitmqBroker(url=url)
    elif url.startswith(("redis://", "rediss://", "unix://")):
        # Every Redis key the broker writes starts with "<namespace>:".
        namespace = settings().broker_namespace or DRAMATIQ_NAMESPACE
        broker = RedisBroker(url=url, namespace=namespace)  # type: ignore[no-untyped-call]
    else:
        raise ValueError(
            "BROKER_URL must start with amqp://, amqps://, redis://, rediss:// or unix://"
        )
    broker.add_middleware(AsyncIO())
    broker.declare_queue(queue_name(DEFAULT_QUEUE))
    broker.declare_queue(queue_name(CONTROL_QUEUE))
    return broker


def worker_timeout_ms(url: str) -> int | None:
    """The worker timeout to use for this broker, if it needs a non-default one."""
    return None if url.startswith(("amqp://", "amqps://")) else REDIS_WORKER_TIMEOUT_MS


def ping(broker: dramatiq.Broker) -> None:
    """Raise if the broker cannot be reached. Blocking: call it from a thread."""
    if isinstance(broker, RedisBroker):
        client: Any = broker.client
        client.ping()
    elif isinstance(broker, RabbitmqBroker):
        connection: Any = broker.connection
        if not connection.is_open:
            raise ConnectionError("RabbitMQ connection is closed")
        connection.process_data_events(time_limit=0)
    else:  # pragma: no cover - only the two real brokers are built here
        raise TypeError(f"cannot ping a {type(broker).__name__}")
