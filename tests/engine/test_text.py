"""Prompt building and streamed text: trimming to the context, incremental detokenizing, stops."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.errors import ContextLengthError
from engine.text import Detokenizer, StopMatcher, encode_chat, fit_messages


@pytest.fixture(scope="module")
def tokenizer(tiny_model: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


def conversation(turns: int) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": "You are the beekeeper's assistant."}]
    for n in range(turns):
        messages.append({"role": "user", "content": f"Question {n}: when are the bees fed?"})
        messages.append({"role": "assistant", "content": f"Answer {n}: in October, with syrup."})
    messages.append({"role": "user", "content": "And who inspects the hive?"})
    return messages


def prompt_length(messages: list[dict[str, str]], tokenizer: Any) -> int:
    return len(encode_chat(messages, tokenizer))


def test_fit_messages_keeps_everything_that_fits(tokenizer: Any) -> None:
    messages = conversation(3)
    assert fit_messages(messages, tokenizer, 1024, 100) == messages


def test_fit_messages_drops_oldest_turns_and_keeps_the_system_prompt(tokenizer: Any) -> None:
    messages = conversation(12)
    context, reserve = 200, 40
    assert prompt_length(messages, tokenizer) + reserve > context

    kept = fit_messages(messages, tokenizer, context, reserve)

    assert kept[0] == messages[0]  # the system prompt
    assert kept[1]["role"] == "user"  # a whole turn, not an orphan answer
    assert kept == [messages[0], *messages[len(messages) - len(kept) + 1 :]]  # the newest ones
    assert prompt_length(kept, tokenizer) + reserve <= context
    one_more = [messages[0], *messages[len(messages) - len(kept) - 1 :]]
    assert prompt_length(one_more, tokenizer) + reserve > context  # dropped no more than needed


def test_fit_messages_refuses_when_system_and_last_message_cannot_fit(tokenizer: Any) -> None:
    messages = [
        {"role": "system", "content": "bees " * 150},
        {"role": "user", "content": "hello"},
    ]
    with pytest.raises(ContextLengthError, match="context window of 120 tokens"):
        fit_messages(messages, tokenizer, 120, 20)


def test_detokenizer_never_splits_a_character(tokenizer: Any) -> None:
    text = "Die Bienen fliegen früh: 🐝 über 蜂蜜 und Crème brûlée — fin."
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(ids) > len(text.split())  # multi-byte characters span several tokens
    detokenizer = Detokenizer(tokenizer)
    deltas = [detokenizer.push(token) for token in ids]
    deltas.append(detokenizer.flush())
    assert "".join(deltas) == text
    assert not any("\ufffd" in delta for delta in deltas)


def test_stop_matcher_cuts_at_a_stop_spanning_deltas_and_holds_back_prefixes() -> None:
    matcher = StopMatcher(["<END>", "###"])
    assert matcher.feed("The hive <E") == ("The hive ", False)  # "<E" may start "<END>"
    assert matcher.feed("ast> door #") == ("<East> door ", False)
    assert matcher.feed("## more") == ("", True)


def test_stop_matcher_flushes_held_text_when_the_answer_ends() -> None:
    matcher = StopMatcher(["###"])
    assert matcher.feed("done #") == ("done ", False)
    assert matcher.flush() == "#"
