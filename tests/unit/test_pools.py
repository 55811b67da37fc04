"""Pool files: the default community, and clear errors for broken ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from moerge.eval.pools import PoolError, load_pool
from moerge.eval.report import table
from moerge.tasks import TASKS


def test_the_default_pool_is_a_real_community() -> None:
    pool = load_pool("default")
    assert len(pool.experts) >= 10
    packages = {p for e in pool.experts for p in TASKS[e.task].packages}
    assert len(packages) >= 4
    assert {"wordnet_verb", "wordnet_pos"} <= set(pool.heldout)
    assert not {e.task for e in pool.experts} & set(pool.heldout)
    assert len({e.contributor for e in pool.experts}) >= 5
    for expert in pool.experts:  # every label group names real labels of its task
        known = {label.name for label in TASKS[expert.task].labels}
        assert set(expert.labels) <= known, expert.name
    keys = {pool.expert_key(e, "fp") for e in pool.experts}
    assert len(keys) == len(pool.experts)


@pytest.mark.parametrize(
    "text, message",
    [
        ("name = 'x'\n", "at least one [[experts]]"),
        ("[[experts]]\nname='a'\ncontributor='c'\ntask='t'\ncolour='red'\n", "unknown keys"),
        ("[[experts]]\nname='a'\ncontributor='c'\ntask='t'\n" * 2, "repeated: ['a']"),
        ("[split]\ntrain = -1\n[[experts]]\nname='a'\ncontributor='c'\ntask='t'\n", "[split]"),
        ("[training]\nepochs = 0\n[[experts]]\nname='a'\ncontributor='c'\ntask='t'\n", "epochs"),
        ("name = \n", "not valid TOML"),
    ],
)
def test_broken_pool_files_are_refused_clearly(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "pool.toml"
    path.write_text(text)
    with pytest.raises(PoolError) as info:
        load_pool(path)
    assert message in str(info.value) and str(path) in str(info.value)


def test_unknown_pool_names_list_the_known_ones() -> None:
    with pytest.raises(PoolError, match="known: .*default"):
        load_pool("no-such-pool")


def test_the_table_has_a_row_per_system_and_ratios_to_oracle_and_multitask() -> None:
    def system(heldin: float | None, heldout: float | None) -> dict[str, object]:
        per_task = {"a": heldin, "b": heldout}
        return {
            "heldin_mean": heldin,
            "heldout_mean": heldout,
            "routing_accuracy": None,
            "abstain_rate": None,
            "per_task": {k: v for k, v in per_task.items() if v is not None},
        }

    report = {
        "pool": "p",
        "base_model": {"name": "m"},
        "combinations": ["top1"],
        "tasks": {"a": {"heldin": True, "test_size": 3}, "b": {"heldin": False, "test_size": 4}},
        "systems": {
            "base": system(0.5, 0.25),
            "oracle": system(0.8, None),
            "multitask": system(0.4, 0.5),
        },
    }
    text = table(report)
    assert "| base | 0.500 | 0.625 | 1.250 | 0.250 | 0.500 |" in text
    assert "| oracle | 0.800 | 1.000 | 2.000 | — | — |" in text
    del report["systems"]["multitask"]  # type: ignore[attr-defined]
    without = table(report)
    assert "x multitask" not in without and "| base | 0.500 | 0.625 | 0.250 |" in without
    assert "b (held out)" in text
