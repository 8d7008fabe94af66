"""The plumbing every MLflow route shares: its arguments (a JSON body for POST/PATCH/DELETE, the query
for GET, as MLflow's client sends them), the caller, the MLflow project, and MLflow's error shape for
whatever goes wrong. Routes are plain functions `(ctx, args) -> dict` run in the thread pool."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from sqlalchemy import insert
from starlette.concurrency import run_in_threadpool

from ...tracker import schema as t
from ...tracker.database import one_transaction
from ...tracker.errors import Conflict
from ...tracker.records import User
from ..permissions import Action, check_project
from ..responses import FastJSON
from .auth import mlflow_user
from .errors import MlflowError, invalid, response, translated
from .mapping import DEFAULT_EXPERIMENT, artifact_location, project_name

MAX_INT64 = 2**63 - 1


class Args:
    """A request's arguments, read with the type MLflow's proto gives each field; a wrong one is
    INVALID_PARAMETER_VALUE naming the field."""

    def __init__(
        self, data: dict[str, Any], *, from_query: bool, body: bytes = b"", path: dict[str, str] | None = None
    ) -> None:
        self.data = data
        self.from_query = from_query
        self.body = body  # the raw body, for the routes that take bytes (artifact uploads)
        self.path = path or {}

    def _value(self, name: str) -> Any:
        value = self.data.get(name)
        if self.from_query and isinstance(value, list):
            return value[-1] if value else None
        return value

    def text(self, name: str, *, required: bool = False, default: str | None = None) -> str | None:
        value = self._value(name)
        if value is None or value == "" and required:
            if required:
                raise invalid(f"Missing value for required parameter '{name}'.")
            return default
        if not isinstance(value, str):
            raise invalid(f"Invalid value {short(value)} for parameter '{name}' supplied: expected a string")
        return value

    def strict_text(self, name: str) -> str:
        """A string field MLflow's proto declares (a number is refused, as MLflow refuses it); absent is ""."""
        value = self._value(name)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise invalid(f"Invalid value {short(value)} for parameter '{name}' supplied: expected a string")
        return value

    def integer(
        self, name: str, *, default: int | None = None, low: int = -MAX_INT64, high: int = MAX_INT64
    ) -> int | None:
        value = self._value(name)
        if value is None or value == "":
            return default
        if isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                raise invalid(f"Invalid value {short(value)} for parameter '{name}' supplied: "
                    f"expected an integer") from None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise invalid(f"Invalid value {short(value)} for parameter '{name}' supplied: expected an integer")
        if not low <= value <= high:
            raise invalid(f"Invalid value {value} for parameter '{name}' supplied: must be between {low} and {high}")
        return value

    def number(self, name: str, *, required: bool = False) -> float | None:
        value = self._value(name)
        if value is None:
            if required:
                raise invalid(f"Missing value for required parameter '{name}'.")
            return None
        return as_number(value, name)

    def strings(self, name: str) -> list[str]:
        value = self.data.get(name)
        if value is None:
            return []
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise invalid(f"Invalid value {short(value)} for parameter '{name}' supplied: expected a list of strings")
        return value

    def pairs(self, name: str, *, limit: int | None = None) -> list[tuple[str, str]]:
        """A list of `{"key", "value"}` (tags, params); values as text."""
        items = self.data.get(name)
        if items is None:
            return []
        if not isinstance(items, list):
            raise invalid(f"Invalid value {short(items)} for parameter '{name}' supplied: expected a list of objects")
        if limit is not None and len(items) > limit:
            raise invalid(f"A batch logging request can contain at most {limit} {name}. Got {len(items)} {name}.")
        out = []
        for n, item in enumerate(items):
            if not isinstance(item, dict):
                raise invalid(f"Invalid value for parameter '{name}[{n}]' supplied: "
                    f"expected an object with key and value")
            key, value = item.get("key"), item.get("value", "")
            if not isinstance(key, str) or not key:
                raise invalid(f"Invalid value for parameter '{name}[{n}].key' supplied: a non-empty string is required")
            if value is None:
                value = ""
            if not isinstance(value, str):
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    value = str(value)
                else:
                    raise invalid(f"Invalid value {short(value)} for parameter '{name}[{n}].value' supplied: "
                        f"expected a string")
            out.append((key, value))
        return out

    def objects(self, name: str, *, limit: int | None = None) -> list[dict[str, Any]]:
        items = self.data.get(name)
        if items is None:
            return []
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise invalid(f"Invalid value {short(items)} for parameter '{name}' supplied: expected a list of objects")
        if limit is not None and len(items) > limit:
            raise invalid(f"A batch logging request can contain at most {limit} {name}. Got {len(items)} {name}.")
        return items


def as_number(value: Any, name: str) -> float:
    if isinstance(value, str) and value in ("NaN", "Infinity", "-Infinity", "inf", "-inf", "nan"):
        return float(value.replace("Infinity", "inf"))
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise invalid(f"Invalid value {short(value)} for parameter '{name}' supplied: expected a number")
    try:
        return float(value)
    except OverflowError:
        raise invalid(f"Invalid value for parameter '{name}' supplied: the number is out of range") from None


def short(value: Any) -> str:
    """A value as MLflow's messages show it (JSON), cut short."""
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass
class Context:
    """The tracker, the caller, and the MLflow project (found, or created on the first write)."""

    tracker: Any
    user: User
    state: Any
    _project: int | None = field(default=None)

    def project_id(self, *, create: bool = False) -> int | None:
        if self._project is None:
            name = getattr(self.state.settings, "mlflow_project", None) or project_name()
            found = self.tracker.get_project_by_name(name)
            if found is None and create:
                try:
                    found_id = self.tracker.create_project(
                        name, description="MLflow's experiments, logged through MLflow's tracking API"
                    ).id
                except Conflict:  # created by another request meanwhile
                    found_id = self.tracker.get_project_by_name(name).id
                self._project = found_id
                # MLflow's "Default" experiment exists from the start, older than any other.
                self.create_default_experiment(found_id)
            elif found is not None:
                self._project = found.id
        return self._project

    def default_location(self, experiment_id: int) -> str | None:
        """The artifact location of an experiment made through MLflow's API: `<root>/<id>` under the
        server's MLflow artifact root (settings.mlflow_artifact_root), kept with the experiment so a later
        change of root moves nothing; None (the server's artifact proxy) without a root."""
        root = getattr(self.state.settings, "mlflow_artifact_root", None)
        return f"{artifact_location(root).rstrip('/')}/{experiment_id}" if root else None

    def create_default_experiment(self, project: int) -> None:
        """MLflow's "Default" experiment, unless another request made it meanwhile."""
        with contextlib.suppress(Conflict), one_transaction(self.tracker.engine) as conn:
            made = self.tracker.create_experiment(project, 1, DEFAULT_EXPERIMENT)
            location = self.default_location(made.id)
            if location is not None:
                conn.execute(insert(t.mlflow_experiments).values(experiment_id=made.id, artifact_location=location))

    def allow(self, action: Action) -> int:
        """The project id, once the caller may do `action` on it (a write creates the project)."""
        project = self.project_id(create=action is not Action.READ)
        if project is None:
            raise MlflowError("RESOURCE_DOES_NOT_EXIST", "No MLflow experiments here yet")
        check_project(self.tracker, self.user, project, action)
        return project


Handler = Callable[[Context, Args], Any]


async def _args(request: Request, raw_body: bool) -> Args:
    path = dict(request.path_params)
    if request.method == "GET" or raw_body:
        data: dict[str, Any] = {}
        for key, value in request.query_params.multi_items():
            data.setdefault(key, []).append(value)
        return Args(data, from_query=True, body=await request.body() if raw_body else b"", path=path)
    raw = await request.body()
    if not raw.strip():
        return Args({}, from_query=False, path=path)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MlflowError("MALFORMED_REQUEST", f"Malformed request body: not JSON ({exc})") from None
    if not isinstance(body, dict):
        raise MlflowError("MALFORMED_REQUEST", "Malformed request body: expected a JSON object")
    return Args(body, from_query=False, path=path)


def _call(handler: Handler, request: Request, args: Args) -> Any:
    state = request.app.state
    ctx = Context(state.tracker, mlflow_user(request.scope, state), state)
    return handler(ctx, args)


def route(router: APIRouter, method: str, path: str, *, raw_body: bool = False) -> Callable[[Handler], Handler]:
    """Register `handler` for `method path`; answers are JSON (or the handler's Response), failures
    MLflow's error shape. `raw_body`: the body is bytes (in `args.body`) and the arguments the query."""

    def register(handler: Handler) -> Handler:
        async def endpoint(request: Request) -> Response:
            try:
                args = await _args(request, raw_body)
                result = await run_in_threadpool(_call, handler, request, args)
            except Exception as exc:  # noqa: BLE001 - every failure leaves in MLflow's shape
                return response(translated(exc))
            return result if isinstance(result, Response) else FastJSON(result)

        endpoint.__name__ = f"mlflow_{handler.__name__}"
        router.add_api_route(path, endpoint, methods=[method], include_in_schema=False)
        return handler

    return register
