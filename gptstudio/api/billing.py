"""Billing routes: the Stripe webhook (``/webhooks/stripe``) and checkout/portal returns."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
