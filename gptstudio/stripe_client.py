"""The Stripe client for the configured key, the errors a failed Stripe call becomes, and the
small helpers every Stripe caller shares (plain dicts of Stripe objects, idempotency keys).

Without a secret key every plan is free: :func:`stripe_enabled` is false and
:func:`stripe_client` raises :class:`BillingNotConfigured` with a message the pages show as is
(to subscribers too: it names no setting; the creators' plans page names the one to set).
"""

from __future__ import annotations

import logging
from datetime import datetime
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import stripe

from gptstudio.errors import DomainError
from gptstudio.settings import get_settings

log = logging.getLogger(__name__)

# What subscribers see (any error a page shows them): no configuration names.
NOT_CONFIGURED = (
    "Payments are not set up on this installation yet, so paid plans cannot be bought. "
    "Free plans work."
)
# What creators and admins see where they set up plans: what to configure.
NOT_CONFIGURED_FOR_OPERATORS = (
    "Payments are not set up on this installation (no Stripe key: the administrator sets "
    "GPTSTUDIO_STRIPE_SECRET_KEY), so paid plans cannot be sold yet. Free plans work."
)


class BillingNotConfigured(DomainError):
    status_code = 503
    type = "server_error"
    code = "billingnotconfigured"


class BillingUnavailable(DomainError):
    """Stripe refused a call or could not be reached; the message says what happened."""

    status_code = 502
    type = "invalid_request_error"
    code = "billingunavailable"


def stripe_enabled() -> bool:
    return bool(get_settings().stripe_secret_key.get_secret_value())


def embedded_checkout_enabled() -> bool:
    """Checkout embedded in the app needs Stripe.js, hence a publishable key beside the secret."""
    return stripe_enabled() and bool(get_settings().stripe_publishable_key)


# What Stripe documents for a page that loads Stripe.js and mounts embedded Checkout
# (docs.stripe.com/security/guide#content-security-policy: "Stripe.js" and "Checkout").
STRIPE_CSP: dict[str, tuple[str, ...]] = {
    "script-src": ("https://js.stripe.com", "https://*.js.stripe.com",
                   "https://maps.googleapis.com", "https://checkout.stripe.com"),
    "frame-src": ("https://js.stripe.com", "https://*.js.stripe.com", "https://hooks.stripe.com",
                  "https://checkout.stripe.com"),
    "connect-src": ("https://api.stripe.com", "https://maps.googleapis.com",
                    "https://checkout.stripe.com"),
    "img-src": ("https://*.stripe.com",),
}  # fmt: skip


def stripe_csp_sources() -> dict[str, tuple[str, ...]]:
    """The CSP sources the pages need for embedded Checkout: none without it; Stripe's documented
    list; and, where Stripe.js is configured from elsewhere (a test stand-in), that origin for
    its script and its frame."""
    settings = get_settings()
    if not embedded_checkout_enabled():
        return {}
    sources = {k: list(v) for k, v in STRIPE_CSP.items()}
    parts = urlsplit(settings.stripe_js_url)
    origin = f"{parts.scheme}://{parts.netloc}"
    if parts.netloc and parts.netloc != "js.stripe.com":
        sources["script-src"].append(origin)
        sources["frame-src"].append(origin)
    return {k: tuple(v) for k, v in sources.items()}


@lru_cache(maxsize=4)
def _client_for(key: str, api_base: str) -> stripe.StripeClient:
    if api_base:
        return stripe.StripeClient(
            key, base_addresses={"api": api_base.rstrip("/")}, max_network_retries=2
        )
    return stripe.StripeClient(key, max_network_retries=2)


def stripe_client() -> stripe.StripeClient:
    """The Stripe client for the configured key (and ``stripe_api_base``, e.g. localstripe)."""
    settings = get_settings()
    key = settings.stripe_secret_key.get_secret_value()
    if not key:
        raise BillingNotConfigured(NOT_CONFIGURED)
    return _client_for(key, settings.stripe_api_base)


def stripe_failed(action: str, error: stripe.StripeError) -> BillingUnavailable:
    """The error to raise when Stripe could not ``action`` (logged, with Stripe's reason)."""
    detail = error.user_message or str(error)
    log.warning("stripe: %s failed: %s", action, error)
    return BillingUnavailable(f"Stripe could not {action}: {detail}")


def as_dict(obj: Any) -> dict[str, Any]:
    """A Stripe object (or a dict, or None) as a plain dict."""
    if isinstance(obj, stripe.StripeObject):
        return obj.to_dict()
    return dict(obj or {})


def as_params(params: dict[str, Any]) -> Any:
    """Plain request parameters (Stripe validates them; its TypedDicts add nothing here)."""
    return params


def idempotency_key(kind: str, row_id: int | None, created: datetime) -> str:
    """An idempotency key unique to one row, even if a database reuses an id after a reset."""
    return f"gptstudio-{kind}-{row_id}-{int(created.timestamp())}"
