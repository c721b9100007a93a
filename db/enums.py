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


class FailureCategory(StrEnum):
    """Why a job failed (stored in ``job.error_category``); decides whether it is retried."""

    DOMAIN = "DOMAIN"  # the work itself cannot succeed (bad input, a refused result)
    INFRASTRUCTURE = "INFRASTRUCTURE"  # something around it failed; retried
    TIMEOUT = "TIMEOUT"  # ran past the task type's time limit; retried
    WORKER_LOST = "WORKER_LOST"  # its worker stopped answering; retried
    CONFIGURATION = "CONFIGURATION"  # the deployment cannot run it (no such implementation)


class RelationType(StrEnum):
    """How one artifact relates to another (source → target)."""

    EXTENDS = "EXTENDS"  # the source adds to the target (e.g. debug symbols of a build)
    RELATES_TO = "RELATES_TO"  # a looser link, e.g. a report about the target
    BUILT_USING = "BUILT_USING"  # the target was an input of what made the source


class StoreBackend(StrEnum):
    LOCAL = "LOCAL"  # a folder on the API and worker machines (one machine, or a shared mount)
    S3 = "S3"  # an S3-compatible object store (several machines)
