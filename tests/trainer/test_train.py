"""Training the tiny model: LoRA learns, outputs are whole or absent, bad input fails early."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.trainer.conftest import chat, small_config, write_jsonl
from trainer.errors import (
    BaseModelError,
    CheckpointError,
    ConfigError,
    ContextLengthError,
    DatasetError,
    DeviceError,
    OutOfMemoryError,
)
from trainer.launch import train
from trainer.train import ADAPTER_DIR, CHECKPOINTS_DIR, NO_EVAL_NOTE, REPORT_FILE


def test_lora_lowers_the_training_loss(trained: Any) -> None:
    losses = [row["loss"] for row in trained.report["losses"]]
    assert trained.status == "completed" and len(losses) == 30
    # An adapter that does nothing keeps the loss at its first value (lora_B starts at zero).
    assert losses[-1] < losses[0] - 0.5, losses
    assert trained.report["trainable_parameters"] < trained.report["total_parameters"] / 4


def test_outputs_are_the_adapter_config_and_report(trained: Any) -> None:
    from trainer.config import JobConfig

    adapter = trained.adapter_dir
    assert adapter == trained.output_dir / ADAPTER_DIR
    names = {p.name for p in adapter.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "job_config.json"} <= names
    assert {"training_report.json", "tokenizer.json"} <= names
    assert JobConfig.load(adapter / "job_config.json").max_steps == 30
    report = json.loads((adapter / REPORT_FILE).read_text())
    assert report["steps"] == 30 and report["tokens_per_second"] > 0
    assert report["wall_time_seconds"] > 0 and report["train_tokens"] > 0
    assert not (trained.output_dir / CHECKPOINTS_DIR).exists()  # removed once published
    assert not [p for p in trained.output_dir.iterdir() if p.name.startswith(".tmp")]


def test_progress_reports_every_step_and_cancel_stops_within_one(
    tiny_model: Path, facts: list[dict[str, Any]], tmp_path: Path
) -> None:
    events: list[dict[str, Any]] = []

    def stop() -> bool:
        return len(events) >= 4

    config = small_config(tiny_model, max_steps=20, checkpoint_interval=100)
    result = train(
        config, dataset=facts, output_dir=tmp_path, on_progress=events.append, should_stop=stop
    )
    assert result.status == "cancelled" and result.adapter_dir is None
    started = events.pop(0)  # what tokenisation kept, truncated and dropped, before step 1
    assert started["event"] == "started" and started["data"]["train"]["examples"] == len(facts)
    assert [e["step"] for e in events] == [1, 2, 3, 3]
    assert events[-1]["event"] == "cancelled"
    first = events[0]
    assert {"loss", "eval_loss", "learning_rate", "tokens_per_second", "eta_seconds"} <= set(first)
    assert first["total_steps"] == 20 and first["tokens_per_second"] > 0
    assert not (tmp_path / ADAPTER_DIR).exists()
    assert json.loads((tmp_path / REPORT_FILE).read_text())["status"] == "cancelled"
    # The cancelled step is checkpointed, so the run can resume exactly there.
    assert [p.name for p in (tmp_path / CHECKPOINTS_DIR).iterdir()] == ["step-00000003"]


def test_early_stopping_keeps_the_best_eval(
    tiny_model: Path, facts: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import trainer.train as training

    scripted = iter([2.0, 1.5, 1.7, 1.8, 1.9])
    monkeypatch.setattr(training, "validate", lambda run: next(scripted))
    config = small_config(tiny_model, max_steps=10, eval_interval=1, early_stopping_patience=2)
    result = train(config, dataset=facts, eval_dataset=facts[:2], output_dir=tmp_path)
    assert result.status == "early_stopped" and result.report["steps"] == 4
    assert result.report["best_eval_loss"] == 1.5
    assert [e["eval_loss"] for e in result.report["eval_losses"]] == [2.0, 1.5, 1.7, 1.8]


@pytest.mark.parametrize(
    ("method", "layer"), [("qlora-4bit", "Linear4bit"), ("qlora-8bit", "Linear8bitLt")]
)
def test_qlora_trains_on_cpu(
    tiny_model: Path,
    facts: list[dict[str, Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    method: str,
    layer: str,
) -> None:
    import trainer.train as training

    loaded: list[Any] = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        loaded.append(load(*args, **kwargs))
        return loaded[-1]

    load = training.load_base_model
    monkeypatch.setattr(training, "load_base_model", spy)
    config = small_config(tiny_model, method=method, max_steps=3, gradient_checkpointing=True)
    result = train(config, dataset=facts, output_dir=tmp_path)
    assert result.status == "completed" and result.adapter_dir is not None
    assert type(loaded[0].model.layers[0].self_attn.q_proj.base_layer).__name__ == layer
    losses = [row["loss"] for row in result.report["losses"]]
    assert losses[-1] < losses[0]
    adapter_config = json.loads((result.adapter_dir / "adapter_config.json").read_text())
    assert set(adapter_config["target_modules"]) >= {"q_proj", "down_proj"}


# --- bad input fails early, saying what to change ------------------------------------------


def run(tmp_path: Path, config: Any, dataset: Any, **kwargs: Any) -> Any:
    return train(config, dataset=dataset, output_dir=tmp_path / "out", **kwargs)


def test_missing_base_folder(tmp_path: Path, facts: list[dict[str, Any]]) -> None:
    config = small_config(tmp_path / "no-such-model")
    with pytest.raises(BaseModelError, match="does not exist; check the path"):
        run(tmp_path, config, facts)
    (tmp_path / "empty").mkdir()
    with pytest.raises(BaseModelError, match=r"no config\.json"):
        run(tmp_path, small_config(tmp_path / "empty"), facts)


def test_uncached_hub_model_offline(
    tmp_path: Path, facts: list[dict[str, Any]], offline_hub: None
) -> None:
    config = small_config("gptstudio-test/no-such-model")
    with pytest.raises(BaseModelError, match=r"not in the local cache .*\(offline\).*hf download"):
        run(tmp_path, config, facts)
    with pytest.raises(BaseModelError, match="neither a folder nor a hub id"):
        run(tmp_path, small_config("bad name!"), facts)


def test_too_small_or_malformed_dataset(
    tmp_path: Path, tiny_model: Path, facts: list[dict[str, Any]]
) -> None:
    with pytest.raises(DatasetError, match="has 2 conversations; add at least 4"):
        run(tmp_path, small_config(tiny_model), facts[:2])
    bad = tmp_path / "bad.jsonl"
    write_jsonl(bad, facts)
    bad.write_text(bad.read_text() + '{"messages": "hello"}\n')
    with pytest.raises(DatasetError, match=r'example 9: needs a non-empty "messages"'):
        run(tmp_path, small_config(tiny_model), bad)
    long = [chat("bees " * 300, "yes") for _ in range(6)]
    with pytest.raises(DatasetError, match=r"lost every assistant token .* raise sequence_length"):
        run(tmp_path, small_config(tiny_model), long)


def test_sequence_length_over_the_model_context(
    tmp_path: Path, tiny_model: Path, facts: list[dict[str, Any]]
) -> None:
    with pytest.raises(ContextLengthError, match=r"context of .* \(8192 tokens\)"):
        run(tmp_path, small_config(tiny_model, sequence_length=16384), facts)


def test_gpu_precision_without_gpu(
    tmp_path: Path, tiny_model: Path, facts: list[dict[str, Any]]
) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(DeviceError, match="precision bf16 needs a CUDA GPU"):
        run(tmp_path, small_config(tiny_model, precision="bf16"), facts)


def test_out_of_memory_says_what_to_lower(
    tmp_path: Path,
    tiny_model: Path,
    facts: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import torch

    import trainer.train as training

    def exhausted(run: Any, group: Any) -> Any:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(training, "train_step", exhausted)
    with pytest.raises(OutOfMemoryError, match=r"lower batch_size \(now 2\)"):
        run(tmp_path, small_config(tiny_model), facts)
    assert not (tmp_path / "out" / ADAPTER_DIR).exists()


def test_early_stopping_without_eval_data_is_off_and_noted(
    tmp_path: Path, tiny_model: Path, facts: list[dict[str, Any]]
) -> None:
    config = small_config(tiny_model, max_steps=2, eval_interval=1, early_stopping_patience=1)
    result = run(tmp_path, config, facts)
    assert result.status == "completed" and result.report["eval_losses"] == []
    assert result.report["notes"] == [NO_EVAL_NOTE]


def test_earlier_runs_are_not_overwritten(
    tmp_path: Path, tiny_model: Path, facts: list[dict[str, Any]]
) -> None:
    config = small_config(tiny_model, max_steps=4, checkpoint_interval=2)
    first = run(tmp_path, config, facts)
    assert first.status == "completed"
    with pytest.raises(ConfigError, match="already holds a trained adapter"):
        run(tmp_path, config, facts)
    again = run(tmp_path, config, facts, resume=True)  # a retried task gets the result back
    assert again.final_loss == first.final_loss
    other = tmp_path / "other"
    steps: list[int] = []
    stopped = train(
        config,
        dataset=facts,
        output_dir=other,
        on_progress=lambda e: steps.append(1),
        should_stop=lambda: len(steps) >= 3,
    )
    assert stopped.status == "cancelled"
    with pytest.raises(CheckpointError, match="resume it"):
        train(config, dataset=facts, output_dir=other)
    with pytest.raises(CheckpointError, match=r"different job config \(changed: \['rank'\]\)"):
        train(config.replace(rank=4), dataset=facts, output_dir=other, resume=True)
