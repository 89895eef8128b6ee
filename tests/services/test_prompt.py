"""Prompt building: the persona, the passages, trimming to the context window, and the token
estimates of the quota, the trimming and the meter."""

from __future__ import annotations

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


def test_trimming_keeps_the_system_message_and_the_last_question() -> None:
    history = []
    for turn in range(30):
        history += [
            {"role": "user", "content": f"Old question {turn}: " + "tell me about bees " * 20},
            {"role": "assistant", "content": f"Old answer {turn}: " + "bees are insects " * 20},
        ]
    messages = [PERSONA, *history, {"role": "user", "content": QUESTION}]
    built = prompt.with_passages(messages, passages())

    count = prompt.estimate_tokens
    needed = sum(count(m["content"]) + prompt.MESSAGE_OVERHEAD_TOKENS for m in built)
    assert prompt.trim_to_context(built, max_tokens_budget=needed) == built

    tight = prompt.trim_to_context(built, max_tokens_budget=50)  # less than the system alone
    assert tight == [built[0], built[-1]]

    middle = prompt.trim_to_context(built, max_tokens_budget=needed // 3)
    assert middle[0] == built[0] and middle[-1] == built[-1]
    assert 3 < len(middle) < len(built) and middle[1]["role"] == "user"
    assert middle[1:] == built[len(built) - len(middle) + 1 :]  # the newest turns, in order
    kept = sum(count(m["content"]) + prompt.MESSAGE_OVERHEAD_TOKENS for m in middle)
    assert kept <= needed // 3


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
