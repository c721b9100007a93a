"""The module a Dramatiq worker process loads: ``dramatiq jobs.worker``.

BROKER_URL and DATABASE_URL are required here; ``batchgraph worker`` sets them
(starting the embedded services when the user set neither).
"""

from __future__ import annotations

import logging
import os

import dramatiq

from jobs.actors import declare_actors
from jobs.broker import build_broker
from jobs.presence import Presence

logging.basicConfig(level=os.environ.get("BATCHGRAPH_LOG_LEVEL", "INFO"))

_url = os.environ.get("BROKER_URL")
if not _url:
    raise RuntimeError("BROKER_URL is not set; start workers with 'batchgraph worker'")

broker = build_broker(_url)
broker.add_middleware(Presence())  # after AsyncIO: registers, heartbeats, maintains
dramatiq.set_broker(broker)
actors = declare_actors(broker)
