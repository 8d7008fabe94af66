"""Estimators with controlled failures, and readers of the tree a search left behind."""

from __future__ import annotations

import time

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.tree import DecisionTreeClassifier

from diary_integrations import IterationStatus, connect

LIVE_SEEN: list[tuple[str, str]] = []


class Picky(ClassifierMixin, BaseEstimator):
    """A decision tree that, with `strict=True`, refuses a training set holding the sample whose
    marker (column 0) is 0: under an unshuffled KFold, every fold but the first fails."""

    def __init__(self, max_depth=None, strict=False, interrupt=False, probe=None):
        self.max_depth = max_depth
        self.strict = strict
        self.interrupt = interrupt
        self.probe = probe

    def fit(self, X, y):
        if self.probe is not None:
            self.probe(self.max_depth)
        if self.interrupt:
            raise KeyboardInterrupt
        if self.strict and np.any(X[:, 0] == 0):
            raise ValueError("picky: sample 0 is in the training set")
        self.tree_ = DecisionTreeClassifier(max_depth=self.max_depth, random_state=0).fit(X[:, 1:], y)
        self.classes_ = self.tree_.classes_
        return self

    def predict(self, X):
        return self.tree_.predict(X[:, 1:])


class LiveProbe:
    """Called from a fold's fit with the candidate's max_depth: records the status and notes of the
    driver's child holding that max_depth, waiting for it (children are created a batch at a time, about
    `BATCH_SECONDS` = 0.25 s after their first fold's start) for at most `patience` seconds: far above the
    batch interval, so only a child that is late by seconds (or never comes while the fold runs) fails."""

    def __init__(self, uri, callback, patience=2.0):
        self.uri = uri
        self.callback = callback
        self.patience = patience

    def __call__(self, max_depth):
        tracker = connect(self.uri)
        deadline = time.monotonic() + self.patience
        found = ("none", "")
        while time.monotonic() < deadline:
            kids = tracker.get_child_iterations(self.callback.driver_iteration_id)
            values = tracker.get_parameter_values([k.id for k in kids]) if kids else {}
            mine = [k for k in kids if values[k.id].get("max_depth") == str(max_depth)]
            if mine:
                found = (mine[0].status.name, mine[0].notes)
                break
            time.sleep(0.02)
        LIVE_SEEN.append(found)
        tracker.close()

    def __deepcopy__(self, memo):  # clone() deep-copies parameters; the probe is shared
        return self


def marked(X):
    """X with a first column numbering the samples."""
    return np.column_stack([np.arange(len(X)), X])


def children(tracker, driver_id):
    return tracker.get_child_iterations(driver_id)


def params(tracker, iteration_id):
    return {p.key: p.value for p in tracker.get_parameters(iteration_id)}


def series(tracker, iteration_id, key):
    return [(m.step, m.value) for m in tracker.get_metrics(iteration_id, key=key)]


def latest(tracker, iteration_id):
    return tracker.get_latest_metrics([iteration_id]).get(iteration_id, {})


def running(tracker, experiment_id):
    return tracker.get_iterations(experiment_id, status=IterationStatus.RUNNING)


def as_text(value) -> str:
    """A parameter value as the tracker stores it."""
    if isinstance(value, (np.generic,)):
        value = value.item()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)
