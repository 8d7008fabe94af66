"""MLflow's model registry routes (`registered-models/*`, `model-versions/*`) over diary's own registry:
a registered model is a model of the MLflow project and its versions are diary's model versions, the
same rows `diary models` and the dashboard show (stages NONE/Staging/Production/Archived are diary's;
promoting to Production archives the other Production version, as diary does with
`archive_existing_versions` or not). Aliases are diary's aliases; a version's `source` is kept beside it.

diary's registry records which run produced a version: a version needs `run_id` (or a logged model
that has a source run). Registered-model and version tags are diary's `model_tag` and `model_version_tag`
rows (registry_tags.py), set on create or by the set-tag routes and matched by the search filters.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Response
from sqlalchemy import insert, select

from ...tracker import schema as t
from ...tracker.database import one_transaction, read_transaction
from ...tracker.enums import ModelStage
from ...tracker.errors import Conflict
from ..permissions import Action
from . import artifacts, registry_tags, sources, store
from .endpoint import Args, Context, route
from .errors import MlflowError, invalid
from .mapping import decode_token, encode_token, ms

router = APIRouter()
mv, lm = t.mlflow_model_versions, t.mlflow_logged_models
TO_STAGE = {"none": ModelStage.NO_STAGE, "staging": ModelStage.STAGING, "production": ModelStage.PRODUCTION,
            "archived": ModelStage.ARCHIVED}
FROM_STAGE = {ModelStage.NO_STAGE: "None", ModelStage.STAGING: "Staging", ModelStage.PRODUCTION: "Production",
              ModelStage.ARCHIVED: "Archived"}


def _model(ctx: Context, name: str | None, action: Action) -> Any:
    # Before anything was written there is no MLflow project, and so no model of that name.
    project = ctx.allow(action) if action is not Action.READ or ctx.project_id() is not None else None
    found = ctx.tracker.get_model_by_name(project, name) if name and project is not None else None
    if found is None:
        raise MlflowError("RESOURCE_DOES_NOT_EXIST", f"Registered Model with name={name} not found")
    return found


def _version(ctx: Context, args: Args, action: Action) -> tuple[Any, Any]:
    model = _model(ctx, args.text("name", required=True), action)
    number = args.integer("version", low=1, high=2**31 - 1)
    if number is None:
        raise invalid("Missing value for required parameter 'version'.")
    found = next((v for v in ctx.tracker.get_model_versions(model.id) if v.version == number), None)
    if found is None:
        raise MlflowError("RESOURCE_DOES_NOT_EXIST", f"Model Version (name={model.name}, version={number}) not found")
    return model, found


def _version_json(ctx: Context, model: Any, version: Any) -> dict[str, Any]:
    with read_transaction(ctx.tracker.engine) as conn:
        extra = conn.execute(select(mv).where(mv.c.model_version_id == version.id)).first()
    aliases = [a.alias for a in ctx.tracker.get_model_aliases(model.id) if a.version == version.version]
    out = {
        "name": model.name, "version": str(version.version), "creation_timestamp": ms(version.created_date),
        "last_updated_timestamp": ms(version.updated_date or version.created_date),
        "current_stage": FROM_STAGE[version.stage], "description": version.description,
        "source": extra.source if extra else f"runs:/{version.iteration_id}", "run_id": str(version.iteration_id),
        "status": "READY", "aliases": aliases,
        "tags": registry_tags.as_json(registry_tags.tags_of(ctx, registry_tags.VERSION, version.id)),
    }
    if extra is not None and extra.model_id:
        out["model_id"] = extra.model_id
    return out


def _model_json(ctx: Context, model: Any) -> dict[str, Any]:
    versions = ctx.tracker.get_model_versions(model.id)
    latest: dict[ModelStage, Any] = {}
    for v in versions:
        latest[v.stage] = v
    aliases = [{"alias": a.alias, "version": str(a.version)} for a in ctx.tracker.get_model_aliases(model.id)]
    return {
        "name": model.name, "creation_timestamp": ms(model.created_date),
        "last_updated_timestamp": ms(model.updated_date or model.created_date), "description": model.description,
        "latest_versions": [_version_json(ctx, model, v) for v in latest.values()], "aliases": aliases,
        "tags": registry_tags.as_json(registry_tags.tags_of(ctx, registry_tags.MODEL, model.id)),
    }


@route(router, "POST", "/registered-models/create")
def create_registered_model(ctx: Context, args: Args) -> dict[str, Any]:
    name = args.text("name", required=True) or ""
    tags = args.pairs("tags")
    for key, value in tags:
        registry_tags.check(key, value)
    project = ctx.allow(Action.CREATE)
    try:
        with one_transaction(ctx.tracker.engine) as conn:  # the model and its tags, or neither
            created = ctx.tracker.create_model(project, name, description=args.text("description") or "")
            registry_tags.write(conn, registry_tags.MODEL, created.id, tags)
    except Conflict:
        raise MlflowError("RESOURCE_ALREADY_EXISTS", f"Registered Model (name={name}) already exists.") from None
    return {"registered_model": _model_json(ctx, ctx.tracker.get_model(created.id))}


@route(router, "GET", "/registered-models/get")
def get_registered_model(ctx: Context, args: Args) -> dict[str, Any]:
    return {"registered_model": _model_json(ctx, _model(ctx, args.text("name", required=True), Action.READ))}


@route(router, "PATCH", "/registered-models/update")
def update_registered_model(ctx: Context, args: Args) -> dict[str, Any]:
    model = _model(ctx, args.text("name", required=True), Action.UPDATE)
    ctx.tracker.update_model(model.id, description=args.text("description") or "")
    return {"registered_model": _model_json(ctx, ctx.tracker.get_model(model.id))}


@route(router, "POST", "/registered-models/rename")
def rename_registered_model(ctx: Context, args: Args) -> dict[str, Any]:
    model = _model(ctx, args.text("name", required=True), Action.UPDATE)
    new_name = args.text("new_name", required=True) or ""
    try:
        ctx.tracker.update_model(model.id, name=new_name)
    except Conflict:
        raise MlflowError("RESOURCE_ALREADY_EXISTS", f"Registered Model (name={new_name}) already exists.") from None
    return {"registered_model": _model_json(ctx, ctx.tracker.get_model(model.id))}


@route(router, "DELETE", "/registered-models/delete")
def delete_registered_model(ctx: Context, args: Args) -> dict[str, Any]:
    ctx.tracker.delete_model(_model(ctx, args.text("name", required=True), Action.DELETE).id)
    return {}


_NAME_FILTER = re.compile(r"^\s*name\s*(=|!=|LIKE|ILIKE)\s*'((?:[^']|'')*)'\s*$", re.IGNORECASE)


def _split(filter_text: str | None) -> tuple[list[str], Any]:
    """A registry filter's clauses joined by AND: those not about tags, and a predicate on a tags dict
    for those that are (registry_tags.tags_predicate)."""
    others, tag_clauses = [], []
    for clause in re.split(r"\s+AND\s+", filter_text or "", flags=re.IGNORECASE):
        if not clause.strip():
            continue
        parsed = registry_tags.parse_tag_clause(clause)
        if parsed is None:
            others.append(clause)
        else:
            tag_clauses.append(parsed)
    return others, registry_tags.tags_predicate(tag_clauses)


def _name_matches(clauses: list[str], filter_text: str) -> Any:
    """MLflow's registered-model filter on names: clauses `name = 'x'`, `!=`, `LIKE`, `ILIKE`."""
    tests = [_name_clause(clause, filter_text) for clause in clauses]
    return lambda name: all(test(name) for test in tests)


def _name_clause(clause: str, filter_text: str) -> Any:
    found = _NAME_FILTER.match(clause)
    if found is None:
        raise invalid(f"Invalid filter {filter_text[:100]!r}: use name = '...', name != '...', name LIKE or ILIKE")
    op, value = found.group(1).upper(), found.group(2).replace("''", "'")
    if op in ("=", "!="):
        return (lambda name: name == value) if op == "=" else (lambda name: name != value)
    pattern = re.compile("^" + re.escape(value).replace("%", ".*").replace("_", ".") + "$",
                         re.IGNORECASE if op == "ILIKE" else 0)
    return lambda name: pattern.match(name) is not None


def _search_models(ctx: Context, args: Args) -> dict[str, Any]:
    limit = args.integer("max_results", default=100, low=1, high=1000) or 100
    clauses, keep_tags = _split(args.text("filter"))
    keep_name = _name_matches(clauses, args.text("filter") or "")
    offset = decode_token(args.text("page_token"))
    project = ctx.project_id()
    if project is None:
        return {"registered_models": []}
    ctx.allow(Action.READ)
    candidates = [mo for mo in ctx.tracker.get_models(project) if keep_name(mo.name)]
    with read_transaction(ctx.tracker.engine) as conn:
        tags = registry_tags.read(conn, registry_tags.MODEL, [mo.id for mo in candidates])
    models = sorted((mo for mo in candidates if keep_tags(tags[mo.id])), key=lambda mo: mo.name)
    answer: dict[str, Any] = {"registered_models": [_model_json(ctx, mo) for mo in models[offset:offset + limit]]}
    if offset + limit < len(models):
        answer["next_page_token"] = encode_token(offset + limit)
    return answer


route(router, "GET", "/registered-models/search")(_search_models)
route(router, "POST", "/registered-models/search")(_search_models)


@route(router, "POST", "/registered-models/get-latest-versions")
def get_latest_versions(ctx: Context, args: Args) -> dict[str, Any]:
    model = _model(ctx, args.text("name", required=True), Action.READ)
    stages = {s.lower() for s in args.strings("stages")}
    latest: dict[ModelStage, Any] = {}
    for v in ctx.tracker.get_model_versions(model.id):
        latest[v.stage] = v
    chosen = [v for stage, v in latest.items() if not stages or FROM_STAGE[stage].lower() in stages]
    return {"model_versions": [_version_json(ctx, model, v) for v in sorted(chosen, key=lambda v: v.version)]}


@route(router, "POST", "/model-versions/create")
def create_model_version(ctx: Context, args: Args) -> dict[str, Any]:
    model = _model(ctx, args.text("name", required=True), Action.CREATE)
    source = args.text("source", required=True) or ""
    tags = args.pairs("tags")
    for key, value in tags:
        registry_tags.check(key, value)
    run_text, model_id = args.text("run_id"), args.text("model_id")
    _check_source(ctx, source, run_text, model_id)
    if not run_text and model_id:
        with read_transaction(ctx.tracker.engine) as conn:
            source_run = conn.execute(select(lm.c.source_run_id).where(lm.c.model_id == model_id)).scalar()
        run_text = None if source_run is None else str(source_run)
    if not run_text:
        raise invalid("run_id: diary's registry records the run that produced each version; give run_id "
                      "(or a model_id whose logged model has a source run)")
    ref = store.run(ctx, run_text, Action.CREATE)
    with one_transaction(ctx.tracker.engine) as conn:
        created = ctx.tracker.create_model_version(model.id, ref.id, description=args.text("description") or "")
        conn.execute(insert(mv).values(model_version_id=created.id, source=source, model_id=model_id))
        registry_tags.write(conn, registry_tags.VERSION, created.id, tags)
    return {"model_version": _version_json(ctx, model, ctx.tracker.get_model_version(created.id))}


def _check_source(ctx: Context, source: str, run_text: str | None, model_id: str | None) -> None:
    """MLflow's rules for a version's source (sources.py): a local one inside its run's artifact folder
    (a logged model's files are always behind the artifact proxy here, never a local folder)."""
    if not sources.is_local(source):
        sources.check_remote(source)
    elif model_id:
        sources.check_local(source, "model_id", None)
    else:
        folder = None
        if run_text:
            ref = store.run(ctx, run_text, Action.READ)
            with read_transaction(ctx.tracker.engine) as conn:
                folder = store.runs_json(conn, [ref.id])[0]["info"]["artifact_uri"]
        sources.check_local(source, "run_id", folder)


@route(router, "GET", "/model-versions/get")
def get_model_version(ctx: Context, args: Args) -> dict[str, Any]:
    model, version = _version(ctx, args, Action.READ)
    return {"model_version": _version_json(ctx, model, version)}


@route(router, "PATCH", "/model-versions/update")
def update_model_version(ctx: Context, args: Args) -> dict[str, Any]:
    model, version = _version(ctx, args, Action.UPDATE)
    ctx.tracker.update_model_version(version.id, description=args.text("description") or "")
    return {"model_version": _version_json(ctx, model, ctx.tracker.get_model_version(version.id))}


@route(router, "DELETE", "/model-versions/delete")
def delete_model_version(ctx: Context, args: Args) -> dict[str, Any]:
    _, version = _version(ctx, args, Action.DELETE)
    ctx.tracker.delete_model_version(version.id)
    return {}


@route(router, "POST", "/model-versions/transition-stage")
def transition_stage(ctx: Context, args: Args) -> dict[str, Any]:
    model, version = _version(ctx, args, Action.UPDATE)
    text = args.text("stage", required=True) or ""
    stage = TO_STAGE.get(text.lower())
    if stage is None:
        raise invalid(f"Invalid Model Version stage: {text}. Value must be one of None, Staging, Production, Archived.")
    ctx.tracker.update_model_version(version.id, stage=stage)
    if args.data.get("archive_existing_versions") in (True, "true") and stage in (ModelStage.STAGING,
                                                                                    ModelStage.PRODUCTION):
        for other in ctx.tracker.get_model_versions(model.id, stage=stage):
            if other.id != version.id:
                ctx.tracker.update_model_version(other.id, stage=ModelStage.ARCHIVED)
    return {"model_version": _version_json(ctx, model, ctx.tracker.get_model_version(version.id))}


@route(router, "GET", "/model-versions/get-download-uri")
def get_download_uri(ctx: Context, args: Args) -> dict[str, Any]:
    model, version = _version(ctx, args, Action.READ)
    return {"artifact_uri": _version_json(ctx, model, version)["source"]}


_RUN_FILTER = re.compile(r"^\s*run_id\s*(=|!=)\s*'([^']*)'\s*$", re.IGNORECASE)
_RUN_IN_FILTER = re.compile(r"^\s*run_id\s+IN\s*\(([^)]*)\)\s*$", re.IGNORECASE)


def _version_filter(text: str | None) -> tuple[Any, Any]:
    """MLflow's model-version filter as far as diary's registry goes: `name` clauses (as for models),
    `run_id = '...'`, `!=` and `run_id IN ('a', 'b')`, and tag clauses, joined by AND; a (model, version)
    predicate and a predicate on the version's tags."""
    others, keep_tags = _split(text)
    name_clauses, run_tests = [], []
    for clause in others:
        single, many = _RUN_FILTER.match(clause), _RUN_IN_FILTER.match(clause)
        if single is not None:
            value, equal = single.group(2), single.group(1) == "="
            run_tests.append(lambda run, value=value, equal=equal: (run == value) is equal)
        elif many is not None:
            values = {v.strip().strip("'\"") for v in many.group(1).split(",") if v.strip()}
            run_tests.append(lambda run, values=values: run in values)
        else:
            name_clauses.append(clause)
    keep_name = _name_matches(name_clauses, text or "")
    return (lambda model, version: keep_name(model.name) and all(t(str(version.iteration_id)) for t in run_tests),
            keep_tags)


@route(router, "GET", "/model-versions/search")
def search_model_versions(ctx: Context, args: Args) -> dict[str, Any]:
    """The project's versions a filter keeps (`_version_filter`), newest first per model, paged."""
    keep, keep_tags = _version_filter(args.text("filter"))
    limit = args.integer("max_results", default=10_000, low=1, high=200_000) or 10_000
    offset = decode_token(args.text("page_token"))
    project = ctx.project_id()
    if project is None:
        return {"model_versions": []}
    ctx.allow(Action.READ)
    found = [(mo, v) for mo in ctx.tracker.get_models(project) for v in ctx.tracker.get_model_versions(mo.id)
             if keep(mo, v)]
    with read_transaction(ctx.tracker.engine) as conn:
        tags = registry_tags.read(conn, registry_tags.VERSION, [v.id for _, v in found])
    found = [(mo, v) for mo, v in found if keep_tags(tags[v.id])]
    found.sort(key=lambda pair: (pair[0].name, -pair[1].version))
    answer: dict[str, Any] = {"model_versions": [_version_json(ctx, mo, v) for mo, v in found[offset:offset + limit]]}
    if offset + limit < len(found):
        answer["next_page_token"] = encode_token(offset + limit)
    return answer


@route(router, "POST", "/registered-models/set-tag")
def set_model_tag(ctx: Context, args: Args) -> dict[str, Any]:
    model = _model(ctx, args.text("name", required=True), Action.UPDATE)
    key, value = args.text("key", required=True) or "", args.text("value", default="") or ""
    with one_transaction(ctx.tracker.engine) as conn:
        registry_tags.write(conn, registry_tags.MODEL, model.id, [(key, value)])
    return {}


@route(router, "DELETE", "/registered-models/delete-tag")
def delete_model_tag(ctx: Context, args: Args) -> dict[str, Any]:
    """A key that is not there is no error here (MLflow's registry says nothing either)."""
    model = _model(ctx, args.text("name", required=True), Action.UPDATE)
    with one_transaction(ctx.tracker.engine) as conn:
        store.remove_tag(conn, *registry_tags.MODEL, model.id, args.text("key", required=True) or "")
    return {}


@route(router, "POST", "/model-versions/set-tag")
def set_version_tag(ctx: Context, args: Args) -> dict[str, Any]:
    _, version = _version(ctx, args, Action.UPDATE)
    key, value = args.text("key", required=True) or "", args.text("value", default="") or ""
    with one_transaction(ctx.tracker.engine) as conn:
        registry_tags.write(conn, registry_tags.VERSION, version.id, [(key, value)])
    return {}


@route(router, "DELETE", "/model-versions/delete-tag")
def delete_version_tag(ctx: Context, args: Args) -> dict[str, Any]:
    _, version = _version(ctx, args, Action.UPDATE)
    with one_transaction(ctx.tracker.engine) as conn:
        store.remove_tag(conn, *registry_tags.VERSION, version.id, args.text("key", required=True) or "")
    return {}


@route(router, "POST", "/registered-models/alias")
def set_alias(ctx: Context, args: Args) -> dict[str, Any]:
    model = _model(ctx, args.text("name", required=True), Action.UPDATE)
    alias = args.text("alias", required=True) or ""
    number = args.integer("version", low=1, high=2**31 - 1)
    if number is None:
        raise invalid("Missing value for required parameter 'version'.")
    ctx.tracker.set_model_alias(model.id, alias, number)
    return {}


@route(router, "DELETE", "/registered-models/alias")
def delete_alias(ctx: Context, args: Args) -> dict[str, Any]:
    model = _model(ctx, args.text("name", required=True), Action.UPDATE)
    ctx.tracker.delete_model_alias(model.id, args.text("alias", required=True) or "")
    return {}


@route(router, "GET", "/registered-models/alias")
def get_by_alias(ctx: Context, args: Args) -> dict[str, Any]:
    model = _model(ctx, args.text("name", required=True), Action.READ)
    alias = args.text("alias", required=True) or ""
    found = next((a for a in ctx.tracker.get_model_aliases(model.id) if a.alias == alias), None)
    if found is None:
        raise MlflowError("RESOURCE_DOES_NOT_EXIST", f"Registered model alias {alias} not found.")
    return {"model_version": _version_json(ctx, model, ctx.tracker.get_model_version(found.model_version_id))}


def _version_artifact(ctx: Context, args: Args) -> Response:
    """`GET /model-versions/get-artifact?name=&version=&path=`: one file of a version's model (the UI's
    model version page), read where its source says: a run's artifacts (`runs:/<run>/<dir>`), a logged
    model's (`models:/<model id>`), or the artifact proxy (`mlflow-artifacts:/<experiment>/<dir>`)."""
    path = (args.text("path", required=True) or "").strip("/")
    artifacts.checked_path(path)
    model, version = _version(ctx, args, Action.READ)
    source = _version_json(ctx, model, version)["source"]
    experiment_id, name = None, None
    if source.startswith("runs:/"):
        run_text, _, inside = source[len("runs:/"):].strip("/").partition("/")
        ref = store.run(ctx, run_text, Action.READ)
        experiment_id, name = ref.experiment_id, "/".join(p for p in (f"{ref.id}/artifacts", inside, path) if p)
    elif source.startswith("models:/"):
        model_id = source[len("models:/"):].strip("/")
        with read_transaction(ctx.tracker.engine) as conn:
            experiment_id = conn.execute(select(lm.c.experiment_id).where(lm.c.model_id == model_id)).scalar()
        name = f"models/{model_id}/artifacts/{path}"
    elif source.startswith("mlflow-artifacts:/"):
        head, _, inside = source[len("mlflow-artifacts:/"):].strip("/").partition("/")
        experiment_id, name = store.experiment(ctx, head, Action.READ).id, "/".join(p for p in (inside, path) if p)
    data = None if experiment_id is None or name is None else artifacts.read(ctx, experiment_id, name)
    if data is None:
        raise MlflowError("RESOURCE_DOES_NOT_EXIST", f"No artifact at path {path[:100]!r} of model version "
                          f"(name={model.name}, version={version.version})")
    return Response(data, media_type="application/octet-stream")


# The UI's route, outside the prefixes (MLflow's tests call it with a doubled slash, which Flask accepts).
version_artifact_router = APIRouter()
for _path in ("/model-versions/get-artifact", "//model-versions/get-artifact"):
    route(version_artifact_router, "GET", _path)(_version_artifact)
