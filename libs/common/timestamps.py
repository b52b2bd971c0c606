"""The one RFC 3339 form every service writes its timestamps in: UTC with ``Z``
(``2026-11-27T04:00:00Z``, fractions of a second when there are any), whatever the clock's zone,
and a naive database value read as the UTC it was stored in. It is the form pydantic gives an
aware UTC ``datetime``, so ``Timestamp`` (a string) and ``UtcDatetime`` fields agree."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, WithJsonSchema

_SCHEMA = {"type": "string", "format": "date-time"}


def rfc3339(value: datetime | str) -> str:
    """``value`` (a ``datetime`` or an ISO 8601 string) in the one form: UTC, ``Z``."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return as_utc(moment).isoformat().replace("+00:00", "Z")


def as_utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive one is taken to be UTC already (how the databases store it)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _text(value: Any) -> Any:
    return rfc3339(value) if isinstance(value, datetime | str) else value


# a response field holding a timestamp as text (``created_at=row.created_at.isoformat()``)
Timestamp = Annotated[str, BeforeValidator(_text), WithJsonSchema(_SCHEMA)]
# a response field holding a ``datetime``
UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]
