"""Tiny data made here (nothing downloaded) and the trackers the boosting tests read back."""

from __future__ import annotations

import os

import numpy as np
import pytest

# Keras 3 with the torch backend already installed here (no TensorFlow); set before any test imports it,
# and inherited by the training scripts the tests start.
os.environ.setdefault("KERAS_BACKEND", "torch")


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    """300 rows, 8 features, a binary label that depends on two of them (learnable, not trivially)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 8))
    y = (X[:, 0] - X[:, 1] + 0.7 * rng.normal(size=300) > 0).astype(int)
    return X, y
