"""The offline Stripe for tests: localstripe, plus a small recorded front for what it lacks.

localstripe (PyPI) emulates customers, products, plans, subscriptions, invoices and charges, and
signs its own webhooks. It has no Prices, Checkout Sessions, Billing Portal or Billing Meters, so
:class:`StripeFront` answers those requests itself, in Stripe's shapes (recorded from the Stripe
API reference), records every request it receives, and forwards everything else to localstripe.
Connect (accounts, account links, balances and payouts read with the ``Stripe-Account`` header,
application fees on destination charges) is answered here too: localstripe has none of it.
A created Price is mirrored as a localstripe Plan with the same id, so that a subscription
started from the fake checkout page is a real localstripe subscription. Events the front
produces itself (``checkout.session.completed``) are signed the way Stripe signs webhooks.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import secrets
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.billing import fake_stripe_js


def stripe_signature(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header Stripe sends: ``t=<unix>,v1=<HMAC-SHA256 of t.payload>``."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    signed = f"{timestamp}.".encode() + payload
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def event(kind: str, obj: dict[str, Any], *, created: int | None = None) -> dict[str, Any]:
    """A Stripe event envelope around ``obj``."""
    return {
        "id": "evt_" + secrets.token_hex(12),
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": int(time.time()) if created is None else created,
        "type": kind,
        "livemode": False,
        "pending_webhooks": 1,
        "data": {"object": obj},
    }


def parse_form(body: bytes) -> dict[str, Any]:
    """Stripe's form encoding (``a[b][0][c]=v``) as nested dicts and lists."""
    tree: dict[str, Any] = {}
    for key, value in urllib.parse.parse_qsl(body.decode(), keep_blank_values=True):
        parts = [p.rstrip("]") for p in key.split("[")]
        node: Any = tree
        for part, following in zip(parts, [*parts[1:], None], strict=True):
            if following is None:
                node[part] = value
            else:
                node = node.setdefault(part, {})
    return _lists(tree)


def _lists(node: Any) -> Any:
    if isinstance(node, dict):
        node = {k: _lists(v) for k, v in node.items()}
        if node and all(k.isdigit() for k in node):
            return [node[k] for k in sorted(node, key=int)]
    return node


@dataclass
class Recorded:
    method: str
    path: str
    params: dict[str, Any]
    idempotency_key: str


@dataclass
class Delivery:
    payload: bytes
    signature: str

    @property
    def event(self) -> dict[str, Any]:
        return dict(json.loads(self.payload))


@dataclass
class StripeFront:
    localstripe: str
    webhook_secret: str
    url: str = ""
    webhook_url: str = ""  # where events go; empty: kept in `deliveries` (see /_collect)
    requests: list[Recorded] = field(default_factory=list)
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    meter_events: dict[str, dict[str, Any]] = field(default_factory=dict)
    idempotent: dict[str, bytes] = field(default_factory=dict)
    deliveries: list[Delivery] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Stripe Connect (see "Connect" below): connected accounts, their balances and payouts, the
    # platform's application fees, and the Stripe-Account header of every request.
    accounts: dict[str, dict[str, Any]] = field(default_factory=dict)
    balances: dict[str, dict[str, int]] = field(default_factory=dict)
    payouts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    application_fees: list[dict[str, Any]] = field(default_factory=list)
    stripe_accounts: list[str] = field(default_factory=list)

    # -------------------------------------------------------------- helpers for tests

    def calls(self, path: str, method: str = "POST") -> list[Recorded]:
        return [r for r in self.requests if r.path == path and r.method == method]

    def wait_delivery(
        self, kind: str, *, where: Any = None, timeout: float = 20.0, after: int = 0
    ) -> Delivery:
        """The first webhook of type ``kind`` (from localstripe or this front) received here."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for delivery in self.deliveries[after:]:
                data = delivery.event
                if data["type"] == kind and (where is None or where(data["data"]["object"])):
                    return delivery
            time.sleep(0.1)
        raise AssertionError(f"no {kind} webhook; got {[d.event['type'] for d in self.deliveries]}")

    def localstripe_call(self, method: str, path: str, params: dict[str, str] | None = None) -> Any:
        body = urllib.parse.urlencode(params or {}).encode() if method == "POST" else None
        query = "" if method == "POST" or not params else "?" + urllib.parse.urlencode(params)
        request = urllib.request.Request(
            self.localstripe + path + query, data=body, method=method,
            headers={"Authorization": "Bearer sk_test_front"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"null")

    def send(self, data: dict[str, Any], *, timestamp: int | None = None) -> Delivery:
        """Sign ``data`` like Stripe and deliver it (to the app, or to the collector)."""
        payload = json.dumps(data).encode()
        delivery = Delivery(payload, stripe_signature(payload, self.webhook_secret, timestamp))
        if not self.webhook_url:
            self.deliveries.append(delivery)
            return delivery
        request = urllib.request.Request(
            self.webhook_url, data=payload, method="POST",
            headers={"Content-Type": "application/json", "Stripe-Signature": delivery.signature},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200, response.read()
        return delivery

    def complete_checkout(self, session_id: str, card: str = "4242424242424242") -> dict[str, Any]:
        """What paying on Stripe's hosted page does: a localstripe customer payment method and
        subscription, then ``checkout.session.completed``. A declined card raises ValueError."""
        session = self.objects[session_id]
        customer = session["customer"]
        method = self.localstripe_call(
            "POST", "/v1/payment_methods",
            {"type": "card", "card[number]": card, "card[exp_month]": "12",
             "card[exp_year]": "2040", "card[cvc]": "123"},
        )  # fmt: skip
        self.localstripe_call(
            "POST", f"/v1/payment_methods/{method['id']}/attach", {"customer": customer}
        )
        self.localstripe_call(
            "POST", f"/v1/customers/{customer}",
            {"invoice_settings[default_payment_method]": method["id"]},
        )  # fmt: skip
        licensed = session["line_items"][0]["price"]
        params = {"customer": customer, "items[0][plan]": licensed}
        sub_data = session.get("subscription_data") or {}
        for key, value in (sub_data.get("metadata") or {}).items():
            params[f"metadata[{key}]"] = value
        if sub_data.get("trial_period_days"):
            params["trial_period_days"] = str(sub_data["trial_period_days"])
        subscription = self.localstripe_call("POST", "/v1/subscriptions", params)
        if subscription["status"] not in ("active", "trialing"):
            self.localstripe_call("DELETE", f"/v1/subscriptions/{subscription['id']}")
            raise ValueError("Your card was declined.")
        session.update(
            status="complete", payment_status="paid", subscription=subscription["id"],
        )  # fmt: skip
        self.send(event("checkout.session.completed", self._export(session)))
        if sub_data.get("transfer_data"):
            self.connect_first_invoice(subscription["id"], sub_data)
        return subscription

    @staticmethod
    def _export(session: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in session.items() if k not in ("line_items", "subscription_data")}

    # -------------------------------------------------------------- Connect (tests and front)

    def handle_connect(
        self, method: str, path: str, params: dict[str, Any], account: str
    ) -> tuple[int, Any]:
        return _handle_connect(self, method, path, params, account)

    def finish_onboarding(self, account_id: str) -> None:
        """What submitting Stripe's hosted onboarding does: the account can take charges and
        receive payouts, and ``account.updated`` is sent."""
        account = self.accounts[account_id]
        account.update(details_submitted=True, charges_enabled=True, payouts_enabled=True)
        account["capabilities"] = {k: "active" for k in account["capabilities"]}
        account["requirements"] = {"currently_due": []}
        self.send(event("account.updated", dict(account)))

    def connect_first_invoice(self, subscription_id: str, sub_data: dict[str, Any]) -> None:
        """A destination charge's paid invoice as Stripe describes it (localstripe has no
        Connect): ``invoice.paid`` with ``application_fee_amount`` and ``transfer_data``, an
        ``application_fee`` object, and the rest in the connected account's pending balance."""
        destination = sub_data["transfer_data"]["destination"]
        percent = float(sub_data.get("application_fee_percent") or 0)
        invoices = self.localstripe_call("GET", "/v1/invoices", {"subscription": subscription_id})
        for invoice in invoices["data"]:
            paid = int(invoice.get("amount_paid") or invoice.get("total") or 0)
            fee = round(paid * percent / 100)
            invoice.update(
                status="paid", amount_paid=paid, application_fee_amount=fee,
                transfer_data={"destination": destination, "amount": None},
                subscription=subscription_id,
            )  # fmt: skip
            self.application_fees.append(
                {"id": "fee_" + secrets.token_hex(8), "object": "application_fee",
                 "account": destination, "amount": fee, "amount_refunded": 0,
                 "currency": invoice.get("currency", "usd"), "charge": invoice.get("charge"),
                 "created": int(time.time()), "refunded": False}
            )  # fmt: skip
            money = self.balances.setdefault(destination, {"available": 0, "pending": 0})
            money["pending"] += paid - fee
            self.send(event("invoice.paid", invoice))

    def pay_out(self, account_id: str) -> dict[str, Any]:
        """Stripe's payout schedule, now: the pending balance becomes available, then paid out
        to the account's bank (a ``payout`` on the connected account)."""
        money = self.balances.setdefault(account_id, {"available": 0, "pending": 0})
        amount = money["available"] + money["pending"]
        money.update(available=0, pending=0)
        payout = {"id": "po_" + secrets.token_hex(8), "object": "payout", "amount": amount,
                  "currency": "usd", "status": "paid", "arrival_date": int(time.time()),
                  "method": "standard", "type": "bank_account"}  # fmt: skip
        self.payouts.setdefault(account_id, []).append(payout)
        return payout

    # -------------------------------------------------------------- the Stripe API it answers

    def handle(self, method: str, path: str, params: dict[str, Any], key: str) -> tuple[int, Any]:
        if method == "POST" and path == "/v1/prices":
            return self._create_price(params)
        if path.startswith("/v1/prices/"):
            price = self.objects.get(path.rsplit("/", 1)[1])
            if price is None:
                return 404, _error("No such price", "resource_missing")
            if method == "POST":
                if "active" in params:
                    price["active"] = params["active"] == "true"
                price["metadata"].update(params.get("metadata") or {})
            return 200, price
        if method == "GET" and path == "/v1/prices":
            keys = params.get("lookup_keys") or []
            keys = keys if isinstance(keys, list) else [keys]
            found = [
                p for p in self.objects.values()
                if p["object"] == "price" and p.get("lookup_key") in keys and p["active"]
            ]  # fmt: skip
            return 200, {"object": "list", "data": found, "has_more": False, "url": "/v1/prices"}
        if method == "POST" and path == "/v1/billing/meters":
            meter = {"id": "mtr_" + secrets.token_hex(8), "object": "billing.meter",
                     "status": "active", **params}  # fmt: skip
            self.objects[meter["id"]] = meter
            return 200, meter
        if method == "GET" and path == "/v1/billing/meters":
            meters = [o for o in self.objects.values() if o["object"] == "billing.meter"]
            return 200, {"object": "list", "data": meters, "has_more": False,
                         "url": "/v1/billing/meters"}  # fmt: skip
        if method == "POST" and path == "/v1/billing/meter_events":
            identifier = params.get("identifier") or secrets.token_hex(8)
            self.meter_events.setdefault(identifier, params)
            return 200, {"object": "billing.meter_event", "identifier": identifier, **params}
        if method == "POST" and path == "/v1/checkout/sessions":
            return self._create_session(params)
        if method == "POST" and path == "/v1/billing_portal/sessions":
            portal = {"id": "bps_" + secrets.token_hex(8), "object": "billing_portal.session",
                      "customer": params.get("customer"), "return_url": params.get("return_url"),
                      "url": f"{self.url}/portal/{secrets.token_hex(8)}"}  # fmt: skip
            return 200, portal
        status, answer = fake_stripe_js.embedded_api(self, method, path)  # embedded Checkout
        if status:
            return status, answer
        return 0, None  # not ours: forwarded

    def _create_price(self, params: dict[str, Any]) -> tuple[int, Any]:
        recurring = params.get("recurring") or {}
        price = {
            "id": "price_" + secrets.token_hex(8), "object": "price", "active": True,
            "currency": params["currency"], "unit_amount": int(params["unit_amount"]),
            "product": params["product"], "nickname": params.get("nickname"),
            "lookup_key": params.get("lookup_key"), "metadata": params.get("metadata") or {},
            "recurring": {"interval": recurring.get("interval"),
                          "usage_type": recurring.get("usage_type", "licensed"),
                          "meter": recurring.get("meter")},
            "transform_quantity": params.get("transform_quantity"), "type": "recurring",
        }  # fmt: skip
        if params.get("transfer_lookup_key") == "true":
            for other in self.objects.values():
                if other["object"] == "price" and other.get("lookup_key") == price["lookup_key"]:
                    other["lookup_key"] = None
        plan = {"id": price["id"], "product": price["product"], "currency": price["currency"],
                "amount": str(price["unit_amount"]), "interval": recurring.get("interval", "month"),
                "usage_type": price["recurring"]["usage_type"]}  # fmt: skip
        for key, value in price["metadata"].items():
            plan[f"metadata[{key}]"] = value
        self.localstripe_call("POST", "/v1/plans", plan)
        self.objects[price["id"]] = price
        return 200, price

    def _create_session(self, params: dict[str, Any]) -> tuple[int, Any]:
        if params.get("mode") != "subscription":
            return 400, _error("mode must be subscription here", "parameter_invalid")
        for item in params.get("line_items") or []:
            price = self.objects.get(item.get("price", ""))
            if price is None:
                return 400, _error(f"No such price: '{item.get('price')}'", "resource_missing")
            if not price["active"]:
                return 400, _error(
                    "The price specified is inactive. This field only accepts active prices.",
                    "parameter_invalid",
                )
        session_id = "cs_test_" + secrets.token_hex(12)
        refused, embedded = fake_stripe_js.embedded_session_fields(params, session_id)
        if refused:
            return 400, _error(refused, "parameter_invalid")
        session = {
            "id": session_id, "object": "checkout.session", "mode": "subscription",
            "status": "open", "payment_status": "unpaid", "customer": params.get("customer"),
            "client_reference_id": params.get("client_reference_id"),
            "metadata": params.get("metadata") or {}, "subscription": None,
            "allow_promotion_codes": params.get("allow_promotion_codes") == "true",
            "success_url": params.get("success_url"), "cancel_url": params.get("cancel_url"),
            "url": f"{self.url}/pay/{session_id}",
            "line_items": params.get("line_items") or [],
            "subscription_data": params.get("subscription_data") or {},
            **embedded,
        }  # fmt: skip
        self.objects[session_id] = session
        return 200, self._export(session)


# -------------------------------------------------------------- Connect


def _handle_connect(
    front: StripeFront, method: str, path: str, params: dict[str, Any], account: str
) -> tuple[int, Any]:
    """Accounts, Account Links, and a connected account's balance and payouts (read with the
    ``Stripe-Account`` header), in Stripe's shapes; (0, None) for everything else."""
    if method == "POST" and path == "/v1/accounts":
        made = {
            "id": "acct_" + secrets.token_hex(8), "object": "account",
            "type": params.get("type", "express"), "email": params.get("email"),
            "country": params.get("country", "US"), "default_currency": "usd",
            "details_submitted": False, "charges_enabled": False, "payouts_enabled": False,
            "capabilities": {k: "inactive" for k in params.get("capabilities") or {}},
            "business_profile": params.get("business_profile") or {},
            "metadata": params.get("metadata") or {}, "created": int(time.time()),
            "requirements": {"currently_due": ["external_account", "tos_acceptance.date"]},
        }  # fmt: skip
        front.accounts[made["id"]] = made
        return 200, made
    if path.startswith("/v1/accounts/") and path.count("/") == 3:
        found = front.accounts.get(path.rsplit("/", 1)[1])
        if found is None:
            return 404, _error("No such account", "resource_missing")
        return 200, found
    if method == "POST" and path == "/v1/account_links":
        if params.get("account") not in front.accounts:
            return 400, _error(f"No such account: '{params.get('account')}'", "resource_missing")
        if params.get("type") not in ("account_onboarding", "account_update"):
            return 400, _error("Invalid type", "parameter_invalid")
        link_id = "acctlink_" + secrets.token_hex(8)
        link = {
            "object": "account_link", "created": int(time.time()),
            "expires_at": int(time.time()) + 300, "url": f"{front.url}/connect/onboard/{link_id}",
        }  # fmt: skip
        front.objects[link_id] = {
            **link, "account": params["account"], "return_url": params.get("return_url"),
            "refresh_url": params.get("refresh_url"), "object": "account_link_record",
        }  # fmt: skip
        return 200, link
    if account and method == "GET" and path == "/v1/balance":
        if account not in front.accounts:
            return 403, _error(
                "The provided key does not have access to account", "account_invalid"
            )
        money = front.balances.get(account, {})
        return 200, {
            "object": "balance", "livemode": False,
            "available": [{"amount": money.get("available", 0), "currency": "usd"}],
            "pending": [{"amount": money.get("pending", 0), "currency": "usd"}],
        }  # fmt: skip
    if account and method == "GET" and path == "/v1/payouts":
        data = list(reversed(front.payouts.get(account, [])))
        return 200, {"object": "list", "data": data, "has_more": False, "url": "/v1/payouts"}
    if method == "GET" and path == "/v1/application_fees":
        return 200, {"object": "list", "data": list(reversed(front.application_fees)),
                     "has_more": False, "url": "/v1/application_fees"}  # fmt: skip
    return 0, None


def _onboarding_page(link: dict[str, Any]) -> bytes:
    account = html.escape(str(link["account"]))
    return f"""<!doctype html><html><head><title>Connect onboarding (offline Stripe)</title></head>
<body><h1>Set up payouts</h1><p>Express account {account}</p>
<form method="post"><label>Bank account (test) <input id="connect-iban" name="iban"
value="000123456789"></label> <button id="connect-submit" type="submit">Submit</button></form>
</body></html>""".encode()


def _error(message: str, code: str) -> dict[str, Any]:
    return {"error": {"type": "invalid_request_error", "message": message, "code": code}}


def _pay_page(session: dict[str, Any], error: str = "") -> bytes:
    total = ", ".join(str(item.get("price")) for item in session["line_items"])
    notice = f'<p id="card-error" style="color:#c00">{html.escape(error)}</p>' if error else ""
    return f"""<!doctype html><html><head><title>Checkout (offline Stripe)</title></head>
<body><h1>Offline Stripe Checkout</h1><p>Prices: {html.escape(total)}</p>{notice}
<form method="post"><label>Card number <input id="card-number" name="card"
value="4242424242424242"></label> <button id="pay" type="submit">Pay</button></form>
<a id="cancel-checkout" href="{html.escape(session["cancel_url"] or "/")}">Cancel</a>
</body></html>""".encode()


def serve(front: StripeFront) -> ThreadingHTTPServer:
    """Start the front on a free 127.0.0.1 port (sets ``front.url``)."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            return

        def _reply(self, status: int, body: bytes, kind: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def do_GET(self) -> None:
            self._api("GET", b"")

        def do_DELETE(self) -> None:
            self._api("DELETE", b"")

        def do_POST(self) -> None:
            body = self._body()
            parsed = urllib.parse.urlsplit(self.path)
            if parsed.path == "/_collect":
                front.deliveries.append(Delivery(body, self.headers.get("Stripe-Signature", "")))
                self._reply(200, b"{}")
                return
            if parsed.path.startswith("/pay/"):
                self._pay(parsed.path.rsplit("/", 1)[1], body)
                return
            if parsed.path.startswith("/connect/onboard/"):
                link = front.objects[parsed.path.rsplit("/", 1)[1]]
                front.finish_onboarding(link["account"])
                self.send_response(303)
                self.send_header("Location", link["return_url"])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if parsed.path.startswith(fake_stripe_js.FRAME_PREFIX):
                self._pay_embedded(parsed.path.rsplit("/", 1)[1], body)
                return
            self._api("POST", body)

        def _pay_embedded(self, session_id: str, body: bytes) -> None:
            """The embedded Checkout iframe's form (tests/billing/fake_stripe_js.py)."""
            session = front.objects.get(session_id)
            form = parse_form(body)
            secret = str(form.get("client_secret", ""))
            status, page = (
                fake_stripe_js.frame_page(session or {}, secret)
                if session
                else (404, b"no such checkout session")
            )
            if status != 200 or session is None:
                self._reply(status, page, "text/html")
                return
            try:
                front.complete_checkout(session_id, str(form.get("card", "4242424242424242")))
            except (ValueError, urllib.error.HTTPError) as error:
                # localstripe refuses a declining card (402) already when it is attached
                reason = "Your card was declined." if isinstance(error, OSError) else str(error)
                self._reply(*fake_stripe_js.frame_page(session, secret, reason), "text/html")
                return
            self._reply(200, fake_stripe_js.completed_page(session), "text/html")

        def _pay(self, session_id: str, body: bytes) -> None:
            session = front.objects[session_id]
            card = parse_form(body).get("card", "4242424242424242")
            try:
                front.complete_checkout(session_id, card)
            except ValueError as error:
                self._reply(402, _pay_page(session, str(error)), "text/html")
                return
            self.send_response(303)
            self.send_header(
                "Location", session["success_url"].replace("{CHECKOUT_SESSION_ID}", session_id)
            )
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _api(self, method: str, body: bytes) -> None:
            parsed = urllib.parse.urlsplit(self.path)
            if method == "GET" and parsed.path.startswith("/pay/"):
                session = front.objects.get(parsed.path.rsplit("/", 1)[1])
                if session is None:
                    self._reply(404, b"no such checkout session", "text/plain")
                else:
                    self._reply(200, _pay_page(session), "text/html")
                return
            if method == "GET" and parsed.path.startswith("/connect/onboard/"):
                link = front.objects.get(parsed.path.rsplit("/", 1)[1])
                if link is None or link["expires_at"] < time.time():
                    self._reply(404, b"this onboarding link expired", "text/plain")
                else:
                    self._reply(200, _onboarding_page(link), "text/html")
                return
            if method == "GET" and parsed.path == fake_stripe_js.SCRIPT_PATH:
                self._reply(200, fake_stripe_js.stripe_js(front), "text/javascript")
                return
            if method == "GET" and parsed.path.startswith(fake_stripe_js.FRAME_PREFIX):
                session = front.objects.get(parsed.path.rsplit("/", 1)[1])
                secret = str(parse_form(parsed.query.encode()).get("client_secret", ""))
                status, page = (
                    fake_stripe_js.frame_page(session, secret)
                    if session
                    else (404, b"no such checkout session")
                )
                self._reply(status, page, "text/html")
                return
            if method == "GET" and parsed.path.startswith("/portal/"):
                self._reply(200, b"<h1 id='portal'>Customer portal (offline)</h1>", "text/html")
                return
            params = parse_form(body if method == "POST" else parsed.query.encode())
            key = self.headers.get("Idempotency-Key", "")
            with front.lock:
                front.requests.append(Recorded(method, parsed.path, params, key))
                if key and method == "POST" and key in front.idempotent:
                    self._reply(200, front.idempotent[key])
                    return
                account = self.headers.get("Stripe-Account", "")
                front.stripe_accounts.append(account)
                status, answer = front.handle_connect(method, parsed.path, params, account)
                if not status:
                    status, answer = front.handle(method, parsed.path, params, key)
            if status:
                data = json.dumps(answer).encode()
                if key and method == "POST" and status == 200:
                    front.idempotent[key] = data
                self._reply(status, data)
                return
            self._forward(method, body)

        def _forward(self, method: str, body: bytes) -> None:
            request = urllib.request.Request(
                front.localstripe + self.path, data=body if method == "POST" else None,
                method=method,
                headers={k: v for k, v in self.headers.items()
                         if k.lower() in ("authorization", "content-type")},
            )  # fmt: skip
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    self._reply(response.status, response.read())
            except urllib.error.HTTPError as error:
                self._reply(error.code, error.read())

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    front.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
