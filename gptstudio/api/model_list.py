"""``GET /v1/models``: the published assistants the key's owner may chat with now (an assistant sold
only on paid tiers is listed to its subscribers and owner, not to everyone), in the OpenAI list
format (scope models:read)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from gptstudio.api.deps import api_user
from gptstudio.models.user import UserPublic
from gptstudio.services import assistant
from gptstudio.services.entitlements import entitlement

router = APIRouter(prefix="/v1")


@router.get("/models")
async def list_models(user: Annotated[UserPublic, Depends(api_user("models:read"))]) -> Any:
    assistants = await asyncio.to_thread(_usable, user)
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


def _usable(user: UserPublic) -> list[assistant.AssistantPublic]:
    return [
        a
        for a in assistant.list_available(actor=user)
        if entitlement(user_id=user.id, assistant_id=a.id).allowed
    ]
