"""Sentence embeddings from a base model, with or without a LoRA expert, and label scoring.

Every task in moerge is scored in one shared output space (DESIGN.md, "The task
format"): the model embeds the text and each label's description, and the
prediction is the label whose description is most similar. Embeddings are
mean-pooled over tokens and L2-normalised, the sentence-transformers convention
that all-MiniLM-L6-v2 was trained with.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

# Cosine similarities live in [-1, 1]; a fixed scale turns them into logits
# sharp enough for cross-entropy (sentence-transformers' ranking-loss default).
LOGIT_SCALE = 20.0
DEFAULT_MAX_LENGTH = 128


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of the token states over real tokens, L2-normalised."""
    mask = mask.unsqueeze(-1).to(hidden.dtype)  # [B, T, 1]
    summed = (hidden * mask).sum(dim=1)  # [B, d]
    pooled = summed / mask.sum(dim=1).clamp(min=1.0)
    return torch.nn.functional.normalize(pooled, dim=-1)


def label_logits(texts: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """[N, d] x [L, d] unit vectors -> [N, L] logits of the scoring space."""
    return LOGIT_SCALE * texts @ labels.T


def label_probs(texts: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Probabilities over labels for each text, from unit embeddings. [N, L]"""
    logits = LOGIT_SCALE * (texts @ labels.T)
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    return np.asarray(probs / probs.sum(axis=1, keepdims=True))


class Encoder:
    """A tokenizer and an encoder that turn texts into unit sentence embeddings."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        max_length: int = DEFAULT_MAX_LENGTH,
        batch_size: int = 64,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        # never longer than the model's position table
        positions = getattr(getattr(model, "config", None), "max_position_embeddings", None)
        self.max_length = min(max_length, positions) if isinstance(positions, int) else max_length
        self.batch_size = batch_size

    @classmethod
    def from_dir(cls, base_dir: Path, **kwargs: Any) -> Encoder:
        from moerge.models import load

        model, tokenizer = load(Path(base_dir))
        model.eval()
        return cls(model, tokenizer, **kwargs)

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)

    def tokenize(self, texts: Sequence[str]) -> Any:
        """A padded batch of token ids and attention mask for texts."""
        return self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )

    def encode(self, batch: Any) -> torch.Tensor:
        """Embeddings of a tokenized batch through the model as it stands. [N, d]"""
        out = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        return mean_pool(out.last_hidden_state, batch["attention_mask"])

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        """Embeddings of texts through the model as it stands, keeping gradients. [N, d]"""
        return self.encode(self.tokenize(texts))

    def batches(self, texts: Sequence[str]) -> list[list[int]]:
        """Indices of texts in batches of similar length, so that padding stays short."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        return [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]

    @torch.no_grad()
    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit embeddings of texts, in their order. [N, d] float32"""
        texts = list(texts)
        out = np.zeros((len(texts), self.hidden_size), dtype=np.float32)
        was_training = self.model.training
        self.model.eval()
        try:
            for index in self.batches(texts):
                out[index] = self.forward([texts[i] for i in index]).numpy()
        finally:
            self.model.train(was_training)
        return out
