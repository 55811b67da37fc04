"""Merging experts' parameter updates into one update, per adapted module.

Every function takes the stacked full updates of E experts for one module, deltas
[E, *shape] (dW_e = s_e B_e A_e), and weights [E], and returns one update [*shape]:

- `linear`: sum_e w_e dW_e / sum_e w_e, a weighted average (uniform weights: the
  AdapterSoup-style soup of experts);
- `task_arithmetic` (Ilharco et al. 2023): lambda * sum_e w_e dW_e;
- `ties` (Yadav et al. 2023): trim each w_e dW_e to its `density` largest-magnitude
  entries, elect each entry's sign by the sign of the trimmed sum, average only the
  entries that agree with it (the disjoint mean), times lambda.

`lorahub` merges the LoRA factors instead (Huang et al. 2023): A = sum_e w_e A_e and
B = sum_e w_e B_e, so the update is s (sum w B)(sum w A), not a sum of updates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from moerge.experts.mixture import ExpertStack

Merge = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _checked(deltas: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    weights = torch.as_tensor(weights, dtype=deltas.dtype)
    if weights.ndim != 1 or weights.shape[0] != deltas.shape[0]:
        raise ValueError(
            f"need one weight per expert: {deltas.shape[0]}, got {tuple(weights.shape)}"
        )
    if not torch.isfinite(weights).all():
        raise ValueError("merge weights must be finite")
    return weights.reshape(-1, *([1] * (deltas.ndim - 1)))


def linear(deltas: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    w = _checked(deltas, weights)
    total = w.sum()
    if total <= 0:
        raise ValueError("linear merge weights must have a positive sum")
    return (w * deltas).sum(0) / total


def task_arithmetic(
    deltas: torch.Tensor, weights: torch.Tensor, scale: float = 1.0
) -> torch.Tensor:
    return scale * (_checked(deltas, weights) * deltas).sum(0)


def ties(
    deltas: torch.Tensor, weights: torch.Tensor, density: float = 0.2, scale: float = 1.0
) -> torch.Tensor:
    if not 0 < density <= 1:
        raise ValueError(f"TIES density must be in (0, 1], got {density}")
    weighted = _checked(deltas, weights) * deltas  # [E, ...]
    flat = weighted.reshape(weighted.shape[0], -1)
    keep = max(1, round(density * flat.shape[1]))
    # trim: each expert keeps its `keep` largest-magnitude entries
    threshold = flat.abs().topk(keep, dim=1).values[:, -1:]
    trimmed = torch.where(flat.abs() >= threshold, flat, torch.zeros_like(flat))
    # elect: the sign of the total mass per entry; merge: mean of the agreeing entries
    sign = torch.sign(trimmed.sum(0))
    agree = (torch.sign(trimmed) == sign) & (trimmed != 0)
    count = agree.sum(0).clamp(min=1)
    merged = (trimmed * agree).sum(0) / count
    return scale * merged.reshape(deltas.shape[1:])


@dataclass(frozen=True)
class MergeConfig:
    method: str = field(default="linear", metadata={"help": "linear, task_arithmetic or ties"})
    scale: float = field(
        default=1.0, metadata={"help": "lambda: the merged update's scale (task_arithmetic, ties)"}
    )
    density: float = field(default=0.2, metadata={"help": "TIES: fraction of entries kept"})

    def __post_init__(self) -> None:
        if self.method not in MERGES:
            raise ValueError(f"unknown merge method {self.method!r} (known: {', '.join(MERGES)})")
        if not self.scale > 0:
            raise ValueError(f"merge scale must be > 0, got {self.scale}")
        if not 0 < self.density <= 1:
            raise ValueError(f"TIES density must be in (0, 1], got {self.density}")

    def merge(self, deltas: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        if self.method == "linear":
            return linear(deltas, weights)
        if self.method == "task_arithmetic":
            return task_arithmetic(deltas, weights, self.scale)
        return ties(deltas, weights, self.density, self.scale)


MERGES = ("linear", "task_arithmetic", "ties")


def merge_stack(
    stack: ExpertStack, weights: torch.Tensor, config: MergeConfig
) -> dict[str, torch.Tensor]:
    """One merged update per module of the stack. {path: [d_out, d_in]}"""
    weights = torch.as_tensor(weights, dtype=torch.float32)
    return {p: config.merge(d, weights) for p, d in stack.deltas().items()}


def lorahub(stack: ExpertStack, weights: torch.Tensor) -> dict[str, torch.Tensor]:
    """LoraHub's merge of the factors: s (sum_e w_e B_e)(sum_e w_e A_e), per module."""
    w = torch.as_tensor(weights, dtype=torch.float32)
    if w.shape != (len(stack),):
        raise ValueError(f"need one weight per expert: {len(stack)}, got {tuple(w.shape)}")
    out: dict[str, torch.Tensor] = {}
    for path, f in stack.modules.items():
        if not torch.allclose(f.scale, f.scale[0]):
            raise ValueError(f"{path}: LoraHub merges factors, which needs one LoRA scale for all")
        a = torch.einsum("e,erd->rd", w, f.A)
        b = torch.einsum("e,eor->or", w, f.B)
        out[path] = f.scale[0] * b @ a
    return out
