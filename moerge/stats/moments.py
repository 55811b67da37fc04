"""The `embedding_moments` statistics: count, sum and second moment of pooled embeddings.

A contributor computes these from the base model's L2-normalised pooled embeddings of its
training inputs; the coordinator fits routers from them alone (they are the sufficient
statistics of a Gaussian, so LDA/QDA-style gates need nothing else). The second moment is
kept full (d x d), diagonal, or low-rank plus diagonal for large d.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from moerge.stats.kinds import StatsShapeError, validate_stats

KIND = "embedding_moments"
FORMAT_VERSION = 1
FORMS = ("full", "diag", "lowrank")
FULL_FORM_MAX_DIM = 1024
UNIT_NORM_TOLERANCE = 1e-3


@dataclass(frozen=True, eq=False)
class Moments:
    """Sufficient statistics of one expert's embeddings (float32 arrays, float64 maths)."""

    count: float
    sum: np.ndarray  # [d]
    form: str  # "full" | "diag" | "lowrank"
    outer: np.ndarray | None = None  # [d, d] sum of x x^T (form full)
    diag: np.ndarray | None = None  # [d] sum of x_i^2 (diag) or residual diagonal (lowrank)
    factors: np.ndarray | None = None  # [d, k] sum x x^T ~= factors @ factors.T + diag(diag)
    noise_multiplier: float = 0.0

    def __post_init__(self) -> None:
        if self.form not in FORMS:
            raise ValueError(f"unknown moments form {self.form!r} (expected one of {FORMS})")
        needed = {"full": ("outer",), "diag": ("diag",), "lowrank": ("factors", "diag")}
        missing = [n for n in needed[self.form] if getattr(self, n) is None]
        if missing:
            raise ValueError(f"moments of form {self.form!r} need {missing}")

    @property
    def dim(self) -> int:
        return int(self.sum.shape[0])

    def mean(self) -> np.ndarray:
        """E[x], shape [d] (float64)."""
        return np.asarray(self.sum, np.float64) / self._positive_count()

    def second_moment(self) -> np.ndarray:
        """E[x x^T], shape [d, d] (float64); reconstructed from the diag/lowrank forms."""
        return self._outer_sum() / self._positive_count()

    def covariance(self) -> np.ndarray:
        """E[x x^T] - mu mu^T, symmetrised and clipped to be positive semi-definite."""
        mu = self.mean()
        cov = self.second_moment() - np.outer(mu, mu)
        cov = 0.5 * (cov + cov.T)
        vals, vecs = np.linalg.eigh(cov)
        if vals[0] >= 0:
            return cov
        clipped = (vecs * np.clip(vals, 0.0, None)) @ vecs.T
        return 0.5 * (clipped + clipped.T)

    def to_tensors(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Tensors and metadata of kind `embedding_moments` (checked by `validate_stats`)."""
        tensors = {
            "count": np.asarray(self.count, np.float32).reshape(()),
            "sum": np.asarray(self.sum, np.float32),
        }
        for name in ("outer", "diag", "factors"):
            value = getattr(self, name)
            if value is not None:
                tensors[name] = np.ascontiguousarray(value, np.float32)
        meta = {"form": self.form, "noise_multiplier": self.noise_multiplier, "version": 1}
        validate_stats(KIND, {k: v.shape for k, v in tensors.items()}, meta, self.dim)
        return tensors, meta

    @classmethod
    def from_tensors(cls, tensors: Mapping[str, Any], meta: Mapping[str, Any]) -> Moments:
        """Moments from stored tensors and metadata; raises StatsShapeError on bad shapes."""
        shapes = {k: tuple(np.shape(v)) for k, v in tensors.items()}
        if "sum" not in shapes or len(shapes["sum"]) != 1:
            raise StatsShapeError(f"{KIND}: 'sum' must be a vector")
        validate_stats(KIND, shapes, meta, shapes["sum"][0])
        version = int(meta.get("version", FORMAT_VERSION))
        if version != FORMAT_VERSION:
            raise StatsShapeError(f"{KIND}: unsupported version {version}")
        arrays = {k: np.asarray(v, np.float32) for k, v in tensors.items()}
        if not all(np.isfinite(a).all() for a in arrays.values()):
            raise ValueError(f"{KIND}: tensors hold NaN or infinite values")
        return cls(
            count=float(arrays["count"].reshape(-1)[0]),
            sum=arrays["sum"],
            form=str(meta.get("form", "full")),
            outer=arrays.get("outer"),
            diag=arrays.get("diag"),
            factors=arrays.get("factors"),
            noise_multiplier=float(meta.get("noise_multiplier", 0.0)),
        )

    def _positive_count(self) -> float:
        if not self.count > 0:
            raise ValueError(f"moments have a non-positive count ({self.count}); cannot normalise")
        return float(self.count)

    def _outer_sum(self) -> np.ndarray:
        if self.form == "full":
            assert self.outer is not None
            return np.asarray(self.outer, np.float64)
        assert self.diag is not None
        diag = np.asarray(self.diag, np.float64)
        if self.form == "diag":
            return np.diag(diag)
        assert self.factors is not None
        factors = np.asarray(self.factors, np.float64)  # [d, k]
        return factors @ factors.T + np.diag(diag)


def compute_moments(
    embeddings: np.ndarray,
    form: str = "auto",
    rank: int = 64,
    noise_multiplier: float = 0.0,
    seed: int = 0,
) -> Moments:
    """The `embedding_moments` of `embeddings` [N, d] (L2-normalised rows).

    form: "full" keeps sum x x^T; "diag" its diagonal; "lowrank" its top-`rank` eigenpairs
    as factors [d, rank] plus the residual diagonal (so the diagonal is reconstructed exactly);
    "auto" is full when d <= 1024, else lowrank.

    Differential privacy (noise_multiplier = sigma > 0), the Gaussian mechanism of Dwork &
    Roth (2014, Thm A.1): every row has unit norm, so adding or removing one example changes
    the count by 1, the sum by a vector of L2 norm <= 1, and the upper triangle of the outer
    sum (which determines it) by a vector of L2 norm <= ||x x^T||_F = 1. Each of the three is
    released with independent N(0, sigma^2) noise per coordinate (the outer noise is drawn on
    the upper triangle and mirrored; the diag and lowrank forms are post-processing of the
    noisy outer sum). Each release is (epsilon, delta)-DP for any epsilon < 1 with
    sigma >= sqrt(2 ln(1.25 / delta)) / epsilon, and the three together compose to
    (3 epsilon, 3 delta); in zero-concentrated DP (Bun & Steinke 2016) each is
    1 / (2 sigma^2)-zCDP and the release is rho = 3 / (2 sigma^2)-zCDP, hence
    (rho + 2 sqrt(rho ln(1 / delta)), delta)-DP for every delta > 0. The guarantee is per
    example (example-level DP), and holds only for unit-norm rows, which are checked.
    """
    x = _checked_embeddings(embeddings, noise_multiplier)
    n, d = x.shape
    form = _resolve_form(form, d)
    if rank < 1:
        raise ValueError(f"rank must be >= 1, got {rank}")
    count = float(n)
    total = x.sum(axis=0)  # [d]
    outer = x.T @ x  # [d, d]
    if noise_multiplier > 0:
        rng = np.random.default_rng(seed)
        count += float(rng.normal(0.0, noise_multiplier))
        total = total + rng.normal(0.0, noise_multiplier, size=d)
        outer = outer + _symmetric_noise(rng, d, noise_multiplier)
    f32 = np.float32
    count = float(f32(count))  # stored as float32, so a saved copy reads back equal
    total32 = total.astype(f32)
    if form == "full":
        return Moments(
            count, total32, "full", outer=outer.astype(f32), noise_multiplier=noise_multiplier
        )
    if form == "diag":
        return Moments(
            count,
            total32,
            "diag",
            diag=np.diag(outer).astype(f32),
            noise_multiplier=noise_multiplier,
        )
    factors, residual = _low_rank(outer, min(rank, d))
    return Moments(
        count,
        total32,
        "lowrank",
        diag=residual.astype(f32),
        factors=factors.astype(f32),
        noise_multiplier=noise_multiplier,
    )


def save_moments(m: Moments, path: Path) -> None:
    """Write the moments as one safetensors file; metadata values are JSON strings."""
    from safetensors.numpy import save_file

    tensors, meta = m.to_tensors()
    save_file(tensors, str(path), metadata={k: json.dumps(v) for k, v in meta.items()})


def load_moments(path: Path) -> Moments:
    """Read moments written by `save_moments`."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="np") as handle:
            raw_meta = handle.metadata() or {}
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError) as exc:
        raise ValueError(f"{path}: not a readable safetensors file ({exc})") from exc
    try:
        meta = {k: json.loads(v) for k, v in raw_meta.items()}
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: metadata is not JSON ({exc})") from exc
    return Moments.from_tensors(tensors, meta)


def _checked_embeddings(embeddings: np.ndarray, noise_multiplier: float) -> np.ndarray:
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"embeddings must be a 2-D array [N, d], got shape {list(x.shape)}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"embeddings are empty (shape {list(x.shape)})")
    if not np.isfinite(x).all():
        raise ValueError("embeddings hold NaN or infinite values")
    if not (np.isfinite(noise_multiplier) and noise_multiplier >= 0):
        raise ValueError(f"noise_multiplier must be finite and >= 0, got {noise_multiplier}")
    if noise_multiplier > 0:
        norms = np.linalg.norm(x, axis=1)
        worst = float(np.abs(norms - 1.0).max())
        if worst > UNIT_NORM_TOLERANCE:
            raise ValueError(
                "differential privacy needs unit-norm embeddings (sensitivity 1); a row norm "
                f"differs from 1 by {worst:.3g}: L2-normalise the embeddings first"
            )
    return x


def _resolve_form(form: str, d: int) -> str:
    if form == "auto":
        return "full" if d <= FULL_FORM_MAX_DIM else "lowrank"
    if form not in FORMS:
        raise ValueError(f"unknown moments form {form!r} (expected auto, full, diag or lowrank)")
    return form


def _symmetric_noise(rng: np.random.Generator, d: int, sigma: float) -> np.ndarray:
    """N(0, sigma^2) on the upper triangle (diagonal included), mirrored below: [d, d]."""
    upper = np.triu(rng.normal(0.0, sigma, size=(d, d)))
    return upper + np.triu(upper, 1).T


def _low_rank(outer: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k eigen-factors [d, k] of a symmetric matrix and the residual diagonal [d]."""
    vals, vecs = np.linalg.eigh(0.5 * (outer + outer.T))  # ascending
    top_vals = np.clip(vals[::-1][:k], 0.0, None)  # [k]
    factors = vecs[:, ::-1][:, :k] * np.sqrt(top_vals)  # [d, k]
    residual = np.diag(outer) - (factors**2).sum(axis=1)  # [d]
    return factors, residual
