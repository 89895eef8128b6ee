"""Billing fixtures: real localstripe on 127.0.0.1, the recorded Stripe front, the app's API."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from gptstudio.settings import get_settings
from tests.billing.fake_stripe import StripeFront, serve
from tests.conftest import free_port

WEBHOOK_SECRET = "whsec_test_gptstudio"
# localstripe pickles its store to /tmp/localstripe.pickle after every write; tests don't need it.
LAUNCH = (
    "import sys, localstripe.resources as r; r.Store.dump_to_disk = lambda self: None; "
    "from localstripe.server import start; "
    "sys.argv = ['localstripe', '--from-scratch', '--port', sys.argv[1]]; start()"
)


def start_localstripe() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", LAUNCH, str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/js.stripe.com/v3/", timeout=2)
            return process, url
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail("localstripe did not start")
            time.sleep(0.2)


def configure_webhook(localstripe: str, url: str) -> None:
    body = f"url={url}&secret={WEBHOOK_SECRET}".encode()
    request = urllib.request.Request(f"{localstripe}/_config/webhooks/gptstudio", data=body)
    urllib.request.urlopen(request, timeout=5)


@pytest.fixture(scope="session")
def localstripe() -> Iterator[str]:
    """localstripe (PyPI) as a subprocess on a free port."""
    process, url = start_localstripe()
    yield url
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="session")
def stripe_front(localstripe: str) -> Iterator[StripeFront]:
    """The recorded front (Prices, Checkout, Portal, Meters) before localstripe; the webhooks of
    both are collected in ``front.deliveries``."""
    front = StripeFront(localstripe=localstripe, webhook_secret=WEBHOOK_SECRET)
    server = serve(front)
    configure_webhook(localstripe, f"{front.url}/_collect")
    yield front
    server.shutdown()


@pytest.fixture
def stripe(db: str, settings_env: pytest.MonkeyPatch, stripe_front: StripeFront) -> StripeFront:
    """The app configured for the offline Stripe (after ``db``, which resets the environment)."""
    settings_env.setenv("GPTSTUDIO_STRIPE_SECRET_KEY", "sk_test_gptstudio")
    settings_env.setenv("GPTSTUDIO_STRIPE_API_BASE", stripe_front.url)
    settings_env.setenv("GPTSTUDIO_STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
    settings_env.setenv("GPTSTUDIO_BILLING_GRACE_DAYS", "7")
    get_settings.cache_clear()
    stripe_front.requests.clear()
    stripe_front.deliveries.clear()
    stripe_front.meter_events.clear()
    stripe_front.idempotent.clear()
    stripe_front.webhook_url = ""
    return stripe_front


@pytest.fixture
def api() -> Iterator[TestClient]:
    from gptstudio.api import create_api

    with TestClient(create_api(), base_url="http://studio.test") as client:
        yield client
