"""Every enum the schema exposes, registered once, before any type uses it.

(Registering them in the modules that happen to use them made the import order
decide which definition a type saw, and strawberry then found two.)
"""

from __future__ import annotations

import strawberry

from db.enums import (
    CachePolicy,
    FailureCategory,
    JobStatus,
    RelationType,
    RerunMode,
    StoreBackend,
    TokenRole,
    WorkerKind,
)
from db.repositories.batch import BatchOrder
from domain.batches.rules import DiffStatus

strawberry.enum(
    TokenRole, name="TokenRole", description="ADMIN ⊇ WRITER ⊇ READER; WORKER is for workers."
)
strawberry.enum(
    CachePolicy,
    name="CachePolicy",
    description="NONE: never reuse; BATCH: reuse within one batch; ALL: reuse across batches.",
)
strawberry.enum(
    JobStatus,
    name="JobStatus",
    description="PENDING ready; BLOCKED waiting on dependencies; QUEUED with the fleet or"
    " waiting for a pull worker; RUNNING; COMPLETED, FAILED, CANCELED are final.",
)
strawberry.enum(
    RerunMode,
    name="RerunMode",
    description="ALL recipes; only FAILED (and canceled) work; or named NODES.",
)
strawberry.enum(BatchOrder, name="BatchOrderField")
strawberry.enum(WorkerKind, name="WorkerKind")
strawberry.enum(DiffStatus, name="NodeDiffStatus")
strawberry.enum(
    FailureCategory,
    name="FailureCategory",
    description="Why a job failed. INFRASTRUCTURE, TIMEOUT and WORKER_LOST are retried while"
    " attempts are left; DOMAIN (the work cannot succeed) and CONFIGURATION (this deployment"
    " cannot run it) fail at once.",
)
strawberry.enum(
    RelationType,
    name="ArtifactRelationType",
    description="source → target. EXTENDS: the source adds to the target; RELATES_TO: a"
    " looser link; BUILT_USING: the target was an input of what made the source.",
)
strawberry.enum(
    StoreBackend,
    name="FileStoreBackend",
    description="LOCAL: a folder (one machine or a shared mount); S3: an S3-compatible bucket.",
)
