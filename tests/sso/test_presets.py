"""The Google and GitHub presets, whose public URLs are fixed: their HTTP answers come from
fakes shaped like the real services (Google's discovery, keys and ID tokens; GitHub's OAuth 2
endpoints and e-mails API), plugged in with httpx's MockTransport."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import httpx2
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from gptstudio.services import crypto, oidc
from gptstudio.settings import get_settings

GOOGLE = "https://accounts.google.com"
KEY = RSAKey.generate_key(2048, parameters={"kid": "google-1"}, private=True)


@pytest.fixture
def fake(settings_env: pytest.MonkeyPatch) -> Iterator[Callable[..., list[httpx.Request]]]:
    """Route the app's outgoing HTTP to ``handler``; returns the requests it saw."""
    settings_env.setenv("GPTSTUDIO_GOOGLE_CLIENT_ID", "google-client")
    settings_env.setenv("GPTSTUDIO_GOOGLE_CLIENT_SECRET", "google-secret")
    settings_env.setenv("GPTSTUDIO_GITHUB_CLIENT_ID", "github-client")
    settings_env.setenv("GPTSTUDIO_GITHUB_CLIENT_SECRET", "github-secret")
    get_settings.cache_clear()
    oidc._metadata_cache.clear()
    seen: list[httpx.Request] = []

    def install(handler: Callable[[httpx.Request], httpx.Response]) -> list[httpx.Request]:
        def record(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return handler(request)

        def record2(request: httpx2.Request) -> httpx2.Response:  # authlib's OAuth client
            answer = record(request)  # type: ignore[arg-type]
            headers, content = answer.headers, answer.content
            return httpx2.Response(answer.status_code, headers=headers, content=content)

        settings_env.setattr(oidc, "_transport", httpx.MockTransport(record))
        settings_env.setattr(oidc, "_oauth_transport", httpx2.MockTransport(record2))
        return seen

    yield install
    oidc._metadata_cache.clear()


def google(
    nonce: list[str], *, id_claims: dict[str, object], userinfo: dict[str, object] | None = None
) -> Callable[[httpx.Request], httpx.Response]:
    def handle(request: httpx.Request) -> httpx.Response:
        url = str(request.url).split("?")[0]
        if url == f"{GOOGLE}/.well-known/openid-configuration":
            return httpx.Response(200, json={
                "issuer": GOOGLE,
                "authorization_endpoint": f"{GOOGLE}/o/oauth2/v2/auth",
                "token_endpoint": "https://oauth2.googleapis.com/token",
                "userinfo_endpoint": "https://openidconnect.googleapis.com/v1/userinfo",
                "jwks_uri": "https://www.googleapis.com/oauth2/v3/certs",
            })  # fmt: skip
        if url == f"{GOOGLE}/o/oauth2/v2/auth":
            return httpx.Response(400, text="Required parameter is missing: response_type")
        if url == "https://www.googleapis.com/oauth2/v3/certs":
            return httpx.Response(200, json={"keys": [KEY.as_dict(private=False)]})
        if url == "https://oauth2.googleapis.com/token":
            form = parse_qs(request.content.decode())
            assert form["code"] == ["the-code"] and 43 <= len(form["code_verifier"][0]) <= 128
            now = int(time.time())
            claims = {
                "iss": GOOGLE, "aud": "google-client", "sub": "1234567890", "iat": now,
                "exp": now + 300, "nonce": nonce[0], **id_claims,
            }  # fmt: skip
            token = jwt.encode({"alg": "RS256", "kid": "google-1"}, claims, KEY)
            return httpx.Response(200, json={
                "access_token": "ya29.token", "token_type": "Bearer", "expires_in": 3599,
                "id_token": token, "scope": "openid email profile",
            })  # fmt: skip
        if url == "https://openidconnect.googleapis.com/v1/userinfo" and userinfo is not None:
            assert request.headers["authorization"] == "Bearer ya29.token"
            return httpx.Response(200, json=userinfo)
        return httpx.Response(404, json={"unexpected": url})

    return handle


def round_trip(name: str, nonce: list[str] | None = None) -> oidc.Profile:
    async def run() -> oidc.Profile:
        provider = oidc.get_provider(name)
        url, cookie = await oidc.begin(provider)
        query = parse_qs(urlsplit(url).query)
        if nonce is not None:
            nonce.append(query["nonce"][0])
        state = crypto.unsign(cookie, purpose="oidc-state", max_age=60)["s"]
        return await oidc.finish(provider, code="the-code", state=state, cookie=cookie)

    return asyncio.run(run())


def test_google_puts_the_email_in_the_id_token(fake: Callable[..., list[httpx.Request]]) -> None:
    nonce: list[str] = []
    seen = fake(google(nonce, id_claims={"email": "g@example.com", "email_verified": True}))
    profile = round_trip("google", nonce)
    assert profile == oidc.Profile("google", "1234567890", "g@example.com", True, "")
    assert not any("userinfo" in str(request.url) for request in seen)


def test_claims_missing_from_the_id_token_come_from_userinfo(
    fake: Callable[..., list[httpx.Request]],
) -> None:
    nonce: list[str] = []
    info = {"sub": "1234567890", "email": "g@example.com", "email_verified": True, "name": "G"}
    fake(google(nonce, id_claims={}, userinfo=info))
    assert round_trip("google", nonce) == oidc.Profile(
        "google", "1234567890", "g@example.com", True, "G"
    )


def test_userinfo_about_another_subject_is_refused(
    fake: Callable[..., list[httpx.Request]],
) -> None:
    nonce: list[str] = []
    info = {"sub": "someone-else", "email": "boss@example.com", "email_verified": True}
    fake(google(nonce, id_claims={}, userinfo=info))
    with pytest.raises(oidc.SignInFailed, match="another user"):
        round_trip("google", nonce)


def github(
    emails: list[dict[str, object]], token: dict[str, object] | None = None
) -> Callable[[httpx.Request], httpx.Response]:
    def handle(request: httpx.Request) -> httpx.Response:
        url = str(request.url).split("?")[0]
        if url == "https://github.com/login/oauth/authorize":
            return httpx.Response(200, text="<html>Sign in to GitHub</html>")
        if url == "https://github.com/login/oauth/access_token":
            form = parse_qs(request.content.decode())
            assert form["code"] == ["the-code"] and 43 <= len(form["code_verifier"][0]) <= 128
            answer = token or {"access_token": "gho_x", "token_type": "bearer", "scope": "user"}
            return httpx.Response(200, json=answer)
        assert request.headers.get("authorization") == "Bearer gho_x"
        if url == "https://api.github.com/user":
            return httpx.Response(200, json={"id": 583231, "login": "octocat", "name": None})
        if url == "https://api.github.com/user/emails":
            return httpx.Response(200, content=json.dumps(emails))
        return httpx.Response(404)

    return handle


def test_github_takes_the_verified_primary_email_from_its_emails_api(
    fake: Callable[..., list[httpx.Request]],
) -> None:
    fake(github([
        {"email": "old@example.com", "primary": False, "verified": True},
        {"email": "octo@example.com", "primary": True, "verified": True},
    ]))  # fmt: skip
    assert round_trip("github") == oidc.Profile(
        "github", "583231", "octo@example.com", True, "octocat"
    )


def test_github_with_an_unverified_primary_email_shares_none(
    fake: Callable[..., list[httpx.Request]],
) -> None:
    fake(github([{"email": "octo@example.com", "primary": True, "verified": False}]))
    profile = round_trip("github")
    assert (profile.email, profile.email_verified) == ("", False)


def test_github_error_answered_as_a_token_is_refused(
    fake: Callable[..., list[httpx.Request]],
) -> None:
    fake(github([], token={"error": "bad_verification_code", "error_description": "expired"}))
    with pytest.raises(oidc.SignInFailed, match=r"refused the sign-in|no access token"):
        round_trip("github")


def test_github_down_is_reported_before_the_redirect(
    fake: Callable[..., list[httpx.Request]],
) -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    fake(down)
    with pytest.raises(oidc.SignInFailed, match="GitHub cannot be reached right now"):
        asyncio.run(oidc.begin(oidc.get_provider("github")))
