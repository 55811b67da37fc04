"""The abstain rule shared by all routers, and the Gaussian algebra it shares with them.

An input far from every expert is better served by the base model alone than by the
least-bad expert. "Far" is measured per expert in the metric of the pooled within-expert
covariance: the squared Mahalanobis distance of x to the expert's mean, divided by the
distance a draw from that expert's own Gaussian has on average, tr(Sigma^-1 Sigma_e). That
ratio is about 1 for the expert's own inputs whatever its spread, so one threshold fits
tight and broad experts alike; the rule abstains when the smallest ratio exceeds it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from moerge.stats.moments import Moments

DEFAULT_THRESHOLD = 3.0


@dataclass(frozen=True, eq=False)
class ExpertGaussians:
    """The experts' moment-matched Gaussians N(mu_e, Sigma_e), from one eigh per expert."""

    means: np.ndarray  # [E, d]
    covs: np.ndarray  # [E, d, d] symmetric, PSD-clipped
    roots: np.ndarray  # [E, d, d] R_e with R_e R_e^T = Sigma_e, for sampling
    counts: np.ndarray  # [E]

    @classmethod
    def of(cls, moments: Sequence[Moments]) -> ExpertGaussians:
        means, covs, roots = [], [], []
        for m in moments:
            mu = m.mean()
            cov = m.second_moment() - np.outer(mu, mu)
            vals, vecs = np.linalg.eigh(0.5 * (cov + cov.T))
            root = vecs * np.sqrt(np.clip(vals, 0.0, None))  # [d, d]
            means.append(mu)
            covs.append(root @ root.T)
            roots.append(root)
        counts = np.array([max(float(m.count), 1.0) for m in moments])
        return cls(np.stack(means), np.stack(covs), np.stack(roots), counts)

    def sample(self, e: int, n: int, rng: np.random.Generator, project: bool = True) -> np.ndarray:
        """n draws [n, d] from expert e's Gaussian, optionally projected to the unit sphere."""
        z = rng.standard_normal((n, self.means.shape[1]))  # [n, d]
        x = self.means[e][None, :] + z @ self.roots[e].T  # [n, d]
        if project:
            x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        return x


def pooled_covariance(covs: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Pooled within-expert covariance sum_e n_e Sigma_e / sum_e n_e, shape [d, d].

    Equal to sum_e (outer_e - n_e mu_e mu_e^T) / sum_e n_e, the LDA estimate (Fisher 1936;
    Hastie, Tibshirani & Friedman, ESL section 4.3).
    """
    return np.tensordot(counts, covs, axes=1) / counts.sum()


def shrink(cov: np.ndarray, alpha: float) -> np.ndarray:
    """(1 - alpha) Sigma + alpha (tr Sigma / d) I: well conditioned for any sample size
    (Ledoit & Wolf 2004; regularised discriminant analysis, Friedman 1989)."""
    d = cov.shape[0]
    scale = max(float(np.trace(cov)) / d, 1e-12)
    return (1.0 - alpha) * cov + alpha * scale * np.eye(d)


def sample_shrinkage(alpha: float, count: float, d: int) -> float:
    """At least `alpha`, and more when there are few samples per dimension: d / (d + n).

    A covariance estimated from n < d inputs is singular, and an input it has not seen
    would look infinitely far along the directions its sample missed; shrinking by
    d / (d + n) keeps distances meaningful for small experts and vanishes for large ones.
    """
    return max(alpha, d / (d + max(count, 1.0)))


def whitener(cov: np.ndarray) -> tuple[np.ndarray, float]:
    """A = L^-1 for Sigma = L L^T (so (x-m)^T Sigma^-1 (x-m) = |A (x-m)|^2), and log det Sigma.

    Sigma must be shrunk first; the inverse is of the triangular Cholesky factor of a well
    conditioned matrix, computed by a triangular solve.
    """
    d = cov.shape[0]
    sym = 0.5 * (cov + cov.T)
    jitter = 0.0
    for _ in range(6):
        try:
            chol = np.linalg.cholesky(sym + jitter * np.eye(d))
            break
        except np.linalg.LinAlgError:
            jitter = max(jitter * 10.0, 1e-10 * max(float(np.trace(sym)) / d, 1e-12))
    else:
        raise ValueError("covariance is not positive definite even after jitter")
    a = np.linalg.solve(chol, np.eye(d))  # [d, d], lower triangular
    logdet = 2.0 * float(np.log(np.diag(chol)).sum())
    return a, logdet


class AbstainRule:
    """Abstain (fall back to the base model) on inputs far from every expert."""

    def __init__(self) -> None:
        self.whiten: np.ndarray | None = None  # [d, d]
        self.white_means: np.ndarray | None = None  # [E, d]
        self.expected: np.ndarray | None = None  # [E]

    @property
    def fitted(self) -> bool:
        return self.whiten is not None

    def fit(self, experts: ExpertGaussians, shrinkage: float = 0.1) -> AbstainRule:
        """Fit from the experts' Gaussians; `shrinkage` as in `shrink`."""
        means, covs, counts = experts.means, experts.covs, experts.counts
        d = means.shape[1]
        pooled = shrink(
            pooled_covariance(covs, counts), sample_shrinkage(shrinkage, counts.sum(), d)
        )
        a, _ = whitener(pooled)
        self.whiten = a
        self.white_means = means @ a.T  # [E, d]
        # Each expert's spread borrows from the pooled one, so that a small expert (few
        # examples, low-rank sample covariance) is not deemed tighter than it is.
        own_alpha = np.array([sample_shrinkage(shrinkage, n, d) for n in counts])[:, None, None]
        own = (1.0 - own_alpha) * covs + own_alpha * pooled  # [E, d, d]
        self.expected = np.maximum(np.einsum("eik,ik->e", a @ own, a), 1e-12)  # tr(A S_e A^T)
        return self

    def ratios(self, x: np.ndarray) -> np.ndarray:
        """Squared Mahalanobis distance to each expert over its expected value: [N, E]."""
        whiten, means, expected = self._fitted()
        y = np.asarray(x, np.float64) @ whiten.T  # [N, d]
        d2 = (y**2).sum(1)[:, None] - 2.0 * y @ means.T + (means**2).sum(1)[None, :]
        return np.maximum(d2, 0.0) / expected[None, :]

    def abstains(self, x: np.ndarray, threshold: float | None) -> np.ndarray:
        """[N] bool: True where the nearest expert's ratio exceeds the threshold."""
        if threshold is None:
            return np.zeros(len(x), dtype=bool)
        return self.ratios(x).min(axis=1) > threshold

    def state(self) -> dict[str, np.ndarray]:
        whiten, means, expected = self._fitted()
        return {"whiten": whiten, "white_means": means, "expected": expected}

    def load_state(self, tensors: Mapping[str, np.ndarray]) -> None:
        try:
            whiten, means, expected = (
                np.asarray(tensors[k], np.float64) for k in ("whiten", "white_means", "expected")
            )
        except KeyError as exc:
            raise ValueError(f"abstain state lacks tensor {exc}") from None
        d = whiten.shape[0]
        if whiten.shape != (d, d) or means.shape[1:] != (d,) or expected.shape != means.shape[:1]:
            raise ValueError("abstain state tensors have inconsistent shapes")
        self.whiten, self.white_means, self.expected = whiten, means, expected

    def _fitted(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.whiten is None or self.white_means is None or self.expected is None:
            raise RuntimeError("the abstain rule is not fitted")
        return self.whiten, self.white_means, self.expected
