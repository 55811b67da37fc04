"""Arrow prototypes (Ostapenko et al. 2024): routing vectors read off the adapter itself.

For each adapted module, an expert's prototype is the top right-singular vector of its
update B A: the input direction the expert changes most. A token is routed to the
experts whose prototypes it aligns with, |<x, v_e>|, so the sign of v is irrelevant; it
is fixed here (largest entry positive) so that the stored vectors are reproducible.

The SVD is taken without forming B A: with A^T = Q R (Q [d_in, r]), B A = (B R^T) Q^T,
so the right-singular vectors are Q times those of the small matrix B R^T [d_out, r].
PEFT's Arrow layer finds the same vector by 15 steps of power iteration; the exact
decomposition costs no more at rank 8 and does not depend on the spectral gap.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from moerge.experts.mixture import Factors, read_lora, read_lora_files
from moerge.stats.files import write_stats

KIND = "arrow"


def top_right_singular(A: torch.Tensor, B: torch.Tensor) -> tuple[torch.Tensor, float]:
    """(v [d_in], sigma_1) of B A for A [r, d_in], B [d_out, r], without forming B A."""
    q, r = torch.linalg.qr(A.double().T)  # [d_in, r], [r, r]
    _, s, vh = torch.linalg.svd(B.double() @ r.T, full_matrices=False)
    v = q @ vh[0]
    v = v * torch.sign(v[v.abs().argmax()])
    return v.float(), float(s[0])


def arrow_prototypes(expert_dir: Path) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """({module path: prototype [d_in]}, {module path: top singular value of s B A})."""
    return _prototypes(*read_lora(Path(expert_dir)))


def _prototypes(factors: Factors, scale: float) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    prototypes, sigmas = {}, {}
    for path, (a, b) in factors.items():
        v, sigma = top_right_singular(a, b)
        prototypes[path] = v.numpy()
        sigmas[path] = scale * sigma
    return prototypes, sigmas


def write_arrow(expert_dir: Path) -> Path:
    """Compute an expert's Arrow prototypes and store them as its `arrow` statistics."""
    prototypes, sigmas = arrow_prototypes(expert_dir)
    return write_stats(expert_dir, KIND, prototypes, {"singular_values": sigmas})


def arrow_stats(config_path: Path, weights_path: Path) -> tuple[bytes, dict[str, object]]:
    """(safetensors bytes, metadata) of the `arrow` statistics of an adapter's two files."""
    from safetensors.numpy import save

    prototypes, sigmas = _prototypes(*read_lora_files(Path(config_path), Path(weights_path)))
    return save(prototypes), {"singular_values": sigmas, "computed_by": "coordinator"}
