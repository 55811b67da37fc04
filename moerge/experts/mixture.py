"""Many LoRA experts inside one base model: merged into its weights, or mixed per token.

`ExpertStack` holds the LoRA factors of several experts on one base model, stacked per
adapted module: A [E, r, d_in], B [E, d_out, r] and the scale alpha / r of each expert
(experts of smaller rank are padded with zero rows, which leaves B @ A unchanged).

`MixtureModel` is a copy of the base model whose adapted Linear modules run in one of
three modes:
- plain: the base model;
- merged: W x + b + dW x, with one merged update dW per module (parameter merging);
- gated: W x + b + sum_e g_e(x_t) s_e B_e A_e x_t, where a gate gives every token its
  weights over the experts (Arrow, PHATGOOSE). This is computed for all tokens and
  experts at once with two einsums; there is no loop over tokens, inputs or experts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from moerge.experts.encoder import DEFAULT_MAX_LENGTH, Encoder
from moerge.experts.manifest import ADAPTER_CONFIG, ADAPTER_WEIGHTS

PEFT_PREFIX = "base_model.model."

# (module path, module input [B, T, d_in]) -> (mixing weights [B, T, E], router
# probabilities over all experts [B, T, E]); the weights of a token sum to 1 (or to the
# gate's value, for a single sigmoid gate) and are zero outside the chosen experts.
Gate = Callable[[str, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


class MixtureError(ValueError):
    """Experts that cannot be stacked together (different modules or base shapes)."""


@dataclass(frozen=True, eq=False)
class LoraFactors:
    """One adapted module's LoRA factors across experts."""

    A: torch.Tensor  # [E, r, d_in]
    B: torch.Tensor  # [E, d_out, r]
    scale: torch.Tensor  # [E]

    def deltas(self) -> torch.Tensor:
        """Each expert's full update s_e B_e A_e. [E, d_out, d_in]"""
        return self.scale[:, None, None] * torch.bmm(self.B, self.A)


Factors = dict[str, tuple[torch.Tensor, torch.Tensor]]  # module path -> (A [r, d_in], B [d_out, r])


def read_lora(expert_dir: Path) -> tuple[Factors, float]:
    """(factors per module, scale) of a PEFT LoRA directory."""
    expert_dir = Path(expert_dir)
    return read_lora_files(expert_dir / ADAPTER_CONFIG, expert_dir / ADAPTER_WEIGHTS)


def read_lora_files(config_path: Path, weights_path: Path) -> tuple[Factors, float]:
    """(factors per module, scale) of a PEFT adapter's config and weights, wherever they are."""
    from safetensors.torch import load_file

    expert_dir = Path(config_path).parent
    config = json.loads(Path(config_path).read_text())
    if config.get("use_dora"):
        raise MixtureError(f"{expert_dir}: DoRA adapters cannot be merged or mixed")
    if config.get("rank_pattern") or config.get("alpha_pattern"):
        raise MixtureError(f"{expert_dir}: per-module ranks (rank_pattern) are not supported")
    rank, alpha = int(config["r"]), float(config["lora_alpha"])
    scale = alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank
    tensors = load_file(str(weights_path))
    factors: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        for part in ("lora_A", "lora_B"):
            suffix = f".{part}.weight"
            if key.endswith(suffix):
                path = key[: -len(suffix)].removeprefix(PEFT_PREFIX)
                factors.setdefault(path, {})[part] = value.float()
    incomplete = sorted(p for p, f in factors.items() if len(f) != 2)
    if not factors or incomplete:
        raise MixtureError(
            f"{expert_dir}: no complete LoRA factors for {incomplete or 'any module'}"
        )
    return {p: (f["lora_A"], f["lora_B"]) for p, f in sorted(factors.items())}, scale


class ExpertStack:
    """The LoRA factors of experts on one base model, stacked per adapted module.

    Experts may adapt different modules: a module that an expert leaves alone gets zero
    factors for that expert.
    """

    def __init__(self, refs: Sequence[str], modules: Mapping[str, LoraFactors]) -> None:
        self.refs = tuple(refs)
        self.modules = dict(modules)
        for path, f in self.modules.items():
            if f.A.shape[0] != len(self.refs) or f.B.shape[0] != len(self.refs):
                raise MixtureError(f"{path}: factors for {f.A.shape[0]} experts, not {len(refs)}")
        self._deltas: dict[str, torch.Tensor] | None = None

    @classmethod
    def from_dirs(cls, refs: Sequence[str], dirs: Sequence[Path]) -> ExpertStack:
        if len(refs) != len(dirs) or not refs:
            raise MixtureError("an expert stack needs one directory per ref, and at least one")
        loaded = [read_lora(Path(d)) for d in dirs]
        paths = sorted({p for factors, _ in loaded for p in factors})
        modules = {}
        for path in paths:
            shapes = {
                (a.shape[1], b.shape[0]) for f, _ in loaded if path in f for a, b in [f[path]]
            }
            if len(shapes) != 1:
                raise MixtureError(f"{path}: experts disagree on the module's shape {shapes}")
            ((d_in, d_out),) = shapes
            rank = max(f[path][0].shape[0] for f, _ in loaded if path in f)
            A = torch.zeros(len(refs), rank, d_in)
            B = torch.zeros(len(refs), d_out, rank)
            for e, (f, _) in enumerate(loaded):
                if path in f:
                    a, b = f[path]
                    A[e, : a.shape[0]] = a
                    B[e, :, : b.shape[1]] = b
            scale = torch.tensor([s for _, s in loaded], dtype=torch.float32)
            modules[path] = LoraFactors(A, B, scale)
        return cls(refs, modules)

    def __len__(self) -> int:
        return len(self.refs)

    def select(self, index: Sequence[int]) -> ExpertStack:
        """The stack of experts index (in that order)."""
        i = torch.as_tensor(list(index), dtype=torch.long)
        return ExpertStack(
            [self.refs[int(j)] for j in i],
            {p: LoraFactors(f.A[i], f.B[i], f.scale[i]) for p, f in self.modules.items()},
        )

    def deltas(self) -> dict[str, torch.Tensor]:
        """Each module's full updates of every expert. {path: [E, d_out, d_in]}"""
        if self._deltas is None:
            self._deltas = {p: f.deltas() for p, f in self.modules.items()}
        return self._deltas


@dataclass
class _Merged:
    deltas: Mapping[str, torch.Tensor]  # path -> [d_out, d_in]


@dataclass(frozen=True, eq=False)
class GateRecord:
    """Per-input summaries of the per-token routing of a batch of texts."""

    mean_weights: np.ndarray  # [N, E] mixing weights averaged over real tokens and modules
    entropy: np.ndarray  # [N] the router's entropy over all experts (nats), averaged likewise
    active: np.ndarray  # [N] distinct experts that touched any token of the input


@dataclass
class _Gated:
    stack: ExpertStack
    gate: Gate
    weights: list[torch.Tensor] = field(default_factory=list)  # per module, this batch
    probs: list[torch.Tensor] = field(default_factory=list)
    record: bool = False


class MixedLinear(nn.Module):
    """A base Linear module whose output the owning MixtureModel's mode may adapt."""

    def __init__(self, base: nn.Linear, path: str, owner: MixtureModel) -> None:
        super().__init__()
        self.base = base
        self.path = path
        self._owner = [owner]  # a list, so that nn.Module does not register a cycle

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        mode = self._owner[0].mode
        if isinstance(mode, _Merged):
            delta = mode.deltas.get(self.path)
            return y if delta is None else y + nn.functional.linear(x, delta)
        if isinstance(mode, _Gated):
            f = mode.stack.modules.get(self.path)
            if f is None:
                return y
            weights, probs = mode.gate(self.path, x)  # [B, T, E]
            if mode.record:
                mode.weights.append(weights.detach())
                mode.probs.append(probs.detach())
            z = torch.einsum("btd,erd->bter", x, f.A)  # every token through every A_e
            z = z * (weights * f.scale)[..., None]
            return y + torch.einsum("bter,eor->bto", z, f.B)
        return y


class MixtureModel:
    """A copy of the base model in which experts are merged or mixed per token."""

    def __init__(
        self, base_dir: Path, *, max_length: int = DEFAULT_MAX_LENGTH, batch_size: int = 64
    ) -> None:
        self.encoder = Encoder.from_dir(
            Path(base_dir), max_length=max_length, batch_size=batch_size
        )
        self.model = self.encoder.model
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.layers: dict[str, MixedLinear] = {}
        self.mode: _Merged | _Gated | None = None
        self._mask: torch.Tensor | None = None

    def adapt(self, paths: Sequence[str]) -> None:
        """Make the modules at paths adaptable (a no-op for those that already are)."""
        for path in paths:
            if path in self.layers:
                continue
            try:
                module = self.model.get_submodule(path)
            except AttributeError:
                raise MixtureError(f"the base model has no module {path!r}") from None
            if not isinstance(module, nn.Linear):
                raise MixtureError(f"{path} is a {type(module).__name__}, not a Linear module")
            parent_path, _, name = path.rpartition(".")
            parent = self.model.get_submodule(parent_path) if parent_path else self.model
            layer = MixedLinear(module, path, self)
            setattr(parent, name, layer)
            self.layers[path] = layer

    @contextmanager
    def _in_mode(self, mode: _Merged | _Gated) -> Iterator[None]:
        if self.mode is not None:
            raise RuntimeError("the mixture model is already in use")
        self.mode = mode
        try:
            yield
        finally:
            self.mode = None

    @contextmanager
    def merged(self, deltas: Mapping[str, torch.Tensor]) -> Iterator[MixtureModel]:
        """Within the block, the model is the base plus one merged update per module."""
        self.adapt(sorted(deltas))
        with self._in_mode(_Merged(deltas)):
            yield self

    @contextmanager
    def gated(self, stack: ExpertStack, gate: Gate) -> Iterator[MixtureModel]:
        """Within the block, every token mixes the stack's experts with the gate's weights."""
        self.adapt(sorted(stack.modules))
        with self._in_mode(_Gated(stack, gate)):
            yield self

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit embeddings of texts in the current mode. [N, d]"""
        return self.encoder.embed(texts)

    @torch.no_grad()
    def embed_gated(
        self, texts: Sequence[str], stack: ExpertStack, gate: Gate
    ) -> tuple[np.ndarray, GateRecord]:
        """Embeddings with per-token mixing, and per-input summaries of the routing."""
        texts = list(texts)
        out = np.zeros((len(texts), self.encoder.hidden_size), dtype=np.float32)
        n_experts = len(stack)
        mean = np.zeros((len(texts), n_experts))
        entropy = np.zeros(len(texts))
        active = np.zeros(len(texts))
        self.adapt(sorted(stack.modules))
        mode = _Gated(stack, gate, record=True)
        self.model.eval()
        with self._in_mode(mode):
            for index in self.encoder.batches(texts):
                batch = self.encoder.tokenize([texts[i] for i in index])
                mode.weights.clear()
                mode.probs.clear()
                out[index] = self.encoder.encode(batch).numpy()
                m, h, a = _summarise(mode.weights, mode.probs, batch["attention_mask"])
                mean[index], entropy[index], active[index] = m, h, a
        return out, GateRecord(mean, entropy, active)


def _summarise(
    weights: list[torch.Tensor], probs: list[torch.Tensor], mask: torch.Tensor
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean weights [B, E], mean router entropy [B] and experts used [B] over real tokens."""
    w = torch.stack(weights)  # [M, B, T, E]
    p = torch.stack(probs)
    real = mask.to(w.dtype)[None, :, :, None]  # [1, B, T, 1]
    tokens = real.sum(dim=(0, 2)) * w.shape[0]  # [B, 1]: modules x real tokens
    mean = (w * real).sum(dim=(0, 2)) / tokens
    h = -(p * torch.log(p.clamp_min(1e-12))).sum(-1, keepdim=True)  # [M, B, T, 1]
    entropy = (h * real).sum(dim=(0, 2)) / tokens
    used = ((w > 0) & (real > 0)).any(dim=2).any(dim=0).sum(-1)  # [B]
    return mean.numpy(), entropy[:, 0].numpy(), used.numpy().astype(float)


def top_k_softmax(scores: torch.Tensor, k: int, temperature: float = 1.0) -> torch.Tensor:
    """Softmax over each row's k largest scores; zero elsewhere. [..., E] -> [..., E]"""
    k = min(k, scores.shape[-1])
    top, index = torch.topk(scores, k, dim=-1)
    out = torch.zeros_like(scores)
    return out.scatter(-1, index, torch.softmax(top / temperature, dim=-1))
