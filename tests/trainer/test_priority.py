"""Training jobs are ordered on the queue by the creator's GPT Studio tier (admins first); only an
admin changes a tier, and the change is audited."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import select

from gptstudio.db import session_scope
from gptstudio.errors import PermissionDenied
from gptstudio.models import AuditEvent, Role, Tier
from gptstudio.services import account, assistant, training
from gptstudio.settings import get_settings
from tests.jobs.test_training import SMALL, make_dataset

PASSWORD = "correct horse battery"


def test_jobs_queue_by_tier_and_admins_go_first(
    db: str, tiny_model: Path, settings_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from gptstudio.jobs.queue import huey

    settings_env.setenv("GPTSTUDIO_BASE_MODEL", str(tiny_model))
    get_settings.cache_clear()
    root = account.register(email="root@example.com", password=PASSWORD)
    free = account.register(email="fay@example.com", password=PASSWORD, role=Role.creator)
    pro = account.register(email="pia@example.com", password=PASSWORD, role=Role.creator)
    with pytest.raises(PermissionDenied):
        account.set_tier(actor=free, user_id=free.id, tier=Tier.enterprise)
    pro = account.set_tier(actor=root, user_id=pro.id, tier=Tier.professional)
    assert pro.tier == Tier.professional

    jobs = {}
    for name, person in (("free", free), ("pro", pro), ("admin", root)):
        bees = assistant.create_assistant(actor=person, name=f"Bees {name}").id
        dataset_id = make_dataset(bees, tmp_path / name)
        jobs[name] = training.start_job(actor=person, dataset_id=dataset_id, overrides=SMALL)
    # Enqueued free first, then pro, then admin: the queue runs them the other way round.
    assert [training.queue_position(jobs[n]) for n in ("admin", "pro", "free")] == [1, 2, 3]
    assert jobs["pro"].priority > jobs["free"].priority
    with session_scope() as session:
        changed = session.exec(
            select(AuditEvent).where(AuditEvent.action == "user.tier_changed")
        ).one()
        assert changed.detail == {"from": "free", "to": "professional"}
    huey.flush()
