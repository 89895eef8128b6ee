"""Single sign-on with OpenID Connect (a generic provider by issuer URL, Google) and GitHub OAuth.

Authorization-code flow with PKCE (S256, a 64-character verifier); ``state`` and ``nonce`` are
checked; ID tokens are validated against the provider's JWKS (the configured issuer, audience,
expiry, nonce). E-mail claims missing from the ID token are read from the userinfo endpoint (OIDC
Core 5.4), whose ``sub`` must be the ID token's. Accounts are created, and linked, only from
e-mails the provider has verified; a provider identity is linked to an existing account with the
same e-mail only after the user proves that account's password: a provider that lies about an
e-mail cannot take an account over. Before a browser is sent to the provider, the provider is
checked to answer (a few seconds at most), so that a dead provider is reported on /login.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from typing import Any

import httpx
from authlib.integrations.httpx_client import AsyncOAuth2Client
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from gptstudio.db import session_scope
from gptstudio.errors import DomainError, InvalidInput, NotFound
from gptstudio.models import OAuthIdentity, Role, User
from gptstudio.models.user import UserPublic
from gptstudio.services import access, account, audit, crypto
from gptstudio.settings import get_settings

STATE_SECONDS = 600  # the state cookie and the account-linking ticket
LINK_COOKIE = "gptstudio_oidc_link"  # the account-linking ticket, HttpOnly, never in a URL
METADATA_SECONDS = 300  # discovery documents are cached this long
REACH_TIMEOUT = 3.0  # seconds the provider has to answer before a browser is sent there
HTTP_TIMEOUT = 10.0
VERIFIER_BYTES = 48  # a 64-character PKCE verifier (RFC 7636: 43 to 128)
_metadata_cache: dict[str, tuple[float, dict[str, Any]]] = {}
# Tests route the Google and GitHub presets (fixed public URLs) to fakes through these: one for
# httpx, one for the OAuth client (authlib builds it on its fork of httpx, ``httpx2``).
_transport: httpx.AsyncBaseTransport | None = None
_oauth_transport: Any = None
log = logging.getLogger(__name__)


class SignInFailed(DomainError):
    status_code = 400
    type = "invalid_request_error"
    code = "signinfailed"


@dataclass(frozen=True)
class Provider:
    name: str
    label: str
    client_id: str
    client_secret: str
    issuer: str = ""  # OpenID Connect discovery; empty for plain OAuth 2 (GitHub)
    authorize_url: str = ""
    token_url: str = ""
    userinfo_url: str = ""
    scope: str = "openid email profile"


@dataclass(frozen=True)
class Profile:
    provider: str
    subject: str
    email: str
    email_verified: bool
    name: str


@dataclass(frozen=True)
class PendingLink:
    provider: str
    provider_label: str
    subject: str
    email: str
    user_id: int


@dataclass(frozen=True)
class SignInOutcome:
    """What the callback does next: set ``token``, ask for MFA, or ask for the password."""

    token: str = ""
    mfa_ticket: str = ""
    link_ticket: str = ""
    user: UserPublic | None = None


def enabled_providers() -> list[Provider]:
    """The providers with a client id configured, in a stable order."""
    s = get_settings()
    providers = []
    if s.oidc_issuer and s.oidc_client_id:
        providers.append(
            Provider(
                name="oidc", label=s.oidc_name, client_id=s.oidc_client_id,
                client_secret=s.oidc_client_secret.get_secret_value(),
                issuer=s.oidc_issuer.rstrip("/"),
            )
        )  # fmt: skip
    if s.google_client_id:
        providers.append(
            Provider(
                name="google", label="Google", client_id=s.google_client_id,
                client_secret=s.google_client_secret.get_secret_value(),
                issuer="https://accounts.google.com",
            )
        )  # fmt: skip
    if s.github_client_id:
        providers.append(
            Provider(
                name="github", label="GitHub", client_id=s.github_client_id,
                client_secret=s.github_client_secret.get_secret_value(),
                authorize_url="https://github.com/login/oauth/authorize",
                token_url="https://github.com/login/oauth/access_token",  # noqa: S106
                userinfo_url="https://api.github.com/user", scope="read:user user:email",
            )
        )  # fmt: skip
    return providers


def get_provider(name: str) -> Provider:
    for provider in enabled_providers():
        if provider.name == name:
            return provider
    raise NotFound(f"Sign-in with '{name}' is not configured on this installation.")


def redirect_uri(provider: Provider) -> str:
    return f"{get_settings().base_url}/auth/oidc/{provider.name}/callback"


def _http(timeout: float = HTTP_TIMEOUT) -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=timeout, transport=_transport)


def _unreachable(provider: Provider, error: Exception) -> SignInFailed:
    log.warning("sign-in provider %s unreachable: %r", provider.name, error)
    return SignInFailed(
        f"{provider.label} cannot be reached right now. Try again in a few minutes, "
        "or log in with your password."
    )


def same_issuer(a: str, b: str) -> bool:
    """Issuers compare equal up to a trailing slash (Authentik's end in one)."""
    return a.rstrip("/") == b.rstrip("/")


async def _metadata(provider: Provider, timeout: float = HTTP_TIMEOUT) -> dict[str, Any]:
    """The provider's discovery document (cached for ``METADATA_SECONDS``); its ``issuer``
    must be the configured one (OpenID Connect Discovery 4.3)."""
    cached = _metadata_cache.get(provider.issuer)
    if cached and time.monotonic() - cached[0] < METADATA_SECONDS:
        return cached[1]
    url = f"{provider.issuer}/.well-known/openid-configuration"
    try:
        async with _http(timeout) as client:
            response = await client.get(url)
            response.raise_for_status()
            metadata: dict[str, Any] = response.json()
    except (httpx.HTTPError, ValueError) as error:
        raise _unreachable(provider, error) from None
    if not same_issuer(str(metadata.get("issuer", "")), provider.issuer):
        raise SignInFailed(
            f"{provider.label} names its issuer {metadata.get('issuer')!r}, not the configured "
            f"{provider.issuer!r}: the operator must set the issuer URL exactly."
        )
    _metadata_cache[provider.issuer] = (time.monotonic(), metadata)
    return metadata


async def _check_reachable(provider: Provider, endpoint: str) -> None:
    """Any HTTP answer from the authorization endpoint within ``REACH_TIMEOUT`` will do; a
    refused connection or a timeout is reported now, instead of on the browser's error page."""
    try:
        async with _http(REACH_TIMEOUT) as client:
            await client.head(endpoint)
    except httpx.HTTPError as error:
        _metadata_cache.pop(provider.issuer, None)
        raise _unreachable(provider, error) from None


def _client(provider: Provider) -> AsyncOAuth2Client:
    return AsyncOAuth2Client(
        client_id=provider.client_id,
        client_secret=provider.client_secret,
        scope=provider.scope,
        redirect_uri=redirect_uri(provider),
        code_challenge_method="S256",
        timeout=HTTP_TIMEOUT,
        transport=_oauth_transport,
    )


def safe_next(path: str) -> str:
    """``path`` when it is a path on this site, else empty (no open redirect)."""
    if path.startswith("/") and not path.startswith("//") and "\\" not in path:
        return path[:500]
    return ""


async def begin(provider: Provider, *, next_path: str = "") -> tuple[str, str]:
    """The provider's authorization URL and the signed state to keep in a cookie until callback."""
    state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    verifier = secrets.token_urlsafe(VERIFIER_BYTES)
    if provider.issuer:
        endpoint = str((await _metadata(provider, REACH_TIMEOUT))["authorization_endpoint"])
    else:
        endpoint = provider.authorize_url
    await _check_reachable(provider, endpoint)
    async with _client(provider) as client:
        extra = {"nonce": nonce} if provider.issuer else {}
        url, _ = client.create_authorization_url(
            endpoint, state=state, code_verifier=verifier, **extra
        )
    cookie = crypto.sign(
        {"p": provider.name, "s": state, "n": nonce, "v": verifier, "next": safe_next(next_path)},
        purpose="oidc-state",
    )
    return url, cookie


def next_of(cookie: str) -> str:
    """The page the sign-in started from (kept in the state cookie), or empty."""
    try:
        stored = crypto.unsign(cookie, purpose="oidc-state", max_age=STATE_SECONDS, what="sign-in")
    except DomainError:
        return ""
    return safe_next(str(stored.get("next", "")))


async def finish(provider: Provider, *, code: str, state: str, cookie: str) -> Profile:
    """Exchange the code (with the PKCE verifier) and return the verified profile."""
    stored = crypto.unsign(cookie, purpose="oidc-state", max_age=STATE_SECONDS, what="sign-in")
    if stored.get("p") != provider.name or not secrets.compare_digest(
        str(stored.get("s", "")), state
    ):
        raise SignInFailed("The sign-in answer does not match this browser's request; try again.")
    if not code:
        raise SignInFailed(f"The answer from {provider.label} carried no authorization code.")
    metadata = await _metadata(provider) if provider.issuer else {}
    async with _client(provider) as client:
        try:
            token = await client.fetch_token(
                metadata.get("token_endpoint", provider.token_url),
                code=code,
                code_verifier=str(stored["v"]),
                headers={"Accept": "application/json"},
            )
        except Exception as error:  # noqa: BLE001 (authlib raises many types for a bad exchange)
            raise SignInFailed(f"{provider.label} refused the sign-in: {error}") from None
        # Some providers answer an error body that still parses as a "token": check the parts.
        if not token.get("access_token"):
            raise SignInFailed(f"{provider.label} returned no access token; try again.")
        if provider.issuer:
            if not token.get("id_token"):
                raise SignInFailed(f"{provider.label} returned no ID token; try again.")
            claims = await _validated_claims(provider, metadata, token["id_token"], stored)
            if "email" not in claims or "email_verified" not in claims:
                claims = await _with_userinfo(provider, metadata, client, claims)
            return _profile_from_claims(provider, claims)
        return await _github_profile(provider, client)


async def _validated_claims(
    provider: Provider, metadata: dict[str, Any], id_token: str, stored: dict[str, Any]
) -> dict[str, Any]:
    try:
        async with _http() as client:
            keys = KeySet.import_key_set((await client.get(metadata["jwks_uri"])).json())
        decoded = jwt.decode(id_token, keys, algorithms=["RS256", "ES256", "PS256", "EdDSA"])
        jwt.JWTClaimsRegistry(
            leeway=60,
            iss={"essential": True},
            aud={"essential": True, "value": provider.client_id},
            sub={"essential": True},
            exp={"essential": True},
            nonce={"essential": True, "value": stored["n"]},
        ).validate(decoded.claims)
    except (JoseError, ValueError, KeyError, httpx.HTTPError) as error:
        raise SignInFailed(f"The ID token from {provider.label} is not valid ({error}).") from None
    if not same_issuer(str(decoded.claims["iss"]), provider.issuer):
        raise SignInFailed(
            f"The ID token from {provider.label} was issued by {decoded.claims['iss']!r}, "
            f"not by the configured issuer {provider.issuer!r}."
        )
    return dict(decoded.claims)


async def _with_userinfo(
    provider: Provider, metadata: dict[str, Any], client: AsyncOAuth2Client, claims: dict[str, Any]
) -> dict[str, Any]:
    """``claims`` completed from the userinfo endpoint, where providers may put scope claims
    (OIDC Core 5.4); the answer must be about the ID token's subject (5.3.2)."""
    endpoint = metadata.get("userinfo_endpoint")
    if not endpoint:
        return claims
    try:
        response = await client.get(str(endpoint), headers={"Accept": "application/json"})
        response.raise_for_status()
        info = response.json()
    except (httpx.HTTPError, ValueError) as error:
        raise SignInFailed(
            f"{provider.label} did not answer the request for your e-mail address ({error})."
        ) from None
    if not isinstance(info, dict) or str(info.get("sub", "")) != str(claims["sub"]):
        raise SignInFailed(
            f"{provider.label} answered with another user's details; sign-in refused."
        )
    # The e-mail and whether it is verified come as a pair from one answer, never mixed.
    return {
        **info, **claims,
        "email": info.get("email") or "", "email_verified": info.get("email_verified", False),
    }  # fmt: skip


def _is_true(value: object) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _profile_from_claims(provider: Provider, claims: dict[str, Any]) -> Profile:
    return Profile(
        provider=provider.name,
        subject=str(claims["sub"]),
        email=str(claims.get("email") or ""),
        email_verified=_is_true(claims.get("email_verified")),
        name=str(claims.get("name") or ""),
    )


async def _github_profile(provider: Provider, client: AsyncOAuth2Client) -> Profile:
    """GitHub is not OpenID Connect: the verified e-mail comes from its e-mails API."""
    try:
        user = (await client.get(provider.userinfo_url)).raise_for_status().json()
        emails = (await client.get(f"{provider.userinfo_url}/emails")).raise_for_status().json()
    except (httpx.HTTPError, ValueError) as error:
        raise SignInFailed(f"{provider.label} did not share your profile ({error}).") from None
    primary = next((e for e in emails if e.get("primary") and e.get("verified")), None)
    return Profile(
        provider=provider.name,
        subject=str(user["id"]),
        email=str(primary["email"]) if primary else "",
        email_verified=primary is not None,
        name=str(user.get("name") or user.get("login") or ""),
    )


def sign_in(
    profile: Profile, *, client: access.Client = access.Client(), previous_token: str = ""
) -> SignInOutcome:
    """Open a session for a linked identity, create an account, or ask for the password first."""
    with session_scope() as session:
        identity = session.exec(
            select(OAuthIdentity).where(
                OAuthIdentity.provider == profile.provider,
                OAuthIdentity.subject == profile.subject,
            )
        ).first()
        user = session.get(User, identity.user_id) if identity else None
        if user is None:
            if not profile.email:
                raise SignInFailed("The provider did not share an e-mail address; allow it.")
            email = account.normalize_email(profile.email)
            existing = session.exec(select(User).where(User.email == email)).first()
            if existing is not None:
                if not profile.email_verified:
                    raise SignInFailed(
                        "An account with this e-mail exists, and the provider has not verified "
                        "the e-mail; log in with your password instead."
                    )
                return SignInOutcome(link_ticket=_link_ticket(profile, existing))
            if not profile.email_verified:  # else its holder would own an address not theirs
                raise SignInFailed(
                    f"The provider has not verified the e-mail {email}. Verify it there and "
                    "try again, or sign up with a password."
                )
            user = account.create_user(
                session, email=email,
                password_hash=crypto.hash_password(secrets.token_urlsafe(32)),
                display_name=profile.name, role=Role.subscriber, client=client, verified=True,
            )  # fmt: skip
            _link(session, user, profile, client)
        if not user.is_active:
            raise SignInFailed("This account is disabled. Contact the administrator.")
        if user.mfa_enabled_at is not None:
            return SignInOutcome(mfa_ticket=account.mfa_ticket_for(user), user=access.public(user))
        token = account.open_session(session, user, client=client, previous_token=previous_token)
        return SignInOutcome(token=token, user=access.public(user))


def _link(session: Session, user: User, profile: Profile, client: access.Client) -> None:
    assert user.id is not None
    session.add(
        OAuthIdentity(
            user_id=user.id, provider=profile.provider, subject=profile.subject, email=profile.email
        )
    )
    audit.record(
        session, action="oauth.linked", actor_id=user.id,
        target=f"{profile.provider}:{profile.subject}", ip=client.ip, user_agent=client.user_agent,
    )  # fmt: skip


def _link_ticket(profile: Profile, user: User) -> str:
    return crypto.sign(
        {"p": profile.provider, "sub": profile.subject, "email": profile.email, "uid": user.id},
        purpose="oidc-link",
    )


def link_ticket_from(cookie_header: str) -> str:
    """The account-linking ticket in a request's ``Cookie`` header, or empty."""
    cookies = SimpleCookie()
    with contextlib.suppress(CookieError):
        cookies.load(cookie_header)
    morsel = cookies.get(LINK_COOKIE)
    return morsel.value if morsel else ""


def read_link_ticket(ticket: str) -> PendingLink:
    data = crypto.unsign(ticket, purpose="oidc-link", max_age=STATE_SECONDS, what="link request")
    label = next((p.label for p in enabled_providers() if p.name == data["p"]), str(data["p"]))
    return PendingLink(
        provider=str(data["p"]), provider_label=label, subject=str(data["sub"]),
        email=str(data["email"]), user_id=int(data["uid"]),
    )  # fmt: skip


def link_after_password(*, ticket: str, user: UserPublic, client: access.Client) -> None:
    """Link the pending identity now that the password of its account was proven."""
    pending = read_link_ticket(ticket)
    if pending.user_id != user.id:
        raise InvalidInput("Log in to the account with the e-mail the provider shared to link it.")
    profile = Profile(pending.provider, pending.subject, pending.email, True, "")
    try:
        with session_scope() as session:
            row = session.get(User, user.id)
            assert row is not None
            _link(session, row, profile, client)
    except IntegrityError:
        pass  # already linked (a second tab finished first): the goal is reached
