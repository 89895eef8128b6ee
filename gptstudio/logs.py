"""Structured logging: JSON lines in production, readable lines in development."""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

from gptstudio.settings import Settings, get_settings

_TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def configure_logging(settings: Settings | None = None) -> None:
    """Send the ``gptstudio`` and ``trainer`` loggers to stderr in the configured format."""
    settings = settings or get_settings()
    handler = logging.StreamHandler(sys.stderr)
    if settings.json_logs:
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(logging.Formatter(_TEXT_FORMAT))
    for name in ("gptstudio", "trainer"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(settings.log_level.upper())
        logger.propagate = False
