"""The one tiny model every Transformers test trains: a BERT classifier of a few hundred parameters built
from a config (nothing downloaded), on token tensors whose label is whether the first token is high.
Run as a script (`python tiny_bert.py URI MODE [OUTPUT_DIR]`), it is the training program the
multi-process and signal tests start."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

import torch
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainerCallback, TrainingArguments

VOCAB, LENGTH = 32, 8
# One thread: on a loaded machine torch's thread pool makes this 8-parameter-wide model 20x slower.
torch.set_num_threads(1)


def config() -> BertConfig:
    return BertConfig(
        vocab_size=VOCAB, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16,
        max_position_embeddings=LENGTH * 2, num_labels=2,
    )


def model() -> BertForSequenceClassification:
    torch.manual_seed(0)
    return BertForSequenceClassification(config())


class Tokens(torch.utils.data.Dataset):
    def __init__(self, n: int, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.x = torch.randint(0, VOCAB, (n, LENGTH), generator=generator)
        self.y = (self.x[:, 0] >= VOCAB // 2).long()

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.x[i], "labels": self.y[i]}


def arguments(output_dir: Path | str, **changes: Any) -> TrainingArguments:
    """30 steps, a log every 5 and an evaluation every 10, on the CPU, with no other reporter."""
    settings: dict[str, Any] = dict(
        output_dir=str(output_dir), max_steps=30, per_device_train_batch_size=8, per_device_eval_batch_size=16,
        logging_steps=5, eval_strategy="steps", eval_steps=10, save_strategy="no", report_to="none",
        use_cpu=True, disable_tqdm=True, learning_rate=1e-3,
    )
    settings.update(changes)
    return TrainingArguments(**settings)


def accuracy(prediction: Any) -> dict[str, float]:
    return {"accuracy": float((prediction.predictions.argmax(-1) == prediction.label_ids).mean())}


def accuracy_failing_on_rank_1(prediction: Any) -> dict[str, float]:
    if os.environ.get("RANK") == "1":
        raise ValueError("the metric broke on rank 1")
    return accuracy(prediction)


def trainer(args: TrainingArguments, callbacks: list[Any], **kwargs: Any) -> Trainer:
    kwargs.setdefault("model", None if "model_init" in kwargs else model())
    return Trainer(
        args=args, train_dataset=Tokens(64, 0), eval_dataset=Tokens(16, 1), callbacks=callbacks, **kwargs
    )


class SignalAt(TrainerCallback):
    """Sends this process `signum` when training reaches `step`."""

    def __init__(self, step: int, signum: int) -> None:
        self.step, self.signum = step, signum

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step == self.step:
            os.kill(os.getpid(), self.signum)


def main() -> None:
    """MODE `plain` trains once; `sigterm` is sent SIGTERM at step 7; `ddp` (under torchrun) trains once
    with the default callback (experiment "tiny") and once with `per_rank=True` ("tiny per rank");
    `ddp-fail` (under torchrun) trains once with the default callback, rank 1's compute_metrics raising."""
    from diary_integrations.transformers import DiaryCallback

    uri, mode = sys.argv[1], sys.argv[2]
    out = Path(sys.argv[3]) if len(sys.argv) > 3 else Path.cwd() / "out"
    callbacks: list[Any] = [DiaryCallback("Transformers", "tiny", uri=uri)]
    if mode == "sigterm":
        callbacks.append(SignalAt(7, signal.SIGTERM))
    extra = {"ddp_backend": "gloo"} if mode.startswith("ddp") else {}
    if mode == "ddp-fail":  # rank 1's compute_metrics raises at the first evaluation (step 10)
        trainer(arguments(out, **extra), callbacks, compute_metrics=accuracy_failing_on_rank_1).train()
        return
    trainer(arguments(out, **extra), callbacks).train()
    if mode == "ddp":
        per_rank = DiaryCallback("Transformers", "tiny per rank", uri=uri, per_rank=True)
        trainer(arguments(out, **extra), [per_rank]).train()


if __name__ == "__main__":
    main()
