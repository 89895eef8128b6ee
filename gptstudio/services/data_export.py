"""A user's own data as one zip archive (the right of access and portability), streamed: rows
are read in batches and the archive is written as it is sent, so its size is never held in
memory (zip data descriptors; :class:`_Pipe` hands each written piece to the response).

The archive holds ``profile.json``, ``conversations/<id>.json`` (with every message),
``usage.csv``, ``billing.json`` (subscriptions and invoices), ``api_keys.json`` (names, prefixes,
scopes and dates: never a secret or its hash), ``security.json`` (sessions, single-sign-on links,
two-step status) and ``audit.json`` (the audit entries by or about the user); for a creator
``assistants/<slug>/settings.json``, ``documents.json`` and the original uploads
(``documents/``, decrypted). ``README.txt`` says what each file is.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_
from sqlmodel import SQLModel, col, select

from gptstudio.db import session_scope
from gptstudio.errors import NotFound
from gptstudio.models import (
    ApiKey,
    Assistant,
    AuditEvent,
    Conversation,
    Document,
    Invoice,
    Message,
    OAuthIdentity,
    Plan,
    Subscription,
    UsageEvent,
    User,
    UserSession,
)
from gptstudio.models.user import UserPublic
from gptstudio.services import audit, file_crypto
from gptstudio.services.access import Client

BATCH = 500
README = """Your data from GPT Studio, exported {when} UTC.

profile.json          your account: e-mail, name, role, plan, dates, two-step status
conversations/        one file per conversation, with every message and its citations
usage.csv             tokens of every request you made (chat page, widget, API)
billing.json          your subscriptions and invoices
api_keys.json         your API keys: names, prefixes, scopes, dates (never the key itself)
security.json         your sign-in sessions and single-sign-on links
audit.json            security events by you or about your account
assistants/<slug>/    (creators) each assistant's settings, plans, its documents' list and
                      the original files you uploaded (documents/)
"""


@dataclass(frozen=True)
class Export:
    filename: str
    chunks: Iterator[bytes]


class _Pipe(io.RawIOBase):
    """A write-only, unseekable file whose written bytes :meth:`take` hands on."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        return out


def _row(model: SQLModel, *, leave_out: tuple[str, ...] = ()) -> dict[str, Any]:
    return {k: _plain(v) for k, v in model.model_dump().items() if k not in leave_out}


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _json(value: Any) -> bytes:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str).encode()


def export_account(*, actor: UserPublic, client: Client = Client()) -> Export:
    """The actor's archive (audited when asked for); iterate ``chunks`` to send it."""
    with session_scope() as session:
        user = session.get(User, actor.id)
        if user is None or user.deleted_at is not None:
            raise NotFound("This account no longer exists.")
        audit.record(
            session, action="account.exported", actor_id=actor.id, target=f"user:{actor.id}",
            ip=client.ip, user_agent=client.user_agent,
        )  # fmt: skip
        stamp = datetime.now().astimezone().strftime("%Y%m%d-%H%M%S")
    return Export(filename=f"gptstudio-data-{stamp}.zip", chunks=_archive(actor.id))


def _archive(user_id: int) -> Iterator[bytes]:
    pipe = _Pipe()
    with zipfile.ZipFile(pipe, mode="w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in _entries(user_id):
            with archive.open(name, mode="w", force_zip64=True) as member:
                if isinstance(content, bytes):
                    member.write(content)
                else:
                    for chunk in content:
                        member.write(chunk)
                        yield pipe.take()
            yield pipe.take()
    yield pipe.take()


def _entries(user_id: int) -> Iterator[tuple[str, bytes | Iterator[bytes]]]:
    yield "README.txt", README.format(when=datetime.now().strftime("%Y-%m-%d %H:%M")).encode()
    with session_scope() as session:
        user = session.get(User, user_id)
        assert user is not None
        yield (
            "profile.json",
            _json(
                _row(user, leave_out=("password_hash", "mfa_secret", "mfa_last_step"))
                | {"two_step_verification": user.mfa_enabled_at is not None}
            ),
        )
        yield "api_keys.json", _json(
            [_row(k, leave_out=("key_hash",))
             for k in session.exec(select(ApiKey).where(ApiKey.user_id == user_id))]
        )  # fmt: skip
        yield "security.json", _json({
            "sessions": [_row(s, leave_out=("token_hash",)) for s in session.exec(
                select(UserSession).where(UserSession.user_id == user_id))],
            "single_sign_on": [_row(i) for i in session.exec(
                select(OAuthIdentity).where(OAuthIdentity.user_id == user_id))],
        })  # fmt: skip
        yield "billing.json", _json({
            "subscriptions": [_row(s) for s in session.exec(
                select(Subscription).where(Subscription.user_id == user_id))],
            "invoices": [_row(i) for i in session.exec(
                select(Invoice).where(Invoice.user_id == user_id))],
        })  # fmt: skip
        events = session.exec(
            select(AuditEvent)
            .where(or_(col(AuditEvent.actor_id) == user_id,
                       col(AuditEvent.target) == f"user:{user_id}",
                       col(AuditEvent.target) == user.email))
            .order_by(col(AuditEvent.id))
        )  # fmt: skip
        yield "audit.json", _json([_row(e) for e in events])
        conversation_ids = list(
            session.exec(
                select(Conversation.id)
                .where(Conversation.user_id == user_id)
                .order_by(col(Conversation.id))
            )
        )
        assistants = list(
            session.exec(
                select(Assistant.id, Assistant.slug)
                .where(Assistant.owner_id == user_id)
                .order_by(col(Assistant.id))
            )
        )
    yield "usage.csv", _usage_csv(user_id)
    for conversation_id in conversation_ids:
        yield f"conversations/{conversation_id}.json", _conversation(conversation_id or 0)
    for assistant_id, slug in assistants:
        yield from _assistant(assistant_id or 0, slug)


def _usage_csv(user_id: int) -> Iterator[bytes]:
    fields = ["created_at", "assistant_id", "model_version_id", "source", "input_tokens",
              "output_tokens", "request_id"]  # fmt: skip
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(fields)
    last = 0
    while True:
        with session_scope() as session:
            rows = session.exec(
                select(UsageEvent)
                .where(UsageEvent.user_id == user_id, col(UsageEvent.id) > last)
                .order_by(col(UsageEvent.id))
                .limit(BATCH)
            ).all()
        for row in rows:
            writer.writerow([_plain(getattr(row, f)) for f in fields])
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
        if len(rows) < BATCH:
            return
        last = rows[-1].id or 0


def _conversation(conversation_id: int) -> bytes:
    with session_scope() as session:
        conversation = session.get(Conversation, conversation_id)
        assert conversation is not None
        messages = session.exec(
            select(Message)
            .where(Message.conversation_id == conversation_id)
            .order_by(col(Message.id))
        )
        return _json(
            _row(conversation) | {"messages": [_row(m, leave_out=("conversation_id",))
                                               for m in messages]}
        )  # fmt: skip


def _assistant(assistant_id: int, slug: str) -> Iterator[tuple[str, bytes | Iterator[bytes]]]:
    folder = f"assistants/{slug}"
    with session_scope() as session:
        assistant = session.get(Assistant, assistant_id)
        assert assistant is not None
        settings = _row(assistant, leave_out=("widget_secret",))
        settings["plans"] = [
            _row(p) for p in session.exec(select(Plan).where(Plan.assistant_id == assistant_id))
        ]
        documents = session.exec(
            select(Document).where(Document.assistant_id == assistant_id).order_by(col(Document.id))
        ).all()
        listed = [_row(d, leave_out=("storage_path", "encryption_key_id")) for d in documents]
        files = [(d.id, d.filename, d.storage_path) for d in documents if d.storage_path]
    yield f"{folder}/settings.json", _json(settings)
    yield f"{folder}/documents.json", _json(listed)
    for document_id, filename, path in files:
        try:
            chunks = file_crypto.iter_plain(path, name=filename)
            first = next(chunks, b"")
        except FileNotFoundError:
            continue  # listed in documents.json; its file is no longer stored
        except (file_crypto.KeyMissing, file_crypto.StoredFileDamaged) as error:
            note = f"{filename} could not be exported: {error}\n".encode()
            yield f"{folder}/documents/{document_id}-{filename}.unreadable.txt", note
            continue
        yield f"{folder}/documents/{document_id}-{filename}", _prepend(first, chunks)


def _prepend(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest
