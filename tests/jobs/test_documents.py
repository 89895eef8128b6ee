"""The parse job, from real uploads: pages and the real file type in the report, a reason for
every file that cannot be read, the creator's column choice, and a stored file that is gone."""

from __future__ import annotations

from typing import Any
from unittest.mock import ANY

import pytest

from gptstudio.db import session_scope
from gptstudio.errors import InvalidInput
from gptstudio.jobs.documents import parse_stored
from gptstudio.models import Document, Role
from gptstudio.services import account, assistant, dataset, document
from gptstudio.settings import get_settings
from tests.curation.builders import encrypt_pdf, make_pdf
from tests.services.docs import BEES_MD
from tests.services.test_document import AMBIGUOUS_CSV, PASSWORD, upload


@pytest.fixture
def creator(db: str, run_tasks_inline: None) -> tuple[account.UserPublic, int]:
    account.register(email="root@example.com", password=PASSWORD)
    cy = account.register(email="cy@example.com", password=PASSWORD, role=Role.creator)
    return cy, assistant.create_assistant(actor=cy, name="Bees").id


def test_pdf_keeps_pages_and_a_lying_extension_is_reported(
    creator: tuple[account.UserPublic, int],
) -> None:
    cy, bees = creator
    upload(cy, bees, "notes.txt", make_pdf([["Page one about hives."], ["Page two, mites."]]))
    (listed,) = document.list_documents(actor=cy, assistant_id=bees)
    assert listed.status == "parsed"
    assert listed.report["file_type"] == "pdf" and listed.report["pages"] == 2
    assert listed.report["extension_mismatch"] is True


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("locked.pdf", encrypt_pdf(make_pdf([["secret"]]), user_password="pw"), "password"),
        ("broken.pdf", b"%PDF-1.7\n" + b"\x00garbage" * 50, "PDF"),
        ("junk.bin", bytes(range(256)) * 40, "not"),
    ],
)
def test_bad_files_fail_with_a_reason(
    creator: tuple[account.UserPublic, int], name: str, data: bytes, message: str
) -> None:
    cy, bees = creator
    upload(cy, bees, name, data)
    (listed,) = document.list_documents(actor=cy, assistant_id=bees)
    assert listed.status == "failed"
    assert message.lower() in listed.error.lower()


def test_unguessable_columns_fail_listing_them_and_a_choice_reparses(
    creator: tuple[account.UserPublic, int],
) -> None:
    cy, bees = creator
    stored = upload(cy, bees, "tickets.csv", AMBIGUOUS_CSV.encode())
    (failed,) = document.list_documents(actor=cy, assistant_id=bees)
    assert failed.status == "failed" and "Choose which column" in failed.error
    assert failed.report["columns"] == ["ticket", "asked", "answered", "agent"]
    assert failed.is_tabular

    with pytest.raises(InvalidInput, match="not in the file"):
        document.choose_columns(
            actor=cy, document_id=stored.id, columns={"instruction": "asked", "response": "nope"}
        )
    with pytest.raises(InvalidInput, match="both an instruction and a response"):
        document.choose_columns(actor=cy, document_id=stored.id, columns={"instruction": "asked"})

    document.choose_columns(
        actor=cy, document_id=stored.id, columns={"instruction": "asked", "response": "answered"}
    )
    (parsed,) = document.list_documents(actor=cy, assistant_id=bees)
    assert parsed.status == "parsed", parsed.error
    assert parsed.report["examples"] == 2
    assert parsed.report["column_choice"] == {"instruction": "asked", "response": "answered"}
    assert parsed.columns == {"instruction": "asked", "response": "answered"}

    # Read as plain text instead: every row's chosen column becomes a section.
    document.choose_columns(actor=cy, document_id=stored.id, columns={"text": "answered"})
    (as_text,) = document.list_documents(actor=cy, assistant_id=bees)
    assert as_text.report["sections"] >= 1 and as_text.report["examples"] == 0


def test_a_stored_file_that_is_gone_fails_with_what_to_do(
    creator: tuple[account.UserPublic, int],
) -> None:
    cy, bees = creator
    stored = upload(cy, bees, "bees.md", BEES_MD.encode())
    folder = get_settings().artifacts_dir / "documents" / str(bees)
    (folder / f"{stored.id}-bees.md").unlink()
    with session_scope() as session:  # an attempt that stopped, given to the queue again
        row = session.get(Document, stored.id)
        assert row is not None
        row.status = "uploaded"
    parse_stored(stored.id)  # the next attempt, after the file was lost
    (listed,) = document.list_documents(actor=cy, assistant_id=bees)
    assert listed.status == "failed"
    assert "cannot be read" in listed.error and "upload it again" in listed.error
    document.delete_document(actor=cy, document_id=stored.id)
    parse_stored(stored.id)  # deleted before a worker got to it: nothing to do
    assert document.list_documents(actor=cy, assistant_id=bees) == []


def test_curation_runs_reuse_the_parsed_sections(
    creator: tuple[account.UserPublic, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each document is parsed once, when uploaded; curation runs read the kept sections, and
    parse again only a document whose column choice changed, or all after a parser change."""
    import gptstudio.curation.parsers as parsers
    import gptstudio.jobs.documents as jobs_documents

    parsed: list[str] = []
    real = parsers.parse_document

    def counting(**kwargs: Any) -> Any:
        parsed.append(kwargs["filename"])
        return real(**kwargs)

    monkeypatch.setattr(parsers, "parse_document", counting)
    cy, bees = creator
    upload(cy, bees, "bees.md", BEES_MD.encode())
    table = upload(cy, bees, "tickets.csv", AMBIGUOUS_CSV.encode())
    document.choose_columns(
        actor=cy, document_id=table.id, columns={"instruction": "asked", "response": "answered"}
    )
    assert sorted(parsed) == ["bees.md", "tickets.csv", "tickets.csv"]
    first = dataset.start_curation(actor=cy, assistant_id=bees, settings=dataset.CurationSettings())
    assert first.status == "done", first.error
    assert len(parsed) == 3  # nothing parsed again
    second = dataset.start_curation(
        actor=cy, assistant_id=bees, settings=dataset.CurationSettings(seed=1)
    )
    assert second.status == "done" and len(parsed) == 3
    assert dataset.run_result(second)["counts"]["imported_examples"] == 2

    monkeypatch.setattr(jobs_documents, "parser_version", lambda: "a newer parser")
    third = dataset.start_curation(
        actor=cy, assistant_id=bees, settings=dataset.CurationSettings(seed=2)
    )
    assert third.status == "done" and sorted(parsed[3:]) == ["bees.md", "tickets.csv"]
    assert dataset.run_result(third)["counts"] == {
        **dataset.run_result(second)["counts"], "splits": ANY,
    }  # fmt: skip
    kept = get_settings().artifacts_dir / "parsed" / str(bees)
    assert len(list(kept.glob("*tickets.csv.parsed"))) == 1
    document.delete_document(actor=cy, document_id=table.id)
    assert not list(get_settings().artifacts_dir.rglob("*tickets*"))


MENU_CSV = (
    "name,price,description\n"
    'Sourdough loaf,6.50,"Naturally leavened, 24-hour ferment, baked every morning."\n'
    "Croissant,3.20,Laminated with French butter; 27 layers.\n"
    "Seasonal tart,,Changes with the market.\n"
    'Rye bread,5.80,"Dense, with caraway; keeps for a week."\n'
)


def test_a_row_template_turns_each_row_into_one_example(
    creator: tuple[account.UserPublic, int],
) -> None:
    """A menu has no question column: a template over name, price and description makes one
    example per row; a row with an empty cell the template uses is skipped and said."""
    cy, bees = creator
    stored = upload(cy, bees, "menu.csv", MENU_CSV.encode())
    template = {
        "question_template": "What does the {name} cost?",
        "answer_template": "The {name} costs ${price}. {description}",
    }
    with pytest.raises(InvalidInput, match="not in the file"):
        document.choose_columns(
            actor=cy, document_id=stored.id,
            columns={**template, "answer_template": "{name}: {colour}"},
        )  # fmt: skip
    with pytest.raises(InvalidInput, match="both a question and an answer"):
        document.choose_columns(
            actor=cy, document_id=stored.id, columns={"question_template": "{name}?"}
        )
    with pytest.raises(InvalidInput, match="not both"):
        document.choose_columns(
            actor=cy, document_id=stored.id, columns={**template, "text": "name"}
        )

    document.choose_columns(actor=cy, document_id=stored.id, columns=template)
    (parsed,) = document.list_documents(actor=cy, assistant_id=bees)
    assert parsed.status == "parsed", parsed.error
    assert parsed.columns == template
    assert parsed.report["examples"] == 3 and parsed.report["sections"] == 0
    assert any("1 rows skipped" in note for note in parsed.report["notes"])

    from gptstudio.jobs.documents import parsed_document

    kept = parsed_document(
        path=parsed_path_of(bees, stored.id), filename="menu.csv", document_id=stored.id,
        columns=template,
    )  # fmt: skip
    pairs = [
        [m.content for m in e.messages if m.role.value in ("user", "assistant")]
        for e in kept.examples
    ]
    assert [
        "What does the Croissant cost?",
        "The Croissant costs $3.20. Laminated with French butter; 27 layers.",
    ] in pairs
    assert all(e.kind.value == "template" for e in kept.examples)


def parsed_path_of(assistant_id: int, document_id: int) -> str:
    folder = get_settings().artifacts_dir / "documents" / str(assistant_id)
    return str(folder / f"{document_id}-menu.csv")
