"""Chat data: validation, assistant-only labels, packing without cross-example attention."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.trainer.conftest import chat, write_jsonl
from trainer.data import (
    IGNORE_INDEX,
    BatchPlan,
    Example,
    collate,
    epoch_order,
    load_conversations,
    plan_rows,
    split_conversations,
    tokenize_all,
    tokenize_conversation,
)
from trainer.errors import DatasetError

CONVERSATION = [
    {"role": "system", "content": "You answer questions about bees."},
    {"role": "user", "content": "How often should varroa be monitored?"},
    {"role": "assistant", "content": "About once a month."},
    {"role": "user", "content": "With what?"},
    {"role": "assistant", "content": "A sugar roll or an alcohol wash."},
]


@pytest.fixture(scope="module")
def tokenizer(tiny_model: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


def labelled_text(tokenizer: Any, example: Example) -> str:
    kept = [t for t, label in zip(example.input_ids, example.labels, strict=True) if label >= 0]
    return str(tokenizer.decode(kept))


def test_labels_cover_only_assistant_turns_and_their_end_marker(tokenizer: Any) -> None:
    example = tokenize_conversation(tokenizer, CONVERSATION)
    assert len(example.labels) == len(example.input_ids)
    assert labelled_text(tokenizer, example) == (
        "About once a month.<|im_end|>\nA sugar roll or an alcohol wash.<|im_end|>\n"
    )
    masked = [t for t, label in zip(example.input_ids, example.labels, strict=True) if label < 0]
    prompt_text = tokenizer.decode(masked)
    assert "varroa" in prompt_text and "You answer questions" in prompt_text
    assert "<|im_start|>assistant\n" in prompt_text  # the header is prompt, not answer
    pairs = zip(example.input_ids, example.labels, strict=True)
    assert all(label in (IGNORE_INDEX, token) for token, label in pairs)


def test_truncation_drops_examples_left_without_answers(tokenizer: Any) -> None:
    long_prompt = chat("bees " * 200, "Yes.")
    conversations = load_conversations([long_prompt, chat("Hi?", "Hello.")])
    examples, stats = tokenize_all(tokenizer, conversations, max_length=64)
    assert (stats.examples, stats.truncated, stats.dropped) == (1, 1, 1)
    assert all(len(e) <= 64 for e in examples)


def test_jsonl_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps(chat("q", "a")) + "\n{not json\n")
    with pytest.raises(DatasetError, match="line 2: not valid JSON"):
        load_conversations(path)
    write_jsonl(path, [chat("q", "a"), {"messages": [{"role": "user", "content": "q"}]}])
    with pytest.raises(DatasetError, match="example 2: has no non-empty assistant message"):
        load_conversations(path)
    write_jsonl(path, [{"messages": [{"role": "bot", "content": "x"}]}])
    with pytest.raises(DatasetError, match="role 'bot'"):
        load_conversations(path)
    with pytest.raises(DatasetError, match="does not exist"):
        load_conversations(tmp_path / "missing.jsonl")


def test_splits_use_marks_or_a_seeded_holdout() -> None:
    marked = load_conversations(
        [chat("a", "b"), chat("c", "d", split="validation"), chat("e", "f", split="test")]
    )
    train, held = split_conversations(marked, eval_fraction=0.1, seed=1)
    assert (len(train), len(held)) == (1, 1)
    many = load_conversations([chat(f"q{i}", f"a{i}") for i in range(40)])
    first = split_conversations(many, eval_fraction=0.1, seed=1)
    assert (len(first[0]), len(first[1])) == (36, 4)
    assert split_conversations(many, eval_fraction=0.1, seed=1) == first
    assert split_conversations(many, eval_fraction=0.1, seed=2)[1] != first[1]
    small = many[:10]
    assert split_conversations(small, eval_fraction=0.1, seed=1) == (small, [])


def test_best_fit_packing_fills_rows_and_places_every_example_once() -> None:
    lengths = [60, 50, 40, 30, 20, 10, 90, 5]
    rows = plan_rows(lengths, list(range(len(lengths))), capacity=100)
    assert sorted(i for row in rows for i in row) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in row) <= 100 for row in rows)
    assert len(rows) == 4  # 305 tokens in 100-token rows: one more than the minimum


def test_order_is_deterministic_by_seed_and_epoch() -> None:
    assert epoch_order(50, seed=3, epoch=0) == epoch_order(50, seed=3, epoch=0)
    assert epoch_order(50, seed=3, epoch=0) != epoch_order(50, seed=3, epoch=1)
    assert epoch_order(50, seed=3, epoch=0) != epoch_order(50, seed=4, epoch=0)
    examples = [Example(tuple(range(n)), tuple(range(n))) for n in (5, 9, 12, 3, 7, 8)]
    plan = BatchPlan(examples, capacity=16, batch_size=2, seed=3)
    again = BatchPlan(examples, capacity=16, batch_size=2, seed=3)
    assert plan.batches(1) == again.batches(1)
    resumed = list(again.micro_batches(1, start=1))
    assert resumed == list(plan.micro_batches(1))[1:]


def test_collate_restarts_positions_per_example_and_pads_apart() -> None:
    a, b = Example((5, 6, 7), (-100, 6, 7)), Example((8, 9), (-100, 9))
    batch = collate([[a, b], [b]], pad_id=0)
    assert batch.input_ids.tolist() == [[5, 6, 7, 8, 9], [8, 9, 0, 0, 0]]
    assert batch.position_ids.tolist() == [[0, 1, 2, 0, 1], [0, 1, 0, 1, 2]]
    assert batch.labels.tolist() == [[-100, 6, 7, -100, 9], [-100, 9, -100, -100, -100]]
    assert (batch.tokens, batch.targets) == (7, 4)


@pytest.mark.parametrize("implementation", ["sdpa", "eager", "gptstudio_packed_sdpa"])
def test_packed_logits_equal_logits_alone(
    tiny_model: Path, tokenizer: Any, implementation: str
) -> None:
    """No cross-example leakage: each example's logits inside a packed row match it alone.

    sdpa and eager get transformers' block-diagonal mask from the positions; the project's
    packed attention (what training uses) runs causal attention per example instead.
    """
    import torch
    from transformers import AutoModelForCausalLM

    from trainer.attention import NAME
    from trainer.modeling import loss_sum

    assert implementation in ("sdpa", "eager", NAME)
    model = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    model.set_attn_implementation(implementation)
    texts = [("Who inspects the hive?", "Marta, every Sunday."), ("Why?", "Mites.")]
    examples = [tokenize_conversation(tokenizer, chat(*t)["messages"]) for t in texts]
    examples.append(tokenize_conversation(tokenizer, CONVERSATION))
    packed = collate([examples, examples[::-1]], pad_id=tokenizer.pad_token_id)
    with torch.no_grad():
        # use_cache=False matters: with a KV cache, transformers ignores packed position_ids.
        logits = model(
            input_ids=packed.input_ids, position_ids=packed.position_ids, use_cache=False
        ).logits
        for row, order in ((0, examples), (1, examples[::-1])):
            start = 0
            for example in order:
                alone = model(input_ids=torch.tensor([example.input_ids]), use_cache=False).logits
                window = logits[row, start : start + len(example)]
                torch.testing.assert_close(window, alone[0], atol=1e-5, rtol=1e-4)
                start += len(example)
        # Without restarting positions the later examples would see the earlier ones.
        naive = model(input_ids=packed.input_ids, use_cache=False).logits
        first = len(examples[0])
        assert not torch.allclose(naive[0, first:], logits[0, first:], atol=1e-3)
        summed = sum(loss_sum(model, collate([[e]], pad_id=0)) for e in examples) * 2
        torch.testing.assert_close(loss_sum(model, packed), summed, atol=1e-3, rtol=1e-5)


def test_example_spans_split_rows_where_positions_restart() -> None:
    from trainer.attention import example_spans

    assert example_spans([0, 1, 2, 0, 1, 0]) == [(0, 3), (3, 5), (5, 6)]
    assert example_spans([3, 4, 0, 1]) == [(0, 2), (2, 4)]
