"""A coordinator cannot make the client write outside the download directory."""

import pytest

from contributor.client import _safe


@pytest.mark.parametrize(
    "path",
    ["adapter_config.json", "adapter_model.safetensors", "stats/embedding_moments.safetensors"],
)
def test_expert_files_are_accepted(path: str) -> None:
    assert _safe(path)


@pytest.mark.parametrize("path", ["../evil", "/etc/passwd", "stats/../../x", "a/b/c", ""])
def test_paths_that_escape_are_refused(path: str) -> None:
    assert not _safe(path)
