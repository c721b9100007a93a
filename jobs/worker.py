"""The module a Dramatiq worker process loads: ``dramatiq jobs.worker``.

BROKER_URL and DATABASE_URL are required here; ``batchgraph worker`` sets them
(starting the embedded services when the user set neither).
"""

from __future__ import annotations

import dramatiq

from db.config import settings
from db.logs import configure_logging
from jobs.actors import declare_actors
from jobs.broker import build_broker
from jobs.presence import Presence

_settings = settings()
configure_logging(role="worker", level=_settings.log_level, fmt=_settings.log_format)

if not _settings.broker_url:
    raise RuntimeError("BROKER_URL is not set; start workers with 'batchgraph worker'")

broker = build_broker(_settings.broker_url)
broker.add_middleware(Presence())  # after AsyncIO: registers, heartbeats, maintains
dramatiq.set_broker(broker)
actors = declare_actors(broker)
