"""Evaluation: scoring functions, the knowledge-gain gate, base vs tuned, merge and the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.trainer.conftest import chat
from trainer.data import load_conversations
from trainer.evaluate import (
    QAScores,
    evaluate,
    exact_match,
    format_table,
    held_out_conversations,
    knowledge_gain,
    normalize_answer,
    qa_pairs,
    side_by_side,
    token_f1,
)


def test_answers_are_normalised_like_squad() -> None:
    assert normalize_answer("  The Queen, is called BEATRICE! ") == "queen is called beatrice"
    assert exact_match("the queen is called Beatrice.", "Queen is called beatrice") == 1.0
    assert exact_match("Beatrice", "Queen Beatrice") == 0.0


def test_token_f1() -> None:
    assert token_f1("blue door", "The hive door is painted blue.") == pytest.approx(2 / 3.5)
    assert token_f1("", "") == 1.0 and token_f1("x", "") == 0.0 and token_f1("a b", "c") == 0.0
    scores = QAScores.score(["blue", "red"], ["blue", "blue"])
    assert (scores.exact_match, scores.f1, scores.n) == (0.5, 0.5, 2)


def test_gate_passes_only_with_the_margin() -> None:
    passed = knowledge_gain(20.0, 10.0, margin=0.1)
    assert passed.passed and passed.relative_gain == 0.5 and "passed" in passed.message
    failed = knowledge_gain(20.0, 19.5, margin=0.1)
    assert not failed.passed and "train longer" in failed.message
    assert not knowledge_gain(10.0, 12.0).passed  # worse than the base
    assert failed.to_dict()["base_perplexity"] == 20.0
    with pytest.raises(ValueError, match="positive finite"):
        knowledge_gain(float("nan"), 3.0)
    with pytest.raises(ValueError, match="margin"):
        knowledge_gain(3.0, 2.0, margin=1.5)


def test_qa_pairs_and_table() -> None:
    conversations = load_conversations(
        [
            {
                "messages": [
                    {"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": "Hello"},
                    {"role": "user", "content": "Door colour?"},
                    {"role": "assistant", "content": "Blue | bright"},
                ]
            }
        ]
    )
    (pair,) = qa_pairs(conversations)
    assert pair.question == "Door colour?" and pair.reference == "Blue | bright"
    assert len(pair.prompt) == 3
    table = format_table(side_by_side([pair], ["no idea"], ["Blue"]))
    assert table.splitlines()[2] == "| Door colour? | Blue \\| bright | no idea | Blue |"
    marked = [chat("a", "b"), chat("c", "d", split="test")]
    assert [c.messages[0]["content"] for c in held_out_conversations(marked)] == ["c"]


def test_tuned_beats_base_on_what_it_learned(trained: Any, facts: list[dict[str, Any]]) -> None:
    report = evaluate(trained.adapter_dir, facts, max_new_tokens=8, n_samples=3)
    assert report.tuned_perplexity < report.base_perplexity
    assert report.gate.passed, report.gate.message
    assert report.n_examples == 8 and report.target_tokens > 0
    assert (
        len(report.samples) == 3
        and report.samples[0].question == facts[0]["messages"][0]["content"]
    )
    assert 0 <= report.tuned_qa.f1 <= 1 and report.base_qa.n == 8
    assert json.loads(json.dumps(report.to_dict()))["gate"]["passed"] is True


def test_merged_model_matches_base_plus_adapter(trained: Any, tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from trainer.merge import merge_adapter
    from trainer.modeling import load_tuned

    merged_dir = merge_adapter(trained.output_dir, tmp_path / "merged")
    assert (merged_dir / "config.json").is_file() and (merged_dir / "tokenizer.json").is_file()
    merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    tuned, _, _ = load_tuned(trained.adapter_dir)
    ids = torch.tensor([[5, 17, 99, 300, 42]])
    with torch.no_grad():
        torch.testing.assert_close(
            merged(ids).logits, tuned(input_ids=ids).logits, atol=1e-4, rtol=1e-4
        )
    with pytest.raises(Exception, match="not empty"):
        merge_adapter(trained.output_dir, tmp_path / "merged")


def test_cli_evaluate_and_merge(
    trained: Any, facts_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from trainer.__main__ import main

    report_path = tmp_path / "evaluation.json"
    args = ["evaluate", "--adapter", str(trained.output_dir), "--dataset", str(facts_file)]
    code = main([*args, "--max-new-tokens", "4", "--report", str(report_path)])
    printed = capsys.readouterr().out
    assert code == 0 and "gate asks for at least 5%: passed" in printed
    assert "| question | reference | base | tuned |" in printed
    assert json.loads(report_path.read_text())["gate"]["passed"] is True
    missing = main(["merge", "--adapter", str(tmp_path), "--output", str(tmp_path / "m")])
    assert missing == 2 and "holds no adapter" in capsys.readouterr().err
