"""LoraHub (Huang et al. 2023): merge weights for a new task, searched on a few examples.

Given k labelled examples per label of a task, LoraHub searches one weight per expert
with a gradient-free optimiser (CMA-ES here, from the `cma` package; the paper used
nevergrad's NGOpt with the same budget and bounds): the objective is the merged model's
cross-entropy on those examples plus an L1 penalty on the weights. The merge combines
the LoRA factors, A = sum_e w_e A_e and B = sum_e w_e B_e (`moerge.combine.merging.lorahub`),
and the merged expert then answers every input of the task.

The search starts from the better of all-zero weights (the base model) and uniform
weights, both evaluated first, and returns the best weights it evaluated.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from moerge.experts.encoder import label_logits
from moerge.experts.mixture import ExpertStack, MixtureModel
from moerge.routing.base import check_config
from moerge.routing.registry import register


@dataclass(frozen=True)
class LoraHubConfig:
    shots: int = field(default=5, metadata={"help": "labelled examples per label (k-shot)"})
    budget: int = field(default=40, metadata={"help": "objective evaluations of the search"})
    l1: float = field(default=0.05, metadata={"help": "L1 penalty on the mean |weight|"})
    bound: float = field(default=1.5, metadata={"help": "weights are searched in [-bound, bound]"})
    sigma: float = field(default=0.5, metadata={"help": "CMA-ES initial step size"})
    seed: int = field(default=0, metadata={"help": "seed of the search"})

    def __post_init__(self) -> None:
        check_config(self.shots >= 1, "shots", self.shots, ">= 1")
        check_config(self.budget >= 2, "budget", self.budget, ">= 2")
        check_config(self.l1 >= 0, "l1", self.l1, ">= 0")
        check_config(self.bound > 0, "bound", self.bound, "> 0")
        check_config(self.sigma > 0, "sigma", self.sigma, "> 0")


@dataclass(frozen=True)
class LoraHubResult:
    weights: np.ndarray  # [E]
    objective: float  # at the weights
    uniform_objective: float
    zero_objective: float
    evaluations: int
    history: list[float]  # objective of each evaluation, in order


Objective = Callable[[np.ndarray], float]


@register("lorahub", granularity="task")
class LoraHub:
    """Per-task merge weights from k examples per label, by gradient-free search."""

    name = "lorahub"
    config_cls = LoraHubConfig
    taxonomy = {
        "routing_dataset": "a few labelled examples of the target task",
        "input_granularity": "task",
        "depth": "model",
        "selection": "dense (every expert gets a weight)",
        "aggregation": "parameter merging of the LoRA factors",
    }

    def __init__(self, config: LoraHubConfig | None = None) -> None:
        self.config = config or LoraHubConfig()

    def search(self, objective: Objective, n_experts: int) -> LoraHubResult:
        """Minimise objective(w) + l1 * mean|w| over w in [-bound, bound]^E."""
        import cma

        c = self.config
        history: list[float] = []
        best: tuple[float, np.ndarray] = (math.inf, np.zeros(n_experts))

        def penalised(w: np.ndarray) -> float:
            nonlocal best
            value = float(objective(w)) + c.l1 * float(np.abs(w).mean())
            if not math.isfinite(value):
                value = 1e9
            history.append(value)
            if value < best[0]:
                best = (value, np.array(w, dtype=np.float64))
            return value

        zero = penalised(np.zeros(n_experts))
        uniform = penalised(np.full(n_experts, 1.0 / n_experts))
        start = np.zeros(n_experts) if zero <= uniform else np.full(n_experts, 1.0 / n_experts)
        options = {
            "bounds": [-c.bound, c.bound],
            "seed": c.seed + 1,  # cma treats 0 as "seed from the clock"
            "maxfevals": c.budget - 2,
            "verbose": -9,
        }
        if n_experts > 1 and c.budget > 2:
            es = cma.CMAEvolutionStrategy(start, c.sigma, options)
            while not es.stop() and len(history) < c.budget:
                candidates = es.ask()
                es.tell(candidates, [penalised(np.asarray(x)) for x in candidates])
        value, weights = best
        return LoraHubResult(weights, value, uniform, zero, len(history), history)

    def fit_task(
        self,
        mixture: MixtureModel,
        stack: ExpertStack,
        texts: Sequence[str],
        truth: np.ndarray,
        label_descriptions: Sequence[str],
        *,
        progress: bool = False,
    ) -> LoraHubResult:
        """Search merge weights for one task from its labelled examples (texts, truth)."""
        from tqdm import tqdm

        from moerge.combine.merging import lorahub

        if len(texts) == 0 or len(texts) != len(truth):
            raise ValueError("LoraHub needs labelled examples: one label index per text")
        target = torch.as_tensor(np.asarray(truth), dtype=torch.long)
        bar = tqdm(
            total=self.config.budget,
            desc="lorahub",
            disable=not progress,
            file=sys.stderr,
            leave=False,
        )

        @torch.no_grad()
        def loss(w: np.ndarray) -> float:
            with mixture.merged(lorahub(stack, torch.as_tensor(w, dtype=torch.float32))):
                x = torch.from_numpy(mixture.embed(texts))
                labels = torch.from_numpy(mixture.embed(label_descriptions))
            bar.update(1)
            return float(torch.nn.functional.cross_entropy(label_logits(x, labels), target))

        try:
            return self.search(loss, len(stack))
        finally:
            bar.close()


def few_shot(truth: np.ndarray, shots: int, seed: int) -> np.ndarray:
    """Indices of up to `shots` examples per label, drawn with a seed, in ascending order."""
    rng = np.random.default_rng([seed, 4242])
    chosen = []
    for label in np.unique(truth):
        rows = np.flatnonzero(truth == label)
        chosen.extend(rng.choice(rows, size=min(shots, len(rows)), replace=False).tolist())
    return np.asarray(sorted(chosen), dtype=np.int64)
