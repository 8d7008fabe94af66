"""One DDP run on 2 CPU processes for the tests, with two loggers, one per mode:
a `per_rank=True` logger (experiment "DDP") and a default one (experiment "DDP shared").

    python ddp_scenario.py URI STRATEGY [FAIL_RANK]                       # ddp or ddp_spawn
    torchrun --standalone --nproc_per_node 2 ddp_scenario.py URI ddp [FAIL_RANK]

Lightning's `ddp` re-runs this script for rank 1; `ddp_spawn` pickles the trainer into 2 workers;
under torchrun every rank runs it. Prints `DRIVER <id>` (the per-rank driver) from the launching
process (rank 0) before training starts. The default logger's iteration is not touched before `fit`,
as in most user code, so nothing here creates it early.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from diary_models import TinyModel, loader, trainer  # noqa: E402

from diary_integrations.lightning import DiaryLogger  # noqa: E402


def main() -> None:
    uri, strategy = sys.argv[1], sys.argv[2]
    fail_rank = int(sys.argv[3]) if len(sys.argv) > 3 else None
    per_rank = DiaryLogger("Fraud detection", "DDP", uri=uri, per_rank=True, save_dir="logs", settle_timeout=60,
                           flush_interval=0.25)
    shared = DiaryLogger("Fraud detection", "DDP shared", uri=uri, save_dir="logs", flush_interval=0.25)
    if per_rank.iteration_id is not None:
        print(f"DRIVER {per_rank.iteration_id}", flush=True)
    model = TinyModel(fail_at_step=None if fail_rank is None else 2, fail_rank=fail_rank)
    trainer([per_rank, shared], devices=2, strategy=strategy).fit(model, loader(64), loader(32, seed=1))


if __name__ == "__main__":
    main()
