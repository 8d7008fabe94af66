"""The model registry: models of a project, their numbered versions, stages and aliases."""

from __future__ import annotations

from typing import Any

from ..tracker.enums import ModelStage, Result
from ..tracker.records import Created, Model, ModelAlias, ModelVersion, from_dict
from ..tracker.validation import check_enum, check_id, check_name, check_text
from .base import _UNSET, _enum_value, _id_path, _seg
from .transport import RemoteBase


class ModelsMixin(RemoteBase):
    # -- models -----------------------------------------------------------------------------------

    def create_model(self, project_id: int, name: str, *, description: str = "") -> Created:
        """A registered model in a project; its name is unique there (Conflict otherwise)."""
        body = {"name": name, "description": description}
        path = f"/model/project/{check_id(project_id, 'project_id')}"
        return self._created(self._call("POST", path, body=body), "model")

    def get_model(self, model_id: int) -> Model | None:
        return self._one(Model, _id_path("/model/{}", model_id, "model_id"))

    def get_model_by_name(self, project_id: int, name: str) -> Model | None:
        path = _id_path("/model/project/{}/by-name", project_id, "project_id")
        return self._one(Model, path, name=check_name(name))

    def get_models(self, project_id: int, *, limit: int | None = None, offset: int = 0) -> list[Model]:
        return self._list(Model, _id_path("/model/project/{}", project_id, "project_id"), limit, offset)

    def update_model(self, model_id: int, *, name: str | None = None, description: str | None = None) -> Result:
        body = {k: v for k, v in {"name": name, "description": description}.items() if v is not None}
        self._call("PATCH", f"/model/{check_id(model_id, 'model_id')}", body=body)
        return Result.UPDATED

    def delete_model(self, model_id: int) -> bool:
        """Deletes the model with its versions and aliases; the resources holding weights stay."""
        return self._deleted(_id_path("/model/{}", model_id, "model_id"))

    # -- versions ---------------------------------------------------------------------------------

    def create_model_version(
        self, model_id: int, iteration_id: int, *, resource_id: int | None = None, description: str = ""
    ) -> Created:
        """The model's next version, made by `iteration_id`, its weights in `resource_id`."""
        body = {
            "iteration_id": check_id(iteration_id, "iteration_id"),
            "resource_id": None if resource_id is None else check_id(resource_id, "resource_id"),
            "description": check_text(description, "description"),
        }
        path = f"/modelversion/model/{check_id(model_id, 'model_id')}"
        return self._created(self._call("POST", path, body=body), "modelversion")

    def get_model_version(self, model_version_id: int) -> ModelVersion | None:
        return self._one(ModelVersion, _id_path("/modelversion/{}", model_version_id, "model_version_id"))

    def get_model_versions(
        self,
        model_id: int,
        *,
        stage: ModelStage | int | str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[ModelVersion]:
        """A model's versions ordered by number (only those at `stage` when given)."""
        wanted = None if stage is None else check_enum(stage, ModelStage, "stage").name
        path = _id_path("/modelversion/model/{}", model_id, "model_id")
        return self._list(ModelVersion, path, limit, offset, stage=wanted)

    def update_model_version(
        self,
        model_version_id: int,
        *,
        stage: ModelStage | int | str | None = None,
        description: str | None = None,
        resource_id: int | None = _UNSET,
    ) -> Result:
        """Change a version's stage, description or resource; PRODUCTION archives the other PRODUCTION
        versions of the model in the same transaction on the server."""
        body: dict[str, Any] = {"stage": _enum_value(stage), "description": description}
        body = {k: v for k, v in body.items() if v is not None}
        if resource_id is not _UNSET:
            body["resource_id"] = None if resource_id is None else check_id(resource_id, "resource_id")
        self._call("PATCH", f"/modelversion/{check_id(model_version_id, 'model_version_id')}", body=body)
        return Result.UPDATED

    def delete_model_version(self, model_version_id: int) -> bool:
        return self._deleted(_id_path("/modelversion/{}", model_version_id, "model_version_id"))

    # -- aliases ----------------------------------------------------------------------------------

    def set_model_alias(self, model_id: int, alias: str, version: int) -> Result:
        """Point `alias` at the model's version `version` (CREATED), or move it there (UPDATED)."""
        path = f"/model/{check_id(model_id, 'model_id')}/alias/{_seg(check_name(alias, 'alias'))}"
        answer = self._call("PUT", path, body={"version": check_id(version, "version")})
        return Result(answer["message"])

    def get_model_aliases(self, model_id: int) -> list[ModelAlias]:
        path = _id_path("/model/{}/alias", model_id, "model_id")
        rows = [] if path is None else self._call("GET", path, missing=[])
        return [from_dict(ModelAlias, row) for row in rows]

    def delete_model_alias(self, model_id: int, alias: str) -> bool:
        path = _id_path("/model/{}/alias/", model_id, "model_id")
        return self._deleted(None if path is None else path + _seg(check_name(alias, "alias")))
