"""Cancel honoured wherever a run spends time (validation, final evaluation, fast steps) and saved
even with checkpoints off; resume refuses other data and skips an unreadable checkpoint; a
checkpoint folder is never deleted to be replaced."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.trainer.conftest import chat, small_config
from trainer import checkpoint as ckpt
from trainer.errors import CheckpointError, Stopped
from trainer.launch import train
from trainer.train import CHECKPOINTS_DIR, REPORT_FILE


class StopOnCall:
    """``should_stop`` that says stop at its ``n``-th call (and after)."""

    def __init__(self, n: int) -> None:
        self.n, self.calls = n, 0

    def __call__(self) -> bool:
        self.calls += 1
        return self.calls >= self.n


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in (folder / CHECKPOINTS_DIR).iterdir())


def test_cancel_with_checkpoints_off_saves_where_it_stopped(
    tiny_model: Path, facts: list[dict[str, Any]], tmp_path: Path
) -> None:
    config = small_config(tiny_model, max_steps=20, checkpoint_interval=0)
    stopped = train(config, dataset=facts, output_dir=tmp_path, should_stop=StopOnCall(4))
    assert stopped.status == "cancelled" and stopped.report["steps"] == 3
    assert names(tmp_path) == ["step-00000003"]
    resumed = train(config, dataset=facts, output_dir=tmp_path, resume=True)
    assert resumed.status == "completed" and resumed.report["resumed_from_steps"] == [3]
    assert [p["step"] for p in resumed.report["losses"]] == list(range(1, 21))


def test_cancel_inside_validation_stops_there(
    tiny_model: Path, facts: list[dict[str, Any]], tmp_path: Path
) -> None:
    # 8 facts, eval_fraction 0 → evaluate on a separate eval set of 8 rows, one row per batch.
    config = small_config(tiny_model, max_steps=20, eval_interval=2, batch_size=1)
    stop = StopOnCall(4)  # calls: step 1, step 2, then validation's first and second batch
    result = train(config, dataset=facts, eval_dataset=facts, output_dir=tmp_path, should_stop=stop)
    assert result.status == "cancelled" and result.report["steps"] == 2
    assert result.report["eval_losses"] == []  # the validation was cut short, not recorded
    assert names(tmp_path) == ["step-00000002"]


def test_cancel_during_the_final_evaluation_leaves_a_resumable_run(
    tiny_model: Path, facts: list[dict[str, Any]], tmp_path: Path
) -> None:
    config = small_config(tiny_model, max_steps=3, batch_size=1)
    stop = StopOnCall(5)  # steps 1-3, then the final evaluation's first and second batch
    result = train(config, dataset=facts, eval_dataset=facts, output_dir=tmp_path, should_stop=stop)
    assert result.status == "cancelled" and result.report["steps"] == 3
    assert names(tmp_path) == ["step-00000003"]
    done = train(config, dataset=facts, eval_dataset=facts, output_dir=tmp_path, resume=True)
    assert done.status == "completed" and done.report["eval_losses"][-1]["step"] == 3


def test_evaluation_stops_when_asked_and_says_what_it_scored(
    trained: Any, facts: list[dict[str, Any]]
) -> None:
    from trainer.evaluate import evaluate

    with pytest.raises(Stopped):
        evaluate(trained.adapter_dir, facts, should_stop=lambda: True)
    long_answer = " ".join(["The hive door is painted blue."] * 40)
    report = evaluate(
        trained.adapter_dir, [*facts, chat("Tell me everything.", long_answer)], n_samples=1
    )
    assert report.sequence_length == 128
    assert 0 < report.target_tokens < report.answer_tokens  # the long answer was cut


def test_resume_on_other_data_is_refused(
    tiny_model: Path, facts: list[dict[str, Any]], tmp_path: Path
) -> None:
    config = small_config(tiny_model, max_steps=6)
    train(config, dataset=facts, output_dir=tmp_path, should_stop=StopOnCall(3))
    other = [chat(f"Question {i}?", f"Answer number {i}.") for i in range(8)]
    with pytest.raises(CheckpointError, match="different dataset"):
        train(config, dataset=other, output_dir=tmp_path, resume=True)
    finished = train(config, dataset=facts, output_dir=tmp_path, resume=True)
    assert finished.status == "completed"
    assert train(config, dataset=facts, output_dir=tmp_path, resume=True).report == finished.report
    with pytest.raises(CheckpointError, match="different dataset"):
        train(config, dataset=other, output_dir=tmp_path, resume=True)


def test_a_checkpoint_without_weights_falls_back_to_the_one_before(
    tiny_model: Path, facts: list[dict[str, Any]], tmp_path: Path
) -> None:
    config = small_config(tiny_model, max_steps=10, checkpoint_interval=2)
    train(config, dataset=facts, output_dir=tmp_path, should_stop=StopOnCall(6))
    assert names(tmp_path) == ["step-00000004", "step-00000005"]
    (tmp_path / CHECKPOINTS_DIR / "step-00000005" / ckpt.WEIGHTS).unlink()  # state.json stays
    resumed = train(config, dataset=facts, output_dir=tmp_path, resume=True)
    assert resumed.status == "completed" and resumed.report["resumed_from_steps"] == [4]
    assert any("step-00000005" in note for note in resumed.report["notes"])
    report = json.loads((tmp_path / REPORT_FILE).read_text())
    assert [p["step"] for p in report["losses"]] == list(range(1, 11))


def test_publish_never_replaces_an_existing_folder(tmp_path: Path) -> None:
    final = tmp_path / "step-00000004"
    final.mkdir()
    (final / "kept.txt").write_text("old")
    temp = ckpt.temp_folder(tmp_path, final.name)
    (temp / "new.txt").write_text("new")
    with pytest.raises(CheckpointError, match="already exists"):
        ckpt.publish(temp, final)
    assert (final / "kept.txt").read_text() == "old" and not temp.exists()


def test_a_complete_step_is_kept_and_an_incomplete_one_replaced(tmp_path: Path) -> None:
    import torch

    def save(value: float) -> Path:
        weights = {"w": torch.full((2,), value)}
        return ckpt.save_checkpoint(
            tmp_path, step=4, weights=weights, best_weights=None, state={}, tensors={}, keep=1
        )

    first = save(1.0)
    assert save(2.0) == first  # same step, same state: the one on disk stays
    assert ckpt.load_checkpoint(first).weights["w"].tolist() == [1.0, 1.0]
    (first / ckpt.WEIGHTS).unlink()
    assert ckpt.load_checkpoint(save(3.0)).weights["w"].tolist() == [3.0, 3.0]
