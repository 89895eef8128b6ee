"""``GET /v1/models``: the published assistants the key's owner may chat with now (an assistant sold
only on paid tiers is listed to its subscribers and owner, not to everyone), in the OpenAI list
format (scope models:read); and the ``ft:`` models of the owner's fine-tuning jobs."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from gptstudio.api.deps import api_user
from gptstudio.models import Role
from gptstudio.models.user import UserPublic
from gptstudio.services import assistant, fine_tuning
from gptstudio.services.entitlements import entitlement

router = APIRouter(prefix="/v1")


@router.get("/models")
async def list_models(user: Annotated[UserPublic, Depends(api_user("models:read"))]) -> Any:
    assistants = await asyncio.to_thread(_usable, user)
    tuned = await asyncio.to_thread(_fine_tuned, user)
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
        ]
        + [
            {
                "id": m.name,
                "object": "model",
                "created": int(m.created_at.timestamp()),
                "owned_by": f"user-{user.id}",
            }
            for m in tuned
        ],
    }


def _fine_tuned(user: UserPublic) -> list[fine_tuning.FineTunedModel]:
    """The ``ft:`` models of the key owner's fine-tuning jobs (listed to the owner only)."""
    if user.role not in (Role.creator, Role.admin):
        return []
    return fine_tuning.owned_models(actor=user)


def _usable(user: UserPublic) -> list[assistant.AssistantPublic]:
    return [
        a
        for a in assistant.list_available(actor=user)
        if entitlement(user_id=user.id, assistant_id=a.id).allowed
    ]
