"""`moerge bench --methods all` end to end on a tiny pool: every system, every file, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from moerge.eval import bench
from tests.support import run_cli

POOL = """
name = "tiny"
base_model = "tiny-bert"
[split]
train = 6
validation = 2
test = 4
[training]
epochs = 1
batch_size = 8
max_length = 24
[stats]
examples = 4
[gates]
steps = 3
max_length = 24
[[experts]]
name = "tech"
contributor = "ada"
task = "fortune_topic"
labels = ["computers", "linux", "science"]
[[experts]]
name = "west"
contributor = "bo"
task = "fortune_language"
labels = ["en", "de", "es"]
[[experts]]
name = "nouns"
contributor = "cy"
task = "wordnet_noun"
labels = ["noun.animal", "noun.plant", "noun.food"]
[[heldout]]
task = "wordnet_pos"
"""


def test_bench_runs_every_system_and_writes_every_file(
    tmp_path: Path, task_data_dir: Path, tiny_base: tuple[Path, object]
) -> None:
    pool_file = tmp_path / "tiny.toml"
    pool_file.write_text(POOL)
    out = tmp_path / "out"
    args = [
        "bench", "--pool", str(pool_file), "--methods", "all", "--out", str(out),
        "--cache-dir", str(tmp_path / "cache"), "--data-dir", str(task_data_dir),
        "--base-model-dir", str(tiny_base[0]), "--few-shot", "2", "--no-progress",
    ]  # fmt: skip
    first = run_cli("moerge", *args, timeout=600)
    assert "| lorahub |" in first.stdout and "results: " in first.stdout
    assert "[25/25] scoring lorahub" in first.stderr
    for name in ("results.json", "table.md", "pool.toml", "accuracy.png", "routing_confusion.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert (out / "pool.toml").read_text() == POOL
    assert (out / "accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    results = json.loads((out / "results.json").read_text())
    systems = results["systems"]
    expected = {"base", "oracle", "multitask", "arrow", "phatgoose", "lorahub"}
    expected |= {"merge_linear", "merge_task_arithmetic", "merge_ties"}
    for router in ("centroid", "gaussian", "learned_gate", "retrieval"):
        expected |= {router, f"{router}:text"}
        expected |= {f"{router}:text+output_ensemble", f"{router}:text+parameter_merge"}
    assert set(systems) == expected
    for name, s in systems.items():
        assert s["heldin_mean"] is None or 0 <= s["heldin_mean"] <= 1, name
        assert set(s["per_task"]) <= set(results["tasks"]), name
        assert s["ms_per_1000"] > 0, name
        assert s["experts_active"] is not None, name
    assert systems["oracle"]["heldout_mean"] is None
    assert systems["base"]["experts_active"] == 0 and systems["oracle"]["experts_active"] == 1
    for name in ("arrow", "phatgoose", "gaussian:text"):
        assert systems[name]["routing_entropy"] >= 0
        assert 0 <= systems[name]["routing_accuracy"] <= 1
        assert systems[name]["experts_active"] <= 3
    assert 1 < systems["gaussian:text+output_ensemble"]["experts_active"] <= 2  # 0 if abstained
    hub = systems["lorahub"]["extra"]
    assert hub["config"]["shots"] == 2
    for search in hub["tasks"].values():
        assert search["objective"] <= min(search["uniform_objective"], search["zero_objective"])
    assert results["best_router"] in systems
    assert results["versions"]["torch"] and results["versions"]["cma"]
    assert results["pool_file"] == str(pool_file) and results["seeds"]["lorahub"] == 0
    table = (out / "table.md").read_text()
    assert "| lorahub |" in table and "x multitask" in table

    # a second run resumes: nothing is trained or scored again, and the results agree
    again = run_cli("moerge", *args, timeout=600)
    assert again.stderr.count("already scored") == len(systems)
    assert "training" not in again.stderr
    assert json.loads((out / "results.json").read_text())["systems"] == systems


def test_methods_and_combinations_are_checked() -> None:
    assert bench.parse_methods("gaussian, arrow") == ["gaussian", "arrow"]
    assert "lorahub" in bench.parse_methods("all")
    with pytest.raises(ValueError, match="unknown methods"):
        bench.parse_methods("gaussian,bogus")
    with pytest.raises(ValueError, match="token_mixture is used by arrow"):
        bench.parse_combinations("top1,token_mixture")
