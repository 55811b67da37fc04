"""Validation of a LoRA adapter against the base model it claims to extend."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from moerge.experts.manifest import ADAPTER_CONFIG, ADAPTER_WEIGHTS, LoraSummary
from moerge.experts.validation import (
    LORA_SUFFIXES,
    PEFT_PREFIX,
    Problem,
    ValidationError,
    check_finite,
    invalid,
    load_tensors,
)
from moerge.models import BaseModelSpec

PLAIN_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.]{0,199}$")


def check_adapter_config(path: Path, base: BaseModelSpec) -> Any:
    """Parse adapter_config.json with PEFT itself; return the LoraConfig."""
    try:
        raw = json.loads(Path(path).read_text())
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise invalid(f"{ADAPTER_CONFIG}: invalid JSON ({exc})") from exc
    if not isinstance(raw, dict):
        raise invalid(f"{ADAPTER_CONFIG}: expected a JSON object")
    if raw.get("peft_type") != "LORA":
        raise invalid(
            f"{ADAPTER_CONFIG}: peft_type is {raw.get('peft_type')!r}; only LORA adapters are accepted"
        )
    for key, why in (
        ("use_dora", "DoRA"),
        ("modules_to_save", "full module copies (modules_to_save)"),
    ):
        if raw.get(key):
            raise invalid(f"{ADAPTER_CONFIG}: {why} is not supported; experts must be plain LoRA")
    if raw.get("bias", "none") != "none":
        raise invalid(f"{ADAPTER_CONFIG}: bias={raw['bias']!r} is not supported; use bias='none'")
    _check_plain_names(raw)
    config = _peft_config(raw)
    targets = _targeted(config, base)
    if not targets:
        raise ValidationError(
            Problem.BASE_MISMATCH,
            f"{ADAPTER_CONFIG}: target_modules {config.target_modules!r} match no linear module of "
            f"{base.name!r} (it has {', '.join(_short_names(base))})",
        )
    return config


def _check_plain_names(raw: dict[str, Any]) -> None:
    """Module selectors must be plain names: PEFT reads a string as a regular expression, and a
    contributor's regular expression run against every module could stall the coordinator."""
    targets = raw.get("target_modules")
    if targets != "all-linear":
        _names("target_modules", targets, allow_none=False)
    _names("exclude_modules", raw.get("exclude_modules"), allow_none=True)
    for key in ("rank_pattern", "alpha_pattern"):
        pattern = raw.get(key) or {}
        if not isinstance(pattern, dict):
            raise invalid(f"{ADAPTER_CONFIG}: {key} must be an object")
        _names(key, list(pattern), allow_none=True)
    layers = raw.get("layers_pattern")
    _names("layers_pattern", [layers] if isinstance(layers, str) else layers, allow_none=True)
    if raw.get("layer_replication"):
        raise invalid(
            f"{ADAPTER_CONFIG}: layer_replication is not supported; experts must be plain LoRA"
        )


def _names(key: str, value: Any, *, allow_none: bool) -> None:
    if value is None and allow_none:
        return
    if (
        isinstance(value, str)
        or not isinstance(value, list)
        or not all(isinstance(v, str) for v in value)
    ):
        raise invalid(
            f"{ADAPTER_CONFIG}: {key} must be a list of module names (regular expressions "
            f"are not accepted), got {value!r:.80}"
        )
    bad = [v for v in value if not PLAIN_NAME.match(v)]
    if bad:
        raise invalid(
            f"{ADAPTER_CONFIG}: {key} holds {bad[0]!r:.80}, which is not a plain module name"
        )


def _peft_config(raw: dict[str, Any]) -> Any:
    from peft import LoraConfig

    # keys written by other PEFT releases (peft_version, new options) are not ours to refuse
    known = set(LoraConfig.__dataclass_fields__)
    if not isinstance(raw.get("r"), int) or raw["r"] <= 0:
        raise invalid(f"{ADAPTER_CONFIG}: r must be a positive integer, got {raw.get('r')!r}")
    if not raw.get("target_modules"):
        raise invalid(f"{ADAPTER_CONFIG}: target_modules is empty")
    try:
        return LoraConfig(**{k: v for k, v in raw.items() if k in known and k != "peft_type"})
    except (TypeError, ValueError, AttributeError, re.error) as exc:
        raise invalid(f"{ADAPTER_CONFIG}: not a valid PEFT LoRA config ({exc})") from exc


def _targeted(config: Any, base: BaseModelSpec) -> set[str]:
    from peft.tuners.tuners_utils import check_target_module_exists

    if config.target_modules == "all-linear":
        return set(base.linear_modules)

    def matches(name: str) -> bool:
        found = check_target_module_exists(config, name)
        return found is True or isinstance(found, re.Match)

    return {name for name in base.linear_modules if matches(name)}


def _short_names(base: BaseModelSpec) -> list[str]:
    return sorted({name.rsplit(".", 1)[-1] for name in base.linear_modules})


def _rank_for(config: Any, module: str) -> int:
    for name, rank in (config.rank_pattern or {}).items():
        if module == name or module.endswith("." + name):
            return int(rank)
    return int(config.r)


def _split_key(key: str) -> tuple[str, str]:
    """'base_model.model.x.query.lora_A.weight' -> ('x.query', 'A')."""
    if not key.startswith(PEFT_PREFIX):
        raise invalid(f"{ADAPTER_WEIGHTS}: tensor {key!r} is not a PEFT LoRA tensor name")
    for suffix, part in LORA_SUFFIXES.items():
        if key.endswith(suffix):
            return key[len(PEFT_PREFIX) : -len(suffix)], part
    raise invalid(f"{ADAPTER_WEIGHTS}: tensor {key!r} is not a lora_A or lora_B weight")


def check_adapter_weights(
    path: Path, config: Any, base: BaseModelSpec, summary: LoraSummary
) -> None:
    """Tensor names, shapes and rank match the targeted modules; every value is finite."""
    if int(config.r) != summary.rank:
        raise invalid(f"manifest says rank {summary.rank} but {ADAPTER_CONFIG} says r={config.r}")
    tensors = load_tensors(Path(path))
    if not tensors:
        raise invalid(f"{ADAPTER_WEIGHTS}: holds no tensors")
    targeted = _targeted(config, base)
    modules: dict[str, dict[str, tuple[int, ...]]] = {}
    for key, tensor in tensors.items():
        module, part = _split_key(key)
        if module not in base.linear_modules:
            raise ValidationError(
                Problem.BASE_MISMATCH,
                f"{ADAPTER_WEIGHTS}: module {module!r} does not exist in {base.name!r}",
            )
        if module not in targeted:
            raise invalid(f"{ADAPTER_WEIGHTS}: module {module!r} is not among the target_modules")
        modules.setdefault(module, {})[part] = tuple(tensor.shape)
    for module, parts in sorted(modules.items()):
        _check_module_shapes(module, parts, base.linear_modules[module], _rank_for(config, module))
    check_finite(ADAPTER_WEIGHTS, tensors)


def _check_module_shapes(
    module: str, parts: dict[str, tuple[int, ...]], in_out: tuple[int, int], rank: int
) -> None:
    if set(parts) != {"A", "B"}:
        missing = "lora_B" if "A" in parts else "lora_A"
        raise invalid(f"{ADAPTER_WEIGHTS}: module {module!r} has no {missing} weight")
    fan_in, fan_out = in_out
    expected = {"A": (rank, fan_in), "B": (fan_out, rank)}
    for part, shape in sorted(parts.items()):
        if shape != expected[part]:
            raise ValidationError(
                Problem.BASE_MISMATCH,
                f"{ADAPTER_WEIGHTS}: {module}.lora_{part} has shape {list(shape)}, expected "
                f"{list(expected[part])} (rank {rank}, module {fan_in}->{fan_out})",
            )
