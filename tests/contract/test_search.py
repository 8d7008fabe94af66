"""Contract: `search_iterations` on every tracker kind gives what the grammar means, evaluated here in
Python (`search_grammar.matches`, the MLflow API's evaluator) over the same seeded random tree read back
with plain get_* calls; hypothesis generates the filters and orders. Bad filters name token and position."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from diary_integrations import ExperimentStatus, IterationStatus, Unprocessable
from diary_integrations.tracker.records import IterationEnding, NewIteration
from diary_integrations.tracker.search_grammar import (
    ATTRIBUTE,
    ITERATIONS,
    METRIC,
    PARAM,
    Key,
    matches,
    parse_filter,
    parse_order_by,
)

OPTIMIZERS = ["adam", "Adam", "sgd", "rms_prop", "a%b"]
LIKES = ["ad%", "A%", "%o%", "_gd", "rms_%", "%", "a%b", "ADAM", "%P"]
STATUSES = [IterationStatus.SUCCEEDED, IterationStatus.FAILED, IterationStatus.KILLED]


@dataclass
class Tree:
    experiments: list[int]
    root: int
    rows: dict[int, dict[str, Any]]  # iteration id -> every searchable value, read back with get_* calls


def _children(rng: random.Random, n: int) -> list[NewIteration]:
    out = []
    for _ in range(n):
        params: dict[str, Any] = {"opt": rng.choice(OPTIMIZERS), "lr": rng.choice(["0.1", "0.01", "0.001"])}
        if rng.random() < 0.2:
            del params["opt"]
        if rng.random() < 0.5:
            params["layers"] = rng.randint(1, 4)
        out.append(NewIteration(parameters=params, name=f"trial-{rng.randint(0, 30)}"))
    return out


def _finish(tracker: Any, rng: random.Random, ids: list[int]) -> None:
    """Metrics for most (some NaN, several steps, the latest at the highest step), tags, and an end for
    all but a few (which stay RUNNING)."""
    endings = []
    for i in ids:
        points = []
        if rng.random() < 0.85:
            for step in range(rng.randint(1, 3)):
                value = math.nan if rng.random() < 0.1 else round(rng.uniform(0, 1), 2)
                points.append(("loss", value, step))
        if rng.random() < 0.6:
            points.append(("acc", rng.choice([0.5, 0.75, 0.9]), 0))
        if points:
            tracker.log_metric_points(i, points)
        if rng.random() < 0.5:
            tracker.add_tag("iteration", i, f"group={rng.choice('ab')}")
        if rng.random() < 0.2:
            tracker.add_tag("iteration", i, "baseline")
        if rng.random() < 0.9:
            endings.append(IterationEnding(i, rng.choices(STATUSES, weights=[6, 2, 1])[0]))
    tracker.end_iterations(endings)


def _seed_tree(tracker: Any, seed: int = 23) -> Tree:
    rng = random.Random(seed)
    project = tracker.create_project(f"search {seed}").id
    a = tracker.create_experiment(project, ExperimentStatus.IN_PROGRESS, "a").id
    b = tracker.create_experiment(project, ExperimentStatus.IN_PROGRESS, "b").id
    root = tracker.create_iteration(a, name="driver", parameters={"opt": "adam"}).id
    kids = tracker.create_iterations(a, _children(rng, 12), parent_iteration_id=root)
    grandkids = []
    for parent in kids[:3]:
        grandkids += tracker.create_iterations(a, _children(rng, 3), parent_iteration_id=parent)
    loose = tracker.create_iterations(a, _children(rng, 3)) + tracker.create_iterations(b, _children(rng, 5))
    _finish(tracker, rng, kids + grandkids + loose)
    return Tree([a, b], root, _read_back(tracker, [a, b]))


def _read_back(tracker: Any, experiments: list[int]) -> dict[int, dict[str, Any]]:
    iterations = [i for e in experiments for i in tracker.get_iterations(e)]
    ids = [i.id for i in iterations]
    params = tracker.get_parameter_values(ids)
    latest = tracker.get_latest_metrics(ids)
    parents = {i.id: i.parent_iteration_id for i in iterations}
    rows = {}
    for i in iterations:
        depth, up = 0, i.parent_iteration_id
        while up is not None:
            depth, up = depth + 1, parents[up]
        tags: dict[str, list[str]] = {}
        for tag in tracker.get_tags("iteration", i.id):
            key, _, value = tag.value.partition("=")
            tags.setdefault(key, []).append(value)
        rows[i.id] = {
            "iteration": i,
            ATTRIBUTE: {
                "id": i.id, "experiment_id": i.experiment_id, "name": i.name, "status": i.status.name,
                "created": i.created_date.timestamp(), "parent_iteration_id": i.parent_iteration_id,
                "is_leaf": int(i.id not in parents.values()), "depth": depth, "notes": i.notes,
                "error_message": i.error_message,
                "duration": None if i.end_date is None else (i.end_date - i.created_date).total_seconds(),
            },
            PARAM: params[i.id],
            # NaN is no value: it matches no comparison and sorts with the iterations that lack the key.
            METRIC: {k: v for k, v in latest[i.id].items() if v == v},
            "tags": tags,
        }
    return rows


def _holds(row: dict[str, Any], comparison: Any) -> bool:
    key = comparison.key
    if key.entity == "tag":
        values = row["tags"].get(key.key, [])
        if comparison.op in ("IS NULL", "IS NOT NULL"):
            return matches(comparison, values[0] if values else None)
        return any(matches(comparison, v) for v in values)
    return matches(comparison, _lookup(row, key))


def _lookup(row: dict[str, Any], key: Key) -> Any:
    if key.entity == "tag":
        values = row["tags"].get(key.key)
        return min(values) if values else None
    return row[key.entity].get(key.key)


def reference(tree: Tree, experiments: list[int], filter_text: str, order_by: list[str]) -> list[int]:
    """What the grammar means, in Python: filter, then order (absent values last), then id."""
    comparisons = parse_filter(filter_text, ITERATIONS)
    rows = [r for r in tree.rows.values() if r["iteration"].experiment_id in experiments]
    rows = [r for r in rows if all(_holds(r, c) for c in comparisons)]
    rows.sort(key=lambda r: r["iteration"].id)
    for order in reversed(parse_order_by(order_by, ITERATIONS)):
        present = [r for r in rows if _lookup(r, order.key) is not None]
        absent = [r for r in rows if _lookup(r, order.key) is None]
        present.sort(key=lambda r, k=order.key: _lookup(r, k), reverse=not order.ascending)
        rows = present + absent
    return [r["iteration"].id for r in rows]


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "\\'") + "'"


def clauses(tree: Tree) -> st.SearchStrategy[str]:
    ids = sorted(tree.rows)
    created = sorted(r[ATTRIBUTE]["created"] for r in tree.rows.values())
    midpoints = [(x + y) / 2 for x, y in zip(created, created[1:], strict=False) if y - x > 0.002]
    midpoints = midpoints or [created[0] - 1]
    numbers = st.sampled_from([0, 0.1, 0.25, 0.5, 0.75, 0.9, 1, -1, 0.13, 0.87])
    strings = st.sampled_from(OPTIMIZERS + ["0.1", "0.001", "2", "x"])
    op = st.sampled_from(["=", "!=", "<", "<=", ">", ">="])
    return st.one_of(
        st.builds(lambda k, o, v: f"metrics.{k} {o} {v}", st.sampled_from(["loss", "acc", "missing"]), op, numbers),
        st.builds(lambda k, o, v: f"params.{k} {o} {_quoted(v)}", st.sampled_from(["opt", "lr", "layers"]),
                  st.sampled_from(["=", "!="]), strings),
        st.builds(lambda k, o, v: f"params.{k} {o} {_quoted(v)}", st.sampled_from(["opt", "layers"]),
                  st.sampled_from(["LIKE", "ILIKE"]), st.sampled_from(LIKES)),
        st.builds(lambda k, o: f"params.{k} {o}", st.sampled_from(["opt", "layers"]),
                  st.sampled_from(["IS NULL", "IS NOT NULL"])),
        st.builds(lambda k, o, v: f"tags.{k} {o} {_quoted(v)}", st.sampled_from(["group", "baseline"]),
                  st.sampled_from(["=", "!=", "LIKE"]), st.sampled_from(["a", "b", "", "%"])),
        st.builds(lambda k, o: f"tags.{k} {o}", st.sampled_from(["group", "baseline"]),
                  st.sampled_from(["IS NULL", "IS NOT NULL"])),
        st.builds(lambda o, v: f"attributes.status {o} ({', '.join(map(_quoted, v))})",
                  st.sampled_from(["IN", "NOT IN"]),
                  st.lists(st.sampled_from(["RUNNING", "SUCCEEDED", "FAILED", "KILLED"]), min_size=1, max_size=3)),
        st.builds(lambda o, v: f"status {o} {_quoted(v)}", st.sampled_from(["=", "!=", "LIKE", "ILIKE"]),
                  st.sampled_from(["SUCCEEDED", "failed", "%ED", "K%"])),
        st.builds(lambda o, v: f"name {o} {_quoted(v)}", st.sampled_from(["=", "LIKE", "!="]),
                  st.sampled_from(["trial-1%", "trial-2", "driver", "%-1_"])),
        st.builds(lambda o, v: f"depth {o} {v}", op, st.sampled_from([0, 1, 2])),
        st.builds(lambda v: f"is_leaf = {v}", st.sampled_from(["true", "false", "1", "0"])),
        st.sampled_from([f"parent_iteration_id = {tree.root}", "parent_iteration_id IS NULL",
                         "parent_iteration_id IS NOT NULL", "duration IS NULL", "duration >= 0"]),
        st.builds(lambda o, v: f"attributes.id {o} {v}", op, st.sampled_from(ids)),
        st.builds(lambda o, v: f"created {o} {v!r}", st.sampled_from(["<", ">"]), st.sampled_from(midpoints)),
    )


ORDERS = [
    "metrics.loss", "metrics.loss DESC", "metrics.acc DESC", "params.opt", "params.lr DESC", "attributes.status",
    "depth DESC", "name", "created DESC", "tags.group", "is_leaf",
]


def test_search_matches_the_reference(tracker: Any) -> None:
    # One seeded tree per tracker kind (building it is most of the time), every question asked of it.
    tree = _seed_tree(tracker)
    queries = st.tuples(
        st.lists(clauses(tree), min_size=0, max_size=3).map(" and ".join),
        st.lists(st.sampled_from(ORDERS), max_size=2, unique=True),
        st.sampled_from([tree.experiments, tree.experiments[:1]]),
    )

    @settings(max_examples=50, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(queries)
    def check(query: tuple[str, list[str], list[int]]) -> None:
        filter_text, order_by, experiments = query
        page = tracker.search_iterations(experiments, filter_text, order_by)
        assert [i.id for i in page] == reference(tree, experiments, filter_text, order_by), (filter_text, order_by)
        assert page.next_page_token is None

    check()
    _user_question(tracker, tree)
    _pages(tracker, tree)


def _user_question(tracker: Any, tree: Tree) -> None:
    # The question: the SUCCEEDED children with a given optimiser and a low loss, best first.
    text = f"parent_iteration_id = {tree.root} and attributes.status = 'SUCCEEDED' and metrics.loss < 0.6"
    found = tracker.search_iterations(tree.experiments, text, ["metrics.loss ASC"])
    assert len(found) >= 2 and [i.id for i in found] == reference(tree, tree.experiments, text, ["metrics.loss ASC"])
    losses = [tree.rows[i.id][METRIC]["loss"] for i in found]
    assert losses == sorted(losses) and all(v < 0.6 for v in losses)
    adam = tracker.search_iterations(tree.experiments, text.replace("metrics.loss < 0.6", "params.opt ILIKE 'ADAM'"))
    assert len(adam) >= 1 and all(tree.rows[i.id][PARAM]["opt"].lower() == "adam" for i in adam)
    assert all(i.status is IterationStatus.SUCCEEDED and i.parent_iteration_id == tree.root for i in found)
    assert all(i == tracker.get_iteration(i.id) for i in found)  # the records are the tracker's own


def _pages(tracker: Any, tree: Tree) -> None:
    wanted = reference(tree, tree.experiments, "depth >= 1", ["metrics.loss DESC"])
    got, token, pages = [], None, 0
    while True:
        page = tracker.search_iterations(tree.experiments, "depth >= 1", ["metrics.loss DESC"], max_results=4,
                                         page_token=token)
        got += [i.id for i in page]
        pages += 1
        token = page.next_page_token
        if token is None:
            break
    assert got == wanted and pages == math.ceil(len(wanted) / 4)


BAD = [
    ("params.opt = 1", "'1'", 13),
    ("metrics.loss > 'a'", "\"'a'\"", 15),
    ("colour = 'red'", "colour", 0),
    ("params.opt = 'a' or depth = 1", "'or'", 17),
    ("depth ~ 1", "'~'", 6),
    ("depth =", "", 7),
    ("foo.bar = 1", "foo", 0),
    ("metrics.loss LIKE 'a'", "'LIKE'", 13),
    ("params.opt IN ('a')", "'IN'", 11),
    ("depth IS NULL", "'IS'", 6),
]


def test_bad_filters_are_named(tracker: Any, experiment_id: int) -> None:
    for text, token, position in BAD:
        with pytest.raises(Unprocessable) as caught:
            tracker.search_iterations([experiment_id], text)
        message = caught.value.message
        assert f"position {position}" in message and token.strip("'\"") in message, (text, message)
        assert caught.value.field == "filter"


def test_bad_arguments_are_named(tracker: Any, experiment_id: int) -> None:
    for kwargs, field in [
        ({"order_by": ["nonsense DESC"]}, "order_by"),
        ({"max_results": 0}, "max_results"),
        ({"page_token": "not a token"}, "page_token"),
    ]:
        with pytest.raises(Unprocessable) as caught:
            tracker.search_iterations([experiment_id], **kwargs)
        assert caught.value.field == field
    with pytest.raises(Unprocessable):
        tracker.search_iterations([], "")
    # An experiment that does not exist has no iterations, as in MLflow (even beyond what an id column holds).
    assert tracker.search_iterations([999_999, 2**40]).iterations == []


BAD_ORDERS = [
    ("metrics.loss DESCC", "DESCC", 13),
    ("params.opt ASC DESC", "DESC", 15),
    ("name  ascending", "ascending", 6),
    ("metrics.`val loss` DOWN", "DOWN", 19),
]


def test_bad_order_directions_are_named(tracker: Any, experiment_id: int) -> None:
    # A misspelt direction was read as part of the key ("loss DESCC"): a silent order by a key nobody has.
    for item, token, position in BAD_ORDERS:
        with pytest.raises(Unprocessable) as caught:
            tracker.search_iterations([experiment_id], "", [item])
        message = caught.value.message
        assert f"position {position}" in message and repr(token) in message, (item, message)
        assert caught.value.field == "order_by"
    # Directions in any case, and quoted keys with blanks, are still read.
    assert tracker.search_iterations([experiment_id], "", ["metrics.`val loss` desc", "name Asc"]).iterations == []
