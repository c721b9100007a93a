"""Enumerations stored in columns (as PostgreSQL enum types)."""

from __future__ import annotations

from enum import StrEnum


class TokenRole(StrEnum):
    ADMIN = "ADMIN"
    WRITER = "WRITER"
    READER = "READER"
    WORKER = "WORKER"


class CachePolicy(StrEnum):
    NONE = "NONE"
    BATCH = "BATCH"
    ALL = "ALL"


class JobStatus(StrEnum):
    PENDING = "PENDING"
    BLOCKED = "BLOCKED"
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"


class RerunMode(StrEnum):
    ALL = "ALL"
    FAILED = "FAILED"
    NODES = "NODES"


class WorkerKind(StrEnum):
    FLEET = "FLEET"  # a Dramatiq worker process of this deployment
    EXTERNAL = "EXTERNAL"  # a pull worker speaking GraphQL with a worker token
