"""The widget's HTTP routes against the app and a real engine process (tiny model + LoRA adapter):
the loader script, the per-assistant frame CSP, origin refusals, signed identities, and chat
streamed through the same engine path as the web UI and the API (usage metered as ``widget``)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import select

from gptstudio.api import create_api
from gptstudio.db import session_scope
from gptstudio.models import Assistant, Plan, Role, UsageEvent, User
from gptstudio.services import account, assistant, widget
from gptstudio.settings import get_settings
from tests.api.test_chat import served_model  # noqa: F401  (the module's engine process)
from tests.factories import publish_assistant

PASSWORD = "correct horse battery"
SITE = "https://hive.example"
APP = "http://studio.test"
NAME = "Bees </script><script>alert(1)</script> & co"


class _Visitor:
    """The visitor id the server issued for the test's widget (as the iframe keeps it)."""

    value = ""

    def get(self) -> str:
        return self.value


VISITOR = _Visitor()


class Setup:
    def __init__(self, owner: account.UserPublic, assistant_id: int, key: str) -> None:
        self.owner, self.assistant_id, self.key = owner, assistant_id, key

    def secret(self) -> str:
        return widget.reveal_secret(actor=self.owner, assistant_id=self.assistant_id)


@pytest.fixture
def bees(db: str, served_model: tuple[str, Path], settings_env: pytest.MonkeyPatch) -> Setup:  # noqa: F811
    url, artifacts = served_model
    settings_env.setenv("GPTSTUDIO_ENGINE_URL", url)
    get_settings.cache_clear()
    account.register(email="root@example.com", password=PASSWORD)
    cy = account.register(email="cy@example.com", password=PASSWORD, role=Role.creator)
    account.register(email="sue@example.com", password=PASSWORD)
    made = publish_assistant(cy, NAME, adapter_path=str(artifacts / "jobs" / "1" / "adapter"))
    widget.set_enabled(actor=cy, assistant_id=made.assistant_id, enabled=True)
    config = widget.set_origins(
        actor=cy, assistant_id=made.assistant_id, origins=f"{SITE}\nhttp://127.0.0.1:8123"
    )
    VISITOR.value = widget.issue_visitor_id(made.assistant_id)
    return Setup(cy, made.assistant_id, config.key)


def call(method: str, path: str, **kwargs: Any) -> httpx.Response:
    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=create_api())
        async with httpx.AsyncClient(transport=transport, base_url=APP) as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(run())


def chat_body(**change: Any) -> dict[str, Any]:
    body = {
        "messages": [{"role": "user", "content": "How often should I check for mites?"}],
        "parent_origin": SITE,
        "visitor_id": VISITOR.get(),
        "max_tokens": 12,
        **change,
    }
    return body


def post_chat(key: str, **change: Any) -> httpx.Response:
    # The iframe is served by the app, so its own requests are same-origin.
    return call("POST", f"/widget/{key}/chat", json=chat_body(**change), headers={"Origin": APP})


def events(response: httpx.Response) -> list[dict[str, Any]]:
    return [
        json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: ")
    ]


def identity(setup: Setup, email: str, ttl: int = 300) -> str:
    return widget.sign_identity(setup.secret(), email=email, expires_at=int(time.time()) + ttl)


# --- static parts and the frame ----------------------------------------------------------------


def test_loader_script_is_cacheable_javascript_for_any_site() -> None:
    response = call("GET", "/widget.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert "max-age=86400" in response.headers["cache-control"]
    assert response.headers["cross-origin-resource-policy"] == "cross-origin"
    assert "window.GPTStudioWidget" in response.text and "postMessage" in response.text
    frame_js = call("GET", "/widget/frame.js")
    assert frame_js.status_code == 200 and "gptstudio:init" in frame_js.text


def test_frame_csp_lists_the_assistants_origins(bees: Setup) -> None:
    response = call("GET", f"/widget/{bees.key}/frame")
    assert response.status_code == 200, response.text
    csp = response.headers["content-security-policy"]
    assert f"frame-ancestors {SITE} http://127.0.0.1:8123;" in csp
    assert "default-src 'self'" in csp and "script-src 'self';" in csp
    assert "x-frame-options" not in response.headers  # the frame decides framing by its CSP
    page = response.text
    assert "</script><script>alert(1)" not in page  # the name is escaped in title and config
    assert "Bees &lt;/script&gt;" in page
    config = page.split('id="gptstudio-config">', 1)[1].split("</script>", 1)[0]
    assert json.loads(config)["name"] == NAME and json.loads(config)["key"] == bees.key
    assert (json.loads(config)["welcome"], json.loads(config)["starters"]) == ("", [])
    from gptstudio.services import assistant_settings

    assistant_settings.update_welcome(
        actor=bees.owner, assistant_id=bees.assistant_id,
        welcome_message="Hi </script><script>alert(2)", starters=["Mites & wax?"],
    )  # fmt: skip
    greeted = call("GET", f"/widget/{bees.key}/frame").text
    assert "</script><script>alert(2)" not in greeted  # escaped inside the JSON
    greeting = json.loads(greeted.split('id="gptstudio-config">', 1)[1].split("</script>", 1)[0])
    assert (greeting["welcome"], greeting["starters"]) == (
        "Hi </script><script>alert(2)", ["Mites & wax?"],
    )  # fmt: skip
    nonce = csp.split("'nonce-", 1)[1].split("'", 1)[0]
    assert f'<style nonce="{nonce}">' in page

    widget.set_origins(actor=bees.owner, assistant_id=bees.assistant_id, origins="")
    none = call("GET", f"/widget/{bees.key}/frame").headers["content-security-policy"]
    assert "frame-ancestors 'none'" in none
    # The rest of the app stays unframeable.
    assert "frame-ancestors 'none'" in call("GET", "/healthz").headers["content-security-policy"]


def test_each_assistant_gets_its_own_frame_ancestors(bees: Setup) -> None:
    other = assistant.create_assistant(actor=bees.owner, name="Tax Helper")
    with session_scope() as session:
        row = session.get(Assistant, other.id)
        assert row is not None
        row.is_published = True
    widget.set_enabled(actor=bees.owner, assistant_id=other.id, enabled=True)
    key = widget.set_origins(
        actor=bees.owner, assistant_id=other.id, origins="https://tax.example"
    ).key
    csp = call("GET", f"/widget/{key}/frame").headers["content-security-policy"]
    assert "frame-ancestors https://tax.example;" in csp and SITE not in csp


def test_unknown_rotated_or_disabled_keys_get_a_refusal_page(bees: Setup) -> None:
    unknown = call("GET", "/widget/pk_nosuchkeynosuchkeynosuchkey/frame")
    assert unknown.status_code == 403
    assert "unknown or was rotated" in unknown.text and "widget-refused" in unknown.text
    widget.set_enabled(actor=bees.owner, assistant_id=bees.assistant_id, enabled=False)
    off = call("GET", f"/widget/{bees.key}/frame")
    assert off.status_code == 403 and "turned off by its owner" in off.text
    refused_chat = post_chat(bees.key)
    assert refused_chat.status_code == 403
    assert "turned off" in refused_chat.json()["error"]["message"]


def test_loader_config_refuses_other_origins_with_a_readable_message(bees: Setup) -> None:
    ok = call("GET", f"/widget/{bees.key}/config", headers={"Origin": SITE})
    assert ok.status_code == 200
    assert ok.json() == {
        "name": NAME, "frame_url": f"/widget/{bees.key}/frame",
        "look": widget.WidgetLook().to_json(name=NAME),
    }  # fmt: skip
    look = {"color": "#0e7c3a", "title": "Ask us", "position": "left", "launcher": "text"}
    widget.set_look(actor=bees.owner, assistant_id=bees.assistant_id, look=look)
    shown = call("GET", f"/widget/{bees.key}/config", headers={"Origin": SITE}).json()["look"]
    assert shown == {**look, "greeting": "", "launcher_text": "Chat"}
    page = call("GET", f"/widget/{bees.key}/frame").text
    config = page.split('id="gptstudio-config">', 1)[1].split("</script>", 1)[0]
    assert json.loads(config)["look"] == shown
    assert '<span class="title" id="title">Ask us</span>' in page
    # Only the listed site may read the config, and never with credentials (issue 16, break 2).
    assert ok.headers["access-control-allow-origin"] == SITE
    assert "access-control-allow-credentials" not in ok.headers
    refused = call("GET", f"/widget/{bees.key}/config", headers={"Origin": "https://evil.test"})
    assert refused.status_code == 403
    # The refusal names the site and nothing else: any page may read it, so the loader can show it.
    assert refused.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in refused.headers
    message = refused.json()["error"]["message"]
    assert "not allowed on https://evil.test" in message and "Allowed origins" in message


# --- chat --------------------------------------------------------------------------------------


def test_anonymous_visitor_chat_streams_through_the_engine(bees: Setup) -> None:
    response = post_chat(bees.key)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    parts = events(response)
    text = "".join(p["content"] for p in parts if p["type"] == "delta")
    assert text and parts[-1]["type"] == "done" and parts[-1]["usage"]["completion_tokens"] > 0
    with session_scope() as session:
        event = session.exec(select(UsageEvent)).one()
    assert (event.source, event.user_id, event.visitor_id) == ("widget", None, VISITOR.get())
    assert event.assistant_id == bees.assistant_id and event.output_tokens > 0


def test_session_says_who_is_chatting(bees: Setup) -> None:
    body = {"parent_origin": SITE, "visitor_id": VISITOR.get()}
    guest = call("POST", f"/widget/{bees.key}/session", json=body, headers={"Origin": APP})
    assert guest.status_code == 200, guest.text
    assert guest.json()["signed_in_as"] is None and guest.json()["allowed"] is True
    token = identity(bees, "sue@example.com")
    sue = call(
        "POST", f"/widget/{bees.key}/session", json={**body, "identity": token},
        headers={"Origin": APP},
    )  # fmt: skip
    # Not linked yet: a guest offered the link, the same answer as for an address with no
    # account (the creator who signs learns nothing).
    nobody = call(
        "POST", f"/widget/{bees.key}/session",
        json={**body, "identity": identity(bees, "nobody@example.com")}, headers={"Origin": APP},
    )  # fmt: skip
    assert sue.json()["signed_in_as"] is None and sue.json()["link_url"]
    assert {**sue.json(), "link_url": ""} == {**nobody.json(), "link_url": ""}
    link_account(bees, "sue@example.com", token)
    sue = call(
        "POST", f"/widget/{bees.key}/session", json={**body, "identity": token},
        headers={"Origin": APP},
    )  # fmt: skip
    assert sue.json()["signed_in_as"] == "sue@example.com" and sue.json()["link_url"] == ""


def link_account(setup: Setup, email: str, token: str) -> None:
    """What the person does in the window the widget opens: the consent page, then the form
    posted with their GPT Studio session."""
    page = call("GET", f"/widget/{setup.key}/link", params={"identity": token})
    assert page.status_code == 200 and "link-confirm" in page.text
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    session = account.login(email=email, password=PASSWORD).token
    done = call(
        "POST", f"/widget/{setup.key}/link", data={"identity": token},
        headers={"Origin": APP, "Cookie": f"{account.SESSION_COOKIE}={session}"},
    )  # fmt: skip
    assert done.status_code == 200 and "link-done" in done.text, done.text


def test_linking_needs_the_named_person_signed_in(bees: Setup) -> None:
    token = identity(bees, "sue@example.com")
    anonymous = call(
        "POST", f"/widget/{bees.key}/link", data={"identity": token}, headers={"Origin": APP}
    )
    assert anonymous.status_code == 401 and "link-signin" in anonymous.text
    cy = account.login(email="cy@example.com", password=PASSWORD).token
    other = call(
        "POST", f"/widget/{bees.key}/link", data={"identity": token},
        headers={"Origin": APP, "Cookie": f"{account.SESSION_COOKIE}={cy}"},
    )  # fmt: skip
    assert other.status_code == 401 and "someone else" in other.text
    forged = call(
        "POST", f"/widget/{bees.key}/link", data={"identity": token},
        headers={"Origin": "https://evil.test", "Cookie": f"{account.SESSION_COOKIE}={cy}"},
    )  # fmt: skip
    assert forged.status_code == 403  # a cross-site post with the cookie: refused
    guest = post_chat(bees.key, identity=token)  # still a guest: billed to no one's account
    assert guest.status_code == 200
    with session_scope() as session:
        assert session.exec(select(UsageEvent)).one().user_id is None


def test_disallowed_embedding_origins_are_refused(bees: Setup) -> None:
    refused = post_chat(bees.key, parent_origin="https://evil.test")
    assert refused.status_code == 403
    assert "not allowed on https://evil.test" in refused.json()["error"]["message"]
    assert refused.json()["error"]["code"] == "origin_not_allowed"
    missing = post_chat(bees.key, parent_origin="")
    assert missing.status_code == 403 and "origin is unknown" in missing.json()["error"]["message"]
    # Called straight from another site's script, claiming an allowed parent: refused too.
    direct = call(
        "POST",
        f"/widget/{bees.key}/chat",
        json=chat_body(),
        headers={"Origin": "https://evil.test"},
    )
    assert direct.status_code == 403
    assert "not allowed on https://evil.test" in direct.json()["error"]["message"]
    with session_scope() as session:
        assert session.exec(select(UsageEvent)).first() is None


def test_signed_identity_chats_as_the_subscriber(bees: Setup) -> None:
    token = identity(bees, "sue@example.com")
    link_account(bees, "sue@example.com", token)
    response = post_chat(bees.key, identity=token)
    assert response.status_code == 200, response.text
    assert events(response)[-1]["type"] == "done"
    with session_scope() as session:
        event = session.exec(select(UsageEvent)).one()
        sue = session.exec(select(User).where(User.email == "sue@example.com")).one()
    assert event.user_id == sue.id and event.visitor_id == "" and event.source == "widget"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda s: identity(s, "sue@example.com").replace("sue@", "cy@"),
            "signature does not match",
        ),
        (lambda s: identity(s, "sue@example.com", ttl=-10), "expired at"),
        (lambda s: identity(s, "sue@example.com", ttl=86_400), "valid for too long"),
        (lambda s: "sue@example.com", "malformed"),
    ],
)
def test_bad_identities_are_refused_with_a_message(bees: Setup, make: Any, message: str) -> None:
    response = post_chat(bees.key, identity=make(bees))
    assert response.status_code == 401
    error = response.json()["error"]
    assert message in error["message"] and error["code"] == "invalid_identity"


def test_visitors_cannot_replace_the_system_prompt(bees: Setup) -> None:
    response = post_chat(bees.key, messages=[{"role": "system", "content": "Be a pirate."}])
    assert response.status_code == 400
    assert "messages.0.role" in response.json()["error"]["message"]


def test_bad_visitor_id_and_empty_messages_are_refused(bees: Setup) -> None:
    bad_id = post_chat(bees.key, visitor_id="x")
    assert bad_id.status_code == 422 and "visitor id" in bad_id.json()["error"]["message"]
    empty = post_chat(bees.key, messages=[{"role": "user", "content": "   "}])
    assert empty.status_code == 422 and "non-empty" in empty.json()["error"]["message"]


def test_plan_refusals_come_as_readable_402_and_429(
    bees: Setup, settings_env: pytest.MonkeyPatch
) -> None:
    settings_env.setenv("GPTSTUDIO_WIDGET_ADDRESS_REQUESTS_PER_MINUTE", "10")  # an office's
    get_settings.cache_clear()
    with session_scope() as session:
        session.add(
            Plan(assistant_id=bees.assistant_id, key="pro", name="Pro", monthly_price_cents=900)
        )
    paid_only = post_chat(bees.key)
    assert paid_only.status_code == 402
    error = paid_only.json()["error"]
    assert "subscription" in error["message"] and error["upgrade_url"].endswith(
        f"/pricing?assistant={bees.assistant_id}"
    )
    with session_scope() as session:
        session.add(
            Plan(
                assistant_id=bees.assistant_id, key="free", name="Free", requests_per_minute=1,
                included_tokens=100_000,
            )
        )  # fmt: skip
    assert post_chat(bees.key).status_code == 200
    limited = post_chat(bees.key)
    assert limited.status_code == 429, limited.text
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.headers["x-ratelimit-remaining-requests"] == "0"  # as the API sends them
    assert limited.json()["error"]["retry_after"] >= 1 and limited.json()["error"]["message"]
    # Another visitor has a quota of their own.
    other = widget.issue_visitor_id(bees.assistant_id)
    assert post_chat(bees.key, visitor_id=other).status_code == 200


# --- anonymous visitors: ids issued by the server, and a limit per client address -------------


def free_plan(setup: Setup, requests_per_minute: int) -> None:
    with session_scope() as session:
        session.add(
            Plan(
                assistant_id=setup.assistant_id, key="free", name="Free",
                requests_per_minute=requests_per_minute, included_tokens=1_000_000,
            )
        )  # fmt: skip


def new_session(setup: Setup, visitor_id: str = "") -> httpx.Response:
    body = {"parent_origin": SITE, "visitor_id": visitor_id}
    return call("POST", f"/widget/{setup.key}/session", json=body, headers={"Origin": APP})


def test_self_chosen_visitor_ids_get_no_fresh_limit(bees: Setup) -> None:
    """The attack (#16): 40 self-chosen visitor ids got 40 answers on a 30-per-minute plan.
    Ids the server did not issue are refused now, and each one it issues is still one client
    address, which gets the plan's requests per minute across all its visitors."""
    free_plan(bees, 30)
    chosen = [post_chat(bees.key, visitor_id=f"v_{n:032x}", max_tokens=1) for n in range(40)]
    assert {r.status_code for r in chosen} == {422}
    assert "not issued by this chat" in chosen[0].json()["error"]["message"]
    # Even with 40 ids the server issued (40 page loads from one address): 30 answers.
    issued = [new_session(bees).json()["visitor_id"] for _ in range(40)]
    assert len(set(issued)) == 40
    codes = [post_chat(bees.key, visitor_id=v, max_tokens=1).status_code for v in issued]
    assert codes.count(200) == 30 and set(codes[30:]) == {429}, codes
    refused = post_chat(bees.key, visitor_id=issued[0], max_tokens=1)
    assert "this network address" in refused.json()["error"]["message"]
    assert int(refused.headers["retry-after"]) >= 1
    with session_scope() as session:
        assert len(session.exec(select(UsageEvent)).all()) == 30


def test_visitor_ids_are_signed_and_bound_to_one_assistant(bees: Setup) -> None:
    first = new_session(bees)
    assert first.status_code == 200, first.text
    issued = first.json()["visitor_id"]
    assert new_session(bees, issued).json()["visitor_id"] == issued  # kept while valid
    # A forged id (its signature altered) and an id of another assistant's widget are replaced.
    forged = issued[:-4] + ("AAAA" if not issued.endswith("AAAA") else "BBBB")
    assert new_session(bees, forged).json()["visitor_id"] not in (forged, issued)
    other = publish_assistant(bees.owner, "Wasps")
    widget.set_enabled(actor=bees.owner, assistant_id=other.assistant_id, enabled=True)
    foreign = widget.issue_visitor_id(other.assistant_id)
    assert widget.issue_visitor_id(bees.assistant_id) != foreign
    assert new_session(bees, foreign).json()["visitor_id"] != foreign
    assert post_chat(bees.key, visitor_id=foreign).status_code == 422
    assert post_chat(bees.key, visitor_id=forged).status_code == 422
    assert post_chat(bees.key, visitor_id=issued).status_code == 200


def test_the_address_limit_follows_trusted_proxies_only(
    bees: Setup, settings_env: pytest.MonkeyPatch
) -> None:
    """Behind a configured proxy each client address has its own limit; a client that is not a
    proxy cannot choose its address with X-Forwarded-For."""
    free_plan(bees, 2)
    settings_env.setenv("GPTSTUDIO_WIDGET_ADDRESS_REQUESTS_PER_MINUTE", "3")
    get_settings.cache_clear()
    ids = [new_session(bees).json()["visitor_id"] for _ in range(5)]

    def ask(visitor_id: str, forwarded: str) -> int:
        return call(
            "POST", f"/widget/{bees.key}/chat", json=chat_body(visitor_id=visitor_id, max_tokens=1),
            headers={"Origin": APP, "X-Forwarded-For": forwarded},
        ).status_code  # fmt: skip

    # httpx's test client is 127.0.0.1, not a proxy: the header is ignored, one address.
    assert [ask(v, f"198.51.100.{n}") for n, v in enumerate(ids[:4])] == [200, 200, 200, 429]
    settings_env.setenv("GPTSTUDIO_TRUSTED_PROXIES", "127.0.0.1/32")
    get_settings.cache_clear()
    assert ask(ids[4], "198.51.100.77") == 200  # another client behind the proxy
