"""How long an idle Dramatiq worker takes to pick up a message, per broker.

For each broker: a real Dramatiq worker (1 thread) idles; the script sends one
message, waits for it to run, idles again, N times. Prints p50/p90/max pick-up
latency (send → actor start). The embedded Redis (batchgraph's default) uses the
worker timeout batchgraph sets; the same Redis at Dramatiq's default timeout and
RabbitMQ (push-based, if reachable) are measured in the same run for comparison.

    .venv/bin/python bench/broker_pickup.py [--messages 40]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker

from jobs.broker import REDIS_WORKER_TIMEOUT_MS
from launcher.embedded_redis import start_embedded_redis

IDLE_SECONDS = 0.3
RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/"


def measure(broker: dramatiq.Broker, worker_timeout_ms: int, messages: int) -> list[float]:
    received = threading.Event()
    sent_at = [0.0]
    latencies: list[float] = []

    def probe() -> None:
        latencies.append(time.perf_counter() - sent_at[0])
        received.set()

    actor = dramatiq.Actor(
        probe,
        broker=broker,
        actor_name="bench.probe",
        queue_name="bench-pickup",
        priority=0,
        options={},
    )
    broker.flush_all()
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=worker_timeout_ms)
    worker.start()
    try:
        time.sleep(1.0)
        for _ in range(messages):
            time.sleep(IDLE_SECONDS)  # let the consumer go idle
            received.clear()
            sent_at[0] = time.perf_counter()
            actor.send()
            if not received.wait(10):
                raise RuntimeError("message not picked up within 10 s")
    finally:
        worker.stop()
        broker.close()
    return latencies


def report(name: str, latencies: list[float]) -> None:
    ms = sorted(x * 1000 for x in latencies)
    deciles = statistics.quantiles(ms, n=10)
    print(f"{name:<58} {deciles[4]:>7.1f} {deciles[8]:>7.1f} {ms[-1]:>7.1f}")


def rabbitmq_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5672), 1):
            return True
    except OSError:
        return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=40)
    args = parser.parse_args()
    print(f"{args.messages} messages each, {IDLE_SECONDS}s idle before each; latency in ms")
    print(f"{'broker':<58} {'p50':>7} {'p90':>7} {'max':>7}")
    with tempfile.TemporaryDirectory(prefix="bg-pickup-") as home:
        url, handle = start_embedded_redis(Path(home))
        try:
            report(
                f"embedded Redis, worker timeout {REDIS_WORKER_TIMEOUT_MS} ms (batchgraph)",
                measure(RedisBroker(url=url), REDIS_WORKER_TIMEOUT_MS, args.messages),
            )
            report(
                "embedded Redis, worker timeout 1000 ms (Dramatiq default)",
                measure(RedisBroker(url=url), 1000, args.messages),
            )
        finally:
            handle.release()
    if rabbitmq_up():
        report(
            "RabbitMQ 127.0.0.1 (push)",
            measure(RabbitmqBroker(url=RABBITMQ_URL), 1000, args.messages),
        )
    else:
        print("RabbitMQ not reachable on 127.0.0.1:5672; skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
