"""The Stripe webhook route (``POST /webhooks/stripe``).

The raw body is verified with ``stripe.Webhook.construct_event`` against
``GPTSTUDIO_STRIPE_WEBHOOK_SECRET`` (timestamps older than the tolerance are refused), then applied
exactly once by :func:`gptstudio.services.stripe_webhook.process_event`. A bad signature, a stale
timestamp or a malformed payload is a 400 with the reason; a replayed event is a 200 that changes
nothing; an error while applying is a 500, so that Stripe delivers the event again later.
Checkout and the Customer Portal return to ``/pricing``, which needs no route here.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from gptstudio.api.errors import error_body
from gptstudio.services.stripe_webhook import WebhookRejected, process_event, verify_webhook

router = APIRouter()


@router.post("/webhooks/stripe")
async def stripe_webhook(request: Request) -> JSONResponse:
    payload = await request.body()
    signature = request.headers.get("stripe-signature", "")
    try:
        event = verify_webhook(payload, signature)
    except WebhookRejected as error:
        return JSONResponse(error_body(str(error), status=400, code="bad_webhook"), 400)
    outcome = await asyncio.to_thread(process_event, event)
    return JSONResponse({"received": True, "id": event["id"], "outcome": outcome})
