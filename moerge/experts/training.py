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
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from moerge.experts.adapters import expert_metadata, save_expert
from moerge.experts.encoder import Encoder, label_logits, label_probs
from moerge.stats.compute import write_expert_stats
from moerge.stats.moments import Moments
from moerge.stats.phatgoose import GateConfig
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


def _batches(
    tasks: list[TaskData], rng: random.Random, batch_size: int
) -> list[tuple[int, list[int]]]:
    """(task index, example indices) per step; every batch holds one task's examples,
    because each task is scored against its own label set."""
    batches = []
    for t, task in enumerate(tasks):
        order = list(range(len(task.train)))
        rng.shuffle(order)
        batches += [(t, order[i : i + batch_size]) for i in range(0, len(order), batch_size)]
    if len(tasks) > 1:
        rng.shuffle(batches)
    return batches


def _epoch(
    encoder: Encoder,
    tasks: list[TaskData],
    optimizer: torch.optim.Optimizer,
    rng: random.Random,
    config: TrainConfig,
    desc: str,
    show: bool,
) -> tuple[float, int]:
    from tqdm import tqdm

    indexes = [{name: i for i, name in enumerate(task.label_names)} for task in tasks]
    batches = _batches(tasks, rng, config.batch_size)
    encoder.model.train()
    total = 0.0
    bar = tqdm(batches, desc=desc, unit="step", disable=not show, file=sys.stderr, leave=False)
    for t, batch in bar:
        task, index = tasks[t], indexes[t]
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


def _validation(encoder: Encoder, tasks: list[TaskData]) -> float:
    """Validation accuracy, averaged over tasks."""
    return float(np.mean([accuracy(encoder, t, t.validation) for t in tasks]))


def train_expert(
    base_dir: Path,
    task: TaskData | Sequence[TaskData],
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
    format plus expert.json, ready to upload. Given several tasks, one expert
    learns them all (the multitask baseline): each batch comes from one task,
    and validation accuracy is the mean over tasks.
    """
    from peft import get_peft_model_state_dict, set_peft_model_state_dict

    from moerge.models import fingerprint

    config = config or TrainConfig()
    tasks = [task] if isinstance(task, TaskData) else list(task)
    if not tasks:
        raise ValueError("no task to train on")
    for t in tasks:
        if not t.train:
            raise ValueError(f"task {t.name!r} has no training examples")
    task = tasks[0] if len(tasks) == 1 else _union(tasks)
    say = log or (lambda message: print(message, file=sys.stderr))
    started = time.perf_counter()
    model, tokenizer = _lora_model(Path(base_dir), config)
    encoder = Encoder(model, tokenizer, max_length=config.max_length)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    rng = random.Random(config.seed)
    base_accuracy = _validation(encoder, tasks)  # LoRA B starts at zero
    best, best_epoch, best_state = base_accuracy, 0, copy.deepcopy(get_peft_model_state_dict(model))
    history: list[dict[str, float]] = []
    steps = 0
    say(
        f"{name}: {sum(len(t.train) for t in tasks)} training examples, {len(task.labels)} labels, "
        f"validation accuracy before training {base_accuracy:.3f}"
    )
    for epoch in range(1, config.epochs + 1):
        desc = f"{name} epoch {epoch}/{config.epochs}"
        loss, n = _epoch(encoder, tasks, optimizer, rng, config, desc, progress)
        steps += n
        val = _validation(encoder, tasks)
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
        "examples": sum(len(t.train) for t in tasks),
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


def _union(tasks: list[TaskData]) -> TaskData:
    """A description of several tasks as one, for an expert's metadata (never trained on
    as one task: its label sets stay apart)."""
    labels = list({label.name: label for t in tasks for label in t.labels}.values())
    return replace(
        tasks[0],
        name="+".join(t.name for t in tasks),
        description="multitask: " + "; ".join(t.description for t in tasks),
        labels=tuple(labels),
        train=tuple(e for t in tasks for e in t.train),
        validation=(),
        test=(),
    )


def build_expert(
    base_dir: Path,
    task: TaskData | Sequence[TaskData],
    out_dir: Path,
    *,
    name: str,
    version: str = "1",
    base_name: str | None = None,
    config: TrainConfig | None = None,
    stats: bool = True,
    noise_multiplier: float = 0.0,
    gates: GateConfig | None = None,
    examples: int = 0,
    progress: bool = True,
    log: Progress | None = None,
) -> tuple[TrainResult, Moments | None]:
    """Train an expert and compute its routing statistics, then move it into out_dir.

    Statistics: embedding_moments (unless stats=False), PHATGOOSE gates when `gates` is
    given, and `examples` embedded training inputs when examples > 0 (opt-in).
    The work happens in a staging directory beside out_dir, so that an interrupted run
    never leaves a half-written expert where a finished one is expected.
    """
    from moerge.stats.phatgoose import train_gates, write_gates

    config = config or TrainConfig()
    tasks = [task] if isinstance(task, TaskData) else list(task)
    if gates is not None and len(tasks) != 1:
        raise ValueError("PHATGOOSE gates are trained for a single-task expert")
    out_dir = Path(out_dir)
    staging = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    result = train_expert(
        base_dir,
        tasks,
        staging,
        name=name,
        version=version,
        base_name=base_name,
        config=config,
        progress=progress,
        log=log,
    )
    texts = [e.text for t in tasks for e in t.train]
    base = Encoder.from_dir(Path(base_dir)) if stats or examples else None  # the base's view
    moments = None
    if stats:
        moments = write_expert_stats(
            staging,
            base_dir,
            texts,
            noise_multiplier=noise_multiplier,
            seed=config.seed,
            encoder=base,
        )
    if gates is not None:
        gate_result = train_gates(base_dir, staging, tasks[0], gates, progress=progress)
        write_gates(staging, gate_result, gates)
    if examples:
        from moerge.stats.examples import write_examples

        assert base is not None
        write_examples(staging, base, texts, examples, seed=config.seed)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(staging, out_dir)
    return replace(result, out_dir=out_dir), moments
