"""The personnel feed of the mobile app (``GET /v1/me/notifications``): what happened to one's
claims and hours, newest first.

Each line is written by the use case that makes the change, inside the same unit of work: the
submission itself, and the handlers of the events claims already consumes through its inbox
(``claim.stage_passed``, ``claim.approved``, ``claim.rejected``, ``certificate.revoked``,
``sync.record_registered``), so a redelivered event adds no second line. ``compliance.reminder_due``
is emitted by claims itself: its line is written in the unit of work that emits the reminder
(and logs it once per person, year and date) rather than by consuming our own topic: one
transaction, no second hop, the same exactly-once.

The feed is keyset-paged on ``seq`` (descending) with the opaque cursors of
``libs.common.pagination``, and answers ``ETag`` / ``If-None-Match`` with 304 so a phone polling
every minute transfers nothing while nothing changed.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Response
from pydantic import BaseModel, Field
from sqlalchemy import func, select, update

from libs.common.asciitext import EntityId
from libs.common.auth import CurrentPrincipal, require_role
from libs.common.errors import DomainError
from libs.common.pagination import decode_cursor, encode_cursor
from libs.common.timestamps import Timestamp
from libs.common.uow import UnitOfWork
from services.claims import persons
from services.claims.deps import Uow
from services.claims.models import Notification

router = APIRouter(prefix="/v1/me", tags=["notifications"])

NotificationKind = Literal[
    "claim_submitted",
    "stage_passed",
    "claim_approved",
    "claim_rejected",
    "credit_revoked",
    "registered_at_province",
    "province_voided",
    "province_void_failed",
    "reminder_due",
]
DEFAULT_PAGE = 50
MAX_PAGE = 200


def notify(
    uow: UnitOfWork,
    person_id: str,
    kind: NotificationKind,
    message: str,
    *,
    claim_id: str | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """Add a line to the person's feed in the caller's unit of work (committed with it)."""
    uow.session.add(
        Notification(
            id=str(uuid.uuid4()),
            person_id=person_id,
            kind=kind,
            message=message,
            claim_id=claim_id,
            data=data or {},
            created_at=uow.now(),
        )
    )


# --- the feed -------------------------------------------------------------------------------


class NotificationView(BaseModel):
    id: str
    kind: NotificationKind
    message: str
    claim_id: str | None
    data: dict[str, Any]
    created_at: Timestamp
    read: bool


class NotificationPage(BaseModel):
    items: list[NotificationView]
    unread: int
    next_cursor: str | None


class MarkReadIn(BaseModel):
    ids: list[EntityId] | None = Field(
        default=None, max_length=500, description="the lines to mark read; omitted: all of them"
    )


class MarkReadView(BaseModel):
    marked: int
    unread: int


def _view(n: Notification) -> NotificationView:
    return NotificationView(
        id=n.id,
        kind=n.kind,  # type: ignore[arg-type]
        message=n.message,
        claim_id=n.claim_id,
        data=n.data,
        created_at=n.created_at.isoformat(),
        read=n.read_at is not None,
    )


def _before(cursor: str) -> int:
    (seq,) = decode_cursor(cursor, parts=1)
    try:
        return int(seq)
    except ValueError:
        raise DomainError(
            "the cursor is not one this API returned", code="invalid_cursor"
        ) from None


async def _unread(uow: UnitOfWork, person_id: str) -> int:
    count = await uow.session.scalar(
        select(func.count())
        .select_from(Notification)
        .where(Notification.person_id == person_id, Notification.read_at.is_(None))
    )
    return int(count or 0)


async def feed(uow: UnitOfWork, person_id: str, cursor: str | None, limit: int) -> NotificationPage:
    stmt = select(Notification).where(Notification.person_id == person_id)
    if cursor:
        stmt = stmt.where(Notification.seq < _before(cursor))
    rows = list(
        (await uow.session.scalars(stmt.order_by(Notification.seq.desc()).limit(limit + 1))).all()
    )
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(str(rows[-1].seq))
    return NotificationPage(
        items=[_view(n) for n in rows],
        unread=await _unread(uow, person_id),
        next_cursor=next_cursor,
    )


def etag_of(page: NotificationPage) -> str:
    """A strong validator of the page as sent: any new line or read mark changes it."""
    return '"' + hashlib.sha256(page.model_dump_json().encode()).hexdigest()[:32] + '"'


@router.get("/notifications", response_model=NotificationPage, responses={304: {}})
async def my_notifications(
    uow: Uow,
    principal: CurrentPrincipal,
    response: Response,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
    if_none_match: Annotated[str | None, Header()] = None,
) -> NotificationPage | Response:
    """The caller's feed, newest first; ``If-None-Match`` with the last ``ETag`` → 304."""
    require_role(principal, "personnel")
    person = await persons.my_person(uow, principal)
    page = await feed(uow, person.id, cursor, limit)
    etag = etag_of(page)
    headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
    if if_none_match and etag in {t.strip() for t in if_none_match.split(",")}:
        return Response(status_code=304, headers=headers)
    response.headers.update(headers)
    return page


@router.post("/notifications/read")
async def mark_read(
    uow: Uow, principal: CurrentPrincipal, body: MarkReadIn | None = None
) -> MarkReadView:
    """Mark the given lines (or all) of the caller's feed read; lines of others are ignored."""
    require_role(principal, "personnel")
    person = await persons.my_person(uow, principal)
    now: datetime = uow.now()
    stmt = (
        update(Notification)
        .where(Notification.person_id == person.id, Notification.read_at.is_(None))
        .values(read_at=now)
    )
    if body is not None and body.ids is not None:
        stmt = stmt.where(Notification.id.in_(body.ids))
    result = await uow.session.execute(stmt)
    marked = int(getattr(result, "rowcount", 0) or 0)
    unread = await _unread(uow, person.id)
    await uow.commit()
    return MarkReadView(marked=marked, unread=unread)
