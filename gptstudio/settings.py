"""The one Settings object (environment prefix ``GPTSTUDIO_``), validated at start.

Embedded defaults need no configuration: SQLite under ``./data``, Huey on SQLite, artifacts
under ``./data/artifacts``, the tiny local base model. Production sets a PostgreSQL URL, a
Redis URL and a real secret key; the shipped default secret is refused outside development.
"""

from __future__ import annotations

from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SECRET_KEY = "gptstudio-development-secret-change-me"  # noqa: S105 (refused in prod)


class InsecureSettingsError(ValueError):
    """Raised when a production configuration still carries a development default."""


class Settings(BaseSettings):
    """Every knob of GPT Studio, read from ``GPTSTUDIO_*`` environment variables or ``.env``."""

    model_config = SettingsConfigDict(env_prefix="GPTSTUDIO_", env_file=".env", extra="ignore")

    env: Literal["development", "production"] = Field(
        "development", description="development allows the default secret and readable logs"
    )
    secret_key: SecretStr = Field(
        SecretStr(DEFAULT_SECRET_KEY), description="signs tokens; must be set in production"
    )
    data_dir: Path = Field(Path("data"), description="root of embedded state (db, queue, files)")
    database_url: str = Field("", description="SQLAlchemy URL; empty means SQLite in data_dir")
    redis_url: str = Field("", description="Redis URL; set it to use RedisHuey and Redis state")
    queue_name: str = Field("gptstudio", description="Huey queue name (one per installation)")
    artifacts_dir: Path = Field(Path(""), description="adapters, uploads; empty means data_dir")
    base_model: str = Field(
        "", description="hub id or local path of the base model; empty means the tiny local one"
    )
    session_ttl_hours: int = Field(24 * 14, ge=1, description="how long a login session lives")
    min_password_length: int = Field(10, ge=8)
    log_format: Literal["auto", "json", "text"] = Field(
        "auto", description="auto: JSON in production, readable text in development"
    )
    log_level: str = "INFO"
    port: int = Field(3000, description="the one port the app serves on")
    public_url: str = Field("", description="URL users reach the app at; empty: localhost:port")
    # Brute-force protection: after `lockout_threshold` failures, lock for base * 2^(n - threshold)
    lockout_threshold: int = Field(5, ge=1)
    lockout_base_seconds: int = Field(30, ge=1)
    lockout_max_seconds: int = Field(3600, ge=1)
    trusted_proxies: str = Field(
        "",
        description="comma-separated addresses or networks (10.0.0.0/8) of the reverse proxies "
        "whose X-Forwarded-For is believed; empty: the peer address is the client",
    )
    # Operations pages (/metrics, /api/docs, /api/openapi.json) in production: these addresses,
    # or a request with "Authorization: Bearer <ops_token>". Development serves them to anyone.
    ops_allowed_networks: str = Field(
        "127.0.0.1/32, ::1/128", description="comma-separated addresses or networks"
    )
    ops_token: SecretStr = Field(SecretStr(""), description="a bearer token for the ops pages")
    # Documents: per-upload limit, per-creator storage quota, URL ingestion.
    max_upload_mb: int = Field(50, ge=1, description="largest single upload")
    # Uploaded originals are encrypted at rest (AES-GCM): "id:base64key, id2:base64key", the
    # current key first, older ones kept until `python -m gptstudio.rotate_keys` has run.
    # Development without keys generates one in data_dir; production refuses to start.
    encryption_keys: SecretStr = Field(
        SecretStr(""), description="id:base64 AES keys, comma-separated, the current one first"
    )
    storage_quota_mb: int = Field(2048, ge=1, description="all of one creator's documents")
    allow_private_urls: bool = Field(
        False, description="let URL ingestion fetch private addresses (tests, intranets)"
    )
    crawl_max_pages: int = Field(20, ge=1)
    crawl_max_depth: int = Field(2, ge=0)
    crawl_delay_seconds: float = Field(0.5, ge=0)
    fetch_timeout_seconds: float = Field(15, gt=0)
    # Serving: an OpenAI-compatible engine (`python -m engine`, or vLLM with --enable-lora).
    engine_url: str = Field("", description="empty: the embedded engine on engine_port")
    engine_port: int = Field(0, ge=0, le=65535, description="the embedded engine's; 0: port + 1")
    engine_api_key: SecretStr = SecretStr("")
    engine_max_concurrent: int = Field(8, ge=1)
    chat_max_tokens: int = Field(1024, ge=1, description="largest max_tokens a request may ask")
    # Training: a running job whose worker is silent this long is resumed by another worker.
    job_stale_seconds: int = Field(60, ge=5)
    gate_margin: float = Field(
        0.05, ge=0, lt=1, description="relative perplexity gain a version needs to be published"
    )
    # Curation: model-written QA pairs from an OpenAI-compatible chat model (empty: rules only).
    qa_model: str = Field("", description="model name for QA synthesis; empty turns it off")
    qa_model_url: str = Field("", description="its OpenAI-compatible URL; empty: the engine")
    # Retrieval (RAG): chunks embedded by the engine's /v1/embeddings (MiniLM), cited in answers.
    # A chat server that serves no embeddings (vLLM with a chat model) gets a second server for
    # them: `python -m engine` (it serves MiniLM), or any OpenAI-compatible /v1/embeddings.
    embeddings_url: str = Field("", description="its /v1/embeddings server; empty: the engine")
    embeddings_api_key: SecretStr = Field(
        SecretStr(""), description="its API key; empty with embeddings_url empty: the engine's"
    )
    embedding_model: str = Field(
        "minilm", description="name the engine serves embeddings under (vLLM: the model id)"
    )
    response_cache_seconds: int = Field(
        600, ge=0, description="TTL of cached temperature-0 answers; 0 turns the cache off"
    )
    # Billing: Stripe (or localstripe, via stripe_api_base). No secret key: every plan is free.
    stripe_secret_key: SecretStr = SecretStr("")
    stripe_publishable_key: str = Field(
        "", description="pk_…: Checkout embedded in the pricing page; empty: the hosted page only"
    )
    stripe_js_url: str = Field(
        "https://js.stripe.com/v3",
        description="where Stripe.js loads from (Stripe requires js.stripe.com; tests: a stand-in)",
    )
    stripe_webhook_secret: SecretStr = SecretStr("")
    stripe_api_base: str = Field("", description="empty: api.stripe.com; tests: localstripe")
    stripe_webhook_tolerance_seconds: int = Field(300, ge=1, description="older: refused")
    application_fee_percent: float = Field(
        10.0, ge=0, le=100,
        description="Stripe Connect: the operator's share of a connected creator's subscriptions",
    )  # fmt: skip
    billing_grace_days: int = Field(
        7, ge=0, description="past_due this long keeps paid access; then the free tier applies"
    )
    # Request-path caches (API keys, entitlements, served versions); 0 turns them off.
    cache_seconds: float = Field(
        30, ge=0, description="longest a cached row lives; any commit that changes one drops it"
    )
    # Embeddable widget: how long a host site's signed end-user identity may live at most.
    widget_identity_max_age_seconds: int = Field(3600, ge=60)
    # Anonymous widget use from one client address (all its visitors together), per assistant.
    widget_address_requests_per_minute: int = Field(
        0, ge=0, description="0: the plan's requests per minute; raise it for shared offices"
    )
    # Mail (password reset, e-mail verification); no host: mails are written to the log.
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_security: Literal["starttls", "ssl", "none"] = "starttls"
    smtp_username: str = ""
    smtp_password: SecretStr = SecretStr("")
    mail_from: str = "GPT Studio <no-reply@localhost>"
    admin_email: str = Field(
        "", description="e-mail of the admin account once verified; empty: the first account"
    )
    # OpenID Connect / OAuth login providers; each is on when its client id is set.
    oidc_issuer: str = Field("", description="issuer URL of a generic OpenID Connect provider")
    oidc_name: str = "Single sign-on"
    oidc_client_id: str = ""
    oidc_client_secret: SecretStr = SecretStr("")
    google_client_id: str = ""
    google_client_secret: SecretStr = SecretStr("")
    github_client_id: str = ""
    github_client_secret: SecretStr = SecretStr("")

    @model_validator(mode="after")
    def _fill_and_check(self) -> Settings:
        if self.env != "development" and self.secret_key.get_secret_value() == DEFAULT_SECRET_KEY:
            raise InsecureSettingsError(
                "GPTSTUDIO_SECRET_KEY still has the shipped default; set a long random value "
                "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`) "
                "or run with GPTSTUDIO_ENV=development"
            )
        if self.env != "development" and not self.encryption_keys.get_secret_value().strip():
            raise InsecureSettingsError(
                "GPTSTUDIO_ENCRYPTION_KEYS is not set: uploaded files are encrypted at rest and "
                "production needs a key kept outside the data folder. Set it to "
                "id:base64key, e.g. `python -m gptstudio.rotate_keys --new-key` prints one."
            )
        if len(self.secret_key.get_secret_value()) < 16:
            raise InsecureSettingsError("GPTSTUDIO_SECRET_KEY must be at least 16 characters")
        try:
            self.trusted_proxy_networks  # noqa: B018 (validates the lists at start)
            self.ops_networks  # noqa: B018
        except ValueError as error:
            raise ValueError(
                f"GPTSTUDIO_TRUSTED_PROXIES or _OPS_ALLOWED_NETWORKS: {error}"
            ) from None
        if not self.database_url:
            self.database_url = f"sqlite:///{(self.data_dir / 'gptstudio.db').as_posix()}"
        if self.artifacts_dir == Path(""):
            self.artifacts_dir = self.data_dir / "artifacts"
        return self

    @property
    def base_url(self) -> str:
        """Where links in e-mails and OAuth redirects point."""
        return (self.public_url or f"http://localhost:{self.port}").rstrip("/")

    @property
    def app_origins(self) -> tuple[str, ...]:
        """The origins the app's own pages load from: the only ones CORS (and Reflex's socket)
        accept. Without a public URL, both local spellings of this port."""
        if self.public_url:
            return (self.base_url,)
        return (self.base_url, f"http://127.0.0.1:{self.port}")

    @property
    def resolved_engine_url(self) -> str:
        return (self.engine_url or f"http://127.0.0.1:{self.embedded_engine_port}").rstrip("/")

    @property
    def resolved_embeddings_url(self) -> str:
        """Where retrieval embeds questions: ``embeddings_url``, or the engine."""
        return (self.embeddings_url or self.resolved_engine_url).rstrip("/")

    @property
    def embedded_engine_port(self) -> int:
        return self.engine_port or self.port + 1

    @property
    def queue_path(self) -> Path:
        """SQLite file of the embedded Huey queue."""
        return self.data_dir / "queue.db"

    @property
    def tiny_model_dir(self) -> Path:
        """Where ``python -m gptstudio.tiny_model`` writes the tiny local base model."""
        return self.data_dir / "models" / "tiny-llama"

    @property
    def resolved_base_model(self) -> str:
        """The configured base model, or the tiny local one when none is configured."""
        return self.base_model or str(self.tiny_model_dir)

    @property
    def trusted_proxy_networks(self) -> tuple[IPv4Network | IPv6Network, ...]:
        return tuple(
            ip_network(part.strip(), strict=False)
            for part in self.trusted_proxies.split(",")
            if part.strip()
        )

    @property
    def ops_networks(self) -> tuple[IPv4Network | IPv6Network, ...]:
        return tuple(
            ip_network(part.strip(), strict=False)
            for part in self.ops_allowed_networks.split(",")
            if part.strip()
        )

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def json_logs(self) -> bool:
        if self.log_format == "auto":
            return self.is_production
        return self.log_format == "json"


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
