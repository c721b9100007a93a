"""All models, imported here so ``Base.metadata`` is complete for alembic."""

from db.models.batch import Batch, BatchItem, BatchNode, BatchNodeDelta, Recipe
from db.models.job import Job, JobDependency, JobEvent
from db.models.periodic import PeriodicTask
from db.models.task_type import TaskType, TaskTypeRevision
from db.models.token import Token
from db.models.worker import Worker
from db.models.workspace import Workspace

__all__ = [
    "Batch",
    "BatchItem",
    "BatchNode",
    "BatchNodeDelta",
    "Job",
    "JobDependency",
    "JobEvent",
    "PeriodicTask",
    "Recipe",
    "TaskType",
    "TaskTypeRevision",
    "Token",
    "Worker",
    "Workspace",
]
