"""Expert training in the label-description scoring space, on real MiniLM and a tiny BERT."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from moerge.experts.encoder import Encoder
from moerge.experts.manifest import Label, build_manifest
from moerge.experts.training import TrainConfig, loss_on, train_expert
from moerge.models import default_base_model_path
from moerge.tasks.core import Example, TaskData

ANIMALS = [
    "cat",
    "dog",
    "fish",
    "bird",
    "horse",
    "cow",
    "sheep",
    "goat",
    "mouse",
    "lion",
    "tiger",
    "bear",
    "wolf",
    "fox",
    "owl",
]
MACHINES = [
    "code",
    "bug",
    "disk",
    "file",
    "server",
    "kernel",
    "compiler",
    "laptop",
    "cpu",
    "memory",
    "network",
    "router",
]


def toy_task(n: int = 24, seed: int = 0) -> TaskData:
    rng = random.Random(seed)

    def sentence(words: list[str]) -> str:
        return "the " + " and the ".join(rng.sample(words, 3))

    examples = [Example(sentence(ANIMALS), "animals") for _ in range(n)]
    examples += [Example(sentence(MACHINES), "computers") for _ in range(n)]
    rng.shuffle(examples)
    third = len(examples) // 3
    return TaskData(
        name="toy",
        description="animals or computers",
        labels=(Label("animals", "a zoo"), Label("computers", "an office")),
        train=tuple(examples[: third * 2]),
        validation=tuple(examples[third * 2 :]),
        test=(),
    )


def test_a_few_minilm_lora_steps_lower_the_training_loss(tmp_path: Path) -> None:
    from peft import PeftModel

    from moerge.models import load

    task = toy_task()
    base = default_base_model_path()
    model, tokenizer = load(base)
    before = loss_on(Encoder(model, tokenizer), task, task.train)
    config = TrainConfig(epochs=2, patience=2, batch_size=8, learning_rate=3e-3)
    result = train_expert(
        base, task, tmp_path / "expert", name="toy", config=config, progress=False
    )
    trained = PeftModel.from_pretrained(load(base)[0], str(tmp_path / "expert"))
    after = loss_on(Encoder(trained, tokenizer), task, task.train)
    assert after < before * 0.9, (before, after)
    assert result.steps == 8 and result.epochs_run == 2
    assert result.validation_accuracy >= result.base_validation_accuracy


def test_a_trained_expert_is_a_peft_directory_with_metadata(
    tmp_path: Path, tiny_base: tuple[Path, object]
) -> None:
    task = toy_task(8)
    out = train_expert(
        tiny_base[0],
        task,
        tmp_path / "e",
        name="toy",
        version="3",
        base_name="tiny-bert",
        config=TrainConfig(epochs=1, batch_size=4, rank=2),
        progress=False,
    ).out_dir
    assert (out / "adapter_config.json").is_file() and (out / "adapter_model.safetensors").is_file()
    meta = json.loads((out / "expert.json").read_text())
    assert meta["training"]["examples"] == len(task.train)
    assert [x["description"] for x in meta["labels"]] == ["a zoo", "an office"]
    manifest = build_manifest(out)
    assert manifest.ref == "toy:3" and manifest.base_model_name == "tiny-bert"
    assert manifest.lora.rank == 2


def test_early_stopping_keeps_the_best_epoch(
    tmp_path: Path, tiny_base: tuple[Path, object]
) -> None:
    task = toy_task(8)
    config = TrainConfig(epochs=4, patience=1, batch_size=4, learning_rate=1e-1, rank=2)
    result = train_expert(
        tiny_base[0], task, tmp_path / "e", name="t", config=config, progress=False
    )
    best = max(h["validation_accuracy"] for h in result.history)
    assert result.validation_accuracy == pytest.approx(max(best, result.base_validation_accuracy))
    assert result.epochs_run <= 4


@pytest.mark.parametrize(
    "field, value", [("rank", 0), ("epochs", 0), ("learning_rate", -1.0), ("dropout", 1.0)]
)
def test_bad_training_settings_are_refused(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        TrainConfig(**{field: value})  # type: ignore[arg-type]
