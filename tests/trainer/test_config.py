"""Job configs: cross-checks with actionable messages, presets, JSON round trips, light imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from trainer.config import (
    PRESET_SIZING,
    PRESETS,
    DatasetSize,
    JobConfig,
    estimate_tokens,
    field_help,
    preset_for,
)
from trainer.errors import ConfigError, ContextLengthError

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_are_valid_and_lora() -> None:
    config = JobConfig(base_model="Qwen/Qwen2.5-0.5B-Instruct")
    assert config.method == "lora" and not config.is_quantized
    assert config.effective_batch_size == config.batch_size * config.gradient_accumulation


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"base_model": " "}, "base_model is empty"),
        ({"method": "full"}, "method 'full' is not one of lora, qlora-4bit, qlora-8bit"),
        ({"rank": 0}, "rank 0 must be between 1 and 1024"),
        ({"alpha": 0}, "alpha 0 must be positive"),
        ({"dropout": 1.0}, "dropout 1.0 must be at least 0 and below 1"),
        ({"target_modules": ("q_proj", "q_proj")}, "must be distinct non-empty names"),
        ({"learning_rate": 0.5}, "LoRA uses 1e-4 to 3e-4"),
        ({"lr_schedule": "step"}, "lr_schedule 'step' is not one of"),
        ({"warmup_ratio": 0.9}, "warmup_ratio 0.9 must be between 0 and 0.5"),
        ({"max_steps": 0}, "max_steps 0 must be at least 1"),
        ({"batch_size": 0}, "batch_size must be at least 1"),
        ({"sequence_length": 8}, "sequence_length 8 must be"),
        ({"eval_fraction": 0.9}, "eval_fraction 0.9 must be between 0 and 0.5"),
        ({"checkpoint_interval": -1}, "checkpoint_interval cannot be negative"),
        (
            {"early_stopping_patience": 2, "eval_interval": 0},
            "early_stopping_patience needs periodic evaluations: set eval_interval above 0",
        ),
    ],
)
def test_cross_checks_say_what_to_change(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        JobConfig(**{"base_model": "some/model", **changes})


def test_sequence_length_over_a_known_context_is_refused_without_loading() -> None:
    with pytest.raises(ContextLengthError, match="at most 8192"):
        JobConfig(base_model="google/gemma-2-2b-it", sequence_length=16384)


def test_replace_checks_again() -> None:
    config = JobConfig(base_model="m")
    assert config.replace(rank=8).rank == 8
    with pytest.raises(ConfigError):
        config.replace(rank=-1)


def test_json_round_trip_and_file(tmp_path: Path) -> None:
    config = JobConfig(base_model="m", target_modules=("q_proj", "v_proj"), max_steps=7)
    again = JobConfig.from_json(config.to_json())
    assert again == config and again.target_modules == ("q_proj", "v_proj")
    assert JobConfig.load(config.save(tmp_path / "job_config.json")) == config


def test_unknown_and_missing_fields_are_named() -> None:
    with pytest.raises(ConfigError, match=r"unknown job config fields \['ranks'\]"):
        JobConfig.from_dict({"base_model": "m", "ranks": 4})
    with pytest.raises(ConfigError, match="incomplete job config"):
        JobConfig.from_dict({"rank": 4})
    with pytest.raises(ConfigError, match="not valid JSON"):
        JobConfig.from_json("{rank")


@pytest.mark.parametrize(
    ("n_examples", "preset"),
    [(0, "thorough"), (300, "thorough"), (301, "balanced"), (3000, "balanced"), (3001, "quick")],
)
def test_preset_follows_dataset_size(n_examples: int, preset: str) -> None:
    assert preset_for(n_examples) == preset


def test_presets_scale_capacity_and_passes() -> None:
    quick, balanced, thorough = (JobConfig.from_preset(p, base_model="m") for p in PRESETS)
    assert quick.rank < balanced.rank < thorough.rank
    assert quick.epochs < balanced.epochs < thorough.epochs
    assert balanced.preset == "balanced"


def planned_steps(config: JobConfig, tokens: int) -> int:
    rows = -(-tokens // config.sequence_length)
    return config.epochs * -(-rows // config.effective_batch_size)


@pytest.mark.parametrize("preset", PRESETS)
def test_a_small_dataset_gets_enough_steps_from_more_epochs(preset: str) -> None:
    # The first-hour dataset: 20 short QA examples. A fixed preset ran 1-2 steps on it.
    small = DatasetSize(examples=20, tokens=2400, longest=150)
    plain = JobConfig.from_preset(preset, base_model="m")
    sized = JobConfig.from_preset(preset, base_model="m", size=small)
    assert planned_steps(plain, small.tokens) <= 4
    assert planned_steps(sized, small.tokens) >= PRESET_SIZING[preset].min_steps
    assert sized.epochs > plain.epochs
    assert sized.sequence_length == 256 and sized.batch_size == 1  # short rows, one per step
    assert sized.epochs <= PRESET_SIZING[preset].max_epochs
    tiny = JobConfig.from_preset(preset, base_model="m", size=DatasetSize(4, 40, 12))
    assert tiny.epochs == PRESET_SIZING[preset].max_epochs  # capped: 1 row cannot give more


def test_a_large_dataset_keeps_the_preset() -> None:
    large = DatasetSize(examples=50_000, tokens=20_000_000, longest=3000)
    for preset in PRESETS:
        plain = JobConfig.from_preset(preset, base_model="m")
        sized = JobConfig.from_preset(preset, base_model="m", size=large)
        assert (sized.epochs, sized.batch_size, sized.sequence_length) == (
            plain.epochs,
            plain.batch_size,
            plain.sequence_length,
        )


def test_the_creators_choices_win_over_sizing() -> None:
    small = DatasetSize(examples=20, tokens=2400, longest=150)
    config = JobConfig.from_preset("balanced", base_model="m", size=small, epochs=3, batch_size=2)
    assert (config.epochs, config.batch_size) == (3, 2)
    qlora = JobConfig.from_preset("balanced", base_model="m", method="qlora-4bit", size=small)
    assert qlora.effective_batch_size == 1 and qlora.epochs > 2
    with pytest.raises(ConfigError, match="negative"):
        DatasetSize(examples=-1, tokens=0, longest=0)
    assert estimate_tokens(350) == 100 and estimate_tokens(-5) == 0


def test_qlora_is_lora_with_other_defaults() -> None:
    lora = JobConfig.from_preset("balanced", base_model="m")
    qlora = JobConfig.from_preset("balanced", base_model="m", method="qlora-4bit")
    assert qlora.is_quantized and qlora.gradient_checkpointing
    assert qlora.effective_batch_size == lora.effective_batch_size
    assert (qlora.rank, qlora.learning_rate, qlora.epochs) == (
        lora.rank,
        lora.learning_rate,
        lora.epochs,
    )
    override = JobConfig.from_preset("quick", base_model="m", method="qlora-8bit", rank=4)
    assert override.rank == 4 and override.method == "qlora-8bit"


def test_unknown_preset_and_method() -> None:
    with pytest.raises(ConfigError, match="preset 'huge'"):
        JobConfig.from_preset("huge", base_model="m")
    with pytest.raises(ConfigError, match="method 'qlora-2bit'"):
        JobConfig.from_preset("quick", base_model="m", method="qlora-2bit")


def test_every_field_has_help() -> None:
    rows = field_help()
    assert [r["name"] for r in rows][:2] == ["base_model", "method"]
    assert all(r["help"] for r in rows)


def test_config_and_registry_import_without_torch() -> None:
    code = (
        "import sys, trainer.config, trainer.registry, trainer.errors; "
        "print(sorted(m for m in ('torch', 'transformers', 'peft') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"
