"""Training compute on a real run of the tiny model: each run of a job is recorded for its
creator (wall seconds × devices, its training tokens), counts against the tier's included
GPU-hours and teaches the installation its training speed for the next estimate; a tier that
does not bill overage refuses a job its month cannot hold before it is queued."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import select

from gptstudio.db import session_scope
from gptstudio.models import Role, TrainingJob
from gptstudio.models.creator_tier import ComputeUsage
from gptstudio.services import account, assistant, creator_tier, training
from gptstudio.services.creator_tier import TierInput, TierLimitReached
from gptstudio.settings import get_settings
from tests.jobs.test_training import PASSWORD, SMALL, make_dataset


def test_a_run_is_metered_and_a_month_beyond_the_tier_is_refused(
    db: str,
    tiny_model: Path,
    settings_env: pytest.MonkeyPatch,
    tmp_path: Path,
    run_tasks_inline: None,
) -> None:
    settings_env.setenv("GPTSTUDIO_BASE_MODEL", str(tiny_model))
    get_settings.cache_clear()
    admin = account.register(email="root@example.com", password=PASSWORD)
    cy = account.register(email="cy@example.com", password=PASSWORD, role=Role.creator)
    bees = assistant.create_assistant(actor=cy, name="Bees").id
    dataset_id = make_dataset(bees, tmp_path / "dataset")
    creator_tier.save_tier(
        actor=admin, data=TierInput(key="free", name="Free", max_concurrent_jobs=1)
    )

    job = training.start_job(actor=cy, dataset_id=dataset_id, overrides=SMALL)
    assert training.get_job(actor=cy, job_id=job.id or 0).status == "succeeded"
    with session_scope() as session:
        (usage,) = session.exec(select(ComputeUsage)).all()
        assert (usage.user_id, usage.training_job_id, usage.devices) == (cy.id, job.id, 1)
        assert usage.seconds > 0 and usage.device_seconds == usage.seconds
        assert usage.tokens > 0 and usage.overage_seconds == 0  # unlimited compute
        measured = creator_tier.tokens_per_device_second(session)
        assert measured == pytest.approx(usage.tokens / usage.device_seconds)
        used = usage.device_seconds

    # The month now holds less than what was used: the next job is refused before it queues.
    creator_tier.save_tier(
        actor=admin,
        data=TierInput(key="free", name="Free", included_gpu_hours=used / 3600 / 2),
    )
    with pytest.raises(TierLimitReached, match="does not bill") as refused:
        training.start_job(actor=cy, dataset_id=dataset_id, overrides=SMALL)
    assert "GPU-hours are used this month" in str(refused.value)
    with session_scope() as session:
        assert len(session.exec(select(TrainingJob)).all()) == 1  # nothing was queued
