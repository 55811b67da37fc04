"""Creating expert directories with PEFT: the adapter, plus moerge's expert.json."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from moerge.experts.manifest import Label, write_expert_metadata
from moerge.models import fingerprint


def expert_metadata(
    *,
    name: str,
    version: str,
    base_name: str,
    base_fingerprint: str,
    task_description: str = "",
    labels: Sequence[Label] = (),
    license: str = "",
) -> dict[str, Any]:
    return {
        "name": name,
        "version": version,
        "base_model": {"name": base_name, "fingerprint": base_fingerprint},
        "task_description": task_description,
        "labels": [{"name": x.name, "description": x.description} for x in labels],
        "license": license,
    }


def save_expert(peft_model: Any, out_dir: Path, metadata: dict[str, Any]) -> Path:
    """Save a PEFT model's adapter in PEFT's own format (safetensors) plus expert.json."""
    out_dir = Path(out_dir)
    for config in peft_model.peft_config.values():  # never leak a local path to the coordinator
        config.base_model_name_or_path = metadata["base_model"]["name"]
    peft_model.save_pretrained(str(out_dir), safe_serialization=True, save_embedding_layers=False)
    write_expert_metadata(out_dir, metadata)
    return out_dir


def create_lora(
    base_dir: Path,
    out_dir: Path,
    *,
    name: str,
    version: str = "1",
    base_name: str | None = None,
    rank: int = 8,
    target_modules: Sequence[str] = ("query", "value"),
    seed: int = 0,
    task_description: str = "",
    labels: Sequence[Label] = (),
) -> Path:
    """A freshly initialised (untrained) LoRA expert on a local base model.

    Both LoRA matrices are drawn at random, so that the adapter changes the
    model and exercises every path that a trained one does.
    """
    import torch
    from peft import LoraConfig, get_peft_model

    from moerge.models import load_model

    torch.manual_seed(seed)
    model = load_model(Path(base_dir))
    config = LoraConfig(
        r=rank,
        lora_alpha=2 * rank,
        target_modules=list(target_modules),
        lora_dropout=0.0,
        init_lora_weights=False,
    )
    with warnings.catch_warnings():  # transformers' own deprecation, raised inside peft
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
        peft_model = get_peft_model(model, config)
    metadata = expert_metadata(
        name=name,
        version=version,
        base_name=base_name or Path(base_dir).name,
        base_fingerprint=fingerprint(Path(base_dir)),
        task_description=task_description,
        labels=labels,
    )
    return save_expert(peft_model, out_dir, metadata)
