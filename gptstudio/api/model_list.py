"""``GET /v1/models``: the published assistants, in the OpenAI list format (scope models:read)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from gptstudio.api.deps import api_user
from gptstudio.models.user import UserPublic
from gptstudio.services import assistant

router = APIRouter(prefix="/v1")


@router.get("/models")
async def list_models(user: Annotated[UserPublic, Depends(api_user("models:read"))]) -> Any:
    assistants = await asyncio.to_thread(assistant.list_available, actor=user)
    return {
        "object": "list",
        "data": [
            {
                "id": a.slug,
                "object": "model",
                "created": int(a.created_at.timestamp()),
                "owned_by": f"user-{a.owner_id}",
            }
            for a in assistants
        ],
    }
