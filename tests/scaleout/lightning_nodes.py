"""Lightning DDP over several nodes for the scale-out tests, started on each node by torchrun:

    torchrun --nnodes 2 --nproc_per_node 1 ... lightning_nodes.py URI NUM_NODES FAIL_RANK

A `per_rank=True` logger (experiment "DDP nodes") beside a default one ("DDP nodes shared"); credentials
for the tracking server come from $DIARY_USERNAME and $DIARY_PASSWORD, as on a cluster.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lightning"))

from diary_models import TinyModel, loader, trainer  # noqa: E402

from diary_integrations.lightning import DiaryLogger  # noqa: E402


def main() -> None:
    uri, num_nodes, fail_rank = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    per_rank = DiaryLogger(
        "Multi-node", "DDP nodes", uri=uri, per_rank=True, save_dir="logs", settle_timeout=60, flush_interval=0.25
    )
    shared = DiaryLogger("Multi-node", "DDP nodes shared", uri=uri, save_dir="logs", flush_interval=0.25)
    model = TinyModel(fail_at_step=2, fail_rank=fail_rank)
    trainer([per_rank, shared], devices=1, num_nodes=num_nodes, strategy="ddp").fit(
        model, loader(64), loader(32, seed=1)
    )


if __name__ == "__main__":
    main()
