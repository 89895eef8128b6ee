"""Embeddable widget routes: the iframe page, its config and its chat endpoint."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
