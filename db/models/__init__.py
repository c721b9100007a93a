"""All models, imported here so ``Base.metadata`` is complete for alembic."""

from db.models.artifact import (
    Artifact,
    ArtifactCategory,
    ArtifactFile,
    ArtifactRelation,
    File,
    FileInStore,
    FileStore,
    JobInput,
)
from db.models.batch import Batch, BatchItem, BatchNode, BatchNodeDelta, Recipe
from db.models.job import Job, JobDependency, JobEvent
from db.models.periodic import PeriodicTask
from db.models.task_type import TaskType, TaskTypeRevision
from db.models.token import Token
from db.models.worker import Worker
from db.models.workspace import Workspace

__all__ = [
    "Artifact",
    "ArtifactCategory",
    "ArtifactFile",
    "ArtifactRelation",
    "Batch",
    "BatchItem",
    "BatchNode",
    "BatchNodeDelta",
    "File",
    "FileInStore",
    "FileStore",
    "Job",
    "JobDependency",
    "JobEvent",
    "JobInput",
    "PeriodicTask",
    "Recipe",
    "TaskType",
    "TaskTypeRevision",
    "Token",
    "Worker",
    "Workspace",
]
