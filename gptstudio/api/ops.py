"""Operations routes: ``/healthz`` (database, queue and engine reachable) and ``/metrics``
(Prometheus)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from pydantic import BaseModel, ConfigDict

from gptstudio.services import health

router = APIRouter()


class Health(BaseModel):
    """``status`` ok, degraded (the engine is down) or unavailable, then each part's state."""

    model_config = ConfigDict(extra="allow")
    status: str


@router.get("/healthz", response_model=Health, responses={503: {"model": Health}})
async def healthz() -> JSONResponse:
    """200 with each part "ok"; 200 "degraded" naming the engine when only the engine is down
    (pages, sign-in and jobs still work; answers are 503s until it is back: see
    :mod:`gptstudio.services.health`); 503 naming the database or queue when either is down."""
    checks = await asyncio.to_thread(health.check_all)
    if any(checks[part] != "ok" for part in health.REQUIRED):
        return JSONResponse({"status": "unavailable", **checks}, status_code=503)
    status = "ok" if all(value == "ok" for value in checks.values()) else "degraded"
    return JSONResponse({"status": status, **checks}, status_code=200)


class QueueCollector(Collector):
    """Reads the queue depth at scrape time (-1 when the broker is unreachable)."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            depth = float(health.queue_depth())
        except Exception:  # noqa: BLE001 (a scrape must not fail when the broker is down)
            depth = -1.0
        yield GaugeMetricFamily("gptstudio_queue_depth", "Tasks waiting in the queue", value=depth)


REGISTRY.register(QueueCollector())


@router.get("/metrics")
async def metrics() -> Response:
    """Prometheus text exposition of every metric of this process."""
    body = await asyncio.to_thread(generate_latest, REGISTRY)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
