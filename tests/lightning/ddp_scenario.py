"""One DDP run on 2 CPU processes for the tests: `python ddp_scenario.py URI STRATEGY [FAIL_RANK]`.

Lightning's `ddp` re-runs this script for rank 1; `ddp_spawn` pickles the trainer into 2 workers.
Prints `DRIVER <id>` from the launching process before training starts.
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
    logger = DiaryLogger("Fraud detection", "DDP", uri=uri, per_rank=True, save_dir="logs", settle_timeout=60)
    if logger.iteration_id is not None:
        print(f"DRIVER {logger.iteration_id}", flush=True)
    model = TinyModel(fail_at_step=None if fail_rank is None else 2, fail_rank=fail_rank)
    trainer(logger, devices=2, strategy=strategy).fit(model, loader(64), loader(32, seed=1))


if __name__ == "__main__":
    main()
