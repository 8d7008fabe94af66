"""search_iterations over REST: `POST /iteration/search` (server/routes/search.py)."""

from __future__ import annotations

from collections.abc import Sequence

from ..tracker.records import Iteration, IterationPage, from_dict
from ..tracker.search_grammar import (
    DEFAULT_MAX_RESULTS,
    ITERATIONS,
    check_filter_text,
    check_max_results,
    checked_experiment_ids,
    checked_order_by,
    decode_page_token,
    parse_filter,
    parse_order_by,
)
from .transport import RemoteBase


class SearchMixin(RemoteBase):
    def search_iterations(
        self,
        experiment_ids: int | Sequence[int],
        filter: str = "",  # noqa: A002 - MLflow's name for it
        order_by: Sequence[str] = (),
        max_results: int = DEFAULT_MAX_RESULTS,
        page_token: str | None = None,
    ) -> IterationPage:
        """The iterations of these experiments that match `filter`, ordered by `order_by` then id, one page
        (see the Tracker protocol). The filter is read here first, so a bad one is refused before sending."""
        ids = checked_experiment_ids(experiment_ids)
        text = check_filter_text(filter)
        orders = checked_order_by(order_by)
        parse_filter(text, ITERATIONS)
        parse_order_by(orders, ITERATIONS)
        decode_page_token(page_token)
        body = {
            "experiment_ids": ids, "filter": text, "order_by": orders,
            "max_results": check_max_results(max_results), "page_token": page_token,
        }
        data = self._call("POST", "/iteration/search", body=body)
        return IterationPage([from_dict(Iteration, row) for row in data["data"]], data.get("next_page_token"))
