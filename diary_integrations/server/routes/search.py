"""/iteration/search: `Tracker.search_iterations` over REST (the grammar in tracker/search_grammar.py).

A POST, since a filter and a list of experiments do not fit a URL well. Every experiment named must be
readable (an unknown one is a 404, as for single reads); a filter that cannot be read is a 422 naming the
token and its position."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from pydantic import Field, StrictInt, StrictStr

from ...tracker.records import to_dict
from ...tracker.search_grammar import DEFAULT_MAX_RESULTS, MAX_FILTER_LENGTH, MAX_RESULTS
from ..bodies import RequestBody
from ..deps import Me, Tracker
from ..permissions import Action, authorize
from ..responses import MAX_INT64, FastJSON

router = APIRouter(tags=["iterations"])


class SearchQuery(RequestBody):
    experiment_ids: list[Annotated[StrictInt, Field(ge=1, le=MAX_INT64)]] = Field(min_length=1, max_length=1000)
    filter: StrictStr = Field("", max_length=MAX_FILTER_LENGTH, description="MLflow's grammar, e.g. "
                              "\"params.optimizer = 'adam' and metrics.val_loss < 0.3\"")
    order_by: list[Annotated[StrictStr, Field(max_length=1000)]] = Field(default_factory=list, max_length=20)
    max_results: StrictInt = Field(DEFAULT_MAX_RESULTS, ge=1, le=MAX_RESULTS)
    page_token: StrictStr | None = Field(None, max_length=200)


@router.post("/iteration/search")
def search_iterations(body: SearchQuery, tracker: Tracker, me: Me) -> FastJSON:
    """`{"data": [iteration, ...], "next_page_token": str | null}`: the matching iterations of these
    experiments, ordered by `order_by` then id."""
    for experiment_id in dict.fromkeys(body.experiment_ids):
        authorize(tracker, me, "experiment", experiment_id, Action.READ)
    found = tracker.search_iterations(
        body.experiment_ids, body.filter, body.order_by, max_results=body.max_results, page_token=body.page_token
    )
    return FastJSON({"data": [to_dict(i) for i in found.iterations], "next_page_token": found.next_page_token})
