"""Training a LoRA expert in the shared scoring space.

The expert learns to embed a text close to the description of its label and
away from the other labels' descriptions: cross-entropy over the scaled cosine
similarities between the text and every label description of the task. Both
sides pass through the adapter, so the expert adapts how it reads labels too.
"""

from __future__ import annotations

import copy
import os
import random
import shutil
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from moerge.experts.adapters import expert_metadata, save_expert
from moerge.experts.encoder import Encoder, label_logits, label_probs
from moerge.stats.compute import write_expert_stats
from moerge.stats.moments import Moments
from moerge.tasks.core import Example, TaskData


@dataclass(frozen=True)
class TrainConfig:
    rank: int = field(default=8, metadata={"help": "LoRA rank"})
    alpha: float = field(default=16.0, metadata={"help": "LoRA scaling numerator (alpha / rank)"})
    target_modules: tuple[str, ...] = field(
        default=("query", "value"), metadata={"help": "module names the LoRA adapts"}
    )
    dropout: float = field(default=0.05, metadata={"help": "LoRA dropout"})
    learning_rate: float = field(default=3e-3, metadata={"help": "AdamW learning rate"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    epochs: int = field(default=3, metadata={"help": "maximum number of epochs"})
    patience: int = field(
        default=1, metadata={"help": "stop after this many epochs without a better validation"}
    )
    batch_size: int = field(default=32, metadata={"help": "examples per step"})
    max_length: int = field(default=64, metadata={"help": "tokens kept per text"})
    seed: int = field(default=0, metadata={"help": "seed of the adapter init and the data order"})

    def __post_init__(self) -> None:
        checks = {
            "rank": self.rank > 0,
            "alpha": self.alpha > 0,
            "target_modules": len(self.target_modules) > 0,
            "dropout": 0.0 <= self.dropout < 1.0,
            "learning_rate": self.learning_rate > 0,
            "weight_decay": self.weight_decay >= 0,
            "epochs": self.epochs > 0,
            "patience": self.patience > 0,
            "batch_size": self.batch_size > 0,
            "max_length": self.max_length > 1,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid training settings: {', '.join(bad)}")


@dataclass(frozen=True)
class TrainResult:
    out_dir: Path
    base_validation_accuracy: float
    validation_accuracy: float
    best_epoch: int
    epochs_run: int
    steps: int
    seconds: float
    history: list[dict[str, float]]


Progress = Callable[[str], None]


def _label_texts(task: TaskData) -> list[str]:
    return [label.text for label in task.labels]


def accuracy(encoder: Encoder, task: TaskData, examples: tuple[Example, ...]) -> float:
    """Accuracy of the encoder, as it stands, on examples of the task."""
    if not examples:
        return float("nan")
    texts = encoder.embed([e.text for e in examples])
    labels = encoder.embed(_label_texts(task))
    predicted = label_probs(texts, labels).argmax(axis=1)
    index = {name: i for i, name in enumerate(task.label_names)}
    truth = np.array([index[e.label] for e in examples])
    return float((predicted == truth).mean())


@torch.no_grad()
def loss_on(encoder: Encoder, task: TaskData, examples: tuple[Example, ...]) -> float:
    """Mean cross-entropy of the scoring space on examples, with the model as it stands."""
    index = {name: i for i, name in enumerate(task.label_names)}
    texts = torch.from_numpy(encoder.embed([e.text for e in examples]))
    labels = torch.from_numpy(encoder.embed(_label_texts(task)))
    target = torch.tensor([index[e.label] for e in examples])
    return float(torch.nn.functional.cross_entropy(label_logits(texts, labels), target))


def _lora_model(base_dir: Path, config: TrainConfig) -> tuple[Any, Any]:
    from peft import LoraConfig, get_peft_model

    from moerge.models import load

    torch.manual_seed(config.seed)
    model, tokenizer = load(base_dir)
    lora = LoraConfig(
        r=config.rank,
        lora_alpha=config.alpha,  # type: ignore[arg-type]  # PEFT accepts any number
        target_modules=list(config.target_modules),
        lora_dropout=config.dropout,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
        return get_peft_model(model, lora), tokenizer


def _epoch(
    encoder: Encoder,
    task: TaskData,
    optimizer: torch.optim.Optimizer,
    rng: random.Random,
    config: TrainConfig,
    desc: str,
    show: bool,
) -> tuple[float, int]:
    from tqdm import tqdm

    index = {name: i for i, name in enumerate(task.label_names)}
    order = list(range(len(task.train)))
    rng.shuffle(order)
    batches = [order[i : i + config.batch_size] for i in range(0, len(order), config.batch_size)]
    encoder.model.train()
    total = 0.0
    bar = tqdm(batches, desc=desc, unit="step", disable=not show, file=sys.stderr, leave=False)
    for batch in bar:
        examples = [task.train[i] for i in batch]
        texts = encoder.forward([e.text for e in examples])  # [B, d]
        labels = encoder.forward(_label_texts(task))  # [L, d]
        target = torch.tensor([index[e.label] for e in examples])
        loss = torch.nn.functional.cross_entropy(label_logits(texts, labels), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item()
        bar.set_postfix(loss=f"{loss.item():.3f}")
    return total / max(len(batches), 1), len(batches)


def train_expert(
    base_dir: Path,
    task: TaskData,
    out_dir: Path,
    *,
    name: str,
    version: str = "1",
    base_name: str | None = None,
    config: TrainConfig | None = None,
    progress: bool = True,
    log: Progress | None = None,
) -> TrainResult:
    """Train a LoRA expert on the task's train split and save the best epoch.

    The validation split picks the best epoch and stops training after
    `patience` epochs without improvement; the saved directory is PEFT's own
    format plus expert.json, ready to upload.
    """
    from peft import get_peft_model_state_dict, set_peft_model_state_dict

    from moerge.models import fingerprint

    config = config or TrainConfig()
    if not task.train:
        raise ValueError(f"task {task.name!r} has no training examples")
    say = log or (lambda message: print(message, file=sys.stderr))
    started = time.perf_counter()
    model, tokenizer = _lora_model(Path(base_dir), config)
    encoder = Encoder(model, tokenizer, max_length=config.max_length)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    rng = random.Random(config.seed)
    base_accuracy = accuracy(encoder, task, task.validation)  # LoRA B starts at zero
    best, best_epoch, best_state = base_accuracy, 0, copy.deepcopy(get_peft_model_state_dict(model))
    history: list[dict[str, float]] = []
    steps = 0
    say(
        f"{name}: {len(task.train)} training examples, {len(task.labels)} labels, "
        f"validation accuracy before training {base_accuracy:.3f}"
    )
    for epoch in range(1, config.epochs + 1):
        desc = f"{name} epoch {epoch}/{config.epochs}"
        loss, n = _epoch(encoder, task, optimizer, rng, config, desc, progress)
        steps += n
        val = accuracy(encoder, task, task.validation)
        history.append({"epoch": epoch, "loss": loss, "validation_accuracy": val})
        say(f"{name}: epoch {epoch} loss {loss:.4f} validation accuracy {val:.3f}")
        if val > best or (epoch == 1 and val >= best):
            best, best_epoch = val, epoch
            best_state = copy.deepcopy(get_peft_model_state_dict(model))
        elif epoch - best_epoch >= config.patience:
            break
    set_peft_model_state_dict(model, best_state)
    metadata = expert_metadata(
        name=name,
        version=version,
        base_name=base_name or Path(base_dir).name,
        base_fingerprint=fingerprint(Path(base_dir)),
        task_description=task.description,
        labels=task.labels,
    )
    metadata["training"] = {
        "task": task.name,
        "examples": len(task.train),
        "config": {**asdict(config), "target_modules": list(config.target_modules)},
        "validation_accuracy": best,
        "base_validation_accuracy": base_accuracy,
        "best_epoch": best_epoch,
    }
    model.eval()
    save_expert(model, Path(out_dir), metadata)
    return TrainResult(
        out_dir=Path(out_dir),
        base_validation_accuracy=base_accuracy,
        validation_accuracy=best,
        best_epoch=best_epoch,
        epochs_run=len(history),
        steps=steps,
        seconds=time.perf_counter() - started,
        history=history,
    )


def build_expert(
    base_dir: Path,
    task: TaskData,
    out_dir: Path,
    *,
    name: str,
    version: str = "1",
    base_name: str | None = None,
    config: TrainConfig | None = None,
    stats: bool = True,
    noise_multiplier: float = 0.0,
    progress: bool = True,
    log: Progress | None = None,
) -> tuple[TrainResult, Moments | None]:
    """Train an expert and compute its routing statistics, then move it into out_dir.

    The work happens in a staging directory beside out_dir, so that an interrupted run
    never leaves a half-written expert where a finished one is expected.
    """
    config = config or TrainConfig()
    out_dir = Path(out_dir)
    staging = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    result = train_expert(
        base_dir,
        task,
        staging,
        name=name,
        version=version,
        base_name=base_name,
        config=config,
        progress=progress,
        log=log,
    )
    moments = None
    if stats:
        moments = write_expert_stats(
            staging,
            base_dir,
            [e.text for e in task.train],
            noise_multiplier=noise_multiplier,
            seed=config.seed,
        )
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(staging, out_dir)
    return replace(result, out_dir=out_dir), moments
