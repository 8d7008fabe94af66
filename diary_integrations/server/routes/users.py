"""/user/... and /userpermission/...: accounts and per-project permissions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import StrictBool, StrictStr

from ...tracker.totals import count_user_permissions, count_users
from ..auth import require_admin, require_same_user_or_admin
from ..bodies import RequestBody
from ..deps import Limit, Me, Offset, OptionalId, PathId, Tracker
from ..errors import ApiError
from ..idempotency import idempotent
from ..responses import FastJSON, created, deleted, error, one, page, updated

router = APIRouter()


class UserCreate(RequestBody):
    username: StrictStr
    password: StrictStr
    first_name: StrictStr = ""
    last_name: StrictStr = ""
    is_admin: StrictBool = False


class UserUpdate(RequestBody):
    first_name: StrictStr | None = None
    last_name: StrictStr | None = None
    password: StrictStr | None = None
    is_admin: StrictBool | None = None


class PermissionCreate(RequestBody):
    create_permission: StrictBool = False
    read_permission: StrictBool = True
    update_permission: StrictBool = False
    delete_permission: StrictBool = False


class PermissionUpdate(RequestBody):
    create_permission: StrictBool | None = None
    read_permission: StrictBool | None = None
    update_permission: StrictBool | None = None
    delete_permission: StrictBool | None = None


@router.get("/user/", tags=["users"])
def list_users(tracker: Tracker, me: Me, limit: Limit = None, offset: Offset = 0) -> FastJSON:
    require_admin(me)
    return page(lambda n, o: tracker.get_users(limit=n, offset=o), lambda: count_users(tracker), limit, offset)


@router.get("/user/by-name", tags=["users"])
def user_by_name(tracker: Tracker, me: Me, username: Annotated[str, Query(max_length=1000)]) -> Any:
    if not me.is_admin and me.username != username:
        raise ApiError(403, "SAME_USER_REQUIRED", "Only this user or an administrator may do this")
    return one(tracker.get_user(username), "User")


@router.get("/user/{user_id}", tags=["users"])
def get_user(user_id: PathId, tracker: Tracker, me: Me) -> Any:
    require_same_user_or_admin(me, user_id)
    found = tracker.get_user(user_id)
    return error(404, "USER_NOT_FOUND", "User not found") if found is None else one(found, "User")


@router.get("/user/{user_id}/permissions", tags=["users"])
def user_permissions(user_id: PathId, tracker: Tracker, me: Me, limit: Limit = None, offset: Offset = 0) -> FastJSON:
    require_same_user_or_admin(me, user_id)
    return page(
        lambda n, o: tracker.get_user_permissions(user_id=user_id, limit=n, offset=o),
        lambda: count_user_permissions(tracker, user_id=user_id), limit, offset,
    )


@router.post("/user/", status_code=201, tags=["users"])
@idempotent
def create_user(body: UserCreate, tracker: Tracker, me: Me) -> FastJSON:
    require_admin(me)
    new = tracker.create_user(
        body.username, body.password, first_name=body.first_name, last_name=body.last_name, is_admin=body.is_admin
    )
    return created("user", new.id)


@router.patch("/user/{user_id}", tags=["users"])
def update_user(user_id: PathId, body: UserUpdate, tracker: Tracker, me: Me) -> dict[str, str]:
    require_same_user_or_admin(me, user_id)
    if body.is_admin is not None:
        require_admin(me)  # a non-admin may never touch is_admin, not even to leave it false
    tracker.update_user(
        user_id, first_name=body.first_name, last_name=body.last_name, password=body.password, is_admin=body.is_admin
    )
    return updated()


@router.delete("/user/{user_id}", tags=["users"])
def delete_user(user_id: PathId, tracker: Tracker, me: Me) -> Any:
    require_same_user_or_admin(me, user_id)
    return deleted() if tracker.delete_user(user_id) else error(404, "USER_NOT_FOUND", "User not found")


@router.get("/userpermission/", tags=["permissions"])
def list_permissions(
    tracker: Tracker, me: Me, user_id: OptionalId = None, project_id: OptionalId = None,
    limit: Limit = None, offset: Offset = 0,
) -> FastJSON:
    if not me.is_admin and user_id != me.id:
        raise ApiError(403, "ADMIN_REQUIRED", "Only an administrator may list other users' permissions")
    return page(
        lambda n, o: tracker.get_user_permissions(user_id=user_id, project_id=project_id, limit=n, offset=o),
        lambda: count_user_permissions(tracker, user_id=user_id, project_id=project_id), limit, offset,
    )


@router.get("/userpermission/user/{user_id}/project/{project_id}", tags=["permissions"])
def get_permission(user_id: PathId, project_id: PathId, tracker: Tracker, me: Me) -> Any:
    require_same_user_or_admin(me, user_id)
    return one(tracker.get_user_permission(user_id, project_id), "User permission")


@router.post("/userpermission/user/{user_id}/project/{project_id}", status_code=201, tags=["permissions"])
@idempotent
def create_permission(
    user_id: PathId, project_id: PathId, body: PermissionCreate, tracker: Tracker, me: Me
) -> FastJSON:
    require_admin(me)
    new = tracker.create_user_permission(
        user_id, project_id, create=body.create_permission, read=body.read_permission,
        update=body.update_permission, delete=body.delete_permission,
    )
    return created("userpermission", new.id)


@router.patch("/userpermission/{permission_id}", tags=["permissions"])
def update_permission(permission_id: PathId, body: PermissionUpdate, tracker: Tracker, me: Me) -> dict[str, str]:
    require_admin(me)
    tracker.update_user_permission(
        permission_id, create=body.create_permission, read=body.read_permission,
        update=body.update_permission, delete=body.delete_permission,
    )
    return updated()


@router.delete("/userpermission/{permission_id}", tags=["permissions"])
def delete_permission(permission_id: PathId, tracker: Tracker, me: Me) -> Any:
    require_admin(me)
    if tracker.delete_user_permission(permission_id):
        return deleted()
    return error(404, "NOT_FOUND", "User permission not found")
