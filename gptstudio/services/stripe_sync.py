"""Stripe sync: a paid plan's mirror in Stripe (one Product, its Prices, the assistant's Meter).

A paid plan becomes one Stripe Product with a monthly and an annual recurring Price and, when it
bills overage, metered Prices on a per-assistant Billing Meter (:func:`sync_plan`). Stripe Prices
are immutable, so a changed amount gets a new Price and the old one is deactivated (existing
subscribers keep theirs: every Price carries ``gptstudio_plan_id``). The annual overage Price is
found by its lookup key (:func:`overage_price`); usage is metered under
:func:`meter_event_name`.
"""

from __future__ import annotations

import logging
from typing import Any

import stripe

from gptstudio.db import session_scope, utcnow
from gptstudio.errors import NotFound
from gptstudio.models import Assistant, Plan
from gptstudio.models.plan import PlanPublic
from gptstudio.stripe_client import (
    as_dict,
    as_params,
    idempotency_key,
    stripe_client,
    stripe_failed,
)

log = logging.getLogger(__name__)

INTERVALS = {"month": "monthly", "year": "annual"}


def meter_event_name(assistant_id: int) -> str:
    """One Billing Meter per assistant: a customer has at most one subscription per assistant,
    so the meter's per-customer sum is exactly that subscription's usage."""
    return f"gptstudio_tokens_a{assistant_id}"


def _overage_lookup_key(product_id: str, interval: str) -> str:
    """Unique per Stripe account (product ids are), unlike local plan ids across databases."""
    return f"gptstudio-{product_id}-overage-{interval}"


def _ensure_meter(client: stripe.StripeClient, assistant: Assistant) -> str:
    name = meter_event_name(assistant.id or 0)
    for meter in client.v1.billing.meters.list({"limit": 100}).auto_paging_iter():
        data = as_dict(meter)
        if data.get("event_name") == name and data.get("status", "active") == "active":
            return str(data["id"])
    meter = client.v1.billing.meters.create(
        {
            "display_name": f"{assistant.name} tokens"[:250],
            "event_name": name,
            "default_aggregation": {"formula": "sum"},
            "customer_mapping": {"type": "by_id", "event_payload_key": "stripe_customer_id"},
            "value_settings": {"event_payload_key": "value"},
        },
        {"idempotency_key": f"gptstudio-meter-{name}"},
    )
    return str(as_dict(meter)["id"])


def _price_matches(client: stripe.StripeClient, price_id: str, want: dict[str, Any]) -> bool:
    if not price_id:
        return False
    price = as_dict(client.v1.prices.retrieve(price_id))
    recurring = price.get("recurring") or {}
    return bool(
        price.get("active", True)
        and price.get("unit_amount") == want["unit_amount"]
        and price.get("currency") == want["currency"]
        and recurring.get("interval") == want["recurring"]["interval"]
        and recurring.get("usage_type", "licensed")
        == want["recurring"].get("usage_type", "licensed")
    )


def _ensure_price(client: stripe.StripeClient, current: str, want: dict[str, Any]) -> str:
    """``current`` when it still has the wanted amount; else a new Price (old one deactivated)."""
    if _price_matches(client, current, want):
        return current
    price = as_dict(client.v1.prices.create(as_params(want)))
    if current:
        try:
            client.v1.prices.update(current, {"active": False})
        except stripe.StripeError as error:
            log.warning("stripe: could not deactivate price %s: %s", current, error)
    return str(price["id"])


def sync_plan(*, plan_id: int) -> PlanPublic:
    """Mirror one paid plan to Stripe: Product, monthly/annual Prices, metered overage Prices."""
    client = stripe_client()
    with session_scope() as session:
        plan = session.get(Plan, plan_id)
        if plan is None:
            raise NotFound("There is no such plan.")
        assistant = session.get(Assistant, plan.assistant_id)
        assert assistant is not None
        if plan.is_free:
            return PlanPublic.model_validate(plan, from_attributes=True)
        metadata = {"gptstudio_plan_id": str(plan.id), "gptstudio_assistant_id": str(assistant.id)}
        product_fields = {"name": f"{assistant.name} · {plan.name}"[:250], "metadata": metadata}
        try:
            if plan.stripe_product_id:
                client.v1.products.update(plan.stripe_product_id, as_params(product_fields))
            else:
                product = client.v1.products.create(
                    as_params(product_fields),
                    {"idempotency_key": idempotency_key("product", plan.id, plan.created_at)},
                )
                plan.stripe_product_id = str(as_dict(product)["id"])
                session.add(plan)
                session.flush()
            base = {"product": plan.stripe_product_id, "currency": plan.currency}
            for interval, amount, attr in (
                ("month", plan.monthly_price_cents, "stripe_monthly_price_id"),
                ("year", plan.annual_price_cents, "stripe_annual_price_id"),
            ):
                if amount <= 0:
                    setattr(plan, attr, "")
                    continue
                want = {**base, "unit_amount": amount, "recurring": {"interval": interval},
                        "nickname": f"{plan.name} ({INTERVALS[interval]})",
                        "metadata": {**metadata, "interval": interval}}  # fmt: skip
                setattr(plan, attr, _ensure_price(client, getattr(plan, attr), want))
            if plan.overage_cents_per_1k_tokens > 0:
                meter = _ensure_meter(client, assistant)
                for interval in ("month", "year"):
                    current = (
                        plan.stripe_overage_price_id
                        if interval == "month"
                        else overage_price(client, plan.stripe_product_id, "year")
                    )
                    want = {
                        **base, "unit_amount": plan.overage_cents_per_1k_tokens,
                        "recurring": {"interval": interval, "usage_type": "metered",
                                      "meter": meter},
                        "transform_quantity": {"divide_by": 1000, "round": "up"},
                        "lookup_key": _overage_lookup_key(plan.stripe_product_id, interval),
                        "transfer_lookup_key": True,
                        "nickname": f"{plan.name} overage per 1k tokens",
                        "metadata": {**metadata, "interval": interval, "overage": "1"},
                    }  # fmt: skip
                    price = _ensure_price(client, current, want)
                    if interval == "month":
                        plan.stripe_overage_price_id = price
            else:
                plan.stripe_overage_price_id = ""
        except stripe.StripeError as error:
            session.commit()  # keep what was created (the product id), then report
            raise stripe_failed(
                "save the plan's prices (the plan is saved; retry)", error
            ) from None
        plan.updated_at = utcnow()
        session.add(plan)
        return PlanPublic.model_validate(plan, from_attributes=True)


def overage_price(client: stripe.StripeClient, product_id: str, interval: str) -> str:
    found = client.v1.prices.list(
        {"lookup_keys": [_overage_lookup_key(product_id, interval)], "active": True, "limit": 1}
    )
    data = as_dict(found).get("data") or []
    return str(data[0]["id"]) if data else ""
