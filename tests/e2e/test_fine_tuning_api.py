"""OpenAI's fine-tuning API against the app as ``make run`` starts it (its own worker and engine):
a creator makes a ``fine_tuning`` key on the keys page, an ``openai`` script fine-tunes the tiny
model over HTTP and chats with the ``ft:`` model, and the job shows on the training page with its
API id and model name."""

from __future__ import annotations

import io
import json
import re
import time
from pathlib import Path

import openai
import pytest
from playwright.sync_api import Page, expect
from sqlmodel import Session, select

from gptstudio.db import engine_for
from gptstudio.models import Assistant, Role, User
from gptstudio.services.account import hash_password
from tests.e2e.conftest import PASSWORD, RunningApp, hydrated, log_in
from tests.trainer.conftest import FACTS, chat

pytestmark = pytest.mark.e2e
EMAIL = "fina@example.com"
SHOTS = Path("/tmp/ftapi")


def test_an_openai_script_fine_tunes_and_the_training_page_shows_it(
    app: RunningApp, admin: str, page: Page
) -> None:
    with Session(engine_for(app.database_url)) as session:
        session.add(
            User(email=EMAIL, password_hash=hash_password(PASSWORD), role=Role.creator.value)
        )
        session.commit()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    log_in(page, app, EMAIL)
    expect(page).to_have_url(re.compile(r"/dashboard/?$"))
    page.goto(f"{app.url}/account/keys")
    hydrated(page)
    page.fill("#key-name", "fine-tuning script")
    page.click("#scope-fine_tuning")
    page.click("#key-create")
    raw = page.locator("#new-key").inner_text().strip()
    assert raw.startswith("gs-")

    client = openai.OpenAI(api_key=raw, base_url=f"{app.url}/v1", max_retries=0)
    lines = "".join(json.dumps(chat(q, a)) + "\n" for q, a in FACTS * 2).encode()
    uploaded = client.files.create(file=("bees.jsonl", io.BytesIO(lines)), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(
        model="tiny-llama", training_file=uploaded.id, suffix="hive",
        hyperparameters={"n_epochs": 2, "batch_size": 4},
    )  # fmt: skip
    deadline = time.monotonic() + 600
    while job.status not in ("succeeded", "failed", "cancelled"):
        assert time.monotonic() < deadline, f"the job stayed {job.status}"
        time.sleep(1)
        job = client.fine_tuning.jobs.retrieve(job.id)
    assert job.status == "succeeded", job.error
    assert job.fine_tuned_model and job.fine_tuned_model.startswith("ft:tiny-llama:user-")
    answer = client.chat.completions.create(  # "chat" is ticked on the keys page by default
        model=job.fine_tuned_model, max_tokens=8, temperature=0,
        messages=[{"role": "user", "content": "What colour is the hive door?"}],
    )  # fmt: skip
    assert answer.model == job.fine_tuned_model and answer.choices[0].message.content

    with Session(engine_for(app.database_url)) as session:
        hive = session.exec(select(Assistant).where(Assistant.slug == "hive")).one()
    page.goto(f"{app.url}/assistant/training?id={hive.id}")
    hydrated(page)
    expect(page.locator(".job-row")).to_have_count(1)
    expect(page.locator(".job-row").first).to_contain_text("succeeded")
    expect(page.locator("#job-api")).to_contain_text(f"{job.id} → {job.fine_tuned_model}")
    expect(page.locator(".version-row")).to_have_count(1)
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "training-page-api-job.png"), full_page=True)
    assert not errors, errors
