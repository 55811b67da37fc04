"""PHATGOOSE gates (Muqeeth et al. 2024), trained by the contributor after its expert.

For every adapted module the expert's update is scaled per token by a sigmoid gate on
the module's input, sigma(<g, x_t>) s B A x_t; only the gate vectors g train (from zero,
so every gate starts at 1/2), on the expert's own data and loss, while the base model
and the expert stay frozen. The trained gates say which tokens each module of the
expert is for; the coordinator routes per token with them (`moerge.routing.phatgoose`).
"""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from moerge.experts.encoder import label_logits
from moerge.experts.mixture import ExpertStack, MixtureModel
from moerge.stats.files import write_stats
from moerge.tasks.core import TaskData

KIND = "phatgoose_gates"


@dataclass(frozen=True)
class GateConfig:
    steps: int = field(default=60, metadata={"help": "gate training steps"})
    learning_rate: float = field(default=1e-2, metadata={"help": "Adam learning rate"})
    batch_size: int = field(default=32, metadata={"help": "examples per step"})
    max_length: int = field(default=64, metadata={"help": "tokens kept per text"})
    seed: int = field(default=0, metadata={"help": "seed of the data order"})

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or not self.learning_rate > 0:
            raise ValueError("gate training needs steps >= 1, batch_size >= 1, learning_rate > 0")


@dataclass(frozen=True)
class GateResult:
    gates: dict[str, np.ndarray]  # module path -> [d_in]
    losses: list[float]  # per step
    mean_gate: float  # mean sigmoid gate value on the last batch


def train_gates(
    base_dir: Path,
    expert_dir: Path,
    task: TaskData,
    config: GateConfig | None = None,
    *,
    mixture: MixtureModel | None = None,
    progress: bool = False,
) -> GateResult:
    """Train one sigmoid gate per adapted module of the expert, all else frozen."""
    from tqdm import tqdm

    config = config or GateConfig()
    if not task.train:
        raise ValueError(f"task {task.name!r} has no training examples for the gates")
    torch.manual_seed(config.seed)
    stack = ExpertStack.from_dirs(["expert"], [Path(expert_dir)])
    model = mixture or MixtureModel(Path(base_dir), max_length=config.max_length)
    gates = {
        path: torch.zeros(f.A.shape[2], requires_grad=True) for path, f in stack.modules.items()
    }
    values: list[torch.Tensor] = []

    def gate(path: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.sigmoid(x @ gates[path])[..., None]  # [B, T, 1]
        values.append(g.detach())
        return g, torch.ones_like(g)

    optimizer = torch.optim.Adam(list(gates.values()), lr=config.learning_rate)
    index = {name: i for i, name in enumerate(task.label_names)}
    labels = [label.text for label in task.labels]
    rng = random.Random(config.seed)
    order: list[int] = []
    losses = []
    model.model.eval()  # no dropout: the gates see the expert exactly as it serves
    bar = tqdm(
        range(config.steps), desc="gates", disable=not progress, file=sys.stderr, leave=False
    )
    with model.gated(stack, gate):
        for _ in bar:
            if len(order) < config.batch_size:
                fresh = list(range(len(task.train)))
                rng.shuffle(fresh)
                order += fresh
            batch, order = order[: config.batch_size], order[config.batch_size :]
            examples = [task.train[i] for i in batch]
            values.clear()
            texts = model.encoder.forward([e.text for e in examples])
            label_emb = model.encoder.forward(labels)
            target = torch.tensor([index[e.label] for e in examples])
            loss = torch.nn.functional.cross_entropy(label_logits(texts, label_emb), target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
    mean_gate = float(torch.cat([v.flatten() for v in values]).mean()) if values else 0.5
    return GateResult({p: g.detach().numpy().copy() for p, g in gates.items()}, losses, mean_gate)


def write_gates(expert_dir: Path, result: GateResult, config: GateConfig) -> Path:
    meta = {
        "steps": config.steps,
        "learning_rate": config.learning_rate,
        "final_loss": result.losses[-1],
        "mean_gate": result.mean_gate,
    }
    return write_stats(expert_dir, KIND, result.gates, meta)
