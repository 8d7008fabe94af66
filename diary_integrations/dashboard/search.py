"""The search box of the experiment and sweep pages: `search_iterations`' grammar, its errors in place.

The filter and order are read by the same parser the trackers use (tracker/search_grammar.py) before
anything is asked of the tracker, so a bad filter is shown on the page with its token marked where it
stands, and never reaches the database. On a sweep page the search is limited to the driver's children
by a clause the dashboard appends (`AND parent_iteration_id = N`) after the reader's own filter has been
read on its own, so every position the page shows is one in the text the reader typed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup, escape

from ..tracker.errors import DiaryError
from ..tracker.search_grammar import (
    ITERATIONS,
    METRIC,
    PARAM,
    check_filter_text,
    parse_filter,
    parse_order_by,
)

# Matches shown on an experiment page; a sweep page reads up to the grammar's page size.
EXPERIMENT_MATCHES = 200
SWEEP_MATCHES = 10_000


@dataclass
class Search:
    """What the reader asked (`text`, `order`) and what came of it: matching ids in order, or an error."""

    text: str = ""
    order: str = ""
    ids: list[int] | None = None  # None: no search asked, or it failed
    more: bool = False  # more matched than were read
    limit: int = 0
    error: str | None = None
    error_field: str = "filter"
    token: str = ""
    position: int | None = None
    params: list[str] = field(default_factory=list)  # keys the filter and order name: columns worth showing
    metrics: list[str] = field(default_factory=list)

    @property
    def asked(self) -> bool:
        return bool(self.text.strip() or self.order.strip())

    @property
    def order_items(self) -> list[str]:
        return [item.strip() for item in self.order.split(",") if item.strip()]

    def marked(self) -> Markup:
        """The text at fault with its token in a `<mark>`: where the parser stopped reading."""
        text = self.text if self.error_field == "filter" else self.order
        at = self.position if self.position is not None else -1
        if self.error_field != "filter" or not (0 <= at <= len(text)) or not text.startswith(self.token, at):
            at = text.find(self.token) if self.token else -1
        if at < 0:
            return Markup(escape(text))
        # An empty token (the filter ended too early) is marked as a caret where something was expected.
        token = escape(self.token) if self.token else Markup("&#8248;")
        return Markup(f"{escape(text[:at])}<mark>{token}</mark>{escape(text[at + len(self.token):])}")


def search(tracker: Any, experiment_id: int, text: str, order: str, *, parent_id: int | None = None,
           limit: int = EXPERIMENT_MATCHES) -> Search:
    """Run the reader's search over one experiment (a sweep's children when `parent_id` is given)."""
    found = Search(text=text or "", order=order or "", limit=limit)
    if not found.asked:
        return found
    try:
        comparisons = parse_filter(check_filter_text(found.text), ITERATIONS)
        orders = parse_order_by(found.order_items, ITERATIONS)
    except DiaryError as exc:  # a FilterError (token and position), or a filter that is not text
        return _failed(found, exc)
    keys = [c.key for c in comparisons] + [o.key for o in orders]
    found.params = list(dict.fromkeys(k.key for k in keys if k.entity == PARAM))
    found.metrics = list(dict.fromkeys(k.key for k in keys if k.entity == METRIC))
    query = found.text.strip()
    if parent_id is not None:
        within = f"parent_iteration_id = {int(parent_id)}"
        query = f"{query} AND {within}" if query else within
    try:
        page = tracker.search_iterations([experiment_id], query, found.order_items, max_results=limit)
    except DiaryError as exc:  # what only the tracker can tell (a server's own limits)
        return _failed(found, exc)
    found.ids = [iteration.id for iteration in page]
    found.more = page.next_page_token is not None
    return found


def _failed(found: Search, exc: DiaryError) -> Search:
    found.error = getattr(exc, "message", None) or str(exc)
    found.error_field = getattr(exc, "field", None) or "filter"
    found.token = getattr(exc, "token", "") or ""
    found.position = getattr(exc, "position", None)
    return found
