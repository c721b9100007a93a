"""The baseline's worker module: Dramatiq alone, a no-op actor that counts itself."""

from __future__ import annotations

import os

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker

URL = os.environ["BROKER_URL"]
broker = RedisBroker(url=URL)
dramatiq.set_broker(broker)
counter = redis.Redis.from_url(URL)


@dramatiq.actor(actor_name="bench.noop", queue_name="bench")
def noop() -> None:
    counter.incr("bench:done")
