"""``Idempotency-Key`` for POSTs that create something.

The key is scoped to the caller. The stored response is written in the same transaction as the
effect, so a replay after success returns the first result and never a second effect. The same
key with a different body is refused (422); a key whose first request is still running is 409.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import Table, bindparam, select
from sqlalchemy.exc import IntegrityError

from libs.common.errors import Conflict, RuleViolation
from libs.common.uow import UnitOfWork


def request_hash(body: Any) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


_lookups: dict[Table, Any] = {}  # per table, built once (building costs more than running it)


def _lookup(table: Table) -> Any:
    statement = _lookups.get(table)
    if statement is None:
        statement = _lookups[table] = select(table.c.request_hash, table.c.response).where(
            table.c.caller == bindparam("caller"), table.c.key == bindparam("key")
        )
    return statement


async def replay(uow: UnitOfWork, caller: str, key: str | None, body_hash: str) -> Any | None:
    """The stored response of an earlier request with this key, or None if there was none."""
    if not key:
        return None
    lookup = _lookup(uow.infra.idempotency_keys)
    row = (await uow.session.execute(lookup, {"caller": caller, "key": key})).first()
    if row is None:
        return None
    if row.request_hash != body_hash:
        raise RuleViolation(
            "this Idempotency-Key was used with a different request body",
            code="idempotency_key_reused",
        )
    return row.response


async def remember(
    uow: UnitOfWork, caller: str, key: str | None, body_hash: str, status: int, response: Any
) -> None:
    """Store the response beside the effect; call just before ``uow.commit()``."""
    if not key:
        return
    await uow.session.execute(
        uow.infra.insert_idempotency_key,
        {
            "caller": caller,
            "key": key,
            "request_hash": body_hash,
            "status_code": status,
            "response": response,
        },
    )


def is_key_race(exc: IntegrityError) -> bool:
    return "idempotency" in str(exc.orig).lower()


def in_progress() -> Conflict:
    return Conflict(
        "a request with this Idempotency-Key is still being processed",
        code="idempotency_in_progress",
    )


async def create_once(
    uow_factory: Callable[[], UnitOfWork],
    caller: str,
    key: str | None,
    body: Any,
    create: Callable[[UnitOfWork], Awaitable[dict[str, Any]]],
) -> Any:
    """Run ``create`` in a unit of work unless ``key`` was seen from ``caller`` before, in which
    case the first response comes back; the response is stored beside the effect."""
    body_hash = request_hash(body)
    try:
        async with uow_factory() as uow:
            earlier = await replay(uow, caller, key, body_hash)
            if earlier is not None:
                return earlier
            view = await create(uow)
            await remember(uow, caller, key, body_hash, 201, view)
            await uow.commit()
            return view
    except IntegrityError as exc:
        if is_key_race(exc):
            raise in_progress() from exc
        raise
