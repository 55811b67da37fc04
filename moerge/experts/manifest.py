"""The manifest of an expert: its identity, metadata and files, before any byte moves.

An expert directory is what PEFT's `save_pretrained` writes, plus moerge's
`expert.json` and optional routing statistics:

    adapter_config.json
    adapter_model.safetensors
    expert.json                   name, version, base model, task, labels, license
    stats/<kind>.safetensors      routing statistics of one kind
    stats/<kind>.json             their small metadata (optional)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
EXPERT_METADATA = "expert.json"
STATS_DIR = "stats"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


class ExpertDirError(Exception):
    """An expert directory on disk cannot be turned into a manifest."""


@dataclass(frozen=True)
class Label:
    name: str
    description: str

    @property
    def text(self) -> str:
        """What the label is scored by: its description, else its name."""
        return self.description.strip() or self.name


@dataclass(frozen=True)
class LoraSummary:
    rank: int
    alpha: float
    target_modules: tuple[str, ...]
    dropout: float = 0.0


@dataclass(frozen=True)
class FileEntry:
    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class StatsEntry:
    kind: str
    path: str
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ExpertManifest:
    name: str
    version: str
    base_model_name: str
    base_model_fingerprint: str
    task_description: str
    labels: tuple[Label, ...]
    lora: LoraSummary
    files: tuple[FileEntry, ...]
    stats: tuple[StatsEntry, ...] = ()
    license: str = ""

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)

    def file(self, path: str) -> FileEntry | None:
        return next((f for f in self.files if f.path == path), None)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def digest(self) -> str:
        """sha256 of the canonical JSON form: equal manifests, equal digests."""
        canonical = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExpertManifest:
        lora = data["lora"]
        return cls(
            name=data["name"],
            version=data["version"],
            base_model_name=data["base_model_name"],
            base_model_fingerprint=data["base_model_fingerprint"],
            task_description=data["task_description"],
            labels=tuple(Label(**label) for label in data["labels"]),
            lora=LoraSummary(
                int(lora["rank"]),
                float(lora["alpha"]),
                tuple(lora["target_modules"]),
                float(lora.get("dropout", 0.0)),
            ),
            files=tuple(FileEntry(**f) for f in data["files"]),
            stats=tuple(StatsEntry(**s) for s in data.get("stats", ())),
            license=data.get("license", ""),
        )


@dataclass(frozen=True)
class ExpertInfo:
    """An expert as the registry reports it."""

    manifest: ExpertManifest
    contributor: str
    status: str
    created_at: datetime
    id: str = ""


def sha256_file(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _file_entry(root: Path, relative: str) -> FileEntry:
    path = root / relative
    return FileEntry(relative, path.stat().st_size, sha256_file(path))


def _lora_summary(config_path: Path) -> LoraSummary:
    try:
        config = json.loads(config_path.read_text())
        targets = config["target_modules"]
        return LoraSummary(
            rank=int(config["r"]),
            alpha=float(config.get("lora_alpha", config["r"])),
            target_modules=tuple([targets] if isinstance(targets, str) else sorted(targets)),
            dropout=float(config.get("lora_dropout", 0.0)),
        )
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ExpertDirError(f"{config_path}: not a LoRA adapter config ({exc})") from exc


def _stats_entries(root: Path) -> list[StatsEntry]:
    entries = []
    for path in sorted((root / STATS_DIR).glob("*.safetensors")):
        meta_path = path.with_suffix(".json")
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        entries.append(StatsEntry(path.stem, f"{STATS_DIR}/{path.name}", meta))
    return entries


def read_expert_metadata(root: Path) -> dict[str, Any]:
    path = root / EXPERT_METADATA
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ExpertDirError(f"{path}: invalid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ExpertDirError(f"{path}: expected a JSON object")
    return data


def write_expert_metadata(root: Path, metadata: dict[str, Any]) -> None:
    (Path(root) / EXPERT_METADATA).write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")


def build_manifest(root: Path, **overrides: Any) -> ExpertManifest:
    """Read an expert directory, hash its files and describe it.

    `overrides` (name, version, task_description, license, base_model_name,
    base_model_fingerprint) take precedence over expert.json.
    """
    root = Path(root)
    if not root.is_dir():
        raise ExpertDirError(f"{root}: not a directory")
    pickles = sorted(p.name for p in root.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if not (root / ADAPTER_WEIGHTS).is_file():
        hint = f" (found {', '.join(pickles)}: pickle files are refused)" if pickles else ""
        raise ExpertDirError(
            f"{root}: no {ADAPTER_WEIGHTS}{hint}; save the adapter with "
            "save_pretrained(..., safe_serialization=True)"
        )
    if not (root / ADAPTER_CONFIG).is_file():
        raise ExpertDirError(f"{root}: no {ADAPTER_CONFIG}; is this a PEFT adapter directory?")
    meta = read_expert_metadata(root)
    meta.update({k: v for k, v in overrides.items() if v is not None})
    base = meta.get("base_model") or {}
    stats = _stats_entries(root)
    files = [_file_entry(root, ADAPTER_CONFIG), _file_entry(root, ADAPTER_WEIGHTS)]
    files += [_file_entry(root, s.path) for s in stats]
    missing = [k for k in ("name", "version") if not meta.get(k)]
    if missing:
        raise ExpertDirError(f"{root}/{EXPERT_METADATA}: missing {', '.join(missing)}")
    return ExpertManifest(
        name=str(meta["name"]),
        version=str(meta["version"]),
        base_model_name=str(meta.get("base_model_name") or base.get("name", "")),
        base_model_fingerprint=str(
            meta.get("base_model_fingerprint") or base.get("fingerprint", "")
        ),
        task_description=str(meta.get("task_description", "")),
        labels=tuple(
            Label(str(x["name"]), str(x.get("description", ""))) for x in meta.get("labels", [])
        ),
        lora=_lora_summary(root / ADAPTER_CONFIG),
        files=tuple(files),
        stats=tuple(stats),
        license=str(meta.get("license", "")),
    )
