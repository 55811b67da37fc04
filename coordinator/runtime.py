"""The models a coordinator computes with: one base model per name, and its experts.

Experts are materialised from the blob store into a local cache directory the
first time they are needed (PEFT loads adapters from directories), then kept
loaded in a bounded in-memory cache (`--expert-cache-size`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from coordinator.blobs import BlobStore
from coordinator.registry.models import Expert
from coordinator.services import base_models
from coordinator.services.errors import Code, ServiceError
from moerge.experts.manifest import ADAPTER_CONFIG, ADAPTER_WEIGHTS
from moerge.experts.runtime import ExpertSet


class Runtimes:
    """Expert sets per base model, built on first use and shared by every RPC."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        blobs: BlobStore,
        cache_dir: Path,
        *,
        capacity: int = 8,
    ) -> None:
        self.sessions = sessions
        self.blobs = blobs
        self.cache_dir = Path(cache_dir)
        self.capacity = capacity
        self._sets: dict[str, ExpertSet] = {}
        self._lock = threading.Lock()

    def experts(self, base_model_name: str) -> ExpertSet:
        with self._lock:
            found = self._sets.get(base_model_name)
            if found is None:
                with self.sessions() as session:
                    path = base_models.weights_dir(session, name=base_model_name)
                if not (path / "config.json").is_file():
                    raise ServiceError(
                        Code.FAILED_PRECONDITION,
                        f"the weights of base model {base_model_name!r} are not at {path}",
                    )
                found = ExpertSet(path, self.materialise, capacity=self.capacity)
                self._sets[base_model_name] = found
            return found

    def materialise(self, ref: str) -> Path:
        """The local directory holding an expert's adapter, written from blobs if missing."""
        name, _, version = ref.partition(":")
        with self.sessions() as session:
            row = session.scalar(
                select(Expert).where(Expert.name == name, Expert.version == version)
            )
            if row is None:
                raise ServiceError(Code.NOT_FOUND, f"no expert {ref!r}")
            expert_id, blobs = row.id, (row.adapter_config_blob, row.adapter_weights_blob)
        target = self.cache_dir / expert_id
        if (target / ADAPTER_WEIGHTS).is_file():
            return target
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{expert_id}-", dir=self.cache_dir))
        try:
            for filename, blob in zip((ADAPTER_CONFIG, ADAPTER_WEIGHTS), blobs, strict=True):
                with open(staging / filename, "wb") as out:
                    for chunk in self.blobs.iter_chunks(blob):
                        out.write(chunk)
            os.replace(staging, target)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            if not (target / ADAPTER_WEIGHTS).is_file():
                raise
        return target
