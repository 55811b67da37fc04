"""Gaussian discriminant routing from the experts' pooled sufficient statistics.

Each expert's inputs are modelled as N(mu_e, Sigma) (shared covariance: linear discriminant
analysis, Fisher 1936) or N(mu_e, Sigma_e) (per-expert covariance: quadratic discriminant
analysis); see Hastie, Tibshirani & Friedman, The Elements of Statistical Learning, 4.3.
Count, sum and outer-product sum are exactly the sufficient statistics these need, so the
gate is the Bayes classifier under the model, learnt without any raw data. Covariances are
shrunk toward a scaled identity (regularised discriminant analysis, Friedman 1989), which
keeps them well conditioned when an expert has fewer examples than dimensions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from moerge.routing.abstain import (
    ExpertGaussians,
    pooled_covariance,
    sample_shrinkage,
    shrink,
    whitener,
)
from moerge.routing.base import ExpertProfile, Router, RouterConfig, check_config, log_softmax
from moerge.routing.registry import register

COVARIANCES = ("shared", "per_expert")
PRIORS = ("uniform", "count")


@dataclass(frozen=True)
class GaussianConfig(RouterConfig):
    covariance: str = field(
        default="shared",
        metadata={"help": "shared (LDA, linear in x) or per_expert (QDA, own covariances)"},
    )
    shrinkage: float = field(
        default=0.1,
        metadata={"help": "weight of (tr Sigma / d) I in each shrunk covariance, in [0, 1]"},
    )
    pooling: float = field(
        default=0.5,
        metadata={
            "help": "per_expert only: weight of the pooled covariance in each expert's "
            "(Friedman's RDA lambda; 0 is plain QDA, 1 is LDA with quadratic terms)"
        },
    )
    prior: str = field(
        default="uniform",
        metadata={"help": "expert prior: uniform, or proportional to each expert's count"},
    )
    temperature: float = field(
        default=1.0,
        metadata={"help": "divides the log-likelihood discriminant (1 is the Bayes posterior)"},
    )
    label_weight: float = field(
        default=1.0,
        metadata={
            "help": "weight of the label-match score, added as label_weight * s_e / "
            "label_temperature nats"
        },
    )
    label_temperature: float = field(
        default=0.02,
        metadata={
            "help": "scale of the label-match evidence: a match gap of 0.1 is worth "
            "label_weight * 0.1 / label_temperature nats"
        },
    )
    text_outlier: float = field(
        default=1e-3,
        metadata={
            "help": "when labels are given, the text posterior is mixed with this much "
            "uniform mass (the text model may be wrong), so that text evidence against "
            "an expert is at most log(E / text_outlier) nats and an owned label set wins"
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        check_config(
            self.covariance in COVARIANCES, "covariance", self.covariance, f"one of {COVARIANCES}"
        )
        check_config(self.prior in PRIORS, "prior", self.prior, f"one of {PRIORS}")
        check_config(0 <= self.shrinkage <= 1, "shrinkage", self.shrinkage)
        check_config(0 <= self.pooling <= 1, "pooling", self.pooling)
        check_config(self.temperature > 0, "temperature", self.temperature, "> 0")
        check_config(0 < self.text_outlier < 1, "text_outlier", self.text_outlier, "in (0, 1)")
        check_config(self.label_temperature > 0, "label_temperature", self.label_temperature, "> 0")


@register("gaussian")
class GaussianRouter(Router):
    """Posterior p(e | x) under Gaussian class models fit from the experts' moments."""

    config_cls = GaussianConfig
    config: GaussianConfig
    taxonomy = {
        "routing_dataset": "expert statistics (embedding moments)",
        "input_granularity": "example",
        "depth": "model",
        "selection": "top-k",
        "aggregation": "set by the combination",
    }

    def __init__(self, config: GaussianConfig | None = None) -> None:
        super().__init__(config)
        self.weight = np.zeros((0, 0))  # shared: [d, E] = Sigma^-1 mu_e
        self.bias = np.zeros(0)  # [E] -1/2 mu^T Sigma^-1 mu + log prior (shared) or log prior
        self.means = np.zeros((0, 0))  # per_expert: [E, d]
        self.whiteners = np.zeros((0, 0, 0))  # per_expert: [E, d, d] L_e^-1
        self.logdets = np.zeros(0)  # per_expert: [E] log det Sigma_e

    def _fit(
        self, profiles: Sequence[ExpertProfile], gaussians: ExpertGaussians, seed: int
    ) -> dict[str, float]:
        means, covs, counts = gaussians.means, gaussians.covs, gaussians.counts
        log_prior = np.log(
            counts / counts.sum()
            if self.config.prior == "count"
            else np.full(len(counts), 1.0 / len(counts))
        )
        alpha = sample_shrinkage(self.config.shrinkage, counts.sum(), means.shape[1])
        if self.config.covariance == "shared":
            a, logdet = whitener(shrink(pooled_covariance(covs, counts), alpha))
            self.weight = a.T @ (a @ means.T)  # [d, E]
            self.bias = -0.5 * np.einsum("ed,de->e", means, self.weight) + log_prior
            return {"log_det_covariance": logdet}
        pooled, lam = pooled_covariance(covs, counts), self.config.pooling
        pairs = [whitener(shrink((1 - lam) * c + lam * pooled, alpha)) for c in covs]
        self.means = means
        self.whiteners = np.stack([a for a, _ in pairs])
        self.logdets = np.array([ld for _, ld in pairs])
        self.bias = log_prior
        return {}

    def _logits(self, texts: np.ndarray, label_scores: np.ndarray | None) -> np.ndarray:
        if self.config.covariance == "shared":
            evidence = texts @ self.weight + self.bias[None, :]  # [N, E]
        else:
            evidence = np.stack(
                [self._quadratic(texts, e) for e in range(len(self.bias))], axis=1
            )  # [N, E]
        evidence = evidence / self.config.temperature
        if label_scores is None:
            return evidence
        eps = self.config.text_outlier
        robust = np.logaddexp(
            np.log1p(-eps) + log_softmax(evidence), np.log(eps / evidence.shape[1])
        )  # [N, E] log((1 - eps) p(e | x) + eps / E)
        scale = self.config.label_weight / self.config.label_temperature
        return robust + scale * label_scores[None, :]

    def _quadratic(self, texts: np.ndarray, e: int) -> np.ndarray:
        y = (texts - self.means[e]) @ self.whiteners[e].T  # [N, d]
        return -0.5 * (y**2).sum(axis=1) - 0.5 * self.logdets[e] + self.bias[e]  # [N]

    def _state(self) -> dict[str, np.ndarray]:
        if self.config.covariance == "shared":
            return {"weight": self.weight, "bias": self.bias}
        return {
            "means": self.means,
            "whiteners": self.whiteners,
            "logdets": self.logdets,
            "bias": self.bias,
        }

    def _load_state(self, tensors: Mapping[str, np.ndarray]) -> int:
        keys = (
            ("weight", "bias")
            if self.config.covariance == "shared"
            else ("means", "whiteners", "logdets", "bias")
        )
        missing = [k for k in keys if k not in tensors]
        if missing:
            raise ValueError(f"gaussian ({self.config.covariance}) state lacks {missing}")
        arrays = {k: np.asarray(tensors[k], np.float64) for k in keys}
        for k, v in arrays.items():
            setattr(self, k, v)
        return len(arrays["bias"])
