"""DiaryLogger(log_model=True, register_as=...): a SUCCEEDED fit registers its best checkpoint as a model
version (reusing the checkpoint's resource), which loads back into a model; a failed fit registers none."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from diary_models import TinyModel, loader, trainer  # noqa: E402

from diary_integrations import IterationStatus, Unprocessable, connect  # noqa: E402
from diary_integrations.lightning import DiaryLogger  # noqa: E402
from diary_integrations.registry import load_model  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(params=["sqlite", "server"])
def uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'runs.db'}"
    return request.getfixturevalue("server_url")


def _fit(uri, tmp_path, **model_options):
    from pytorch_lightning.callbacks import ModelCheckpoint

    logger = DiaryLogger("Fraud detection", "MLP", uri=uri, save_dir=tmp_path, log_model=True, register_as="fraud-mlp")
    checkpoint = ModelCheckpoint(monitor="val_loss", save_top_k=1)
    tr = trainer(logger, enable_checkpointing=True, callbacks=[checkpoint])
    return logger, checkpoint, tr, TinyModel(**model_options)


def test_succeeded_fit_registers_the_best_checkpoint(uri, tmp_path):
    logger, checkpoint, tr, model = _fit(uri, tmp_path)
    tr.fit(model, loader(), loader(seed=1))
    tr.test(model, loader(seed=2))  # a second end of the run registers nothing more
    tracker = connect(uri)
    it = tracker.get_iteration(logger.iteration_id)
    assert it.status is IterationStatus.SUCCEEDED
    project_id = tracker.get_experiment(it.experiment_id).project_id
    [version] = tracker.get_model_versions(tracker.get_model_by_name(project_id, "fraud-mlp").id)
    assert version.version == 1 and version.iteration_id == it.id
    params = {p.key: p.value for p in tracker.get_parameters(it.id)}
    assert version.resource_id == int(params["checkpoint/best_resource_id"])  # the stored checkpoint, reused
    assert len(tracker.get_resources(it.experiment_id)) == 1
    tracker.set_model_alias(version.model_id, "champion", 1)
    data = load_model("fraud-mlp", alias="champion", tracker=tracker)
    assert data == Path(checkpoint.best_model_path).read_bytes()
    restored = TinyModel.load_from_checkpoint(io.BytesIO(data))
    assert torch.equal(restored.layer.weight, TinyModel.load_from_checkpoint(checkpoint.best_model_path).layer.weight)
    written = load_model("fraud-mlp", tracker=tracker, path=tmp_path / "restored.ckpt")
    assert written.read_bytes() == data


def test_failed_fit_registers_nothing(uri, tmp_path):
    logger, _, tr, model = _fit(uri, tmp_path, fail_at_step=6)
    with pytest.raises(ValueError, match="boom"):
        tr.fit(model, loader(), loader(seed=1))
    tracker = connect(uri)
    it = tracker.get_iteration(logger.iteration_id)
    assert it.status is IterationStatus.FAILED
    project_id = tracker.get_experiment(it.experiment_id).project_id
    assert tracker.get_model_by_name(project_id, "fraud-mlp") is None


def test_register_as_needs_log_model(tmp_path):
    with pytest.raises(Unprocessable, match="register_as"):
        DiaryLogger("P", "MLP", uri=f"sqlite:///{tmp_path / 'r.db'}", register_as="fraud-mlp")
