"""Core validation functions on real files."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from moerge.experts.validation import (
    Problem,
    ValidationError,
    check_finite,
    read_safetensors_header,
)


def test_finite_check_catches_every_non_finite_value_and_tolerates_overflowing_sums() -> None:
    check_finite("w", {"big": torch.full((10,), 3e38)})  # the sum overflows; the values do not
    for bad in (float("nan"), float("inf"), float("-inf")):
        tensor = torch.zeros(1000)
        tensor[517] = bad
        with pytest.raises(ValidationError, match="NaN or infinite") as info:
            check_finite("w", {"lora": tensor})
        assert info.value.problem is Problem.INVALID
    with pytest.raises(ValidationError, match="expected floating point"):
        check_finite("w", {"ints": torch.zeros(3, dtype=torch.int64)})


def test_safetensors_header_is_read_without_unpickling(tmp_path: Path) -> None:
    good = tmp_path / "good.safetensors"
    save_file({"a": torch.zeros(2, 3)}, str(good))
    assert read_safetensors_header(good)["a"]["shape"] == [2, 3]
    pickled = tmp_path / "pickled.safetensors"
    torch.save({"a": torch.zeros(2)}, pickled)
    with pytest.raises(ValidationError, match="pickle or torch.save archive"):
        read_safetensors_header(pickled)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    with pytest.raises(ValidationError, match="not a safetensors file"):
        read_safetensors_header(garbage)
    huge = tmp_path / "huge.safetensors"
    huge.write_bytes((2**40).to_bytes(8, "little") + b"{}")
    with pytest.raises(ValidationError, match="header length"):
        read_safetensors_header(huge)
