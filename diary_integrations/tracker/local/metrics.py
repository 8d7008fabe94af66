"""Metric series: single points, batches, the bulk path and batched reads."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    and_,
    cast,
    delete,
    func,
    select,
)

from .. import hotpath, latest
from .. import schema as t
from ..enums import IterationStatus, Result
from ..errors import Unprocessable
from ..metric_groups import PointGroup, group_rows, write_groups
from ..records import (
    Created,
    Iteration,
    Metric,
)
from ..statements import can_hold, update_row
from ..validation import (
    check_datetime,
    check_enum,
    check_id,
    check_key,
    check_max_points,
    check_metric_value,
    check_step,
)
from .base import (
    TrackerBase,
    _chunks,
    _iteration,
    _nan,
    _none_stored,
    _paged,
    _record,
    _same_point,
)


def latest_value(key: str) -> Any:
    """An iteration's latest value of `key` as a scalar subquery correlated with `iteration`: one primary-key
    seek in the latest-value table (tracker/latest.py)."""
    ml = t.metric_latest.alias("latest")
    return select(ml.c.value).where(ml.c.iteration_id == t.iterations.c.id, ml.c.key == key).scalar_subquery()


def best_child_statement(parent_id: int, key: str, mode: str, status: IterationStatus | None) -> Any:
    """The child of `parent_id` (in `status`, if given) with the highest or lowest latest `key`, and that
    value; ties go to the lowest id. The children come in value order from ix_metric_latest_parent_key_value
    (NULL, as NaN is stored, never wins), each joined to its row for the status: the first that has it is
    the answer, so a sweep of 100,000 children is read a few rows deep, not through every child."""
    it, ml = t.iterations, t.metric_latest
    stmt = (
        select(it, ml.c.value)
        .join_from(ml, it, it.c.id == ml.c.iteration_id)
        .where(ml.c.parent_iteration_id == parent_id, ml.c.key == key, ml.c.value.is_not(None))
    )
    if status is not None:
        stmt = stmt.where(it.c.status == int(status))
    best = ml.c.value.desc() if mode == "max" else ml.c.value.asc()
    return stmt.order_by(best, ml.c.iteration_id).limit(1)


# The batched reads of a sweep's table, as driver SQL: a sweep frame reads 10,000 iterations' rows, and
# SQLAlchemy's per-value result processing (FaithfulFloat, row objects) cost more than the query.
_LATEST_OF = "SELECT iteration_id, key, value FROM metric_latest WHERE iteration_id IN ({})"
_PARAMETERS_OF = "SELECT iteration_id, key, value FROM parameter WHERE iteration_id IN ({}) ORDER BY id"


def _rows_of(conn: Connection, template: str, ids: list[int]) -> Iterator[tuple[Any, ...]]:
    """The rows of `template` (one `IN ({})`) for `ids`, in chunks, as the driver's plain tuples."""
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    # PostgreSQL takes up to 65,535 parameters: a 10,000-child sweep is one round trip, not twelve.
    for chunk in _chunks(ids, 900 if mark == "?" else 30_000):
        cursor = conn.exec_driver_sql(template.format(", ".join([mark] * len(chunk))), tuple(chunk)).cursor
        yield from cursor.fetchall()


class MetricsMixin(TrackerBase):

    def create_metric(
        self,
        iteration_id: int,
        key: str,
        value: float,
        *,
        step: int | None = None,
        recorded_at: datetime | float | None = None,
    ) -> Created:
        """One metric point. Without `step`, the key's next step (0, 1, 2, ...)."""
        iteration_id = check_id(iteration_id, "iteration_id")
        when = time.time() if recorded_at is None else check_datetime(recorded_at, "recorded_at").timestamp()
        row = hotpath.single_row(iteration_id, key, value, step, when)
        with self._write() as conn:
            self._writable_iteration(conn, iteration_id)
            if row[3] is None:
                row[3] = hotpath.next_steps(conn, iteration_id, [row[1]])[row[1]]
            params = dict(zip(hotpath.COLUMNS, row, strict=True))
            new_id = conn.execute(hotpath.INSERT_ONE, params).inserted_primary_key[0]
            latest.record(conn, [tuple(row)])
        return Created(new_id, Result.CREATED)

    def log_metrics(
        self,
        iteration_id: int,
        metrics: Mapping[str, float],
        *,
        step: int | None = None,
        recorded_at: datetime | float | None = None,
    ) -> int:
        """Several keys at one step, in one transaction, all or nothing. Without `step`, each key takes
        its own next step. Returns how many points were written."""
        iteration_id = check_id(iteration_id, "iteration_id")
        if not isinstance(metrics, Mapping):
            raise Unprocessable("metrics must be a mapping of key to number", field="metrics")
        step = None if step is None else check_step(step)
        when = time.time() if recorded_at is None else check_datetime(recorded_at, "recorded_at").timestamp()
        values = {check_key(k, "metrics key"): check_metric_value(v, f"metrics[{k!r}]") for k, v in metrics.items()}
        if not values:
            return 0
        with self._write() as conn:
            self._writable_iteration(conn, iteration_id)
            steps = hotpath.next_steps(conn, iteration_id, list(values)) if step is None else None
            rows = [
                (iteration_id, k, v if v == v else None, step if steps is None else steps[k], when)
                for k, v in values.items()
            ]
            hotpath.insert_rows(conn, rows)
        return len(rows)

    def log_metric_points(self, iteration_id: int, points: Iterable[Sequence[Any]]) -> int:
        """The bulk path: `(key, value, step)` or `(key, value, step, recorded_at)` tuples, any number
        of steps, written with one executemany in one transaction. Returns how many were written."""
        iteration_id = check_id(iteration_id, "iteration_id")
        rows = hotpath.metric_rows(iteration_id, points)
        if not rows:
            return 0
        with self._write() as conn:
            self._writable_iteration(conn, iteration_id)
            hotpath.insert_rows(conn, rows)
        return len(rows)

    def log_metric_points_many(self, points_by_iteration: Mapping[int, Iterable[Sequence[Any]]]) -> int:
        """The bulk path for several iterations at once: `{iteration_id: points}` (points as for
        `log_metric_points`), written in one transaction, all or nothing (a missing or ended iteration
        refuses the whole batch, naming it). Returns how many were written."""
        if not isinstance(points_by_iteration, Mapping):
            raise Unprocessable("points_by_iteration must be a mapping of iteration id to points",
                                field="points_by_iteration")
        groups = []
        for iteration_id, points in points_by_iteration.items():
            iteration_id = check_id(iteration_id, "points_by_iteration key")
            groups.append(PointGroup(iteration_id, group_rows(iteration_id, points, f"iteration {iteration_id}")))
        if not any(g.rows for g in groups):
            return 0
        return sum(r.count for r in write_groups(self, groups))

    def get_metric(self, metric_id: int) -> Metric | None:
        return _record(Metric, self._fetch_one(t.metrics, metric_id, "metric_id"))

    def get_metrics(
        self, iteration_id: int, *, key: str | None = None, limit: int | None = None, offset: int = 0
    ) -> list[Metric]:
        """An iteration's metric points ordered by step then id (one key's series with `key=`)."""
        iteration_id = check_id(iteration_id, "iteration_id")
        m = t.metrics
        stmt = select(m).where(m.c.iteration_id == iteration_id)
        if key is not None:
            stmt = stmt.where(m.c.key == check_key(key))
        if not can_hold(m.c.iteration_id, iteration_id):
            return _none_stored(limit, offset)
        stmt = stmt.order_by(m.c.step, m.c.id)
        with self._read() as conn:
            return [_record(Metric, r) for r in conn.execute(_paged(stmt, limit, offset))]

    def get_latest_metrics(self, iteration_ids: Sequence[int]) -> dict[int, dict[str, float]]:
        """For each iteration, each key's value at its highest step: what a sweep table shows. Read from the
        latest-value table, one row per (iteration, key)."""
        ids = [check_id(i, "iteration_ids") for i in iteration_ids]
        out: dict[int, dict[str, float]] = {i: {} for i in ids}
        with self._read() as conn:
            # Ids beyond the column's range name nothing: they keep their empty entry.
            stored = [i for i in ids if can_hold(t.metric_latest.c.iteration_id, i)]
            for iteration_id, key, value in _rows_of(conn, _LATEST_OF, stored):
                out[iteration_id][key] = math.nan if value is None else value  # NaN is stored NULL
        return out

    def get_best_child_iteration(
        self,
        iteration_id: int,
        key: str,
        *,
        mode: str = "max",
        status: IterationStatus | int | None = IterationStatus.SUCCEEDED,
    ) -> tuple[Iteration, float] | None:
        """The child whose latest `key` value is highest (`mode="max"`) or lowest (`"min"`), with that
        value; among SUCCEEDED children by default (`status=None`: any). NaN never wins. None if no child
        has the metric."""
        iteration_id = check_id(iteration_id, "iteration_id")
        key = check_key(key)
        if mode not in ("max", "min"):
            raise Unprocessable(f"mode must be 'max' or 'min', got {mode!r}", field="mode")
        if not can_hold(t.iterations.c.parent_iteration_id, iteration_id):
            return None
        wanted = None if status is None else check_enum(status, IterationStatus, "status")
        stmt = best_child_statement(iteration_id, key, mode, wanted)
        with self._read() as conn:
            row = conn.execute(stmt).first()
        if row is None or row[-1] is None or row[-1] != row[-1]:  # the value reads NULL back as NaN
            return None
        return _iteration(row[:-1]), float(row[-1])

    def get_parameter_values(self, iteration_ids: Sequence[int]) -> dict[int, dict[str, str]]:
        """For each iteration, its parameters as `{key: value}`, in one query: what a sweep table shows."""
        ids = [check_id(i, "iteration_ids") for i in iteration_ids]
        out: dict[int, dict[str, str]] = {i: {} for i in ids}
        stored = [i for i in ids if can_hold(t.parameters.c.iteration_id, i)]
        with self._read() as conn:
            for iteration_id, key, value in _rows_of(conn, _PARAMETERS_OF, stored):
                out[iteration_id][key] = value
        return out

    def get_metric_series(
        self, iteration_ids: Sequence[int], key: str, *, max_points: int | None = None
    ) -> dict[int, list[tuple[int, float]]]:
        """Each iteration's `(step, value)` series for one key, ordered by step. With `max_points`, a longer
        series is cut into `max_points // 2` step buckets inside the database, each giving its lowest and
        highest value, so a chart keeps every peak and trough (NaN points of a bucketed series drop out)."""
        ids = [check_id(i, "iteration_ids") for i in iteration_ids]
        key = check_key(key)
        max_points = check_max_points(max_points)
        out: dict[int, list[tuple[int, float]]] = {i: [] for i in ids}
        m = t.metrics
        with self._read() as conn:
            for chunk in _chunks([i for i in ids if can_hold(m.c.iteration_id, i)]):
                where = and_(m.c.iteration_id.in_(chunk), m.c.key == key)
                small, large = list(chunk), {}
                if max_points is not None:
                    counted = (
                        select(m.c.iteration_id, func.count(), func.min(m.c.step), func.max(m.c.step))
                        .where(where)
                        .group_by(m.c.iteration_id)
                    )
                    for iteration_id, count, lo, hi in conn.execute(counted):
                        if count > max_points:
                            # Sweeps share a step range: one bucketing query per range, not per child.
                            large.setdefault((lo, hi), []).append(iteration_id)
                    small = sorted(set(chunk) - {i for ids_ in large.values() for i in ids_})
                if small:
                    raw = (
                        select(m.c.iteration_id, m.c.step, m.c.value)
                        .where(m.c.iteration_id.in_(small), m.c.key == key)
                        .order_by(m.c.iteration_id, m.c.step, m.c.id)
                    )
                    for row in conn.execute(raw):
                        out[row.iteration_id].append((row.step, row.value))
                for (lo, hi), ids_ in large.items():
                    self._bucketed_series(conn, ids_, key, lo, hi, int(max_points or 2) // 2, out)
        return out

    @staticmethod
    def _bucketed_series(
        conn: Connection,
        ids: list[int],
        key: str,
        lo: int,
        hi: int,
        buckets: int,
        out: dict[int, list[tuple[int, float]]],
    ) -> None:
        m = t.metrics
        # The range is a literal, not a join: PostgreSQL without fresh statistics plans a join to a
        # per-iteration aggregate as a nested loop over every point. BigInteger arithmetic, since
        # step * buckets overflows a 32-bit integer for long runs.
        offset = cast(m.c.step - lo, BigInteger) * buckets
        bucket = (offset // (hi - lo + 1)).label("bucket")
        stmt = (
            select(
                m.c.iteration_id,
                func.min(m.c.step).label("first_step"),
                func.max(m.c.step).label("last_step"),
                func.min(m.c.value).label("low"),
                func.max(m.c.value).label("high"),
                func.avg(m.c.value).label("mean"),
            )
            .where(m.c.iteration_id.in_(ids), m.c.key == key)
            .group_by(m.c.iteration_id, bucket)
            .order_by(m.c.iteration_id, "first_step")
        )
        rows: dict[int, list[Any]] = {}
        for row in conn.execute(stmt):
            rows.setdefault(row.iteration_id, []).append(row)
        for iteration_id, group in rows.items():
            series = out[iteration_id]
            for n, row in enumerate(group):
                # The extremes are placed at the bucket's edges, in the order the series runs there
                # (judged from the neighbouring buckets' means): the envelope is exact, a chart keeps
                # every peak and trough, and the line does not zigzag against the trend.
                before = group[max(n - 1, 0)].mean
                after = group[min(n + 1, len(group) - 1)].mean
                low, high = _nan(row.low), _nan(row.high)
                rising = before is not None and after is not None and after >= before
                points = [(row.first_step, low), (row.last_step, high)]
                if not rising:
                    points = [(row.first_step, high), (row.last_step, low)]
                if row.first_step == row.last_step or low == high:
                    points = [(row.first_step, low)]
                for point in points:
                    if not series or not _same_point(series[-1], point):
                        series.append(point)

    def update_metric(
        self, metric_id: int, *, value: float | None = None, step: int | None = None
    ) -> Result:
        metric_id = check_id(metric_id, "metric_id")
        values: dict[str, Any] = {}
        if value is not None:
            values["value"] = check_metric_value(value)
        if step is not None:
            values["step"] = check_step(step)
        with self._write() as conn:
            row = self._require(conn, t.metrics, metric_id, "metric_id")
            self._writable_iteration(conn, row.iteration_id)
            if values:
                update_row(conn, t.metrics, metric_id, values)
                latest.refresh(conn, row.iteration_id, row.key)
        return Result.UPDATED

    def delete_metric(self, metric_id: int) -> bool:
        metric_id = check_id(metric_id, "metric_id")
        if not can_hold(t.metrics.c.id, metric_id):
            return False
        m = t.metrics
        with self._write() as conn:
            row = conn.execute(select(m.c.iteration_id, m.c.key).where(m.c.id == metric_id)).first()
            if row is None:
                return False
            conn.execute(delete(m).where(m.c.id == metric_id))
            latest.refresh(conn, row.iteration_id, row.key)
        return True
