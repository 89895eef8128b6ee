"""Deletion at the user's request (issue 16), with real parts: the offline Stripe (localstripe
behind the recorded front), a real engine process serving the assistant's adapter, real files.

Each test proves absence by scanning: every column of every table for the deleted e-mail, name,
ids and content, and every file under the artifacts folder (decrypted where encrypted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select as sa_select
from sqlmodel import SQLModel, select

from gptstudio.db import get_engine, session_scope
from gptstudio.errors import InvalidCredentials, InvalidInput
from gptstudio.models import (
    Assistant,
    AuditEvent,
    Conversation,
    CurationRun,
    Dataset,
    Invoice,
    Message,
    ModelVersion,
    OAuthIdentity,
    Role,
    Subscription,
    TrainingJob,
    UsageEvent,
    User,
    WidgetLink,
)
from gptstudio.models.user import UserPublic
from gptstudio.services import account, api_key, erasure, file_crypto, mfa
from gptstudio.services.plan import save_plan
from gptstudio.settings import get_settings
from tests.billing.conftest import api, localstripe, stripe, stripe_front  # noqa: F401
from tests.billing.fake_stripe import StripeFront
from tests.billing.helpers import PASSWORD, PRO, make_users, subscribe
from tests.services.test_document import upload

ROOT = Path(__file__).resolve().parents[2]
DOC_SECRET = "The queen of hive Q-7731 is marked with a violet dot"
QUESTION = "Where is hive Q-7731 kept, exactly?"
ANSWER = "Behind the pear orchard on the Harlow estate."
DATASET_LINE = "Harlow estate training example 5541"


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A real engine process on the tiny model: (its URL, the base model folder)."""
    from tests.conftest import free_port
    from trainer.tiny import build_tiny_model

    base = build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "engine", "--base", str(base), "--port", str(port),
               "--threads", "1", "--log-level", "warning"]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            urllib.request.urlopen(f"{url}/healthz", timeout=2)
            break
        except OSError:
            assert process.poll() is None and time.monotonic() < deadline, "engine did not start"
            time.sleep(0.5)
    yield url, base
    process.terminate()
    process.wait(timeout=30)


def served_models(url: str) -> list[str]:
    return [m["id"] for m in httpx.get(f"{url}/v1/models", timeout=60).json()["data"]]


@pytest.fixture
def world(
    stripe: StripeFront,  # noqa: F811
    api: TestClient,  # noqa: F811
    engine: tuple[str, Path],
    run_tasks_inline: None,
    settings_env: pytest.MonkeyPatch,
) -> Iterator[dict[str, Any]]:
    """A creator's published, trained assistant with an uploaded document, a snapshot, a
    served adapter and a retrieval index; a subscriber paying for it who has chatted."""
    from tests.engine.conftest import write_random_adapter

    url, base = engine
    settings_env.setenv("GPTSTUDIO_ENGINE_URL", url)
    get_settings.cache_clear()
    creator, subscriber, bees = make_users()
    plan = save_plan(actor=creator, assistant_id=bees, data=PRO).plan
    sub_stripe_id, _ = subscribe(stripe, api, subscriber, plan.id)
    document = upload(creator, bees, "hive-notes.md", f"# Hives\n\n{DOC_SECRET}.\n".encode())
    root = get_settings().artifacts_dir
    with session_scope() as session:
        slug = session.get(Assistant, bees).slug  # type: ignore[union-attr]
        run = CurationRun(assistant_id=bees, status="done")
        session.add(run)
        session.flush()
        snapshot = root / "datasets" / str(bees) / "v1"
        snapshot.mkdir(parents=True)
        (snapshot / "train.jsonl").write_text(json.dumps({"text": DATASET_LINE}) + "\n")
        data = Dataset(assistant_id=bees, curation_run_id=run.id, storage_path=str(snapshot))
        session.add(data)
        session.flush()
        job = TrainingJob(assistant_id=bees, dataset_id=data.id or 0, base_model=str(base),
                          status="succeeded")  # fmt: skip
        session.add(job)
        session.flush()
        job.output_dir = str(root / "jobs" / str(job.id))
        adapter = write_random_adapter(base, Path(job.output_dir) / "adapter", seed=5)
        version = ModelVersion(assistant_id=bees, training_job_id=job.id, dataset_id=data.id,
                               base_model=str(base), adapter_path=str(adapter),
                               status="published")  # fmt: skip
        session.add(version)
        session.flush()
        session.get(Assistant, bees).current_model_version_id = version.id  # type: ignore[union-attr]
        conversation = Conversation(user_id=subscriber.id, assistant_id=bees, title=QUESTION[:30],
                                    model_version_id=version.id)  # fmt: skip
        session.add(conversation)
        session.flush()
        session.add(Message(conversation_id=conversation.id or 0, role="user", content=QUESTION))
        session.add(Message(conversation_id=conversation.id or 0, role="assistant",
                            content=ANSWER, model_version_id=version.id))  # fmt: skip
        session.add(UsageEvent(user_id=subscriber.id, assistant_id=bees, input_tokens=12,
                               output_tokens=34, model_version_id=version.id))  # fmt: skip
        session.add(WidgetLink(user_id=subscriber.id, assistant_id=bees))
        subscription = session.exec(
            select(Subscription).where(Subscription.user_id == subscriber.id)
        ).one()
        session.add(Invoice(stripe_invoice_id="in_rights_1", user_id=subscriber.id,
                            assistant_id=bees, subscription_id=subscription.id,
                            amount_due_cents=1900, amount_paid_cents=1900,
                            hosted_invoice_url="https://invoice.stripe.com/i/rights"))  # fmt: skip
    index = root / "assistants" / str(bees) / "retrieval"
    index.mkdir(parents=True)
    (index / "chunks.jsonl").write_text(json.dumps({"text": DOC_SECRET}) + "\n")
    adapter_name = f"{slug}-v1"
    body = {"lora_name": adapter_name, "lora_path": str(adapter)}
    loaded = httpx.post(f"{url}/v1/load_lora_adapter", json=body, timeout=180)
    assert loaded.status_code < 300, loaded.text
    assert adapter_name in served_models(url)
    yield {
        "creator": creator, "subscriber": subscriber, "bees": bees, "slug": slug,
        "adapter": adapter_name, "engine": url, "stripe_sub": sub_stripe_id,
        "document": document.id, "job": job.id, "stripe": stripe,
    }  # fmt: skip
    # the engine outlives the test: free the name for the next one (a no-op when deleted)
    httpx.post(f"{url}/v1/unload_lora_adapter", json={"lora_name": adapter_name}, timeout=60)


# --- the scans ---------------------------------------------------------------------------------


def rows_mentioning(needles: list[str], *, skip: tuple[str, ...] = ()) -> list[str]:
    """``table: row`` for every row of every table whose text holds one of ``needles``."""
    found = []
    with get_engine().connect() as connection:
        for table in SQLModel.metadata.sorted_tables:
            if table.name in skip:
                continue
            for row in connection.execute(sa_select(table)):
                text = " ".join(str(v) for v in row)
                if any(n in text for n in needles):
                    found.append(f"{table.name}: {text[:300]}")
    return found


def rows_of(column: str, value: int, *, skip: tuple[str, ...] = ()) -> list[str]:
    """Rows of any table whose ``column`` (``assistant_id``, ``user_id``, …) is ``value``."""
    found = []
    with get_engine().connect() as connection:
        for table in SQLModel.metadata.sorted_tables:
            if column in table.c and table.name not in skip:
                hits = connection.execute(sa_select(table).where(table.c[column] == value)).all()
                found += [f"{table.name}: {tuple(h)}" for h in hits]
    return found


def files_mentioning(needles: list[str]) -> list[str]:
    """Files under the artifacts folder whose bytes, or decrypted content, hold a needle."""
    found = []
    for path in get_settings().artifacts_dir.rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes()
        if data.startswith(file_crypto.MAGIC):
            data = file_crypto.read_plain(path)
        if any(n.encode() in data for n in needles):
            found.append(str(path))
    return found


def stripe_status(front: StripeFront, subscription_id: str) -> str:
    return str(front.localstripe_call("GET", f"/v1/subscriptions/{subscription_id}")["status"])


# --- an assistant ------------------------------------------------------------------------------


def test_deleting_an_assistant_leaves_nothing_of_it(world: dict[str, Any]) -> None:
    creator, bees = world["creator"], world["bees"]
    with pytest.raises(InvalidInput, match="Type the assistant's name"):
        erasure.delete_assistant(actor=creator, assistant_id=bees, confirm="bee mentor")
    assert rows_mentioning([DOC_SECRET, QUESTION]) != []  # nothing went on a wrong confirmation
    impact = erasure.assistant_impact(actor=creator, assistant_id=bees)
    assert (impact.documents, impact.versions, impact.paid_subscribers) == (1, 1, 1)

    erasure.delete_assistant(actor=creator, assistant_id=bees, confirm="Bee mentor")

    content = [DOC_SECRET, QUESTION, ANSWER, DATASET_LINE, "hive-notes.md", world["slug"]]
    assert rows_mentioning(content, skip=("stripe_events",)) == []
    assert rows_of("assistant_id", bees) == []
    assert files_mentioning(content) == []
    root = get_settings().artifacts_dir
    for folder in ("documents", "parsed", "datasets", "assistants", "curation"):
        assert not (root / folder / str(bees)).exists()
    assert not (root / "jobs" / str(world["job"])).exists()
    # unloaded from the engine; the subscriber's plan ended in Stripe, the invoice kept
    assert world["adapter"] not in served_models(world["engine"])
    assert stripe_status(world["stripe"], world["stripe_sub"]) == "canceled"
    with session_scope() as session:
        invoice = session.exec(select(Invoice)).one()
        assert (invoice.user_id, invoice.assistant_id) == (world["subscriber"].id, None)
        event = session.exec(
            select(AuditEvent).where(AuditEvent.action == "assistant.deleted")
        ).one()
        assert event.actor_id == creator.id and event.target == f"assistant:{bees}"
        assert event.detail["stripe_subscriptions_cancelled"] == 1


def test_only_the_owner_deletes_and_not_while_training(world: dict[str, Any]) -> None:
    from gptstudio.errors import NotFound, PermissionDenied

    other = account.register(email="other@example.com", password=PASSWORD, role=Role.creator)
    with pytest.raises(NotFound):
        erasure.delete_assistant(actor=other, assistant_id=world["bees"], confirm="Bee mentor")
    with pytest.raises(PermissionDenied):
        erasure.delete_assistant(
            actor=world["subscriber"], assistant_id=world["bees"], confirm="Bee mentor"
        )
    with session_scope() as session:
        session.get(TrainingJob, world["job"]).status = "running"  # type: ignore[union-attr]
    with pytest.raises(erasure.TrainingRunning, match="cancel it on the Training page"):
        erasure.delete_assistant(
            actor=world["creator"], assistant_id=world["bees"], confirm="Bee mentor"
        )
    assert rows_of("assistant_id", world["bees"]) != []


# --- an account --------------------------------------------------------------------------------


def test_deleting_a_subscriber_erases_the_person_and_pseudonymises_billing(
    world: dict[str, Any],
    api: TestClient,  # noqa: F811
) -> None:
    subscriber: UserPublic = world["subscriber"]
    email = subscriber.email
    with session_scope() as session:
        session.get(User, subscriber.id).display_name = "Sam Sublime"  # type: ignore[union-attr]
        session.add(OAuthIdentity(user_id=subscriber.id, provider="github", subject="gh-98765",
                                  email=email))  # fmt: skip
    raw_key, key = api_key.create_key(actor=subscriber, name="my laptop key", scopes=["chat"])
    enrolment = mfa.begin_enrolment(actor=subscriber)
    backup = mfa.confirm_enrolment(actor=subscriber, code=pyotp.TOTP(enrolment.secret).now())
    ticket = account.login(email=email, password=PASSWORD).mfa_ticket
    with pytest.raises(account.InvalidCredentials):
        account.login(email=email, password="a wrong password")  # an audit row with the e-mail
    token = account.complete_mfa_login(ticket=ticket, code=backup[0]).token
    subscriber = account.user_for_session(token=token)

    with pytest.raises(InvalidCredentials, match="password is wrong"):
        erasure.delete_account(actor=subscriber, password="nope", confirm="DELETE", code=backup[1])
    with pytest.raises(InvalidInput, match="Type DELETE"):
        erasure.delete_account(actor=subscriber, password=PASSWORD, confirm="delete")
    with pytest.raises(InvalidCredentials, match="two-step"):
        erasure.delete_account(actor=subscriber, password=PASSWORD, confirm="DELETE", code="000000")
    alias = erasure.delete_account(
        actor=subscriber, password=PASSWORD, confirm="DELETE", code=backup[1]
    )

    personal = [email, "Sam Sublime", "gh-98765", QUESTION, ANSWER, key.prefix, "my laptop key",
                enrolment.secret, "invoice.stripe.com/i/rights"]  # fmt: skip
    assert rows_mentioning(personal) == []
    # what stays: the pseudonymous row, the invoice, the usage, the subscription (cancelled)
    with session_scope() as session:
        user = session.get(User, subscriber.id)
        assert user is not None and user.email == f"{alias}@deleted.invalid"
        assert (
            not user.is_active and user.deleted_at is not None and user.password_hash == "!erased"
        )
        assert session.exec(select(Invoice)).one().user_id == subscriber.id
        usage = session.exec(select(UsageEvent).where(UsageEvent.user_id == subscriber.id)).all()
        assert [u.output_tokens for u in usage] == [34]
        kept = [r for r in rows_of("user_id", subscriber.id)]
        assert {r.split(":")[0] for r in kept} == {"invoices", "usage_events", "subscriptions"}
        audit_rows = session.exec(
            select(AuditEvent).where(AuditEvent.actor_id == subscriber.id)
        ).all()
        assert all(e.ip == "" and e.user_agent == "" for e in audit_rows)
        assert any(e.action == "account.deleted" and e.detail["pseudonym"] == alias
                   for e in audit_rows)  # fmt: skip
        assert session.exec(select(Conversation)).all() == []
        assert session.exec(select(Message)).all() == []
    assert alias == erasure.pseudonym(subscriber.id)  # stable
    assert stripe_status(world["stripe"], world["stripe_sub"]) == "canceled"
    # nothing opens the account any more: password, session, API key
    with pytest.raises(account.InvalidCredentials):
        account.login(email=email, password=PASSWORD)
    with pytest.raises(account.SessionExpired):
        account.user_for_session(token=token)
    assert api.get("/v1/models", headers={"Authorization": f"Bearer {raw_key}"}).status_code == 401
    # the e-mail is free again: a new account is a new person
    fresh = account.register(email=email, password=PASSWORD)
    assert fresh.id != subscriber.id


def test_deleting_a_creator_deletes_their_assistants(world: dict[str, Any]) -> None:
    creator: UserPublic = world["creator"]
    impact = erasure.account_impact(actor=creator)
    assert impact.published == ["Bee mentor"]
    alias = erasure.delete_account(actor=creator, password=PASSWORD, confirm="DELETE")
    content = [creator.email, DOC_SECRET, QUESTION, DATASET_LINE, world["slug"]]
    assert rows_mentioning(content, skip=("stripe_events",)) == []
    assert rows_mentioning([creator.email]) == []  # Stripe's stored events too
    assert rows_of("assistant_id", world["bees"]) == []
    assert files_mentioning(content) == []
    assert world["adapter"] not in served_models(world["engine"])
    assert stripe_status(world["stripe"], world["stripe_sub"]) == "canceled"
    with session_scope() as session:
        assert session.get(User, creator.id).email.startswith(alias)  # type: ignore[union-attr]


def test_the_only_admin_cannot_leave_the_installation_without_one(db: str) -> None:
    admin = account.register(email="root@example.com", password=PASSWORD)
    assert admin.role == Role.admin
    with pytest.raises(InvalidInput, match="only admin"):
        erasure.delete_account(actor=admin, password=PASSWORD, confirm="DELETE")
