"""Users and their per-project permissions."""

from __future__ import annotations

from typing import Any

from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import (
    delete,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from .. import schema as t
from ..enums import Result
from ..errors import Conflict, Unprocessable
from ..records import (
    Created,
    User,
    UserPermission,
)
from ..statements import can_hold, insert_row, update_row
from ..validation import (
    MAX_PASSWORD,
    MAX_USERNAME,
    check_bool,
    check_id,
    check_text,
    user_arguments,
)
from .base import (
    DEFAULT_PASSWORD,
    DEFAULT_PASSWORD_HASH,
    DEFAULT_USERNAME,
    TrackerBase,
    _hasher,
    _none_stored,
    _now,
    _paged,
    _record,
    _user,
)

_DUMMY: list[str] = []


def _dummy_hash() -> str:
    """A hash of a random password with the hasher's own parameters, made once."""
    if not _DUMMY:
        import secrets

        _DUMMY.append(_hasher.hash(secrets.token_urlsafe(16)))
    return _DUMMY[0]


class UsersMixin(TrackerBase):

    def get_user(self, user: int | str) -> User | None:
        """By id, or by username when given a string."""
        if isinstance(user, str):
            with self._read() as conn:
                return _user(conn.execute(select(t.users).where(t.users.c.username == user)).first())
        return _user(self._fetch_one(t.users, user, "user_id"))

    def get_users(self, *, limit: int | None = None, offset: int = 0) -> list[User]:
        with self._read() as conn:
            rows = conn.execute(_paged(select(t.users).order_by(t.users.c.id), limit, offset))
            return [_user(r) for r in rows]  # type: ignore[misc]

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
        username = check_text(username, "username", max_length=MAX_USERNAME, allow_empty=False)
        password = check_text(password, "password", max_length=MAX_PASSWORD, allow_empty=False)
        values = {
            "username": username,
            "password_hash": _hasher.hash(password),
            "first_name": check_text(first_name, "first_name", max_length=MAX_USERNAME),
            "last_name": check_text(last_name, "last_name", max_length=MAX_USERNAME),
            "is_admin": check_bool(is_admin, "is_admin"),
            "created_date": _now(),
        }
        try:
            with self._write() as conn:
                if conn.execute(select(t.users.c.id).where(t.users.c.username == username)).first():
                    raise Conflict(f"username {username!r} is taken", field="username")
                new_id = insert_row(conn, t.users, values)
        except IntegrityError:
            raise Conflict(f"username {username!r} is taken", field="username") from None
        return Created(new_id, Result.CREATED)

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
        user_id = check_id(user_id, "user_id")
        values: dict[str, Any] = {}
        if first_name is not None:
            values["first_name"] = check_text(first_name, "first_name", max_length=MAX_USERNAME)
        if last_name is not None:
            values["last_name"] = check_text(last_name, "last_name", max_length=MAX_USERNAME)
        if password is not None:
            password = check_text(password, "password", max_length=MAX_PASSWORD, allow_empty=False)
            values["password_hash"] = _hasher.hash(password)
            # Every token issued before the change stops working.
            values["token_generation"] = t.users.c.token_generation + 1
        if is_admin is not None:
            values["is_admin"] = check_bool(is_admin, "is_admin")
        with self._write() as conn:
            row = self._require(conn, t.users, user_id, "user_id")
            if row.username == DEFAULT_USERNAME and values.get("is_admin") is False:
                raise Unprocessable("is_admin: the default user stays an administrator", field="is_admin")
            if values:
                conn.execute(update(t.users).where(t.users.c.id == user_id).values(values))
        return Result.UPDATED

    def delete_user(self, user_id: int) -> bool:
        user_id = check_id(user_id, "user_id")
        if not can_hold(t.users.c.id, user_id):
            return False
        with self._write() as conn:
            row = conn.execute(select(t.users.c.username).where(t.users.c.id == user_id)).first()
            if row is None:
                return False
            if row.username == DEFAULT_USERNAME:
                raise Unprocessable("user_id: the default user cannot be deleted", field="user_id")
            conn.execute(delete(t.users).where(t.users.c.id == user_id))
        return True

    def authenticate(self, username: str, password: str) -> User | None:
        """The user whose password this is, or None. An unknown username costs the same hash as a known
        one (checked against a dummy hash), so the time taken does not tell which usernames exist."""
        if not isinstance(username, str) or not isinstance(password, str):
            return None
        with self._read() as conn:
            row = conn.execute(select(t.users).where(t.users.c.username == username)).first()
        try:
            _hasher.verify(_dummy_hash() if row is None else row.password_hash, password)
        except (VerificationError, InvalidHashError):
            return None
        return None if row is None else _user(row)

    def user_for_token(self, user_id: int) -> tuple[User, int] | None:
        """A user and their current token generation (one query, made on every authenticated request)."""
        row = self._fetch_one(t.users, user_id, "user_id")
        return None if row is None else (_user(row), row.token_generation)  # type: ignore[return-value]

    def revoke_tokens(self, user_id: int) -> bool:
        """Bump the user's token generation: every token issued so far stops working. False if no such user."""
        user_id = check_id(user_id, "user_id")
        if not can_hold(t.users.c.id, user_id):
            return False
        with self._write() as conn:
            stmt = update(t.users).where(t.users.c.id == user_id)
            return conn.execute(stmt.values(token_generation=t.users.c.token_generation + 1)).rowcount > 0

    def has_default_password(self) -> bool:
        """Whether the `default` administrator still has the password `default`."""
        with self._read() as conn:
            row = conn.execute(select(t.users.c.password_hash).where(t.users.c.username == DEFAULT_USERNAME)).first()
        if row is None:
            return False
        if row.password_hash == DEFAULT_PASSWORD_HASH:
            return True  # as seeded: no argon2 verification needed to know
        try:
            return bool(_hasher.verify(row.password_hash, DEFAULT_PASSWORD))
        except (VerificationError, InvalidHashError):
            return False

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
        user_id = check_id(user_id, "user_id")
        project_id = check_id(project_id, "project_id")
        values = {
            "user_id": user_id,
            "project_id": project_id,
            "create_permission": check_bool(create, "create"),
            "read_permission": check_bool(read, "read"),
            "update_permission": check_bool(update, "update"),
            "delete_permission": check_bool(delete, "delete"),
        }
        with self._write() as conn:
            self._require(conn, t.users, user_id, "user_id")
            self._require(conn, t.projects, project_id, "project_id")
            up = t.user_permissions
            if conn.execute(
                select(up.c.id).where(up.c.user_id == user_id, up.c.project_id == project_id)
            ).first():
                raise Conflict(
                    f"user {user_id} already has a permission row on project {project_id}", field="project_id"
                )
            new_id = insert_row(conn, up, values)
        return Created(new_id, Result.CREATED)

    def get_user_permission(self, user_id: int, project_id: int) -> UserPermission | None:
        user_id = check_id(user_id, "user_id")
        project_id = check_id(project_id, "project_id")
        up = t.user_permissions
        if not (can_hold(up.c.user_id, user_id) and can_hold(up.c.project_id, project_id)):
            return None
        with self._read() as conn:
            row = conn.execute(
                select(up).where(up.c.user_id == user_id, up.c.project_id == project_id)
            ).first()
        return _record(UserPermission, row)

    def get_user_permissions(
        self,
        *,
        user_id: int | None = None,
        project_id: int | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[UserPermission]:
        up = t.user_permissions
        stmt = select(up).order_by(up.c.id)
        wanted = {f: check_id(i, f) for f, i in (("user_id", user_id), ("project_id", project_id)) if i is not None}
        for field, id_ in wanted.items():
            if not can_hold(up.c[field], id_):
                return _none_stored(limit, offset)
            stmt = stmt.where(up.c[field] == id_)
        with self._read() as conn:
            return [_record(UserPermission, r) for r in conn.execute(_paged(stmt, limit, offset))]

    def update_user_permission(
        self,
        permission_id: int,
        *,
        create: bool | None = None,
        read: bool | None = None,
        update: bool | None = None,
        delete: bool | None = None,
    ) -> Result:
        permission_id = check_id(permission_id, "permission_id")
        flags = {"create": create, "read": read, "update": update, "delete": delete}
        values = {f"{k}_permission": check_bool(v, k) for k, v in flags.items() if v is not None}
        with self._write() as conn:
            self._require(conn, t.user_permissions, permission_id, "permission_id")
            if values:
                update_row(conn, t.user_permissions, permission_id, values)
        return Result.UPDATED

    def delete_user_permission(self, permission_id: int) -> bool:
        return self._delete(t.user_permissions, permission_id, "permission_id")
