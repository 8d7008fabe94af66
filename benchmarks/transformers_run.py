"""One Transformers training run in a fresh process, as a user runs a training script:
`python -m benchmarks.transformers_run KIND DIR STEPS` (from the repository root). KIND: `none`
(`report_to="none"`), `diary` (DiaryCallback on DIR/diary.db), `mlflow` (Transformers' MLflowCallback on
DIR/mlflow.db), `wandb` (WandbCallback, offline). A tiny BERT classifier built from a config (nothing is
downloaded), a log every 10 steps and an evaluation every 100. Prints one JSON line: the seconds
`Trainer.train` took, from inside this process."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import warnings


def main(kind: str, directory: str, steps: int) -> None:
    warnings.filterwarnings("ignore")
    for name in ("transformers", "mlflow", "wandb", "alembic"):
        logging.getLogger(name).setLevel(logging.ERROR)
    import torch
    from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

    torch.set_num_threads(1)  # the same for every variant; many threads only contend on a shared machine
    torch.manual_seed(0)
    x = torch.randint(0, 32, (256, 8))
    y = (x[:, 0] >= 16).long()
    rows = [{"input_ids": a, "labels": b} for a, b in zip(x, y, strict=True)]
    config = BertConfig(vocab_size=32, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=16, num_labels=2)
    callbacks = []
    report_to = "none"
    if kind == "diary":
        from diary_integrations.transformers import DiaryCallback

        callbacks.append(DiaryCallback("bench", "tiny bert", uri=f"sqlite:///{directory}/diary.db"))
    elif kind == "mlflow":
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{directory}/mlflow.db"
        report_to = "mlflow"
    elif kind == "wandb":
        os.environ.update(WANDB_MODE="offline", WANDB_SILENT="true", WANDB_DIR=directory)
        report_to = "wandb"
    elif kind != "none":
        raise SystemExit(f"unknown kind {kind!r}")
    args = TrainingArguments(
        output_dir=f"{directory}/out", max_steps=steps, per_device_train_batch_size=16, logging_steps=10,
        eval_strategy="steps", eval_steps=100, save_strategy="no", report_to=report_to, use_cpu=True,
        disable_tqdm=True, learning_rate=1e-3,
    )
    trainer = Trainer(model=BertForSequenceClassification(config), args=args, train_dataset=rows,
                      eval_dataset=rows[:64], callbacks=callbacks)
    start = time.perf_counter()
    trainer.train()
    print(json.dumps({"train": time.perf_counter() - start}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
