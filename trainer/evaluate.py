"""Does the tuned model know more than its base? Perplexity, QA scores, answers side by side.

- **Held-out perplexity** of the base and of the tuned model on the test split, with the training
  tokenisation (chat template, assistant tokens only), so the two numbers compare like for like.
- **Exact match and token F1** of greedy answers against the reference answers (SQuAD-style
  normalisation: lower case, no punctuation, no articles).
- **Samples**: a few prompts with the base and the tuned answer side by side.
- **The gate**: :func:`knowledge_gain` passes when tuned perplexity is lower by a margin.

The scoring functions are pure; :func:`evaluate` loads the models (worker only).
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from trainer.data import Conversation, Message, load_conversations, tokenize_all
from trainer.errors import DatasetError, Stopped

DEFAULT_MARGIN = 0.05  # tuned perplexity must be at least 5% below the base's
UNLIMITED = 1 << 40  # a length no example reaches: counts answer tokens before truncation


# --- pure scoring --------------------------------------------------------------------------


@dataclass(frozen=True)
class GateResult:
    """The knowledge-gain verdict, its numbers, and a sentence for the creator."""

    passed: bool
    base_perplexity: float
    tuned_perplexity: float
    relative_gain: float  # (base - tuned) / base
    margin: float
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def knowledge_gain(base_ppl: float, tuned_ppl: float, margin: float = DEFAULT_MARGIN) -> GateResult:
    """Pass when tuned perplexity is at least ``margin`` (a fraction) below the base's."""
    for name, value in (("base_ppl", base_ppl), ("tuned_ppl", tuned_ppl)):
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"{name} must be a positive finite perplexity, got {value}")
    if not 0 <= margin < 1:
        raise ValueError(f"margin {margin} must be a fraction in [0, 1)")
    gain = (base_ppl - tuned_ppl) / base_ppl
    passed = gain >= margin
    summary = (
        f"perplexity on held-out answers went from {base_ppl:.2f} (base) to {tuned_ppl:.2f} "
        f"(tuned), {gain:+.1%}; the gate asks for at least {margin:.0%}"
    )
    advice = (
        "passed"
        if passed
        else "not passed: train longer (more epochs), add examples that cover the test "
        "questions, or check that the test set matches the training material"
    )
    return GateResult(passed, base_ppl, tuned_ppl, gain, margin, f"{summary}: {advice}")


def normalize_answer(text: str) -> str:
    """Lower case, without punctuation, articles or extra spaces (SQuAD's normalisation)."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction: str, reference: str) -> float:
    """1.0 when the normalised answers are equal, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(reference))


def token_f1(prediction: str, reference: str) -> float:
    """Harmonic mean of token precision and recall between normalised answers."""
    predicted, expected = normalize_answer(prediction).split(), normalize_answer(reference).split()
    if not predicted or not expected:
        return float(predicted == expected)
    common = sum((Counter(predicted) & Counter(expected)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


@dataclass(frozen=True)
class QAPair:
    """A question (the conversation before the last answer) and its reference answer."""

    prompt: tuple[Message, ...]
    reference: str

    @property
    def question(self) -> str:
        users = [m["content"] for m in self.prompt if m["role"] == "user"]
        return users[-1] if users else ""


def qa_pairs(conversations: Sequence[Conversation]) -> list[QAPair]:
    """One pair per conversation: everything before its last assistant turn, and that turn."""
    pairs = []
    for conversation in conversations:
        messages = conversation.messages
        last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
        pairs.append(QAPair(tuple(messages[:last]), messages[last]["content"]))
    return pairs


@dataclass(frozen=True)
class QAScores:
    """Mean exact match and token F1 over the pairs."""

    exact_match: float
    f1: float
    n: int

    @classmethod
    def score(cls, predictions: Sequence[str], references: Sequence[str]) -> QAScores:
        if len(predictions) != len(references) or not references:
            raise ValueError("need one prediction per reference, and at least one")
        em = sum(map(exact_match, predictions, references)) / len(references)
        f1 = sum(map(token_f1, predictions, references)) / len(references)
        return cls(em, f1, len(references))


@dataclass(frozen=True)
class SampleRow:
    """One prompt with the base and the tuned answer."""

    question: str
    reference: str
    base_answer: str
    tuned_answer: str


def side_by_side(
    pairs: Sequence[QAPair], base_answers: Sequence[str], tuned_answers: Sequence[str]
) -> list[SampleRow]:
    """Rows for the comparison table, in the order of ``pairs``."""
    rows = zip(pairs, base_answers, tuned_answers, strict=True)
    return [SampleRow(p.question, p.reference, base, tuned) for p, base, tuned in rows]


def format_table(rows: Sequence[SampleRow], *, width: int = 60) -> str:
    """A Markdown table of the samples (cells cut to ``width`` characters)."""

    def cell(text: str) -> str:
        flat = " ".join(text.split()).replace("|", "\\|")
        return flat if len(flat) <= width else flat[: width - 1] + "…"

    lines = ["| question | reference | base | tuned |", "| --- | --- | --- | --- |"]
    for row in rows:
        parts = (row.question, row.reference, row.base_answer, row.tuned_answer)
        lines.append("| " + " | ".join(cell(p) for p in parts) + " |")
    return "\n".join(lines)


@dataclass
class EvaluationReport:
    """Everything :func:`evaluate` measured."""

    base_perplexity: float
    tuned_perplexity: float
    gate: GateResult
    base_qa: QAScores
    tuned_qa: QAScores
    samples: list[SampleRow] = field(default_factory=list)
    n_examples: int = 0
    target_tokens: int = 0  # answer tokens scored (within ``sequence_length``)
    answer_tokens: int = 0  # answer tokens in the held-out set, untruncated
    sequence_length: int = 0  # the training length examples were truncated to

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- with models ---------------------------------------------------------------------------


def perplexity(
    model: Any,
    tokenizer: Any,
    conversations: Sequence[Conversation],
    *,
    sequence_length: int,
    batch_size: int = 4,
    device: str = "cpu",
    should_stop: Callable[[], bool] = lambda: False,
) -> tuple[float, int]:
    """exp(mean loss per assistant token) and the number of those tokens."""
    import torch

    from trainer.data import BatchPlan, collate, tokenize_all
    from trainer.modeling import loss_sum

    examples, stats = tokenize_all(tokenizer, conversations, max_length=sequence_length)
    if not examples:
        raise DatasetError("no evaluation example has an assistant token within the length")
    plan = BatchPlan(
        examples, capacity=sequence_length, batch_size=batch_size, seed=0, shuffle=False
    )
    total = 0.0
    with torch.no_grad():
        for _, rows in plan.micro_batches(0):
            if should_stop():
                raise Stopped
            batch = collate(
                [[examples[i] for i in row] for row in rows], pad_id=tokenizer.pad_token_id
            )
            total += loss_sum(model, batch.to(device)).item()
    return math.exp(total / stats.target_tokens), stats.target_tokens


def generate_answers(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Sequence[Message]],
    *,
    max_new_tokens: int,
    batch_size: int = 8,
    device: str = "cpu",
    should_stop: Callable[[], bool] = lambda: False,
) -> list[str]:
    """Greedy answers to chat prompts, batched with left padding."""
    import torch

    tokenizer.padding_side = "left"  # generation continues from the right edge
    answers: list[str] = []
    for start in range(0, len(prompts), batch_size):
        if should_stop():
            raise Stopped
        texts = [
            tokenizer.apply_chat_template(list(p), add_generation_prompt=True, tokenize=False)
            for p in prompts[start : start + batch_size]
        ]
        inputs = tokenizer(texts, add_special_tokens=False, padding=True, return_tensors="pt")
        with torch.no_grad():
            output = model.generate(
                **inputs.to(device),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        answers += [t.strip() for t in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]
    return answers


def held_out_conversations(dataset: str | Path | Sequence[dict[str, Any]]) -> list[Conversation]:
    """The ``test`` split of ``dataset``, or all of it when it has no split marks."""
    conversations = load_conversations(dataset)
    tests = [c for c in conversations if c.split == "test"]
    return tests or conversations


def evaluate(
    adapter: str | Path,
    dataset: str | Path | Sequence[dict[str, Any]],
    *,
    base_model: str | None = None,
    max_new_tokens: int = 64,
    n_samples: int = 5,
    max_qa: int = 100,
    margin: float = DEFAULT_MARGIN,
    sequence_length: int | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> EvaluationReport:
    """Compare the base model and base + ``adapter`` on the test conversations of ``dataset``.

    Perplexity scores answers within the training length, as training saw them: the report
    says how many answer tokens that kept (``target_tokens`` of ``answer_tokens``).
    ``should_stop`` is polled between batches; when it says stop, :class:`Stopped` is raised."""
    from trainer.modeling import adapter_job_config, find_adapter_dir, load_tuned

    adapter_dir = find_adapter_dir(adapter)
    conversations = held_out_conversations(dataset)
    job = adapter_job_config(adapter_dir)
    length = sequence_length or (job.sequence_length if job else 1024)
    model, tokenizer, hardware = load_tuned(adapter_dir, base_model=base_model)
    whole = tokenize_all(tokenizer, conversations, max_length=UNLIMITED)[1]
    pairs = qa_pairs(conversations)[:max_qa]
    prompts = [p.prompt for p in pairs]

    def measure() -> tuple[float, int, list[str]]:
        ppl, n_tokens = perplexity(
            model, tokenizer, conversations, sequence_length=length, device=hardware.device,
            should_stop=should_stop,
        )  # fmt: skip
        answers = generate_answers(
            model, tokenizer, prompts, max_new_tokens=max_new_tokens, device=hardware.device,
            should_stop=should_stop,
        )  # fmt: skip
        return ppl, n_tokens, answers

    with model.disable_adapter():
        base_ppl, n_tokens, base_answers = measure()
    tuned_ppl, _, tuned_answers = measure()
    references = [p.reference for p in pairs]
    return EvaluationReport(
        base_perplexity=base_ppl,
        tuned_perplexity=tuned_ppl,
        gate=knowledge_gain(base_ppl, tuned_ppl, margin),
        base_qa=QAScores.score(base_answers, references),
        tuned_qa=QAScores.score(tuned_answers, references),
        samples=side_by_side(pairs, base_answers, tuned_answers)[:n_samples],
        n_examples=len(conversations),
        target_tokens=n_tokens,
        answer_tokens=whole.target_tokens,
        sequence_length=length,
    )
