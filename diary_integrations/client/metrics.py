"""Metric points and series, and the batched reads a sweep table needs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from enum import Enum
from typing import Any

import orjson

from ..tracker.enums import IterationStatus, Result
from ..tracker.errors import (
    Unprocessable,
)
from ..tracker.records import (
    Created,
    Iteration,
    Metric,
    decode_float,
    encode_float,
    from_dict,
)
from ..tracker.validation import (
    check_id,
    check_key,
    check_max_points,
    check_metric_value,
    check_step,
)
from .base import (
    MAX_BATCH_IDS,
    MAX_SERIES_BUDGET,
    METRIC_PAGE_SIZE,
    _batched_ids,
    _id_path,
    _point_rows,
    _when,
)
from .transport import RemoteBase


class MetricsMixin(RemoteBase):
    # -- metrics ----------------------------------------------------------------------------------

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
        body = {
            "key": check_key(key),
            "value": encode_float(check_metric_value(value)),
            "step": None if step is None else check_step(step),
            "recorded_at": _when(recorded_at, "recorded_at"),
        }
        path = f"/metric/iteration/{check_id(iteration_id, 'iteration_id')}"
        return self._created(self._call("POST", path, body=body), "metric")

    def log_metrics(
        self,
        iteration_id: int,
        metrics: Mapping[str, float],
        *,
        step: int | None = None,
        recorded_at: datetime | float | None = None,
    ) -> int:
        """Several keys at one step, in one transaction, all or nothing. Returns how many points were written."""
        iteration_id = check_id(iteration_id, "iteration_id")
        if not isinstance(metrics, Mapping):
            raise Unprocessable("metrics must be a mapping of key to number", field="metrics")
        items = [
            {"key": check_key(k, "metrics key"), "value": encode_float(check_metric_value(v, f"metrics[{k!r}]"))}
            for k, v in metrics.items()
        ]
        if not items:
            return 0
        body = {
            "metrics": items,
            "step": None if step is None else check_step(step),
            "recorded_at": _when(recorded_at, "recorded_at"),
        }
        return int(self._call("POST", f"/metric/iteration/{iteration_id}/batch", body=body)["count"])

    def log_metric_points(self, iteration_id: int, points: Iterable[Sequence[Any]]) -> int:
        """The bulk path: `(key, value, step)` or `(key, value, step, recorded_at)` tuples, any number of
        steps, written in one transaction on the server (points beyond the server's request-size limit
        go in several requests, one transaction each). Returns how many were written."""
        iteration_id = check_id(iteration_id, "iteration_id")
        rows = _point_rows(points)
        if not rows:
            return 0
        answers = self._call_in_parts("POST", f"/metric/iteration/{iteration_id}/batch", "points", rows)
        return sum(int(data["count"]) for data in answers)

    def log_metric_points_many(self, points_by_iteration: Mapping[int, Iterable[Sequence[Any]]]) -> int:
        """The bulk path for several iterations at once: `{iteration_id: points}` in one request and one
        transaction on the server, all or nothing (a set beyond the server's request-size limit goes in
        several requests, one transaction each; one iteration's points beyond it alone, as
        `log_metric_points` sends them). A server without the multi-iteration route gets one request
        per iteration. Returns how many were written."""
        if not isinstance(points_by_iteration, Mapping):
            raise Unprocessable("points_by_iteration must be a mapping of iteration id to points",
                                field="points_by_iteration")
        groups = []
        for iteration_id, points in points_by_iteration.items():
            iteration_id = check_id(iteration_id, "points_by_iteration key")
            try:
                rows = _point_rows(points)
            except Unprocessable as exc:
                where = f"iteration {iteration_id}"
                field = f"{where}.{exc.field}" if exc.field else where
                raise Unprocessable(f"{where}: {exc.message}", field=field) from None
            if rows:
                groups.append({"iteration_id": iteration_id, "points": rows})
        if not groups:
            return 0
        budget = self.body_budget()
        if not self._server_groups:
            return sum(self.log_metric_points(g["iteration_id"], g["points"]) for g in groups)
        # A group too large for one request on its own goes the single-iteration way, in parts.
        large = {id(g) for g in groups if len(orjson.dumps(g)) > budget // 2}
        alone = [g for g in groups if id(g) in large]
        together = [g for g in groups if id(g) not in large]
        written = sum(self.log_metric_points(g["iteration_id"], g["points"]) for g in alone)
        if together:
            answers = self._call_in_parts("POST", "/metric/batch", "iterations", together)
            written += sum(int(data["count"]) for data in answers)
        return written

    def get_metric(self, metric_id: int) -> Metric | None:
        return self._one(Metric, _id_path("/metric/{}", metric_id, "metric_id"))

    def get_metrics(
        self, iteration_id: int, *, key: str | None = None, limit: int | None = None, offset: int = 0
    ) -> list[Metric]:
        """An iteration's metric points ordered by step then id (one key's series with `key=`)."""
        path = _id_path("/metric/iteration/{}", iteration_id, "iteration_id")
        return self._list(
            Metric, path, limit, offset, page_size=METRIC_PAGE_SIZE, key=None if key is None else check_key(key)
        )

    def get_latest_metrics(self, iteration_ids: Sequence[int]) -> dict[int, dict[str, float]]:
        """For each iteration, each key's value at its highest step: what a sweep table shows."""
        ids, chunks = _batched_ids(iteration_ids)
        out: dict[int, dict[str, float]] = {i: {} for i in ids}
        for chunk in chunks:
            data = self._call("POST", "/metric/latest", body={"iteration_ids": chunk})
            out.update({int(i): {k: decode_float(v) for k, v in keys.items()} for i, keys in data.items()})
        return out

    def get_parameter_values(self, iteration_ids: Sequence[int]) -> dict[int, dict[str, str]]:
        """For each iteration, its parameters as `{key: value}` (`{}` for none or an unknown id), in one
        request per 1000 ids: what a sweep table shows."""
        ids, chunks = _batched_ids(iteration_ids)
        out: dict[int, dict[str, str]] = {i: {} for i in ids}
        for chunk in chunks:
            data = self._call("POST", "/parameter/values", body={"iteration_ids": chunk})
            out.update({int(i): keys for i, keys in data.items()})
        return out

    def get_metric_series(
        self, iteration_ids: Sequence[int], key: str, *, max_points: int | None = None
    ) -> dict[int, list[tuple[int, float]]]:
        """Each iteration's `(step, value)` series for one key, ordered by step; with `max_points`, longer
        series are cut into min/max buckets by the server's database, many iterations per request."""
        ids = [check_id(i, "iteration_ids") for i in iteration_ids]
        key = check_key(key)
        max_points = check_max_points(max_points)
        out: dict[int, list[tuple[int, float]]] = {i: [] for i in ids}
        if max_points is None:
            for chunk in _batched_ids(ids)[1]:
                self._whole_series(chunk, key, out)
            return out
        _, chunks = _batched_ids(ids, max(1, min(MAX_BATCH_IDS, MAX_SERIES_BUDGET // max_points)))
        for chunk in chunks:
            body = {"iteration_ids": chunk, "key": key, "max_points": max_points}
            self._decode_series(self._call("POST", "/metric/series", body=body), out)
        return out

    @staticmethod
    def _decode_series(data: dict[str, Any], out: dict[int, list[tuple[int, float]]]) -> None:
        for i, points in data.items():
            out[int(i)] = [(step, value if type(value) is float else decode_float(value)) for step, value in points]

    def _whole_series(self, ids: list[int], key: str, out: dict[int, list[tuple[int, float]]]) -> None:
        """Whole series, many iterations per request; ids whose series are too long together for one answer
        are asked for in halves, and a single one too long walks the paged route."""
        try:
            data = self._call("POST", "/metric/series", body={"iteration_ids": ids, "key": key, "max_points": None})
        except Unprocessable as exc:
            if exc.field != "max_points":
                raise
            if len(ids) == 1:
                out[ids[0]] = [(m.step, m.value) for m in self.get_metrics(ids[0], key=key)]
            else:
                self._whole_series(ids[: len(ids) // 2], key, out)
                self._whole_series(ids[len(ids) // 2 :], key, out)
            return
        self._decode_series(data, out)

    def get_best_child_iteration(
        self,
        iteration_id: int,
        key: str,
        *,
        mode: str = "max",
        status: Any = IterationStatus.SUCCEEDED,
    ) -> tuple[Iteration, float] | None:
        """The child with the best latest value of `key` (max or min), with that value; NaN never wins."""
        path = _id_path("/iteration/{}/best-child", iteration_id, "iteration_id")
        if not isinstance(mode, str):
            raise Unprocessable(f"mode must be 'max' or 'min', got {mode!r}", field="mode")
        wanted = "any" if status is None else status.name if isinstance(status, Enum) else str(status)
        if path is None:
            check_key(key)
            return None
        data = self._call("GET", path, params={"key": check_key(key), "mode": mode, "status": wanted}, missing=None)
        return None if data is None else (from_dict(Iteration, data["iteration"]), decode_float(data["value"]))

    def update_metric(self, metric_id: int, *, value: float | None = None, step: int | None = None) -> Result:
        body = {
            "value": None if value is None else encode_float(check_metric_value(value)),
            "step": None if step is None else check_step(step),
        }
        self._call(
            "PATCH",
            f"/metric/{check_id(metric_id, 'metric_id')}",
            body={k: v for k, v in body.items() if v is not None},
        )
        return Result.UPDATED

    def delete_metric(self, metric_id: int) -> bool:
        return self._deleted(_id_path("/metric/{}", metric_id, "metric_id"))
