"""The registry as integrations and users reach it: register a file an iteration produced as a new
version of a named model, and load a model's weights back by stage, alias or version.

Everything here goes through the Tracker methods (create_model, create_resource, create_model_version,
...), so it works the same embedded and against a server.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .tracker.enums import ModelStage
from .tracker.errors import Conflict, Unprocessable
from .tracker.records import Model, ModelVersion
from .tracker.validation import check_id, check_name


def register_model_file(
    tracker: Any,
    iteration_id: int,
    data: bytes | str | os.PathLike[str],
    name: str,
    *,
    resource_name: str | None = None,
    description: str = "",
) -> ModelVersion:
    """Store `data` (bytes, or a file's bytes) as a resource of the iteration's experiment and register
    it as the next version of model `name` in the iteration's project (created if new)."""
    iteration_id = check_id(iteration_id, "iteration_id")
    name = check_name(name)
    iteration = tracker.get_iteration(iteration_id)
    if iteration is None:
        raise Unprocessable(f"iteration_id: iteration {iteration_id} does not exist", field="iteration_id")
    experiment = tracker.get_experiment(iteration.experiment_id)
    model = _model_named(tracker, experiment.project_id, name)
    if resource_name is None:
        resource_name = Path(data).name if isinstance(data, (str, os.PathLike)) else f"{name}.bin"
    resource = tracker.create_resource(experiment.id, resource_name, data, description=description)
    created = tracker.create_model_version(model.id, iteration_id, resource_id=resource.id, description=description)
    return tracker.get_model_version(created.id)


def register_checkpoint(
    tracker: Any,
    iteration_id: int,
    path: str | os.PathLike[str],
    name: str,
    *,
    stored: Mapping[tuple[str, int], int] | None = None,
) -> ModelVersion | None:
    """A Lightning checkpoint file registered as the next version of model `name` (DiaryLogger's
    `register_as`); None when there is no such file. `stored` maps the checkpoint files already kept
    as resources, by (resolved path, mtime in ns), to their resource: that resource is reused instead
    of uploading the file again, and a version of this iteration already pointing at it is returned
    rather than registered twice (trainer.test after trainer.fit ends the run a second time)."""
    file = Path(path) if path else None
    if file is None or not file.is_file():
        return None
    resource_id = (stored or {}).get((str(file.resolve()), file.stat().st_mtime_ns))
    if resource_id is None:
        return register_model_file(
            tracker, iteration_id, file, name, resource_name=file.name, description=f"Lightning checkpoint {file.name}"
        )
    iteration = tracker.get_iteration(check_id(iteration_id, "iteration_id"))
    if iteration is None:
        raise Unprocessable(f"iteration_id: iteration {iteration_id} does not exist", field="iteration_id")
    model = _model_named(tracker, tracker.get_experiment(iteration.experiment_id).project_id, check_name(name))
    for version in tracker.get_model_versions(model.id):
        if version.iteration_id == iteration.id and version.resource_id == resource_id:
            return version
    created = tracker.create_model_version(
        model.id, iteration.id, resource_id=resource_id, description=f"Lightning checkpoint {file.name}"
    )
    return tracker.get_model_version(created.id)


def serialize_estimator(estimator: Any) -> tuple[bytes, str]:
    """A fitted scikit-learn estimator as bytes, with skops (a format that loads without running code)
    when it is installed, else pickle; and the format's name."""
    try:
        import skops.io
    except ImportError:
        import pickle

        return pickle.dumps(estimator, protocol=pickle.HIGHEST_PROTOCOL), "pickle"
    return skops.io.dumps(estimator), "skops"


def register_estimator(tracker: Any, iteration_id: int, estimator: Any, name: str) -> ModelVersion:
    """A fitted estimator stored (skops or pickle, which the resource's name and description say) and
    registered as the next version of model `name` (DiaryCallback's `register_as`)."""
    data, form = serialize_estimator(estimator)
    suffix = ".skops" if form == "skops" else ".pkl"
    return register_model_file(
        tracker,
        iteration_id,
        data,
        name,
        resource_name=f"{name}{suffix}",
        description=f"{type(estimator).__name__}, serialized with {form}",
    )


def load_model(
    name: str,
    *,
    stage: ModelStage | int | str | None = None,
    alias: str | None = None,
    version: int | None = None,
    project: int | str | None = None,
    path: str | os.PathLike[str] | None = None,
    tracker: Any = None,
) -> bytes | Path:
    """The weights of a registered model: of its version at `stage` (the highest-numbered one there),
    the one `alias` points at, version `version`, or else its latest. The bytes, or with `path` the
    file written there (a directory gets the resource's name). `project` (id or name) is needed only
    when several projects have a model of this name."""
    if sum(x is not None for x in (stage, alias, version)) > 1:
        raise Unprocessable("give at most one of stage, alias and version", field="stage")
    if tracker is None:
        from .connection import get_tracker

        tracker = get_tracker()
    model = _find_model(tracker, check_name(name), project)
    chosen = _choose_version(tracker, model, stage=stage, alias=alias, version=version)
    if chosen.resource_id is None:
        raise Unprocessable(
            f"{model.name} version {chosen.version} has no resource holding its weights", field="resource_id"
        )
    data = tracker.get_resource_data(chosen.resource_id)
    if data is None:
        raise Unprocessable(
            f"{model.name} version {chosen.version}: resource {chosen.resource_id} is gone", field="resource_id"
        )
    if path is None:
        return data
    target = Path(path)
    if target.is_dir():
        resource = tracker.get_resource(chosen.resource_id)
        target = target / Path(resource.name).name
    target.write_bytes(data)
    return target


def _model_named(tracker: Any, project_id: int, name: str) -> Model:
    model = tracker.get_model_by_name(project_id, name)
    if model is not None:
        return model
    try:
        return tracker.get_model(tracker.create_model(project_id, name).id)
    except Conflict:  # another process registered the first version at the same moment
        return tracker.get_model_by_name(project_id, name)


def _find_model(tracker: Any, name: str, project: int | str | None) -> Model:
    if project is not None:
        found = tracker.get_project_by_name(project) if isinstance(project, str) else tracker.get_project(project)
        if found is None:
            raise Unprocessable(f"project: no project {project!r}", field="project")
        model = tracker.get_model_by_name(found.id, name)
        if model is None:
            raise Unprocessable(f"name: project {found.name!r} has no model named {name!r}", field="name")
        return model
    models = [m for p in tracker.get_projects() if (m := tracker.get_model_by_name(p.id, name)) is not None]
    if not models:
        raise Unprocessable(f"name: no model named {name!r}", field="name")
    if len(models) > 1:
        raise Unprocessable(
            f"name: {len(models)} projects have a model named {name!r}; say which with project=", field="project"
        )
    return models[0]


def _choose_version(tracker: Any, model: Model, *, stage: Any, alias: str | None, version: int | None) -> ModelVersion:
    if alias is not None:
        alias = check_name(alias, "alias")
        for a in tracker.get_model_aliases(model.id):
            if a.alias == alias:
                return tracker.get_model_version(a.model_version_id)
        raise Unprocessable(f"alias: model {model.name!r} has no alias {alias!r}", field="alias")
    versions = tracker.get_model_versions(model.id, stage=stage)
    if version is not None:
        version = check_id(version, "version")
        versions = [v for v in versions if v.version == version]
    if not versions:
        wanted = f" at stage {stage}" if stage is not None else f" numbered {version}" if version else ""
        raise Unprocessable(f"model {model.name!r} has no version{wanted}", field="stage" if stage else "version")
    return versions[-1]


# -- what `diary models` and `diary promote` show -------------------------------------------------


def models_overview(tracker: Any, project: int | str | None = None) -> list[dict[str, Any]]:
    """Every registered model (of one project with `project`), with its versions, stages and aliases,
    as plain data for `diary models --json`."""
    if project is None:
        projects = tracker.get_projects()
    else:
        found = tracker.get_project_by_name(project) if isinstance(project, str) else tracker.get_project(project)
        if found is None:
            raise Unprocessable(f"project: no project {project!r}", field="project")
        projects = [found]
    out = []
    for p in projects:
        for model in tracker.get_models(p.id):
            aliases: dict[int, list[str]] = {}
            for a in tracker.get_model_aliases(model.id):
                aliases.setdefault(a.model_version_id, []).append(a.alias)
            versions = [
                {
                    "id": v.id,
                    "version": v.version,
                    "stage": v.stage.name,
                    "aliases": aliases.get(v.id, []),
                    "iteration_id": v.iteration_id,
                    "resource_id": v.resource_id,
                }
                for v in tracker.get_model_versions(model.id)
            ]
            out.append(
                {
                    "project_id": p.id,
                    "project": p.name,
                    "model_id": model.id,
                    "name": model.name,
                    "description": model.description,
                    "versions": versions,
                }
            )
    return out


def format_models_overview(models: list[dict[str, Any]]) -> str:
    if not models:
        return "no registered models"
    lines = []
    for m in models:
        lines.append(f"{m['project']} / {m['name']} (#{m['model_id']}): {len(m['versions'])} version(s)")
        for v in m["versions"]:
            alias = f"  [{', '.join(v['aliases'])}]" if v["aliases"] else ""
            lines.append(f"  v{v['version']:<4} {v['stage']:<10} iteration #{v['iteration_id']}{alias}")
    return "\n".join(lines)


def promote(
    tracker: Any, name: str, version: int, stage: ModelStage | int | str, *, project: int | str | None = None
) -> ModelVersion:
    """Move version `version` of model `name` to `stage` (PRODUCTION archives the model's other
    PRODUCTION versions); the version as it is now."""
    model = _find_model(tracker, check_name(name), project)
    chosen = _choose_version(tracker, model, stage=None, alias=None, version=version)
    tracker.update_model_version(chosen.id, stage=stage)
    return tracker.get_model_version(chosen.id)
