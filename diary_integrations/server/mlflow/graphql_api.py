"""`POST /graphql` (and GET): the GraphQL endpoint MLflow's web UI reads runs, experiments and metric
histories through, over the same handlers as the REST routes (so the answers are the REST answers in
GraphQL's camelCase), with the schema of `graphql_schema`.

As MLflow's server: the answer is always `{"data": ..., "errors": [messages] | null}` with status 200
once the body is a query; a field MLflow's protobuf would leave unset reads as its default (`""`, `0`,
`false`, `[]`, an empty object); a NaN or infinite metric value is null (GraphQL's Float has neither);
a query is refused before it runs if it is deeper than 10, has more than 1,000 selections, or more than
10 root fields or aliases in one selection set (MLflow's limits, its messages). A failing field is null
with its message in `errors`; a bad request body is MALFORMED_REQUEST. Never a 500.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLResolveInfo,
    GraphQLScalarType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    StringValueNode,
    build_schema,
    execute,
    parse,
    validate,
)
from starlette.concurrency import run_in_threadpool

from . import ajax, artifacts, experiments, registry, runs
from .auth import mlflow_user
from .endpoint import Args, Context
from .errors import MlflowError, response, translated
from .graphql_schema import SDL

router = APIRouter()
MAX_DEPTH, MAX_SELECTIONS, MAX_ROOT_FIELDS, MAX_ALIASES = 10, 1000, 10, 10
MAX_QUERY = 1_000_000  # characters; a query is a few kB


# --- the schema --------------------------------------------------------------------------------------


def _parse_long(node: Any, _variables: Any = None) -> int:
    if isinstance(node, (IntValueNode, StringValueNode)):
        return _long(node.value)
    raise GraphQLError("LongString takes an integer or its text")


def _long(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise GraphQLError(f"LongString cannot represent {str(value)[:50]!r}") from None


@lru_cache(maxsize=1)
def schema() -> GraphQLSchema:
    built = build_schema(SDL)
    long = built.type_map["LongString"]
    assert isinstance(long, GraphQLScalarType)
    long.serialize = str  # type: ignore[method-assign]
    long.parse_value = _long  # type: ignore[method-assign]
    long.parse_literal = _parse_long  # type: ignore[method-assign]
    return built


# --- MLflow's query limits ---------------------------------------------------------------------------


def _fields(
    selection_set: SelectionSetNode, fragments: dict[str, FragmentDefinitionNode]
) -> tuple[list[FieldNode], int]:
    """The fields of one selection set, fragments flattened in, and how many carry an alias."""
    found, aliases, seen = [], 0, set()
    pending = list(selection_set.selections)
    while pending:
        node = pending.pop()
        if isinstance(node, FieldNode):
            found.append(node)
            aliases += node.alias is not None
        elif isinstance(node, InlineFragmentNode):
            pending.extend(node.selection_set.selections)
        elif isinstance(node, FragmentSpreadNode) and node.name.value not in seen:
            seen.add(node.name.value)  # a fragment that spreads itself is counted once
            fragment = fragments.get(node.name.value)
            if fragment is not None:
                pending.extend(fragment.selection_set.selections)
    return found, aliases


def too_big(document: DocumentNode) -> str | None:
    """Why MLflow's server would refuse this query before running it, or None."""
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    roots = selections = most_aliases = 0
    for operation in document.definitions:
        if not isinstance(operation, OperationDefinitionNode):
            continue
        stack = [(operation.selection_set, 1)]
        while stack:
            selection_set, depth = stack.pop()
            if depth > MAX_DEPTH:
                return f"Query exceeds maximum depth of {MAX_DEPTH}"
            fields, aliases = _fields(selection_set, fragments)
            most_aliases = max(most_aliases, aliases)
            for field in fields:
                roots += depth == 1
                selections += 1
                if selections > MAX_SELECTIONS:
                    return f"Query exceeds maximum total selections of {MAX_SELECTIONS}"
                if field.selection_set is not None:
                    stack.append((field.selection_set, depth + 1))
    for what, count, limit, variable in (
        ("root fields", roots, MAX_ROOT_FIELDS, "MLFLOW_SERVER_GRAPHQL_MAX_ROOT_FIELDS"),
        ("aliases", most_aliases, MAX_ALIASES, "MLFLOW_SERVER_GRAPHQL_MAX_ALIASES"),
    ):
        if count > limit:
            return (f"GraphQL queries should have at most {limit} {what}, got {count} {what}. "
                    f"(diary's limit; MLflow's server sets it with {variable}.)")
    return None


# --- resolving -----------------------------------------------------------------------------------------


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def _snake_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {_snake(k): _snake_keys(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_snake_keys(v) for v in value]
    return value


def _args(arguments: dict[str, Any]) -> Args:
    return Args(_snake_keys(arguments.get("input") or {}), from_query=False)


def _model_versions_of_run(ctx: Context, run: dict[str, Any]) -> list[dict[str, Any]]:
    run_id = run.get("info", {}).get("run_id", "")
    return registry.search_model_versions(ctx, Args({"filter": f"run_id = '{run_id}'"}, from_query=False))[
        "model_versions"]


def _experiment_of_run(ctx: Context, run: dict[str, Any]) -> dict[str, Any]:
    wanted = Args({"experiment_id": run.get("info", {}).get("experiment_id", "")}, from_query=False)
    return experiments.get_experiment(ctx, wanted)["experiment"]


ROOTS: dict[str, Any] = {
    "test": lambda ctx, arguments: {"output": arguments.get("inputString")},
    "testMutation": lambda ctx, arguments: {"output": arguments.get("inputString")},
    "mlflowGetExperiment": lambda ctx, arguments: experiments.get_experiment(ctx, _args(arguments)),
    "mlflowGetRun": lambda ctx, arguments: runs.get_run(ctx, _args(arguments)),
    "mlflowSearchRuns": lambda ctx, arguments: runs.search_runs(ctx, _args(arguments)),
    "mlflowGetMetricHistoryBulkInterval": lambda ctx, arguments: ajax.history_bulk_interval(ctx, _args(arguments)),
    "mlflowListArtifacts": lambda ctx, arguments: artifacts.run_listing(ctx, _args(arguments)),
    "mlflowSearchModelVersions": lambda ctx, arguments: registry.search_model_versions(ctx, _args(arguments)),
    "mlflowSearchDatasets": lambda ctx, arguments: ajax.search_datasets(ctx, _args(arguments)),
}
RUN_FIELDS = {"experiment": _experiment_of_run, "modelVersions": _model_versions_of_run}
SCALAR_DEFAULTS = {"String": "", "LongString": 0, "Int": 0, "Float": 0.0, "Boolean": False}


def _unset(field_type: Any) -> Any:
    """What a field MLflow's protobuf message leaves unset reads as."""
    if isinstance(field_type, GraphQLNonNull):
        field_type = field_type.of_type
    if isinstance(field_type, GraphQLList):
        return []
    if isinstance(field_type, GraphQLObjectType):
        return None if field_type.name == "ApiError" else {}
    if isinstance(field_type, GraphQLScalarType):
        return SCALAR_DEFAULTS.get(field_type.name)
    return None  # an enum: protobuf's 0 is none of MLflow's values


def resolve(source: Any, info: GraphQLResolveInfo, **arguments: Any) -> Any:
    """Every field: a root field calls its handler; others read the handler's answer (snake_case)."""
    ctx: Context = info.context
    if source is None:
        return ROOTS[info.field_name](ctx, arguments)
    if info.parent_type.name == "MlflowRunExtension" and info.field_name in RUN_FIELDS:
        return RUN_FIELDS[info.field_name](ctx, source)
    value = source.get(_snake(info.field_name)) if isinstance(source, dict) else None
    if info.field_name == "value" and info.return_type == info.schema.type_map["Float"]:
        if isinstance(value, str):  # MLflow's JSON spells NaN and the infinities as text
            value = float(value.replace("Infinity", "inf"))
        return None if isinstance(value, float) and not math.isfinite(value) else value
    return _unset(info.return_type) if value is None else value


def _message(error: GraphQLError) -> str:
    """A field's error as MLflow's answer lists it: the message (diary's own failures in MLflow's words)."""
    original = error.original_error
    if original is None or isinstance(original, GraphQLError):
        return error.message
    return translated(original).message


def run_query(ctx: Context, query: str, variables: Any, operation: str | None) -> dict[str, Any]:
    """MLflow's `{"data", "errors"}` for one query."""
    try:
        document = parse(query)
    except GraphQLError as exc:
        return {"data": None, "errors": [exc.message]}
    refused = too_big(document)
    if refused is not None:
        return {"data": None, "errors": [refused]}
    problems = validate(schema(), document)
    if problems:
        return {"data": None, "errors": [p.message for p in problems]}
    result = execute(schema(), document, context_value=ctx, variable_values=variables, operation_name=operation,
                     field_resolver=resolve)
    return {"data": result.data, "errors": [_message(e) for e in result.errors] if result.errors else None}


def _request_fields(data: Any) -> tuple[str, Any, str | None]:
    if not isinstance(data, dict):
        raise MlflowError("MALFORMED_REQUEST", "Malformed request body: expected a JSON object with 'query'")
    query, variables, operation = data.get("query"), data.get("variables"), data.get("operationName")
    if not isinstance(query, str) or not query.strip():
        raise MlflowError("MALFORMED_REQUEST", "Missing value for required parameter 'query': a GraphQL query text")
    if len(query) > MAX_QUERY:
        raise MlflowError("INVALID_PARAMETER_VALUE", f"query has length {len(query)}, over the limit of {MAX_QUERY}")
    if isinstance(variables, str):  # GET sends them as JSON text
        try:
            variables = orjson.loads(variables)
        except orjson.JSONDecodeError:
            raise MlflowError("MALFORMED_REQUEST", "variables: not JSON") from None
    if variables is not None and not isinstance(variables, dict):
        raise MlflowError("MALFORMED_REQUEST", "variables: expected a JSON object")
    if operation is not None and not isinstance(operation, str):
        raise MlflowError("MALFORMED_REQUEST", "operationName: expected a string")
    return query, variables, operation


def _answer(request: Request, data: Any) -> dict[str, Any]:
    state = request.app.state
    ctx = Context(state.tracker, mlflow_user(request.scope, state), state)
    return run_query(ctx, *_request_fields(data))


async def graphql_endpoint(request: Request) -> Response:
    try:
        if request.method == "GET":
            data: Any = dict(request.query_params)
        else:
            try:
                data = orjson.loads(await request.body())
            except orjson.JSONDecodeError as exc:
                raise MlflowError("MALFORMED_REQUEST", f"Malformed request body: not JSON ({exc})") from None
        answer = await run_in_threadpool(_answer, request, data)
    except Exception as exc:  # noqa: BLE001 - every failure leaves in MLflow's shape
        return response(translated(exc))
    return Response(orjson.dumps(answer), media_type="application/json")


router.add_api_route("/graphql", graphql_endpoint, methods=["GET", "POST"], include_in_schema=False)
