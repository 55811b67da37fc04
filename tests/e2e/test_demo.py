"""`moerge demo`, the main job, end to end on the real default base model."""

from pathlib import Path

from tests.support import run_cli


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    result = run_cli("moerge", "demo", "--work-dir", str(tmp_path), timeout=600)
    out = result.stdout
    assert "moerge coordinator listening on" in out
    assert "uploaded minilm-demo:1" in out and "status active" in out
    assert "minilm-demo:1" in out.split("the pool")[1]
    assert "coordinator exit code 0" in out
    assert (tmp_path / "coordinator" / "registry.sqlite3").is_file()
    assert (tmp_path / "experts" / "minilm-demo" / "adapter_model.safetensors").is_file()
