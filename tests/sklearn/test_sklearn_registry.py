"""DiaryCallback(register_as=...): a search that ends well registers its refitted best_estimator_, which
loads back and predicts as the fitted search does (a SQLite file and a live tracking server)."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV

from diary_integrations import ModelStage, Unprocessable, connect
from diary_integrations.registry import load_model
from diary_integrations.sklearn import DiaryCallback, TrackingWarning

pytestmark = pytest.mark.skipif(
    not hasattr(GridSearchCV, "set_callbacks"), reason="scikit-learn < 1.9 has no callback API"
)


def _loads(data: bytes, form: str):
    if form == "skops":
        import skops.io

        return skops.io.loads(data, trusted=skops.io.get_untrusted_types(data=data))
    return pickle.loads(data)


def _fit(search, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.simplefilter("error", TrackingWarning)
        return search.fit(X, y)


def test_search_registers_its_best_estimator_and_loads_back(uri, iris):
    X, y = iris
    cb = DiaryCallback(project="Fraud detection", experiment="LR sweep", uri=uri, register_as="iris-lr")
    search = GridSearchCV(LogisticRegression(max_iter=500), {"C": [0.1, 1.0]}, cv=3)
    search.set_callbacks(cb)
    _fit(search, X, y)
    _fit(search, X, y)  # a second fit is a second version
    tracker = connect(uri)
    driver = tracker.get_iteration(cb.driver_iteration_id)
    project_id = tracker.get_experiment(driver.experiment_id).project_id
    model = tracker.get_model_by_name(project_id, "iris-lr")
    versions = tracker.get_model_versions(model.id)
    assert [v.version for v in versions] == [1, 2]
    assert versions[-1].iteration_id == driver.id and versions[0].iteration_id != driver.id
    resource = tracker.get_resource(versions[-1].resource_id)
    form = "skops" if resource.name.endswith(".skops") else "pickle"
    assert resource.name == f"iris-lr.{'skops' if form == 'skops' else 'pkl'}"
    assert f"serialized with {form}" in resource.description and "LogisticRegression" in resource.description
    tracker.update_model_version(versions[-1].id, stage=ModelStage.PRODUCTION)
    loaded = _loads(load_model("iris-lr", stage="PRODUCTION", tracker=tracker), form)
    assert isinstance(loaded, LogisticRegression) and search.best_params_["C"] == loaded.C
    assert np.array_equal(loaded.predict(X), search.predict(X))


def test_register_as_is_checked_up_front(sqlite_uri):
    with pytest.raises(Unprocessable, match="register_as"):
        DiaryCallback(project="P", experiment="E", uri=sqlite_uri, register_as="")
