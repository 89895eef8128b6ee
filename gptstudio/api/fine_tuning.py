"""OpenAI's fine-tuning API (API key with scope ``fine_tuning``): ``/v1/files`` and
``/v1/fine_tuning/jobs`` with its ``cancel``, ``events`` and ``checkpoints``, in OpenAI's object
shapes, so scripts written for OpenAI run with only ``base_url`` and the key changed. What a job
is here (an assistant's training job on a dataset version made from the files) is
:mod:`gptstudio.services.fine_tuning`'s.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile

from gptstudio.api.deps import api_user
from gptstudio.errors import InvalidInput
from gptstudio.models import FineTuningFile
from gptstudio.models.user import UserPublic
from gptstudio.services import fine_tuning
from gptstudio.settings import get_settings

router = APIRouter(prefix="/v1")
User = Annotated[UserPublic, Depends(api_user("fine_tuning"))]


def _file(row: FineTuningFile) -> dict[str, Any]:
    return {
        "id": row.public_id, "object": "file", "bytes": row.bytes,
        "created_at": int(row.created_at.timestamp()), "filename": row.filename,
        "purpose": row.purpose, "status": "processed", "status_details": None,
        "expires_at": None,
    }  # fmt: skip


def _page(data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {
        "object": "list", "data": data, "has_more": has_more,
        "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None,
    }  # fmt: skip


@router.post("/files")
async def create_file(request: Request, user: User) -> dict[str, Any]:
    """Upload a training file: multipart fields ``file`` and ``purpose`` (``fine-tune``)."""
    limit = get_settings().max_upload_mb * 1024 * 1024
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit + 64 * 1024:
        raise InvalidInput(f"The file is larger than the {limit // 2**20} MB upload limit.")
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise InvalidInput("Send the file as multipart/form-data with fields file and purpose.")
    async with request.form(max_files=1, max_fields=8) as form:
        upload, purpose = form.get("file"), form.get("purpose")
        if not isinstance(upload, UploadFile):
            raise InvalidInput("file: send the training file as a multipart file field.")
        if not isinstance(purpose, str) or not purpose:
            raise InvalidInput("purpose: required ('fine-tune').")
        data = await upload.read(limit + 1)
        name = upload.filename or ""
    row = await asyncio.to_thread(
        fine_tuning.create_file, actor=user, filename=name, purpose=purpose, data=data
    )
    return _file(row)


@router.get("/files")
async def list_files(
    user: User, purpose: str = "", limit: int = 20, after: str = "",
    order: Literal["asc", "desc"] = "desc",
) -> dict[str, Any]:  # fmt: skip
    page = await asyncio.to_thread(
        fine_tuning.list_files, actor=user, purpose=purpose, limit=limit, after=after, order=order
    )
    return _page([_file(row) for row in page.items], page.has_more)


@router.get("/files/{file_id}")
async def retrieve_file(file_id: str, user: User) -> dict[str, Any]:
    return _file(await asyncio.to_thread(fine_tuning.get_file, actor=user, file_id=file_id))


@router.delete("/files/{file_id}")
async def delete_file(file_id: str, user: User) -> dict[str, Any]:
    await asyncio.to_thread(fine_tuning.delete_file, actor=user, file_id=file_id)
    return {"id": file_id, "object": "file", "deleted": True}


@router.get("/files/{file_id}/content")
async def file_content(file_id: str, user: User) -> FileResponse:
    path = await asyncio.to_thread(fine_tuning.file_content, actor=user, file_id=file_id)
    return FileResponse(path, media_type="application/jsonl")


# --- jobs ---------------------------------------------------------------------------------


class CreateJob(BaseModel):
    """The body of ``POST /v1/fine_tuning/jobs`` (OpenAI's fields; ``integrations`` only empty)."""

    model: str = Field(min_length=1, max_length=200)
    training_file: str = Field(min_length=1, max_length=40)
    validation_file: str | None = Field(default=None, max_length=40)
    suffix: str | None = Field(default=None, max_length=200)
    seed: int | None = None
    hyperparameters: dict[str, Any] | None = None
    method: dict[str, Any] | None = None
    metadata: dict[str, str] | None = None
    integrations: list[Any] | None = None


def _job(view: fine_tuning.JobView) -> dict[str, Any]:
    api, job, status = view.api, view.job, view.status
    config = job.config
    hyper = {
        "n_epochs": config.get("epochs"), "batch_size": config.get("batch_size"),
        "learning_rate_multiplier": api.hyperparameters.get("learning_rate_multiplier") or 1.0,
    }  # fmt: skip
    error = None
    if status == "failed":
        error = {"code": "training_failed", "message": job.error or "The job failed.",
                 "param": None}  # fmt: skip
    data = job.progress.get("data")
    data = data if isinstance(data, dict) else {}
    return {
        "object": "fine_tuning.job",
        "id": api.public_id,
        "model": api.model,
        "created_at": int(api.created_at.timestamp()),
        "finished_at": int(job.finished_at.timestamp()) if job.finished_at else None,
        "fine_tuned_model": api.fine_tuned_model if view.version is not None else None,
        "organization_id": f"user-{api.owner_id}",
        "result_files": [],
        "status": status,
        "validation_file": api.validation_file or None,
        "training_file": api.training_file,
        "hyperparameters": hyper,
        "method": {"type": "supervised", "supervised": {"hyperparameters": hyper}},
        "trained_tokens": _trained_tokens(data, config) if status == "succeeded" else None,
        "error": error,
        "user_provided_suffix": api.suffix or None,
        "seed": api.seed,
        "estimated_finish": _estimated_finish(view),
        "integrations": [],
        "metadata": api.meta or None,
        # GPT Studio's own (OpenAI clients ignore them): where the job shows in the studio.
        "assistant": view.assistant_slug,
        "training_job_id": job.id,
        "model_version_id": view.version.id if view.version else None,
    }


def _trained_tokens(data: dict[str, Any], config: dict[str, Any]) -> int | None:
    """The tokens of the training examples the trainer kept, times the passes over them."""
    train = data.get("train")
    tokens = train.get("tokens") if isinstance(train, dict) else None
    return int(tokens) * int(config.get("epochs") or 1) if isinstance(tokens, int) else None


def _estimated_finish(view: fine_tuning.JobView) -> int | None:
    eta = view.job.progress.get("eta_seconds")
    beat = view.job.heartbeat_at
    if view.job.status != "running" or not isinstance(eta, (int, float)) or beat is None:
        return None
    return int(beat.timestamp() + eta)


@router.post("/fine_tuning/jobs")
async def create_job(body: CreateJob, user: User) -> dict[str, Any]:
    if body.integrations:
        raise InvalidInput("integrations are not supported; leave the list empty.")
    made = await asyncio.to_thread(
        fine_tuning.create_job, actor=user, model=body.model, training_file=body.training_file,
        validation_file=body.validation_file, suffix=body.suffix, seed=body.seed,
        hyperparameters=body.hyperparameters, method=body.method, metadata=body.metadata,
    )  # fmt: skip
    view = await asyncio.to_thread(fine_tuning.get_job, actor=user, job_id=made.public_id)
    return _job(view)


@router.get("/fine_tuning/jobs")
async def list_jobs(user: User, after: str = "", limit: int = 20) -> dict[str, Any]:
    page = await asyncio.to_thread(fine_tuning.list_jobs, actor=user, after=after, limit=limit)
    return _page([_job(view) for view in page.items], page.has_more)


@router.get("/fine_tuning/jobs/{job_id}")
async def retrieve_job(job_id: str, user: User) -> dict[str, Any]:
    return _job(await asyncio.to_thread(fine_tuning.get_job, actor=user, job_id=job_id))


@router.post("/fine_tuning/jobs/{job_id}/cancel")
async def cancel_job(job_id: str, user: User) -> dict[str, Any]:
    return _job(await asyncio.to_thread(fine_tuning.cancel_job, actor=user, job_id=job_id))


@router.get("/fine_tuning/jobs/{job_id}/events")
async def list_events(job_id: str, user: User, after: str = "", limit: int = 20) -> dict[str, Any]:
    page = await asyncio.to_thread(
        fine_tuning.list_events, actor=user, job_id=job_id, after=after, limit=limit
    )
    data = [
        {
            "object": "fine_tuning.job.event",
            "id": event.id,
            "created_at": int(event.created_at.timestamp()),
            "level": event.level,
            "message": event.message,
            "type": event.type,
            "data": event.data or {},
        }
        for event in page.items
    ]
    return _page(data, page.has_more)


@router.get("/fine_tuning/jobs/{job_id}/checkpoints")
async def list_checkpoints(
    job_id: str, user: User, after: str = "", limit: int = 10
) -> dict[str, Any]:
    if not 1 <= limit <= fine_tuning.MAX_LIST:
        raise InvalidInput(f"limit must be between 1 and {fine_tuning.MAX_LIST}.")
    view = await asyncio.to_thread(fine_tuning.get_job, actor=user, job_id=job_id)
    checkpoints = fine_tuning.checkpoints_of(view)
    if after:
        ids = [c["id"] for c in checkpoints]
        checkpoints = checkpoints[ids.index(after) + 1 :] if after in ids else []
    return _page(checkpoints[:limit], len(checkpoints) > limit)
