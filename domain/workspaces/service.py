from __future__ import annotations

from db.errors import DuplicateKeyError
from db.models import Workspace
from db.repositories.workspace import WorkspaceRepository
from db.uow import UnitOfWork
from domain.auth.rules import Actor, require_admin, sees_private_workspaces
from domain.errors import ConflictError, NotFoundError, raise_if_invalid
from domain.workspaces.rules import check_name


async def create_workspace(
    uow: UnitOfWork, *, name: str, public: bool, actor: Actor | None
) -> Workspace:
    require_admin(actor)
    raise_if_invalid("Invalid workspace", check_name(name))
    if await uow.workspaces.name_exists(name):
        raise ConflictError(f"A workspace named {name!r} already exists")
    workspace = Workspace(name=name, public=public)
    try:
        await uow.workspaces.insert(workspace)
    except DuplicateKeyError as exc:
        raise ConflictError(f"A workspace named {name!r} already exists") from exc
    return workspace


def can_read(workspace: Workspace, actor: Actor | None) -> bool:
    return workspace.public or sees_private_workspaces(actor)


async def get_readable(
    workspaces: WorkspaceRepository, *, name: str, actor: Actor | None
) -> Workspace:
    """The workspace if the actor may read it; a hidden one looks exactly like a missing one."""
    workspace = await workspaces.get_by_name(name)
    if workspace is None or not can_read(workspace, actor):
        raise NotFoundError(f"No workspace named {name!r}")
    return workspace
