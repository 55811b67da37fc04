"""Serving many experts on one base model: a bounded cache of loaded LoRA adapters.

All experts share one copy of the base model's weights: each is loaded as a
named PEFT adapter into the same model, switched in per batch, and the least
recently used adapter is unloaded when more than `capacity` are in memory.
"""

from __future__ import annotations

import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from moerge.experts.encoder import DEFAULT_MAX_LENGTH, Encoder
from moerge.experts.mixture import ExpertStack, MixtureModel

# key -> expert directory; lets a server fetch adapters from its blob store lazily
Locator = Callable[[str], Path]


class ExpertSet:
    """Embeddings from the base model or any of a set of experts, loaded on demand.

    `cache_embeddings` memoises (expert, text) -> embedding, for benchmarks that
    score the same inputs with many systems.
    """

    def __init__(
        self,
        base_dir: Path,
        locate: Locator,
        *,
        capacity: int = 8,
        max_length: int = DEFAULT_MAX_LENGTH,
        cache_embeddings: bool = False,
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.base_dir = Path(base_dir)
        self.encoder = Encoder.from_dir(self.base_dir, max_length=max_length)
        self.base = self.encoder.model
        self.locate = locate
        self.capacity = capacity
        self._peft: Any = None
        self._loaded: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()
        self._cache: dict[tuple[str | None, str], np.ndarray] | None = (
            {} if cache_embeddings else None
        )
        self.loads = 0
        self._mixture: MixtureModel | None = None
        self._stacks: dict[tuple[str, ...], ExpertStack] = {}

    @property
    def loaded(self) -> list[str]:
        return list(self._loaded)

    def _load(self, key: str) -> None:
        from peft import PeftModel

        if key in self._loaded:
            self._loaded.move_to_end(key)
            return
        path = str(self.locate(key))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
            if self._peft is None:
                self._peft = PeftModel.from_pretrained(self.base, path, adapter_name=key)
            else:
                self._peft.load_adapter(path, adapter_name=key)
        self._peft.eval()
        self._loaded[key] = None
        self.loads += 1
        while len(self._loaded) > self.capacity:
            old, _ = self._loaded.popitem(last=False)
            self._peft.set_adapter(key)
            self._peft.delete_adapter(old)

    def _embed(self, texts: list[str], expert: str | None) -> np.ndarray:
        if expert is None:
            if self._peft is None:
                return self.encoder.embed(texts)
            with self._peft.disable_adapter():
                return self.encoder.embed(texts)
        self._load(expert)
        self._peft.set_adapter(expert)
        return self.encoder.embed(texts)

    def embed(self, texts: Sequence[str], expert: str | None = None) -> np.ndarray:
        """Unit embeddings of texts by one expert (None: the base model). [N, d]"""
        texts = list(texts)
        with self._lock:
            if self._cache is None:
                return self._embed(texts, expert)
            missing = list(dict.fromkeys(t for t in texts if (expert, t) not in self._cache))
            if missing:
                for text, vector in zip(missing, self._embed(missing, expert), strict=True):
                    self._cache[(expert, text)] = vector
            if not texts:
                return np.zeros((0, self.encoder.hidden_size), dtype=np.float32)
            return np.stack([self._cache[(expert, t)] for t in texts])

    @contextmanager
    def mixing(self, refs: Sequence[str]) -> Iterator[tuple[MixtureModel, ExpertStack]]:
        """A model in which these experts can be merged or mixed per token, with their
        stacked LoRA factors; one caller at a time.

        The mixture is a second copy of the base model, apart from the PEFT adapters.
        """
        key = tuple(refs)
        with self._lock:
            if self._mixture is None:
                self._mixture = MixtureModel(self.base_dir, max_length=self.encoder.max_length)
            if key not in self._stacks:
                if len(self._stacks) >= 4:
                    self._stacks.pop(next(iter(self._stacks)))
                self._stacks[key] = ExpertStack.from_dirs(key, [self.locate(r) for r in key])
            yield self._mixture, self._stacks[key]
