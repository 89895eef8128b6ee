"""Prompt building: the persona, the passages, the budget of the context window (history, then
the answer reserve, then passages, then the persona give way), and the token estimates of the
quota, the budget and the meter."""

from __future__ import annotations

import pytest

from gptstudio.services import prompt
from gptstudio.services.retrieval import Passage, Retrieval

PERSONA = {"role": "system", "content": "You are a beekeeping mentor."}
QUESTION = "What colour are the hive doors at the Morrow Apiary?"


def passages() -> Retrieval:
    door = Passage(n=1, document_id=1, filename="manual.pdf", page=2, score=0.8,
                   text="The hive doors at the Morrow Apiary are painted cobalt blue.")  # fmt: skip
    smoke = Passage(n=2, document_id=1, filename="manual.pdf", page=1, score=0.3,
                    text="Smokers are lit with dry pine needles " * 60)  # fmt: skip
    return Retrieval([door, smoke])


def test_the_persona_goes_first_unless_the_caller_sent_a_system_message() -> None:
    asked = [{"role": "user", "content": QUESTION}]
    assert prompt.with_system_prompt(PERSONA["content"], asked) == [PERSONA, *asked]
    own = [{"role": "system", "content": "Be a pirate."}, *asked]
    assert prompt.with_system_prompt(PERSONA["content"], own) == own
    assert prompt.with_system_prompt("", asked) == asked


def test_passages_are_numbered_in_the_system_message_and_cut_to_length() -> None:
    built = prompt.with_passages([PERSONA, {"role": "user", "content": QUESTION}], passages())
    system = built[0]["content"]
    assert system.startswith(PERSONA["content"]) and "[1] manual.pdf, page 2\n" in system
    assert "cite each source you use as [n]" in system
    assert len(system) < len(PERSONA["content"]) + 2 * prompt.MAX_PASSAGE_CHARS + 400
    alone = prompt.with_passages([{"role": "user", "content": QUESTION}], passages())
    assert alone[0]["role"] == "system" and alone[1]["content"] == QUESTION


def conversation(turns: int = 30) -> list[dict[str, str]]:
    history = []
    for turn in range(turns):
        history += [
            {"role": "user", "content": f"Old question {turn}: " + "tell me about bees " * 20},
            {"role": "assistant", "content": f"Old answer {turn}: " + "bees are insects " * 20},
        ]
    return [*history, {"role": "user", "content": QUESTION}]


def tokens(messages: list[dict[str, str]]) -> int:
    count = prompt.estimate_tokens
    return prompt.PROMPT_OVERHEAD_TOKENS + sum(
        count(m["content"]) + prompt.MESSAGE_OVERHEAD_TOKENS for m in messages
    )


def build(messages: list[dict[str, str]], window: int | None, **kwargs: object) -> prompt.Budgeted:
    return prompt.build(system_prompt=PERSONA["content"], messages=messages, passages=passages(),
                        window=window, max_tokens=512, **kwargs)  # type: ignore[arg-type]  # fmt: skip


def test_everything_stays_when_it_fits() -> None:
    messages = conversation(2)
    whole = prompt.with_passages([PERSONA, *messages], passages())
    built = build(messages, tokens(whole) + 512)
    assert built.messages == whole and built.max_tokens == 512
    assert [p.n for p in built.passages] == [1, 2] and built.dropped_turns == 0
    assert build(messages, None).messages == whole  # no window known: no budget


def test_history_goes_first_oldest_turns_first() -> None:
    messages = conversation()
    whole = prompt.with_passages([PERSONA, *messages], passages())
    window = tokens(whole) // 3 + 512
    built = build(messages, window)
    assert built.max_tokens == 512 and len(built.passages) == 2  # nothing else gave way
    assert built.messages[0] == whole[0] and built.messages[-1]["content"] == QUESTION
    assert built.messages[1]["role"] == "user" and 3 < len(built.messages) < len(whole)
    assert built.messages[1:] == whole[len(whole) - len(built.messages) + 1 :]  # the newest turns
    assert tokens(built.messages) + built.max_tokens <= window
    assert built.dropped_turns == len(whole) - len(built.messages)


def test_then_the_answer_reserve_shrinks_to_its_floor() -> None:
    alone = prompt.with_passages([PERSONA, {"role": "user", "content": QUESTION}], passages())
    built = build(conversation(), tokens(alone) + 300)
    assert built.messages == alone and built.max_tokens == 300
    assert [p.n for p in built.passages] == [1, 2]


def test_then_passages_are_cut_and_dropped_least_relevant_first() -> None:
    question = [{"role": "user", "content": QUESTION}]
    first_only = prompt.with_passages([PERSONA, *question], passages()[:1])
    # Room for the first passage and a part of the second (the least relevant).
    window = tokens(first_only) + prompt.ANSWER_FLOOR_TOKENS + 100
    built = build(conversation(), window)
    assert built.max_tokens == prompt.ANSWER_FLOOR_TOKENS
    assert [p.n for p in built.passages] == [1, 2]
    assert built.passages[0] == passages()[0]
    assert built.passages[1].text.endswith("…") and len(built.passages[1].text) < 400
    assert tokens(built.messages) + built.max_tokens <= window
    assert built.passages[1].text in built.messages[0]["content"]
    # Less room: the second goes, the first stays whole.
    built = build(conversation(), tokens(first_only) + prompt.ANSWER_FLOOR_TOKENS + 10)
    assert built.passages == passages()[:1] and built.dropped_passages == 1
    assert built.messages == first_only
    # Less still: no passage; then the persona's tail.
    built = build(question, tokens([PERSONA, *question]) + prompt.ANSWER_FLOOR_TOKENS)
    assert built.passages == [] and built.messages == [PERSONA, *question]
    built = build(question, tokens(question) + prompt.ANSWER_FLOOR_TOKENS + 10)
    assert built.messages[-1]["content"] == QUESTION
    assert PERSONA["content"].startswith(built.messages[0]["content"])


def test_only_a_question_that_cannot_fit_alone_is_refused() -> None:
    question = [{"role": "user", "content": QUESTION}]
    built = build(question, tokens(question) + prompt.ANSWER_FLOOR_TOKENS)
    assert built.messages[-1] == question[0] and built.max_tokens == prompt.ANSWER_FLOOR_TOKENS
    with pytest.raises(prompt.PromptTooLong, match="too long for the model") as refused:
        build(question, tokens(question) + prompt.ANSWER_FLOOR_TOKENS - 1)
    assert refused.value.code == "context_length_exceeded"
    assert f"window of {tokens(question) + 127} tokens" in str(refused.value)


def test_the_strict_count_is_a_byte_a_token() -> None:
    question = [{"role": "user", "content": "héllo 🐝"}]
    built = prompt.build(system_prompt="", messages=question, window=200, max_tokens=512,
                         count_tokens=prompt.strict_tokens)  # fmt: skip
    assert built.max_tokens == 200 - prompt.prompt_bound(question)


def test_prompt_bound_is_at_least_the_bytes() -> None:
    messages = [{"role": "user", "content": "héllo 🐝"}]
    assert prompt.prompt_bound(messages) == len("héllo 🐝".encode()) + 8 + 16


def test_the_estimates_rank_as_their_purposes_need() -> None:
    messages = [PERSONA, {"role": "user", "content": QUESTION}]
    trimming = sum(prompt.estimate_tokens(m["content"]) + 8 for m in messages)
    assert prompt.spent_prompt_estimate(messages) < prompt.prompt_bound(messages)
    assert trimming < prompt.prompt_bound(messages)  # the bound is strict, the others estimates
    assert prompt.spent_prompt_estimate(messages) == (
        -(-sum(len(m["content"].encode()) for m in messages) // 4) + 4 * len(messages)
    )
