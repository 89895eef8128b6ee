"""Document-level splits: deterministic, near target shares, duplicates kept together."""

from __future__ import annotations

import pytest

from gptstudio.curation.dedupe import DuplicateCluster, DuplicateKind
from gptstudio.curation.errors import InvalidParameterError, LeakageError
from gptstudio.curation.examples import (
    Example,
    ExampleKind,
    Provenance,
    make_example,
    question_answer,
)
from gptstudio.curation.splits import (
    LeakKind,
    Split,
    SplitRatios,
    assign_examples,
    check_no_leakage,
    find_leaks,
    linked_documents,
    split_documents,
)

WEIGHTS = {f"doc{n:03}": float(1 + n % 7) for n in range(200)}


def example(document: str, question: str, answer: str, ordinal: int = 0) -> Example:
    return make_example(
        messages=question_answer(question=question, answer=answer),
        source=Provenance(document_id=document),
        kind=ExampleKind.DEFINITION,
        ordinal=ordinal,
    )


def test_split_is_deterministic_and_near_the_target_shares() -> None:
    first = split_documents(weights=WEIGHTS, seed=3)
    assert first == split_documents(weights=dict(reversed(WEIGHTS.items())), seed=3)
    assert first != split_documents(weights=WEIGHTS, seed=4)
    total = sum(WEIGHTS.values())
    for split, target in ((Split.TRAIN, 0.8), (Split.VALIDATION, 0.1), (Split.TEST, 0.1)):
        share = sum(WEIGHTS[d] for d, s in first.items() if s == split) / total
        assert share == pytest.approx(target, abs=0.02)


def test_linked_documents_share_a_split() -> None:
    links = [frozenset({"doc001", "doc150"}), frozenset({"doc150", "doc199", "unknown"})]
    for seed in range(10):
        assignment = split_documents(weights=WEIGHTS, links=links, seed=seed)
        assert len({assignment["doc001"], assignment["doc150"], assignment["doc199"]}) == 1


def test_clusters_link_the_documents_of_their_members() -> None:
    cluster = DuplicateCluster(("c1", "c2", "c3"), ("c1",), ("c2", "c3"), DuplicateKind.NEAR, ())
    same_document = DuplicateCluster(("c4", "c5"), ("c4",), ("c5",), DuplicateKind.EXACT, ())
    document_of = {"c1": "A", "c2": "B", "c3": "A", "c4": "C", "c5": "C"}
    assert linked_documents(clusters=[cluster, same_document], document_of=document_of) == [
        frozenset({"A", "B"})
    ]


def test_zero_share_splits_stay_empty() -> None:
    assignment = split_documents(weights=WEIGHTS, ratios=SplitRatios(0.9, 0.1, 0.0))
    assert Split.TEST not in set(assignment.values())


def test_ratios_are_checked() -> None:
    with pytest.raises(InvalidParameterError):
        SplitRatios(0.5, 0.3, 0.1)


def test_examples_follow_their_document() -> None:
    examples = [example("A", "q1", "a1"), example("B", "q2", "a2")]
    grouped = assign_examples(examples=examples, assignment={"A": Split.TRAIN, "B": Split.TEST})
    assert [len(grouped[s]) for s in Split] == [1, 0, 1]
    with pytest.raises(InvalidParameterError, match="has no split"):
        assign_examples(examples=examples, assignment={"A": Split.TRAIN})


ANSWER = "Agricultural lime raises the pH of acidic soil over several months of autumn rain."


def test_leak_check_finds_shared_documents_and_cross_split_duplicates() -> None:
    splits = {
        Split.TRAIN: (example("A", "What does lime do?", ANSWER), example("B", "q", "unrelated")),
        Split.VALIDATION: (example("A", "other", "text", 1),),
        Split.TEST: (example("C", "What does lime do?", ANSWER + "!"),),
    }
    leaks = find_leaks(splits=splits)
    assert {(leak.kind, leak.splits) for leak in leaks} == {
        (LeakKind.SHARED_DOCUMENT, (Split.TRAIN, Split.VALIDATION)),
        (LeakKind.DUPLICATE, (Split.TEST, Split.TRAIN)),
    }
    with pytest.raises(LeakageError, match="2 leak"):
        check_no_leakage(splits=splits)


def test_a_clean_split_passes() -> None:
    splits = {
        Split.TRAIN: (example("A", "What does lime do?", ANSWER),),
        Split.VALIDATION: (example("B", "What is loam?", "A soil with balanced sand and clay."),),
        Split.TEST: (),
    }
    check_no_leakage(splits=splits)


def test_a_few_documents_still_fill_every_split() -> None:
    # A first upload: four documents of very different sizes (examples each). By shares alone
    # the test split got nothing (17/3/0), so the gate had no test set.
    weights = {"recipes": 9.0, "policies": 6.0, "faq": 3.0, "menu": 2.0}
    for seed in range(20):
        assignment = split_documents(weights=weights, seed=seed)
        assert set(assignment.values()) == set(Split), seed
        train = [d for d, s in assignment.items() if s == Split.TRAIN]
        assert len(train) == 2  # the other two splits take one document each


def test_two_documents_give_training_and_test_one_each() -> None:
    for seed in range(10):
        assignment = split_documents(weights={"a": 5.0, "b": 1.0}, seed=seed)
        assert sorted(assignment.values()) == [Split.TEST, Split.TRAIN]
    assert split_documents(weights={"only": 3.0}) == {"only": Split.TRAIN}


def test_additions_join_the_split_of_their_near_duplicates() -> None:
    """Examples added later (corrections from feedback) never sit in another split than an
    example they duplicate; duplicates among the additions share one split."""
    from gptstudio.curation.splits import place_additions

    base = "How often should I check my hives for varroa mites during the summer season"
    existing = {
        "a": (base + " months?\nMonthly, with a sugar roll or an alcohol wash.", Split.TEST),
        "b": ("What is a drone?\nA male honey bee.", Split.TRAIN),
    }
    additions = {
        "f1": base + " months?\nMonthly, with a sugar roll or an alcohol wash!",  # as "a"
        "f2": base + " months?\nMonthly: a sugar roll or an alcohol wash.",  # near "a"
        "f3": "Can bees eat sugar syrup in October?\nYes, thick syrup early in the month.",
    }
    placed = place_additions(existing=existing, additions=additions)
    assert placed == {"f1": Split.TEST, "f2": Split.TEST, "f3": Split.TRAIN}
    with pytest.raises(ValueError, match="both existing and added"):
        place_additions(existing=existing, additions={"a": "x"})
