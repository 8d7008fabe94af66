"""MLflow's tracking REST API on `diary server`: stock MLflow clients (the fluent API, MlflowClient,
Lightning's MLFlowLogger, autologging) log into diary's experiments and iteration trees unchanged.

Routes are split by entity (experiments, runs, metrics, artifacts) and served under both prefixes the
MLflow client and UI use; `mapping` says how MLflow's entities become diary's, `errors` gives MLflow's
error shape. Anything else under the prefixes is MLflow's ENDPOINT_NOT_FOUND.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request

from . import ajax, artifacts, experiments, graphql_api, metrics, models, registry, runs
from .errors import MlflowError, response

PREFIXES = ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow")
ARTIFACTS_PREFIX = "/api/2.0/mlflow-artifacts"
ALL_PREFIXES = (*PREFIXES, ARTIFACTS_PREFIX, "/ajax-api/2.0/mlflow-artifacts")


GET_ARTIFACT = "/get-artifact"  # the UI's download of one run artifact, outside the prefixes
GRAPHQL = "/graphql"  # the UI's GraphQL endpoint, outside the prefixes too
VERSION_ARTIFACT = ("/model-versions/get-artifact", "//model-versions/get-artifact")


def is_mlflow_path(path: str) -> bool:
    if path in (GET_ARTIFACT, GRAPHQL, *VERSION_ARTIFACT):
        return True
    return any(path == p or path.startswith(p + "/") for p in ALL_PREFIXES)


def _not_found() -> APIRouter:
    router = APIRouter()

    async def unknown(request: Request) -> object:
        return response(MlflowError("ENDPOINT_NOT_FOUND", f"No MLflow endpoint {request.method} {request.url.path}"))

    router.add_api_route(
        "/{rest:path}", unknown, methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False
    )
    return router


def mount_mlflow(app: FastAPI) -> None:
    for prefix in PREFIXES:
        for module in (experiments, runs, metrics, models, ajax, registry):
            app.include_router(module.router, prefix=prefix)
        app.include_router(artifacts.run_router, prefix=prefix)
    app.include_router(ajax.get_artifact_router)
    app.include_router(graphql_api.router)
    app.include_router(registry.version_artifact_router)
    for prefix in (ARTIFACTS_PREFIX, "/ajax-api/2.0/mlflow-artifacts"):
        app.include_router(artifacts.router, prefix=prefix)
    for prefix in ALL_PREFIXES:  # last: only what no route above took
        app.include_router(_not_found(), prefix=prefix)


__all__ = ["mount_mlflow", "is_mlflow_path"]
