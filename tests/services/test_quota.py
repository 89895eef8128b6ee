"""Quota admission and settlement on real Redis and in the embedded process: reservations under
thread races, seeding from the database, expiry of abandoned reservations, Redis down."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
import redis

from gptstudio.db import session_scope, utcnow
from gptstudio.errors import InvalidInput, PaymentRequired
from gptstudio.models import Plan, Role, Subscription, UsageEvent
from gptstudio.services import account, assistant, quota, usage
from gptstudio.services.entitlements import Entitlement, entitlement
from gptstudio.settings import get_settings

PASSWORD = "correct horse battery"


@pytest.fixture(params=["redis", "embedded"])
def store(request: pytest.FixtureRequest, db: str, settings_env: pytest.MonkeyPatch) -> str:
    """The quota store: real Redis (shared by processes) or the embedded process's own."""
    if request.param == "redis":
        settings_env.setenv("GPTSTUDIO_REDIS_URL", request.getfixturevalue("redis_url"))
        get_settings.cache_clear()
    return str(request.param)


class Shop:
    def __init__(self) -> None:
        account.register(email="root@example.com", password=PASSWORD)
        self.creator = account.register(
            email="cy@example.com", password=PASSWORD, role=Role.creator
        )
        self.assistant_id = assistant.create_assistant(actor=self.creator, name="Bee Mentor").id
        self.sue = account.register(email="sue@example.com", password=PASSWORD)

    def plan(self, **fields: Any) -> Plan:
        with session_scope() as session:
            plan = Plan(assistant_id=self.assistant_id, **fields)
            session.add(plan)
            session.flush()
            return plan

    def granted(self, user_id: int | None) -> Entitlement:
        return entitlement(user_id=user_id, assistant_id=self.assistant_id).require()

    def admit(self, request_id: str, *, max_tokens: int = 100, prompt: int = 20,
              user_id: int | None = -1, visitor: str = "") -> quota.Admission:  # fmt: skip
        who = self.sue.id if user_id == -1 else user_id
        return asyncio.run(quota.admit_async(
            self.granted(who), user_id=who, visitor_id=visitor, max_tokens=max_tokens,
            prompt_tokens=prompt, request_id=request_id,
        ))  # fmt: skip

    def spend(self, tokens: int, *, request_id: str, visitor: str = "") -> None:
        usage.record(
            request_id=request_id, assistant_id=self.assistant_id, model_version_id=None,
            user_id=None if visitor else self.sue.id, visitor_id=visitor, source="api",
            input_tokens=tokens, output_tokens=0,
        )  # fmt: skip


@pytest.fixture
def shop(store: str) -> Shop:
    return Shop()


@pytest.fixture
def redis_shop(db: str, redis_url: str, settings_env: pytest.MonkeyPatch) -> Shop:
    settings_env.setenv("GPTSTUDIO_REDIS_URL", redis_url)
    get_settings.cache_clear()
    return Shop()


def test_concurrent_reservations_never_exceed_the_quota(shop: Shop) -> None:
    shop.plan(key="free", name="Free", included_tokens=1_000)
    admitted: list[quota.Admission] = []
    refused: list[quota.QuotaExceeded] = []
    start = threading.Barrier(40)

    def one(index: int) -> None:
        start.wait()
        try:
            admitted.append(shop.admit(f"r{index}", max_tokens=100, prompt=20))
        except quota.QuotaExceeded as error:
            refused.append(error)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(a.granted for a in admitted) == 1_000  # every token granted once, none twice
    assert len(admitted) == 9 and len(refused) == 31  # 8 x 120, then the 40 that were left
    assert sorted(a.max_tokens for a in admitted)[0] == 20  # the last one's answer was clamped
    assert {e.code for e in refused} == {"insufficient_quota"}
    assert all(e.headers["x-ratelimit-remaining-tokens"] == "0" for e in refused)
    for admission in admitted:  # the answers were shorter than reserved
        shop.spend(50, request_id=admission.hold)  # metered first, as completion.Meter does
        quota.settle(admission, tokens=50)
        quota.settle(admission, tokens=50)  # a second settle is ignored
    state = quota.status(user_id=shop.sue.id, assistant_id=shop.assistant_id)
    assert (state.used, state.reserved, state.remaining) == (450, 0, 550)


def test_admission_clamps_and_settle_frees_the_unused_part(shop: Shop) -> None:
    shop.plan(key="free", name="Free", included_tokens=500)
    first = shop.admit("a", max_tokens=300, prompt=50)
    assert (first.granted, first.max_tokens) == (350, 300)
    assert first.headers()["x-ratelimit-remaining-tokens"] == "150"
    second = shop.admit("b", max_tokens=300, prompt=50)
    assert (second.granted, second.max_tokens) == (150, 100)  # clamped to what was left
    with pytest.raises(quota.QuotaExceeded, match="renews on"):
        shop.admit("c")
    shop.spend(60, request_id="a")  # the metered usage is written before the settle
    quota.settle(first, tokens=60)
    third = shop.admit("c", max_tokens=100, prompt=50)
    assert third.granted == 150 and third.status.used == 60 and third.status.reserved == 300


def test_a_cold_bucket_is_seeded_from_the_database(shop: Shop, store: str) -> None:
    shop.plan(key="free", name="Free", included_tokens=1_000)
    shop.spend(900, request_id="earlier")
    admission = shop.admit("a", max_tokens=200, prompt=20)
    assert (admission.granted, admission.max_tokens) == (100, 80)
    shop.spend(100, request_id="a")
    quota.settle(admission, tokens=100)
    if store == "redis":
        redis.Redis.from_url(get_settings().redis_url).flushdb()  # a restart loses nothing
    with pytest.raises(quota.QuotaExceeded) as refused:
        shop.admit("b")
    assert refused.value.code == "insufficient_quota" and refused.value.retry_after > 0
    state = quota.status(user_id=shop.sue.id, assistant_id=shop.assistant_id)
    assert (state.used, state.remaining) == (1_000, 0)


def test_a_new_period_starts_from_zero(shop: Shop) -> None:
    pro = shop.plan(key="pro", name="Pro", monthly_price_cents=900, included_tokens=1_000)
    start = utcnow() - timedelta(days=3)
    with session_scope() as session:
        session.add(
            Subscription(
                user_id=shop.sue.id, assistant_id=shop.assistant_id, plan_id=pro.id,
                status="active", current_period_start=start,
                current_period_end=start + timedelta(days=30),
            )
        )  # fmt: skip
    with session_scope() as session:
        session.add(UsageEvent(user_id=shop.sue.id, assistant_id=shop.assistant_id,
                               input_tokens=5_000, request_id="last-period",
                               created_at=start - timedelta(days=1)))  # fmt: skip
    admission = shop.admit("a", max_tokens=100, prompt=20)
    assert admission.status.used == 0 and admission.status.plan_name == "Pro"
    assert admission.status.reset_at == start + timedelta(days=30)


def test_requests_per_minute(shop: Shop) -> None:
    shop.plan(key="free", name="Free", requests_per_minute=3)
    seen = [shop.admit(f"r{i}").status.requests_remaining for i in range(3)]
    assert seen == [2, 1, 0]
    with pytest.raises(quota.QuotaExceeded) as refused:
        shop.admit("r4")
    assert refused.value.code == "rate_limit_exceeded"
    assert 1 <= refused.value.retry_after <= 120  # a sliding window: up to 2 minutes
    assert refused.value.headers["x-ratelimit-limit-requests"] == "3"
    assert "x-ratelimit-limit-tokens" not in refused.value.headers  # no token quota on this plan
    other = account.register(email="sam@example.com", password=PASSWORD)
    assert shop.admit("s1", user_id=other.id).status.requests_remaining == 2  # per subject


def test_one_limit_refusing_leaves_the_other_untouched(shop: Shop) -> None:
    """Both limits are decided in one atomic step: a request refused for tokens does not use up
    a request of the minute, and one refused for the rate reserves no tokens."""
    shop.plan(key="free", name="Free", included_tokens=200, requests_per_minute=2)
    first = shop.admit("a", max_tokens=180, prompt=20)
    assert first.granted == 200 and first.status.requests_remaining == 1
    with pytest.raises(quota.QuotaExceeded) as out_of_tokens:
        shop.admit("b")
    assert out_of_tokens.value.code == "insufficient_quota"
    now = quota.status(user_id=shop.sue.id, assistant_id=shop.assistant_id)
    assert now.requests_remaining == 1 and now.reserved == 200
    shop.spend(50, request_id="a")  # as the chat path does: the usage event, then the settle
    quota.settle(first, tokens=50)  # 150 tokens free again
    second = shop.admit("c", max_tokens=10, prompt=10)
    assert second.status.requests_remaining == 0
    shop.spend(20, request_id="c")
    quota.settle(second, tokens=20)
    with pytest.raises(quota.QuotaExceeded) as too_fast:
        shop.admit("d", max_tokens=10, prompt=10)
    assert too_fast.value.code == "rate_limit_exceeded"
    after = quota.status(user_id=shop.sue.id, assistant_id=shop.assistant_id)
    assert (after.used, after.reserved) == (70, 0)


def test_visitors_are_separate_subjects(shop: Shop) -> None:
    shop.plan(key="free", name="Free", included_tokens=200)
    assert shop.admit("a", user_id=None, visitor="v-1", max_tokens=180).granted == 200
    with pytest.raises(quota.QuotaExceeded):
        shop.admit("b", user_id=None, visitor="v-1")
    assert shop.admit("c", user_id=None, visitor="v-2").granted == 120
    assert shop.admit("d").granted == 120  # the signed-in user is another subject again
    for bad in ["", "   ", "x" * 121, "tab\there"]:
        with pytest.raises(InvalidInput, match="visitor id"):
            shop.admit("e", user_id=None, visitor=bad)


def test_unlimited_users_and_open_assistants_skip_the_store(
    shop: Shop, settings_env: pytest.MonkeyPatch
) -> None:
    settings_env.setenv("GPTSTUDIO_REDIS_URL", "redis://127.0.0.1:1/0")  # nobody listens
    get_settings.cache_clear()
    open_access = shop.admit("a", max_tokens=500)
    assert open_access.bucket == "" and open_access.max_tokens == 500
    assert open_access.headers() == {}
    shop.plan(key="free", name="Free", included_tokens=10)
    owner = shop.admit("b", user_id=shop.creator.id, max_tokens=500)
    assert owner.entitlement.reason == "owner" and owner.max_tokens == 500


def test_redis_down_refuses_limited_requests_with_a_clear_503(
    redis_shop: Shop, settings_env: pytest.MonkeyPatch
) -> None:
    shop = redis_shop
    shop.plan(key="free", name="Free", included_tokens=1_000, requests_per_minute=10)
    admission = shop.admit("a")
    settings_env.setenv("GPTSTUDIO_REDIS_URL", "redis://127.0.0.1:1/0")
    get_settings.cache_clear()
    with pytest.raises(quota.QuotaUnavailable, match="try again in 5 seconds") as error:
        shop.admit("b")
    assert error.value.status_code == 503 and error.value.retry_after == 5
    state = quota.status(user_id=shop.sue.id, assistant_id=shop.assistant_id)
    assert state.used == 0 and state.requests_remaining is None  # read from the database
    quota.settle(admission, tokens=10)  # logged, not raised: the usage event is the truth


def test_a_settle_missed_while_redis_was_down_is_reseeded(
    redis_shop: Shop, settings_env: pytest.MonkeyPatch
) -> None:
    shop = redis_shop
    shop.plan(key="free", name="Free", included_tokens=1_000)
    working = get_settings().redis_url
    admission = shop.admit("a", max_tokens=100, prompt=20)
    settings_env.setenv("GPTSTUDIO_REDIS_URL", "redis://127.0.0.1:1/0")
    get_settings.cache_clear()
    shop.spend(120, request_id="a")
    quota.settle(admission, tokens=120)  # Redis missed it; the database did not
    settings_env.setenv("GPTSTUDIO_REDIS_URL", working)
    get_settings.cache_clear()
    after = shop.admit("b", max_tokens=100, prompt=20)
    assert (after.status.used, after.status.reserved) == (120, 120)  # a's hold is gone too


def test_abandoned_reservations_expire(redis_shop: Shop, monkeypatch: Any) -> None:
    """A web process that dies mid-request does not hold its reservation forever."""
    shop = redis_shop
    monkeypatch.setattr(quota, "HOLD_SECONDS", 1)
    shop.plan(key="free", name="Free", included_tokens=100)
    shop.admit("crashed", max_tokens=100)  # its web process died: never settled
    with pytest.raises(quota.QuotaExceeded):
        shop.admit("next")
    time.sleep(2.1)
    assert shop.admit("next", max_tokens=50).granted == 70


def test_the_request_path_batches_concurrent_calls_and_survives_a_script_flush(
    redis_shop: Shop, redis_url: str, settings_env: pytest.MonkeyPatch
) -> None:
    """admit_async/settle_async (the chat path, on the event loop): concurrent requests share
    pipelines, each still gets its own exact answer; Redis forgetting its scripts (a restart)
    costs nothing; Redis gone gives the 503."""
    shop = redis_shop
    shop.plan(key="free", name="Free", included_tokens=1_000, requests_per_minute=1_000)
    granted = shop.granted(shop.sue.id)

    async def many(count: int, start: int = 0) -> list[quota.Admission | BaseException]:
        calls = [
            quota.admit_async(
                granted, user_id=shop.sue.id, max_tokens=80, prompt_tokens=20, request_id=f"r{n}"
            )
            for n in range(start, start + count)
        ]
        return await asyncio.gather(*calls, return_exceptions=True)

    async def one(n: int) -> quota.Admission:
        return await quota.admit_async(
            granted, user_id=shop.sue.id, max_tokens=80, prompt_tokens=20, request_id=f"r{n}"
        )

    results = asyncio.run(many(12))
    admitted = [r for r in results if isinstance(r, quota.Admission)]
    assert len(admitted) == 10 and sum(a.granted for a in admitted) == 1_000
    assert all(isinstance(r, quota.QuotaExceeded) for r in results if r not in admitted)
    remaining = sorted(a.status.requests_remaining or 0 for a in admitted)
    assert remaining == list(range(990, 1000))  # one count each, in some order

    async def settle_all() -> None:
        await asyncio.gather(*(quota.settle_async(a, tokens=10) for a in admitted))

    asyncio.run(settle_all())
    redis.Redis.from_url(redis_url).script_flush()
    assert [r.granted for r in asyncio.run(many(2, start=20))] == [100, 100]  # type: ignore[union-attr]
    state = quota.status(user_id=shop.sue.id, assistant_id=shop.assistant_id)
    assert (state.used, state.reserved) == (100, 200)
    settings_env.setenv("GPTSTUDIO_REDIS_URL", "redis://127.0.0.1:1/0")  # nobody listens
    get_settings.cache_clear()
    with pytest.raises(quota.QuotaUnavailable):
        asyncio.run(one(30))


def test_status_for_the_ui(shop: Shop) -> None:
    shop.plan(key="pro", name="Pro", monthly_price_cents=900, included_tokens=1_000)
    needs_plan = quota.status(user_id=shop.sue.id, assistant_id=shop.assistant_id)
    assert not needs_plan.allowed and "subscription" in needs_plan.reason
    assert needs_plan.upgrade_url.endswith(f"/pricing?assistant={shop.assistant_id}")
    with pytest.raises(PaymentRequired):
        shop.granted(shop.sue.id)
    shop.plan(key="free", name="Free", included_tokens=300, requests_per_minute=5)
    shop.spend(120, request_id="earlier")
    free = quota.status(user_id=shop.sue.id, assistant_id=shop.assistant_id)
    assert free.allowed and free.plan_name == "Free"
    assert (free.used, free.limit, free.remaining) == (120, 300, 180)
    assert free.reset_at is not None and free.reset_at > utcnow()
    assert free.requests_limit == 5 and free.requests_remaining == 5
    headers = free.headers()
    assert headers["x-ratelimit-remaining-tokens"] == "180"
    assert headers["x-ratelimit-reset-tokens"].endswith("s")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (0.2, "1s"), (59, "59s"), (360, "6m0s"), (3_725, "1h2m5s"), (-5, "0s")],
)
def test_durations_are_written_like_openai(seconds: float, text: str) -> None:
    now = utcnow()
    assert quota.duration(now + timedelta(seconds=seconds), now) == text
