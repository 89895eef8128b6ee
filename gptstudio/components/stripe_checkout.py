"""Stripe's embedded Checkout as a Reflex component (``assets/embedded_checkout.js``).

The React side loads Stripe.js from ``script_url`` and mounts
``Stripe(publishable_key).initEmbeddedCheckout({fetchClientSecret})`` for ``client_secret``;
with no client secret yet it only loads Stripe.js (Stripe asks for it on the page early, for its
fraud signals) and says whether it could: ``on_ready`` or ``on_unavailable(reason)``.
"""

from __future__ import annotations

import reflex as rx
from reflex.event import no_args_event_spec, passthrough_event_spec


class EmbeddedCheckout(rx.Component):
    library = "$/public/embedded_checkout.js"
    tag = "EmbeddedCheckout"
    is_default = False

    script_url: rx.Var[str]
    publishable_key: rx.Var[str]
    client_secret: rx.Var[str]

    on_ready: rx.EventHandler[no_args_event_spec]  # type: ignore[type-arg,valid-type]
    on_unavailable: rx.EventHandler[passthrough_event_spec(str)]  # type: ignore[type-arg,valid-type]


embedded_checkout = EmbeddedCheckout.create
