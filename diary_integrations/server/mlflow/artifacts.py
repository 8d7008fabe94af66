"""MLflow's artifact proxy, `/api/2.0/mlflow-artifacts/artifacts/...`, over diary's resources.

A run's artifact URI is `mlflow-artifacts:/<experiment id>/<run id>/artifacts`, so the client PUTs and
GETs `<experiment id>/<path>`: the file is a resource of that experiment named `<path>` (e.g.
`7/artifacts/model/MLmodel`), readable through diary's own `/resource/...` routes too. A PUT of a path
that exists replaces its bytes (a retried upload leaves one resource); listing shows a directory's
files and sub-directories, as MLflow's listing does; DELETE removes a file or a whole directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

from fastapi import APIRouter, Response
from sqlalchemy import select

from ...tracker import schema as t
from ...tracker.database import read_transaction
from ...tracker.records import Experiment
from ..permissions import Action
from . import store
from .endpoint import Args, Context, route
from .errors import MlflowError, invalid

router = APIRouter()
r = t.resources
MAX_PATH = 250
DESCRIPTION = "MLflow artifact"


def _split(path: str) -> tuple[str, str]:
    """(experiment id text, path inside the experiment), refusing paths that climb or are absolute."""
    path = path.strip("/")
    parts = path.split("/")
    if not path or any(part in ("", ".", "..") for part in parts) or "\\" in path or "\0" in path:
        raise invalid(f"Invalid artifact path {path[:100]!r}: use a relative path without '..' or empty parts")
    rest = "/".join(parts[1:])
    if len(rest) > MAX_PATH:
        raise invalid(f"Artifact path has length {len(rest)}, over the limit of {MAX_PATH}")
    return parts[0], rest


def checked_path(path: str) -> None:
    """A path inside a run's or a logged model's artifacts: the proxy's rule (no '..', no empty parts),
    refused in MLflow's words ("Invalid path", which its clients and tests compare)."""
    try:
        _split(f"0/{path}")
    except MlflowError:
        raise invalid("Invalid path") from None


def _experiment(ctx: Context, text: str, action: Action) -> Experiment:
    return store.experiment(ctx, text, action)


def _resource_id(ctx: Context, experiment_id: int, name: str) -> int | None:
    with read_transaction(ctx.tracker.engine) as conn:
        return conn.execute(
            select(r.c.id).where(r.c.experiment_id == experiment_id, r.c.name == name).order_by(r.c.id).limit(1)
        ).scalar()


def put(ctx: Context, experiment_id: int, name: str, data: bytes) -> None:
    """Store one file as the experiment's resource `name` (a repeated upload replaces its bytes)."""
    existing = _resource_id(ctx, experiment_id, name)
    if existing is None:
        ctx.tracker.create_resource(experiment_id, name, data, description=DESCRIPTION)
    else:  # a retried or repeated upload replaces the bytes, as a file store does
        ctx.tracker.update_resource(existing, data=data)


def read(ctx: Context, experiment_id: int, name: str) -> bytes | None:
    existing = _resource_id(ctx, experiment_id, name) if name else None
    return None if existing is None else ctx.tracker.get_resource_data(existing)


@route(router, "PUT", "/artifacts/{artifact_path:path}", raw_body=True)
def upload(ctx: Context, args: Args) -> dict[str, Any]:
    experiment_text, name = _split(args.path.get("artifact_path", ""))
    if not name:
        raise invalid("Invalid artifact path: a file path inside the experiment is required")
    found = _experiment(ctx, experiment_text, Action.CREATE)
    put(ctx, found.id, name, bytes(args.body))
    return {}


@route(router, "GET", "/artifacts/{artifact_path:path}")
def download(ctx: Context, args: Args) -> Response:
    experiment_text, name = _split(args.path.get("artifact_path", ""))
    found = _experiment(ctx, experiment_text, Action.READ)
    data = read(ctx, found.id, name)
    if data is None:
        raise MlflowError("RESOURCE_DOES_NOT_EXIST", f"No artifact at path {name!r}")
    return Response(data, media_type="application/octet-stream")


def children(ctx: Context, experiment_id: int, directory: str) -> list[dict[str, Any]]:
    prefix = f"{directory}/" if directory else ""
    stmt = select(r.c.name, r.c.size_bytes).where(r.c.experiment_id == experiment_id)
    if prefix:
        stmt = stmt.where(r.c.name.startswith(prefix, autoescape=True))
    files: dict[str, dict[str, Any]] = {}
    with read_transaction(ctx.tracker.engine) as conn:
        for name, size in conn.execute(stmt):
            head, sep, _ = name[len(prefix) :].partition("/")
            if sep:
                files.setdefault(head, {"path": head, "is_dir": True})
            else:
                files[head] = {"path": head, "is_dir": False, "file_size": size}
    return [files[k] for k in sorted(files)]


@route(router, "GET", "/artifacts")
def listing(ctx: Context, args: Args) -> dict[str, Any]:
    path = (args.text("path") or "").strip("/")
    if not path:
        return {"files": []}
    experiment_text, directory = _split(path)
    found = _experiment(ctx, experiment_text, Action.READ)
    return {"files": children(ctx, found.id, directory)}


@route(router, "DELETE", "/artifacts/{artifact_path:path}")
def remove(ctx: Context, args: Args) -> dict[str, Any]:
    experiment_text, name = _split(args.path.get("artifact_path", ""))
    found = _experiment(ctx, experiment_text, Action.DELETE)
    with read_transaction(ctx.tracker.engine) as conn:
        stmt = select(r.c.id).where(r.c.experiment_id == found.id)
        if name:
            stmt = stmt.where((r.c.name == name) | r.c.name.startswith(f"{name}/", autoescape=True))
        ids = list(conn.execute(stmt).scalars())
    for resource_id in ids:  # gone already is done already: a retried delete succeeds
        ctx.tracker.delete_resource(resource_id)
    return {}


def run_listing(ctx: Context, args: Args) -> dict[str, Any]:
    """A run's artifacts under `path` (MLflow's `artifacts/list`): paths from the run's artifact root, as
    MLflow lists them (`dir/file.txt`), directories without a size."""
    run_text = args.text("run_id") or args.text("run_uuid")
    if not run_text:
        raise invalid("Missing value for required parameter 'run_id'.")
    ref = store.run(ctx, run_text, Action.READ)
    path = (args.text("path") or "").strip("/")
    if path:
        checked_path(path)
    with read_transaction(ctx.tracker.engine) as conn:
        (run,) = store.runs_json(conn, [ref.id])
    prefix = f"{path}/" if path else ""
    root_uri = run["info"]["artifact_uri"]
    folder = local_folder(ctx, root_uri)
    if folder is not None:
        files = local_children(folder / path if path else folder)
    else:
        files = children(ctx, ref.experiment_id, f"{ref.id}/artifacts/{path}".rstrip("/"))
    return {"root_uri": root_uri, "files": [{**f, "path": prefix + f["path"]} for f in files]}


def local_folder(ctx: Context, uri: str) -> Path | None:
    """The local folder of a `file://` artifact URI under the server's MLflow artifact root (there MLflow's
    clients write the files themselves, and the server lists them as MLflow's does); None for any other
    URI: a location outside that root is not the server's to read."""
    root = getattr(ctx.state.settings, "mlflow_artifact_root", None)
    if not root or not uri.startswith("file:") or not root.startswith("file:"):
        return None
    folder = Path(url2pathname(urlparse(uri).path)).resolve()
    base = Path(url2pathname(urlparse(root).path)).resolve()
    return folder if folder.is_relative_to(base) else None


def local_children(folder: Path) -> list[dict[str, Any]]:
    """A local folder's entries as MLflow lists them (directories without a size); none if it is absent."""
    if not folder.is_dir():
        return []
    out = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.is_dir():
            out.append({"path": entry.name, "is_dir": True})
        else:
            out.append({"path": entry.name, "is_dir": False, "file_size": entry.stat().st_size})
    return out


# Under the tracking prefixes (`/api/2.0/mlflow/artifacts/list`), not the proxy's.
run_router = APIRouter()
route(run_router, "GET", "/artifacts/list")(run_listing)
