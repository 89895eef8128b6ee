"""The training page in the browser on the defaults: the newest dataset version is chosen, Start
with nothing typed runs the preset sized to the data, the loss chart shows its smoothed curve and
the gate's line, the version says which split the gate measured, the preview chat answers with
the version and the base side by side, and Publish goes to the pre-selected version."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from sqlmodel import Session

from gptstudio.db import engine_for
from gptstudio.models import Assistant, Dataset, Role, User
from gptstudio.services.account import hash_password
from tests.e2e.conftest import PASSWORD, RunningApp, hydrated, log_in
from tests.trainer.conftest import FACTS, chat

pytestmark = pytest.mark.e2e
EMAIL = "tess@example.com"


def seed(app: RunningApp, folder: Path, *, email: str = EMAIL, name: str = "Hive Trainer") -> int:
    """A creator with an assistant and two dataset versions (v2, the newest, to be chosen)."""
    with Session(engine_for(app.database_url), expire_on_commit=False) as session:
        user = User(email=email, password_hash=hash_password(PASSWORD), role=Role.creator.value)
        session.add(user)
        session.flush()
        slug = name.lower().replace(" ", "-")
        bot = Assistant(owner_id=int(user.id or 0), name=name, slug=slug)
        session.add(bot)
        session.flush()
        for number in (1, 2):
            splits = {"train": FACTS * 2, "validation": FACTS[:2], "test": FACTS[2:5]}
            path = folder / f"v{number}"
            path.mkdir(parents=True)
            for name, pairs in splits.items():
                lines = "".join(json.dumps(chat(q, a)) + "\n" for q, a in pairs)
                (path / f"{name}.jsonl").write_text(lines)
            session.add(
                Dataset(
                    assistant_id=int(bot.id or 0), version=number, content_hash=f"{number}" * 64,
                    status="ready", storage_path=str(path),
                    counts={"splits": {k: len(v) for k, v in splits.items()}},
                )
            )  # fmt: skip
        session.commit()
        return int(bot.id or 0)


def test_train_on_the_defaults_preview_and_publish(
    app: RunningApp, admin: str, page: Page, tmp_path: Path
) -> None:
    bot = seed(app, tmp_path)
    log_in(page, app, EMAIL)
    expect(page).to_have_url(re.compile(r"/dashboard/?$"))
    page.goto(f"{app.url}/assistant/training?id={bot}")
    hydrated(page)
    expect(page.locator("#job-dataset")).to_contain_text("2")  # the newest, pre-selected
    expect(page.locator("#dataset-splits")).to_contain_text("16 train · 2 validation · 3 test")
    page.click("#job-start")  # nothing typed: the auto preset, sized to the data
    job = page.locator(".job-row").first
    expect(job).to_contain_text("succeeded", timeout=300_000)
    expect(page.get_by_text(re.compile(r"thorough · lora · \d+ epochs"))).to_be_visible()
    expect(page.locator("#loss-chart")).to_be_visible()
    expect(page.locator("#loss-chart .recharts-line")).to_have_count(3)  # raw, smoothed, eval
    expect(page.locator("#chart-note")).to_contain_text("The gate asks for held-out loss")
    expect(page.locator("#loss-chart .recharts-reference-line")).to_have_count(1)
    version = page.locator(".version-row")
    expect(version).to_have_count(1, timeout=30_000)
    expect(version.locator(".held-out")).to_contain_text("measured on 3 examples (test)")
    expect(page.locator(".sample-row").first).to_be_visible()

    page.fill("#preview-input", "When are the bees fed?")
    page.click("#preview-ask")
    turn = page.locator(".preview-turn")
    expect(turn).to_have_count(1)
    for column in (turn.locator(".tuned"), turn.locator(".base")):
        expect(column).not_to_have_text("…", timeout=60_000)
        expect(column).not_to_contain_text("no answer")

    expect(page.locator("#publish-version")).to_contain_text("1")  # the newest version
    page.click("#publish")  # this session's gate asks for 99 %: blocked, with the numbers
    expect(page.locator("#form-error")).to_contain_text("Publishing is blocked")
