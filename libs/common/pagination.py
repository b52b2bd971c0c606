"""Keyset (cursor) pagination on ``(created_at, id)``: stable under inserts, no OFFSET scans."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import InstrumentedAttribute

from libs.common.errors import DomainError

MAX_LIMIT = 500


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
    stmt: Select[Any],
    created_col: InstrumentedAttribute[Any],
    id_col: InstrumentedAttribute[Any],
    cursor: str | None,
    limit: int,
) -> Select[Any]:
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
        stmt = stmt.where(or_(created_col > created, and_(created_col == created, id_col > id_)))
    return stmt.order_by(created_col, id_col).limit(limit + 1)


def page(items: list[Any], limit: int) -> tuple[list[Any], str | None]:
    """Cut the extra row fetched by :func:`paginate` and return the next cursor."""
    if len(items) > limit:
        items = items[:limit]
        last = items[-1]
        return items, encode_cursor(last.created_at.isoformat(), last.id)
    return items, None
