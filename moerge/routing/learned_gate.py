"""A learned softmax gate, trained on draws from the experts' moment-matched Gaussians.

The experts' statistics define a generative model N(mu_e, Sigma_e) per expert; the gate is a
discriminative (multinomial logistic) classifier trained on synthetic draws from it, a
data-free surrogate for training a router on the experts' data (cf. the learned gates of
MoE routers, Shazeer et al. 2017, trained here without pooling any data). Its label term is
learnt too: some draws carry a random non-empty subset of an expert's label embeddings as
candidate labels, so one gate serves text-only and labelled queries. A final temperature is
calibrated on separate draws (temperature scaling, Guo et al. 2017).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from moerge.routing.abstain import ExpertGaussians
from moerge.routing.base import (
    ExpertProfile,
    Router,
    RouterConfig,
    best_label_match,
    check_config,
    log_softmax,
)
from moerge.routing.registry import register


@dataclass(frozen=True)
class LearnedGateConfig(RouterConfig):
    draws_per_expert: int = field(default=2000, metadata={"help": "training draws per expert"})
    calibration_draws: int = field(
        default=300, metadata={"help": "draws per expert for temperature calibration"}
    )
    heldout_draws: int = field(default=300, metadata={"help": "draws per expert for metrics"})
    steps: int = field(default=300, metadata={"help": "Adam steps"})
    batch_size: int = field(default=1024, metadata={"help": "draws per Adam step"})
    learning_rate: float = field(default=0.05, metadata={"help": "Adam learning rate"})
    weight_decay: float = field(
        default=1e-4, metadata={"help": "L2 penalty on the text weights (whitened features)"}
    )
    project_to_sphere: bool = field(
        default=True, metadata={"help": "L2-normalise draws, as real queries are"}
    )
    label_probability: float = field(
        default=0.5,
        metadata={
            "help": "fraction of draws that carry candidate labels (a random subset of one "
            "expert's labels, paired with text from a random expert: the labels decide)"
        },
    )
    seed: int = field(default=0, metadata={"help": "mixed with fit's seed for the draws"})

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("draws_per_expert", "calibration_draws", "heldout_draws", "steps"):
            check_config(getattr(self, name) >= 1, name, getattr(self, name), ">= 1")
        check_config(self.batch_size >= 1, "batch_size", self.batch_size, ">= 1")
        check_config(self.learning_rate > 0, "learning_rate", self.learning_rate, "> 0")
        check_config(self.weight_decay >= 0, "weight_decay", self.weight_decay, ">= 0")
        check_config(0 <= self.label_probability <= 1, "label_probability", self.label_probability)


@dataclass
class _Draws:
    texts: np.ndarray  # [n, d]
    labels: np.ndarray  # [n, E] label-match scores; zeros where the draw has no labels
    target: np.ndarray  # [n, E] target distribution over experts


@register("learned_gate")
class LearnedGateRouter(Router):
    """softmax((x W + b + label_weight * a * s) / T), W, b, a learnt and T calibrated."""

    config_cls = LearnedGateConfig
    config: LearnedGateConfig
    taxonomy = {
        "routing_dataset": "synthetic draws from expert statistics (embedding moments)",
        "input_granularity": "example",
        "depth": "model",
        "selection": "top-k",
        "aggregation": "set by the combination",
    }

    def __init__(self, config: LearnedGateConfig | None = None) -> None:
        super().__init__(config)
        self.weight = np.zeros((0, 0))  # [d, E]
        self.bias = np.zeros(0)  # [E]
        self.label_coef = 0.0  # a >= 0
        self.temperature = 1.0  # T > 0

    def _fit(
        self, profiles: Sequence[ExpertProfile], gaussians: ExpertGaussians, seed: int
    ) -> dict[str, float]:
        cfg = self.config
        rng = np.random.default_rng([cfg.seed, seed])
        torch_gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
        train = self._draws(gaussians, cfg.draws_per_expert, rng)
        calib = self._draws(gaussians, cfg.calibration_draws, rng)
        heldout = self._draws(gaussians, cfg.heldout_draws, rng)
        loss = self._train(train, torch_gen)
        self.temperature = 1.0
        before = _nll_accuracy(self._raw_logits(heldout), heldout.target)
        self.temperature = _calibrate(self._raw_logits(calib), calib.target)
        after = _nll_accuracy(self._raw_logits(heldout), heldout.target)
        return {
            "train_loss": loss,
            "heldout_nll_before_calibration": before[0],
            "heldout_accuracy_before_calibration": before[1],
            "heldout_nll": after[0],
            "heldout_accuracy": after[1],
            "temperature": self.temperature,
            "label_coefficient": self.label_coef,
        }

    def _draws(self, gaussians: ExpertGaussians, n: int, rng: np.random.Generator) -> _Draws:
        """n draws per expert: text-only, or labelled by a slot expert with text from any."""
        e = len(gaussians.means)
        texts = [gaussians.sample(i, n, rng, self.config.project_to_sphere) for i in range(e)]
        original = np.concatenate(texts)  # [e n, d]
        x = original.copy()
        source = np.repeat(np.arange(e), n)  # [e n] which expert each text came from
        labels = np.zeros((e * n, e))
        target = np.eye(e)[source]
        match = best_label_match(self.label_bank, self.label_bank, self.label_owner, e)  # [L, E]
        for slot in range(e):
            own = np.flatnonzero(self.label_owner == slot)
            rows = np.flatnonzero(
                (source == slot) & (rng.random(e * n) < self.config.label_probability)
            )
            if len(own) == 0 or len(rows) == 0:
                continue
            # swap the text for a random expert's draw: the labels, not the text, decide
            donors = rng.integers(0, e * n, size=len(rows))
            x[rows], text_source = original[donors], source[donors]
            mask = rng.random((len(rows), len(own))) < 0.5  # [r, L_e] random label subsets
            mask[np.arange(len(rows)), rng.integers(0, len(own), len(rows))] = True
            scores = (mask @ match[own]) / mask.sum(axis=1, keepdims=True)  # [r, E]
            labels[rows] = scores
            target[rows] = _label_targets(scores, text_source)
        return _Draws(texts=x, labels=labels, target=target)

    def _train(self, draws: _Draws, gen: torch.Generator) -> float:
        cfg, whiten = self.config, self.abstain_rule.whiten
        assert whiten is not None
        center = draws.texts.mean(axis=0)
        a = torch.tensor(whiten, dtype=torch.float32)  # [d, d]
        x = (torch.tensor(draws.texts - center, dtype=torch.float32)) @ a.T  # [n, d] whitened
        s = torch.tensor(draws.labels, dtype=torch.float32)  # [n, E]
        y = torch.tensor(draws.target, dtype=torch.float32)  # [n, E]
        d, e = x.shape[1], y.shape[1]
        w = torch.zeros(d, e, requires_grad=True)
        b = torch.zeros(e, requires_grad=True)
        log_a = torch.tensor(math.log(10.0), requires_grad=True)  # a = exp(log_a) > 0
        opt = torch.optim.Adam([w, b, log_a], lr=cfg.learning_rate)
        loss = torch.tensor(0.0)
        for _ in range(cfg.steps):
            idx = torch.randint(0, len(x), (min(cfg.batch_size, len(x)),), generator=gen)
            logits = x[idx] @ w + b + log_a.exp() * s[idx]  # [B, E]
            loss = -(y[idx] * torch.log_softmax(logits, dim=1)).sum(1).mean()
            opt.zero_grad()
            (loss + cfg.weight_decay * (w**2).sum()).backward()
            opt.step()
        with torch.no_grad():
            w_eff = (a.T @ w).double().numpy()  # [d, E] acting on raw x
            self.weight = w_eff
            self.bias = b.double().numpy() - center @ w_eff
            self.label_coef = float(log_a.exp())
        return float(loss.detach())

    def _raw_logits(self, draws: _Draws) -> np.ndarray:
        return self._logits(draws.texts, draws.labels, per_row=True)

    def _logits(
        self, texts: np.ndarray, label_scores: np.ndarray | None, per_row: bool = False
    ) -> np.ndarray:
        logits = texts @ self.weight + self.bias[None, :]  # [N, E]
        if label_scores is not None:
            scores = label_scores if per_row else label_scores[None, :]
            logits = logits + self.config.label_weight * self.label_coef * scores
        return logits / self.temperature

    def _state(self) -> dict[str, np.ndarray]:
        return {
            "weight": self.weight,
            "bias": self.bias,
            "label_coef": np.array(self.label_coef),
            "temperature": np.array(self.temperature),
        }

    def _load_state(self, tensors: Mapping[str, np.ndarray]) -> int:
        missing = [k for k in ("weight", "bias", "label_coef", "temperature") if k not in tensors]
        if missing:
            raise ValueError(f"learned_gate state lacks {missing}")
        self.weight = np.asarray(tensors["weight"], np.float64)
        self.bias = np.asarray(tensors["bias"], np.float64)
        self.label_coef = float(np.asarray(tensors["label_coef"]).reshape(()))
        self.temperature = float(np.asarray(tensors["temperature"]).reshape(()))
        if self.weight.ndim != 2 or self.weight.shape[1] != len(self.bias) or self.temperature <= 0:
            raise ValueError("learned_gate state tensors are inconsistent")
        return len(self.bias)


def _label_targets(scores: np.ndarray, text_source: np.ndarray) -> np.ndarray:
    """Target [r, E]: the owners of the label set (best match), the text's expert among them
    if it is one (text decides between experts sharing the labels), else all owners alike."""
    owners = scores >= scores.max(axis=1, keepdims=True) - 1e-6  # [r, E]
    rows = np.arange(len(scores))
    own_text = owners[rows, text_source]
    target = owners / owners.sum(axis=1, keepdims=True)
    target[own_text] = 0.0
    target[rows[own_text], text_source[own_text]] = 1.0
    return target


def _nll_accuracy(logits: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    nll = float(-(target * log_softmax(logits)).sum(axis=1).mean())
    correct = target[np.arange(len(target)), logits.argmax(axis=1)] > 0
    return nll, float(correct.mean())


def _calibrate(logits: np.ndarray, target: np.ndarray) -> float:
    """The temperature minimising NLL, by golden-section search on log T in [-6, 6]."""
    lo, hi = -6.0, 6.0
    ratio = (math.sqrt(5) - 1) / 2

    def nll(log_t: float) -> float:
        return _nll_accuracy(logits / math.exp(log_t), target)[0]

    for _ in range(40):
        a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
        if nll(a) < nll(b):
            hi = b
        else:
            lo = a
    return math.exp(0.5 * (lo + hi))
