"""The contributor's local work: choose data, train an expert, compute its routing statistics.

Nothing here talks to the coordinator; the data never leaves this machine. Only
the expert directory this writes (adapter, expert.json, stats/) is uploaded.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from moerge.experts.manifest import Label
from moerge.tasks import Split, TaskData, load_task, load_user_task

if TYPE_CHECKING:  # torch is imported only by the commands that train
    from moerge.stats.phatgoose import GateConfig


class TrainingError(Exception):
    """A problem with the contributor's data or settings, told in one line."""


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("data (a built-in task or your own files)")
    group.add_argument("--task", help="built-in task name (see `moerge data tasks`)")
    group.add_argument(
        "--labels", help="comma-separated subset of the task's labels to train on (a sub-domain)"
    )
    group.add_argument("--data", type=Path, help="your own CSV or JSONL file with text,label")
    group.add_argument(
        "--labels-file", type=Path, help="labels with descriptions for --data (JSON or CSV)"
    )
    group.add_argument("--data-dir", type=Path, help="where `moerge data fetch` put the data")
    group.add_argument("--train-per-class", type=int, default=100, help="default 100")
    group.add_argument("--validation-per-class", type=int, default=20, help="default 20")
    group.add_argument("--test-per-class", type=int, default=25, help="default 25")
    group.add_argument("--split-seed", type=int, default=0, help="seed of the split (default 0)")


def task_from_args(args: argparse.Namespace) -> TaskData:
    split = Split(
        train=args.train_per_class,
        validation=args.validation_per_class,
        test=args.test_per_class,
        seed=args.split_seed,
    )
    if bool(args.task) == bool(args.data):
        raise TrainingError("give either --task NAME or --data FILE --labels-file FILE")
    if args.data:
        if not args.labels_file:
            raise TrainingError("--data needs --labels-file with a description for every label")
        return load_user_task(args.data, args.labels_file, split=split)
    labels = [x.strip() for x in args.labels.split(",") if x.strip()] if args.labels else None
    return load_task(args.task, args.data_dir, split=split, labels=labels)


def base_model_dir(args: argparse.Namespace) -> tuple[Path, str]:
    from moerge.models import DEFAULT_BASE_MODEL, default_base_model_path

    if args.base_model_dir:
        return Path(args.base_model_dir), args.base_model or Path(args.base_model_dir).name
    return default_base_model_path(), args.base_model or DEFAULT_BASE_MODEL


def train(args: argparse.Namespace) -> int:
    """Train an expert, then compute its routing statistics into the same directory."""
    import torch

    from moerge.experts.training import TrainConfig, build_expert

    if args.threads:
        torch.set_num_threads(args.threads)
    task = task_from_args(args)
    if args.description:
        from dataclasses import replace

        task = replace(task, description=args.description)
    base_dir, base_name = base_model_dir(args)
    try:
        config = TrainConfig(
            rank=args.rank,
            learning_rate=args.learning_rate,
            epochs=args.epochs,
            patience=args.patience,
            batch_size=args.batch_size,
            max_length=args.max_length,
            seed=args.seed,
        )
    except ValueError as exc:
        raise TrainingError(str(exc)) from exc
    out = Path(args.out)
    gates, examples = _extra_stats(args, config.seed, config.max_length)
    result, moments = build_expert(
        base_dir,
        task,
        out,
        name=args.name,
        version=args.version,
        base_name=base_name,
        config=config,
        stats=not args.no_stats,
        noise_multiplier=args.noise_multiplier,
        gates=None if args.no_stats else gates,
        examples=0 if args.no_stats else examples,
        progress=not args.no_progress,
    )
    if moments is not None:
        kinds = [f"embedding_moments of {moments.count:.0f} inputs"]
        kinds += ["PHATGOOSE gates"] if gates else []
        kinds += [f"{min(examples, len(task.train))} example embeddings"] if examples else []
        print("routing statistics: " + ", ".join(kinds), flush=True)
    print(
        f"trained {args.name}:{args.version} on {task.name} ({len(task.train)} examples, "
        f"{len(task.labels)} labels) in {result.seconds:.0f} s: validation accuracy "
        f"{result.validation_accuracy:.3f} (base model {result.base_validation_accuracy:.3f}, "
        f"best epoch {result.best_epoch}/{result.epochs_run})"
    )
    print(f"expert written to {out}")
    return 0


def _extra_stats(
    args: argparse.Namespace, seed: int, max_length: int
) -> tuple[GateConfig | None, int]:
    """(PHATGOOSE gate settings or None, number of example embeddings) from the arguments."""
    from moerge.stats.kinds import MAX_EXAMPLES
    from moerge.stats.phatgoose import GateConfig

    if args.gate_steps < 0:
        raise TrainingError("--gate-steps must be 0 (no gates) or more")
    if not 0 <= args.examples <= MAX_EXAMPLES:
        raise TrainingError(f"--examples must be in 0..{MAX_EXAMPLES}")
    gates = (
        GateConfig(steps=args.gate_steps, seed=seed, max_length=max_length)
        if args.gate_steps
        else None
    )
    return gates, args.examples


def stats(args: argparse.Namespace) -> int:
    """(Re)compute an expert's routing statistics from the data it was trained on."""
    from moerge.experts.encoder import Encoder
    from moerge.stats.compute import write_expert_stats
    from moerge.stats.examples import write_examples
    from moerge.stats.phatgoose import train_gates, write_gates

    task = task_from_args(args)
    base_dir, _ = base_model_dir(args)
    expert_dir = Path(args.expert_dir)
    if not (expert_dir / "adapter_config.json").is_file():
        raise TrainingError(f"{expert_dir}: not an expert directory (no adapter_config.json)")
    gates, examples = _extra_stats(args, args.seed, 64)
    encoder = Encoder.from_dir(base_dir)
    texts = [e.text for e in task.train]
    moments = write_expert_stats(
        expert_dir,
        base_dir,
        texts,
        noise_multiplier=args.noise_multiplier,
        seed=args.seed,
        encoder=encoder,
    )
    noise = f", Gaussian noise x{args.noise_multiplier:g}" if args.noise_multiplier else ""
    print(f"wrote embedding_moments ({moments.form}, {moments.count:.0f} inputs{noise})")
    if gates is not None:
        result = train_gates(base_dir, expert_dir, task, gates)
        write_gates(expert_dir, result, gates)
        print(
            f"wrote phatgoose_gates ({len(result.gates)} modules, final loss {result.losses[-1]:.3f})"
        )
    if examples:
        write_examples(expert_dir, encoder, texts, examples, seed=args.seed)
        print(f"wrote examples ({min(examples, len(texts))} embedded training inputs)")
    print(f"statistics are in {expert_dir}/stats/")
    return 0


def read_labels(args: argparse.Namespace) -> list[Label]:
    """Candidate labels for route/predict: from --labels-file, or from a built-in --task."""
    if args.labels_file:
        from moerge.tasks.userdata import read_labels as read_file

        return list(read_file(args.labels_file))
    if args.task:
        wanted = [x.strip() for x in args.labels.split(",")] if args.labels else None
        task = load_task(args.task, args.data_dir, split=Split(1, 1, 1), labels=wanted)
        return list(task.labels)
    return []


def read_texts(args: argparse.Namespace) -> list[str]:
    texts = list(args.texts or [])
    if args.file:
        if str(args.file) == "-":
            lines = sys.stdin.read().splitlines()
        else:
            lines = Path(args.file).read_text(encoding="utf-8").splitlines()
        texts += [line for line in lines if line.strip()]
    if not texts:
        raise TrainingError("no texts: give them as arguments or with --file (one per line)")
    return texts


def dump(obj: object) -> str:
    return json.dumps(obj, ensure_ascii=False)
