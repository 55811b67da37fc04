"""`moerge demo`, the main job, end to end: contributors, coordinator, router, evaluation."""

import json
from pathlib import Path

import pytest

from tests.support import ROOT, run_cli

SMALL_POOL = Path(__file__).with_name("small_pool.toml")


def _check_demo(out: str, work: Path, experts: int, contributors: int) -> dict:  # type: ignore[type-arg]
    assert "moerge coordinator listening on" in out
    assert out.count("uploaded ") == experts
    assert f"creating a token for each of {contributors} contributors" in out
    assert f", {experts} experts" in out  # the router covers the whole pool
    assert "router version" in out  # routed predictions came back over gRPC
    assert "| base |" in out and "| oracle |" in out and "| gaussian:text |" in out
    assert "coordinator exit code 0" in out
    assert (work / "coordinator" / "registry.sqlite3").is_file()
    results = json.loads((work / "results" / "results.json").read_text())
    assert (work / "results" / "table.md").is_file()
    return results


def test_demo_on_a_small_pool(tmp_path: Path, task_data_dir: Path) -> None:
    result = run_cli(
        "moerge", "demo", "--work-dir", str(tmp_path), "--pool", str(SMALL_POOL),
        "--data-dir", str(task_data_dir), timeout=900,
    )  # fmt: skip
    results = _check_demo(result.stdout, tmp_path, experts=5, contributors=5)
    systems = results["systems"]
    for name in ("base", "oracle", "centroid", "gaussian:text", "learned_gate"):
        assert 0 <= systems[name]["heldin_mean"] <= 1
    assert systems["gaussian"]["routing_accuracy"] >= 0.9  # the query names its labels
    assert set(systems["base"]["per_task"]) == set(results["tasks"])
    rerun = run_cli(
        "moerge", "demo", "--work-dir", str(tmp_path), "--pool", str(SMALL_POOL),
        "--data-dir", str(task_data_dir), timeout=900,
    )  # fmt: skip
    assert rerun.stdout.count("already trained at") == 5  # experts are reused, not retrained


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_demo_on_the_default_pool(tmp_path: Path) -> None:
    """The full main job as `make demo` runs it (about ten minutes on two cores)."""
    result = run_cli("moerge", "demo", "--work-dir", str(tmp_path), timeout=1800)
    results = _check_demo(result.stdout, tmp_path, experts=12, contributors=7)
    assert results["systems"]["oracle"]["heldin_mean"] > results["systems"]["base"]["heldin_mean"]
    assert ROOT.is_dir()
