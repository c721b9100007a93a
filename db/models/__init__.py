"""All models, imported here so ``Base.metadata`` is complete for alembic."""

from db.models.task_type import TaskType, TaskTypeRevision
from db.models.token import Token
from db.models.workspace import Workspace

__all__ = ["TaskType", "TaskTypeRevision", "Token", "Workspace"]
