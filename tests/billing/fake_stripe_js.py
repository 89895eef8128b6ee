"""Embedded Checkout for the offline Stripe (#17 §1): the API side and a stand-in for Stripe.js.

The API side, in Stripe's shapes: a session created with ``ui_mode=embedded`` needs a
``return_url`` (``success_url`` and ``cancel_url`` are refused, as Stripe refuses them), has no
``url`` and carries a ``client_secret``; ``GET /v1/checkout/sessions/:id`` reads a session and
``POST /v1/checkout/sessions/:id/expire`` closes an open one.

The stand-in for Stripe.js (``GET /stripe-js/v3``) defines ``window.Stripe(publishableKey)``
with ``initEmbeddedCheckout({fetchClientSecret})``, as Stripe.js does; ``mount(element)``
puts an iframe from this front into the page (Stripe's own iframe comes from its origin too).
Paying in the iframe completes the session on the offline Stripe (a localstripe subscription,
``checkout.session.completed`` signed as Stripe signs it), and the iframe tells the script in the
page, which then navigates the page to the session's ``return_url`` with the session id filled
in: what Stripe.js does when a payment completes without an ``onComplete`` callback.
"""

from __future__ import annotations

import html
import json
import secrets
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.billing.fake_stripe import StripeFront

SCRIPT_PATH = "/stripe-js/v3"
FRAME_PREFIX = "/embedded/"


def embedded_session_fields(params: dict[str, Any], session_id: str) -> tuple[str, dict[str, Any]]:
    """For a session being created: Stripe's refusal (a message) or the embedded fields."""
    if params.get("ui_mode", "hosted") != "embedded":
        return "", {"ui_mode": "hosted", "client_secret": None}
    if params.get("success_url") or params.get("cancel_url"):
        return "success_url and cancel_url are not supported with ui_mode embedded", {}
    if not params.get("return_url"):
        return "return_url is required when ui_mode is embedded", {}
    secret = f"{session_id}_secret_{secrets.token_hex(12)}"
    return "", {"ui_mode": "embedded", "return_url": params["return_url"], "url": None,
                "client_secret": secret}  # fmt: skip


def embedded_api(front: StripeFront, method: str, path: str) -> tuple[int, Any]:
    """``GET /v1/checkout/sessions/:id`` and ``POST …/:id/expire``; (0, None) when not ours."""
    parts = path.strip("/").split("/")
    if parts[:3] != ["v1", "checkout", "sessions"] or len(parts) not in (4, 5):
        return 0, None
    session = front.objects.get(parts[3])
    if session is None or session.get("object") != "checkout.session":
        return 404, {"error": {"type": "invalid_request_error", "code": "resource_missing",
                               "message": f"No such checkout.session: '{parts[3]}'"}}  # fmt: skip
    if len(parts) == 4 and method == "GET":
        return 200, front._export(session)
    if len(parts) == 5 and parts[4] == "expire" and method == "POST":
        if session["status"] != "open":
            message = "Only open Checkout Sessions can be expired."
            return 400, {"error": {"type": "invalid_request_error", "code": "parameter_invalid",
                                   "message": message}}  # fmt: skip
        session["status"] = "expired"
        return 200, front._export(session)
    return 0, None


STRIPE_JS = """// A stand-in for Stripe.js (tests only): Stripe(pk).initEmbeddedCheckout.
(function () {
  var FRONT = %(front)s;
  function Stripe(publishableKey) {
    if (!/^pk_(test|live)_/.test(String(publishableKey))) {
      throw new Error("IntegrationError: Invalid API Key provided: " + publishableKey);
    }
    return {
      initEmbeddedCheckout: function (options) {
        var fetchSecret = options.fetchClientSecret;
        if (typeof fetchSecret !== "function") {
          return Promise.reject(new Error("IntegrationError: fetchClientSecret is required"));
        }
        return Promise.resolve(fetchSecret()).then(function (secret) {
          var sessionId = String(secret).split("_secret_")[0];
          var frame = null;
          function onMessage(event) {
            if (event.origin !== FRONT || !frame || event.source !== frame.contentWindow) return;
            var data = event.data || {};
            if (data.type !== "stripe-standin:complete") return;
            if (typeof options.onComplete === "function") options.onComplete();
            else window.location.assign(data.returnUrl);
          }
          window.addEventListener("message", onMessage);
          return {
            mount: function (target) {
              var host = typeof target === "string" ? document.querySelector(target) : target;
              frame = document.createElement("iframe");
              frame.src = FRONT + "/embedded/" + encodeURIComponent(sessionId) +
                "?client_secret=" + encodeURIComponent(secret);
              frame.name = "embedded-checkout";
              frame.title = "Secure checkout";
              frame.setAttribute("allow", "payment *");
              frame.style.cssText = "width:100%%;min-height:320px;border:0";
              host.appendChild(frame);
            },
            unmount: function () {
              if (frame) frame.remove();
              frame = null;
            },
            destroy: function () {
              this.unmount();
              window.removeEventListener("message", onMessage);
            },
          };
        });
      },
    };
  }
  window.Stripe = Stripe;
})();
"""


def stripe_js(front: StripeFront) -> bytes:
    return (STRIPE_JS % {"front": json.dumps(front.url)}).encode()


def frame_page(session: dict[str, Any], secret: str, error: str = "") -> tuple[int, bytes]:
    """The iframe: the card form of an open session whose client secret matches."""
    if not secret or secret != session.get("client_secret"):
        return 403, b"<p id='frame-error'>This checkout's client secret does not match.</p>"
    if session["status"] != "open":  # Stripe's iframe says so in a page of its own, not an error
        return 200, b"<p id='frame-error'>This checkout is no longer open.</p>"
    prices = ", ".join(str(item.get("price")) for item in session["line_items"])
    notice = f'<p id="card-error" style="color:#c00">{html.escape(error)}</p>' if error else ""
    page = f"""<!doctype html><html><head><title>Embedded checkout (offline Stripe)</title></head>
<body style="font-family:sans-serif"><h3>Offline Stripe: embedded Checkout</h3>
<p>Prices: {html.escape(prices)}</p>{notice}
<form method="post"><input type="hidden" name="client_secret" value="{html.escape(secret)}">
<label>Card number <input id="card-number" name="card" value="4242424242424242"></label>
<button id="pay" type="submit">Subscribe</button></form></body></html>"""
    return 200, page.encode()  # a declined card re-renders the form, as Stripe's iframe does


def completed_page(session: dict[str, Any]) -> bytes:
    """After paying: tell Stripe.js (the page's script) where to go, as Stripe's iframe does."""
    target = str(session["return_url"]).replace("{CHECKOUT_SESSION_ID}", session["id"])
    message = json.dumps({"type": "stripe-standin:complete", "returnUrl": target})
    return f"""<!doctype html><html><body><p id="paid">Payment complete.</p>
<script>parent.postMessage({message}, "*");</script></body></html>""".encode()
