"""Operations routes: ``/healthz`` (database and queue reachable) and ``/metrics`` (Prometheus)."""

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
    """``status`` ok or unavailable, then each part's own state."""

    model_config = ConfigDict(extra="allow")
    status: str


@router.get("/healthz", response_model=Health, responses={503: {"model": Health}})
async def healthz() -> JSONResponse:
    """200 with each part "ok", or 503 naming the part that is down."""
    checks = await asyncio.to_thread(health.check_all)
    healthy = all(value == "ok" for value in checks.values())
    return JSONResponse(
        {"status": "ok" if healthy else "unavailable", **checks},
        status_code=200 if healthy else 503,
    )


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
