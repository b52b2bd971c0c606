"""Keyset (cursor) pagination on ``(created_at, id)``: stable under inserts, no OFFSET scans."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import InstrumentedAttribute

from libs.common.errors import DomainError

MAX_LIMIT = 500

SelectT = TypeVar("SelectT", bound=Select[*tuple[Any, ...]])


def encode_cursor(*key: str) -> str:
    """An opaque cursor for the sort key of the last row a page returned."""
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, parts: int = 2) -> tuple[str, ...]:
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(key, list) or len(key) != parts:
            raise ValueError("wrong shape")
        return tuple(str(k) for k in key)
    except Exception as exc:
        raise DomainError("the cursor is not one this API returned", code="invalid_cursor") from exc


def paginate(
    stmt: SelectT,
    created_col: InstrumentedAttribute[Any],
    id_col: InstrumentedAttribute[Any],
    cursor: str | None,
    limit: int,
    *,
    descending: bool = False,
) -> SelectT:
    """Rows after the cursor's ``(created_at, id)`` in that order (newest first when
    ``descending``), one more than ``limit`` so :func:`page` knows whether another page follows."""
    if not 1 <= limit <= MAX_LIMIT:
        raise DomainError(f"limit must be 1..{MAX_LIMIT}", code="invalid_limit")
    if cursor:
        created_iso, id_ = decode_cursor(cursor)
        try:
            created = datetime.fromisoformat(created_iso)
        except ValueError as exc:
            raise DomainError(
                "the cursor is not one this API returned", code="invalid_cursor"
            ) from exc
        if descending:
            after = or_(created_col < created, and_(created_col == created, id_col < id_))
        else:
            after = or_(created_col > created, and_(created_col == created, id_col > id_))
        stmt = stmt.where(after)
    if descending:
        return stmt.order_by(created_col.desc(), id_col.desc()).limit(limit + 1)
    return stmt.order_by(created_col, id_col).limit(limit + 1)


def page(items: list[Any], limit: int) -> tuple[list[Any], str | None]:
    """Cut the extra row fetched by :func:`paginate` and return the next cursor."""
    if len(items) > limit:
        items = items[:limit]
        last = items[-1]
        return items, encode_cursor(last.created_at.isoformat(), last.id)
    return items, None
