"""How the revenue page's new views cost against the numbers it already computed.

Run from the repository root: ``.venv/bin/python bench/revenue_views.py [--subscriptions N]``

One creator with N paid subscriptions (default 5,000) started over 14 months, a quarter of them
canceled, a fifth with a trial, and two invoices each (some refunded), in a fresh SQLite
database migrated to head. Timed, best of 5, in this one run:

* the baseline: ``analytics.creator_metrics`` (subscribers, MRR, churn, revenue, usage), what
  the page loaded before;
* ``revenue.revenue_views`` (ARR, lifetime value, cohorts, trial conversion, refunds);
* ``revenue.subscriptions_csv`` and ``revenue.invoices_csv``.

Prints each as a ratio to the baseline; exits 1 when the views cost more than 3 × the baseline
(the page load would then be dominated by them).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
LIMIT = 3.0


def _best(action: Callable[[], object], runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscriptions", type=int, default=5000)
    args = parser.parse_args()
    for key in [k for k in os.environ if k.startswith("GPTSTUDIO_")]:
        del os.environ[key]
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        os.environ["GPTSTUDIO_DATA_DIR"] = tmp
        os.environ["GPTSTUDIO_DATABASE_URL"] = url
        from tests.conftest import upgrade

        upgrade(url)
        from gptstudio.db import session_scope, utcnow
        from gptstudio.models import Assistant, Invoice, Plan, Role, Subscription, User
        from gptstudio.services import account, analytics, revenue

        account.register(email="admin@example.com", password="correct horse battery")
        creator = account.register(
            email="cy@example.com", password="correct horse battery", role=Role.creator
        )
        now = utcnow()
        with session_scope() as s:
            bees = Assistant(owner_id=creator.id, name="Bees", slug="bees", is_published=True)
            s.add(bees)
            s.flush()
            plan = Plan(assistant_id=int(bees.id or 0), key="pro", name="Pro",
                        monthly_price_cents=1000, annual_price_cents=9600)  # fmt: skip
            s.add(plan)
            s.flush()
            users = [User(email=f"s{n}@example.com", password_hash="x", role="subscriber")
                     for n in range(args.subscriptions)]  # fmt: skip
            s.add_all(users)
            s.flush()
            subs = []
            for n, user in enumerate(users):
                started = now - timedelta(days=(n * 7) % 420)
                canceled = n % 4 == 0
                subs.append(Subscription(
                    user_id=int(user.id or 0), assistant_id=plan.assistant_id, plan_id=plan.id,
                    tier="pro", status="canceled" if canceled else "active",
                    stripe_subscription_id=f"sub_{n}", created_at=started,
                    updated_at=now, canceled_at=now - timedelta(days=n % 90) if canceled else None,
                    trial_end=started + timedelta(days=14) if n % 5 == 0 else None,
                ))  # fmt: skip
            s.add_all(subs)
            s.flush()
            s.add_all(
                Invoice(
                    stripe_invoice_id=f"in_{n}_{k}", user_id=sub.user_id,
                    assistant_id=plan.assistant_id, subscription_id=sub.id,
                    amount_due_cents=1000, amount_paid_cents=1000,
                    amount_refunded_cents=1000 if n % 20 == k else 0,
                    created_at=sub.created_at + timedelta(days=30 * k),
                )
                for n, sub in enumerate(subs)
                for k in range(2)
            )  # fmt: skip
        metrics = analytics.creator_metrics(actor=creator, days=90)
        base = _best(lambda: analytics.creator_metrics(actor=creator, days=90))
        views = _best(lambda: revenue.revenue_views(actor=creator, metrics=metrics, days=90))
        subs = _best(lambda: revenue.subscriptions_csv(actor=creator), runs=3)
        invoices = _best(lambda: revenue.invoices_csv(actor=creator), runs=3)
        found = revenue.revenue_views(actor=creator, metrics=metrics, days=90)
        print(f"{args.subscriptions} subscriptions, {2 * args.subscriptions} invoices (SQLite)")
        print(f"cohorts: {len(found.cohorts)}, trials ended: {found.trials.ended}")
        print("creator_metrics (baseline)    1.00 x")
        print(f"revenue_views                 {views / base:.2f} x")
        print(f"subscriptions_csv             {subs / base:.2f} x")
        print(f"invoices_csv                  {invoices / base:.2f} x")
        if views / base > LIMIT:
            print(f"revenue_views costs more than {LIMIT} x the baseline")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
