"""Users, their logins and their per-project permissions."""

from __future__ import annotations

from ..tracker.enums import Result
from ..tracker.errors import (
    AuthError,
    NotFound,
)
from ..tracker.records import (
    Created,
    User,
    UserPermission,
    from_dict,
)
from ..tracker.validation import (
    check_id,
    check_text,
    user_arguments,
)
from .base import (
    _id_path,
)
from .transport import RemoteBase


class UsersMixin(RemoteBase):
    def whoami(self) -> User:
        """The user this tracker acts as (`default` when the server's auth is off)."""
        return from_dict(User, self._call("GET", "/auth/me"))

    # -- users ------------------------------------------------------------------------------------

    def get_user(self, user: int | str) -> User | None:
        """By id, or by username when given a string."""
        if isinstance(user, str):
            return self._one(User, "/user/by-name", username=user)
        return self._one(User, _id_path("/user/{}", user, "user_id"))

    def get_users(self, *, limit: int | None = None, offset: int = 0) -> list[User]:
        return self._list(User, "/user/", limit, offset)

    def create_user(
        self,
        *args: str,
        username: str | None = None,
        password: str | None = None,
        first_name: str = "",
        last_name: str = "",
        is_admin: bool = False,
    ) -> Created:
        """A user. Positionally in DearDiary's order `(first_name, last_name, username, password)`, or
        `(username, password)`; keywords work in either case."""
        username, password, first_name, last_name = user_arguments(args, username, password, first_name, last_name)
        body = {
            "username": username,
            "password": password,
            "first_name": first_name,
            "last_name": last_name,
            "is_admin": is_admin,
        }
        return self._created(self._call("POST", "/user/", body=body), "user")

    def get_user_by_username(self, username: str) -> User | None:
        """DearDiary's `get_user_by_username`: `get_user` given a name."""
        return self.get_user(check_text(username, "username", allow_empty=False))

    def update_user(
        self,
        user_id: int,
        *,
        first_name: str | None = None,
        last_name: str | None = None,
        password: str | None = None,
        is_admin: bool | None = None,
    ) -> Result:
        body = {"first_name": first_name, "last_name": last_name, "password": password, "is_admin": is_admin}
        body = {k: v for k, v in body.items() if v is not None}
        self._call("PATCH", f"/user/{check_id(user_id, 'user_id')}", body=body)
        return Result.UPDATED

    def delete_user(self, user_id: int) -> bool:
        return self._deleted(_id_path("/user/{}", user_id, "user_id"))

    def authenticate(self, username: str, password: str) -> User | None:
        """The user whose password this is, or None."""
        if not isinstance(username, str) or not isinstance(password, str):
            return None
        try:
            return from_dict(User, self._login(username, password)["user"])
        except (AuthError, NotFound):
            return None

    # -- permissions ------------------------------------------------------------------------------

    def create_user_permission(
        self,
        user_id: int,
        project_id: int,
        *,
        create: bool = False,
        read: bool = True,
        update: bool = False,
        delete: bool = False,
    ) -> Created:
        body = {
            "create_permission": create,
            "read_permission": read,
            "update_permission": update,
            "delete_permission": delete,
        }
        path = f"/userpermission/user/{check_id(user_id, 'user_id')}/project/{check_id(project_id, 'project_id')}"
        return self._created(self._call("POST", path, body=body), "userpermission")

    def get_user_permission(self, user_id: int, project_id: int) -> UserPermission | None:
        user_path = _id_path("/userpermission/user/{}", user_id, "user_id")
        project_path = _id_path("/project/{}", project_id, "project_id")
        if user_path is None or project_path is None:
            return None
        return self._one(UserPermission, user_path + project_path)

    def get_user_permissions(
        self,
        *,
        user_id: int | None = None,
        project_id: int | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[UserPermission]:
        params = {
            "user_id": None if user_id is None else check_id(user_id, "user_id"),
            "project_id": None if project_id is None else check_id(project_id, "project_id"),
        }
        return self._list(UserPermission, "/userpermission/", limit, offset, **params)

    def update_user_permission(
        self,
        permission_id: int,
        *,
        create: bool | None = None,
        read: bool | None = None,
        update: bool | None = None,
        delete: bool | None = None,
    ) -> Result:
        flags = {"create": create, "read": read, "update": update, "delete": delete}
        body = {f"{k}_permission": v for k, v in flags.items() if v is not None}
        self._call("PATCH", f"/userpermission/{check_id(permission_id, 'permission_id')}", body=body)
        return Result.UPDATED

    def delete_user_permission(self, permission_id: int) -> bool:
        return self._deleted(_id_path("/userpermission/{}", permission_id, "permission_id"))

    # DearDiary's name for it.
    create_userpermission = create_user_permission
