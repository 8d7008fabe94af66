"""DearDiary.jl's positional argument orders, where they differ from this package's, for the module-level
functions: a line transcribed from DearDiary's guide (`create_project(user.id, "Fraud detection")`,
`update_project(id, "new name", "new description")`) works as written.

Our methods take what follows an id as keywords (`update_project(id, name=...)`); DearDiary passes the
same values positionally, in the order of its service functions. `REST_AS_KEYWORDS` names, per function,
the keywords that extra positional arguments stand for, in DearDiary's order. `create_project` and
`get_projects` differ by their first argument and have rules of their own. Every other function already
takes DearDiary's order (see docs/decisions.md, "Issue 27")."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Args = tuple[Any, ...]
Kwargs = dict[str, Any]

# Positional arguments past our signature's positional parameters, as keywords (DearDiary's order).
REST_AS_KEYWORDS: dict[str, tuple[str, ...]] = {
    "update_user": ("first_name", "last_name", "password", "is_admin"),
    "create_user_permission": ("create", "read", "update", "delete"),
    "create_userpermission": ("create", "read", "update", "delete"),
    "update_user_permission": ("create", "read", "update", "delete"),
    "update_project": ("name", "description"),
    "update_experiment": ("status", "name", "description", "end_date"),
    "update_iteration": ("notes", "end_date"),
    "update_parameter": ("key", "value"),
    "update_resource": ("name", "description", "data"),
    "update_model": ("name", "description"),
    "create_model_version": ("resource_id", "description"),
    "update_model_version": ("stage", "description", "resource_id"),
}


def _is_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _create_project(args: Args, kwargs: Kwargs, leading: tuple[str, ...]) -> tuple[Args, Kwargs]:
    del leading
    # DearDiary's `create_project(user_id, name)`: an id first can only be the owner, since a project's
    # name is text; our `create_project(name, user_id=...)` is unchanged.
    if len(args) >= 2 and _is_id(args[0]):
        user_id, *rest = args
        return tuple(rest), _add("create_project", kwargs, {"user_id": user_id})
    return args, kwargs


def _get_projects(args: Args, kwargs: Kwargs, leading: tuple[str, ...]) -> tuple[Args, Kwargs]:
    del leading
    # DearDiary's `get_projects(user)`: the projects that user may read.
    if len(args) == 1:
        user = args[0]
        return (), _add("get_projects", kwargs, {"user_id": user if _is_id(user) else getattr(user, "id", user)})
    return args, kwargs


def _update_iteration(args: Args, kwargs: Kwargs, leading: tuple[str, ...]) -> tuple[Args, Kwargs]:
    # DearDiary also has `update_iteration(id, status::IterationStatus)`.
    from .tracker.enums import IterationStatus

    if len(args) == 2 and isinstance(args[1], IterationStatus):
        return args[:1], _add("update_iteration", kwargs, {"status": args[1]})
    return _rest_as_keywords("update_iteration", args, kwargs, leading)


SPECIAL: dict[str, Callable[[Args, Kwargs, int], tuple[Args, Kwargs]]] = {
    "create_project": _create_project,
    "get_projects": _get_projects,
    "update_iteration": _update_iteration,
}

def _add(function: str, kwargs: Kwargs, extra: Kwargs) -> Kwargs:
    for key in extra:
        if key in kwargs:
            raise TypeError(f"{function}() got multiple values for argument {key!r}")
    return {**kwargs, **extra}


def _rest_as_keywords(function: str, args: Args, kwargs: Kwargs, leading: tuple[str, ...]) -> tuple[Args, Kwargs]:
    names = REST_AS_KEYWORDS[function]
    rest = args[len(leading):]
    if not rest:
        return args, kwargs
    if len(rest) > len(names):
        raise TypeError(
            f"{function}() takes at most {len(leading) + len(names)} positional arguments "
            f"({', '.join(leading + names)}) but {len(args)} were given"
        )
    return args[:len(leading)], _add(function, kwargs, dict(zip(names, rest, strict=False)))


def to_our_order(function: str, args: Args, kwargs: Kwargs, *, leading: tuple[str, ...]) -> tuple[Args, Kwargs]:
    """`args` and `kwargs` of a module-level call, rewritten from DearDiary's positional order (when that
    is the order they came in) to this package's; anything else is returned as it was. `leading` names
    the positional parameters of our own signature of `function`."""
    special = SPECIAL.get(function)
    if special is not None:
        return special(args, kwargs, leading)
    if function in REST_AS_KEYWORDS:
        return _rest_as_keywords(function, args, kwargs, leading)
    return args, kwargs


def describe(function: str, leading: tuple[str, ...]) -> str:
    """A line for `function`'s docstring saying which DearDiary order it also takes, or "" for none."""
    if function == "create_project":
        return "DearDiary's order `create_project(user_id, name)` works too (an int first is the owner's id)."
    if function == "get_projects":
        return "DearDiary's `get_projects(user)` works too: the projects that user (or user id) may read."
    if function in REST_AS_KEYWORDS:
        order = ", ".join(leading + REST_AS_KEYWORDS[function])
        return f"DearDiary's positional order `{function}({order})` works too."
    return ""
