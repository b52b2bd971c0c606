"""The idempotent inbox and the event router of a service.

Consumed events are handled inside a unit of work whose first statement inserts their event ids
into the inbox table (a unique key, not check-then-insert; one statement for a consumer's group of
events). A redelivered event finds its id there and has no second effect; the offset is committed
only after that transaction.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from libs.common.bus import Message
from libs.common.context import correlation_id
from libs.common.db import utcnow
from libs.common.events import Envelope, Payload
from libs.common.uow import UnitOfWork

log = logging.getLogger(__name__)

EventHandler = Callable[[UnitOfWork, Envelope], Awaitable[None]]
P = TypeVar("P", bound=Payload)


class EventRouter:
    """Maps event types to handlers; events of other types are acknowledged and ignored."""

    def __init__(self) -> None:
        self._handlers: dict[str, EventHandler] = {}

    def route(self, payload: type[P], use_case: Callable[[UnitOfWork, P], Awaitable[None]]) -> None:
        """Handle events of ``payload``'s type by calling ``use_case(uow, parsed_payload)``."""

        async def handle(uow: UnitOfWork, envelope: Envelope) -> None:
            await use_case(uow, payload.model_validate(envelope.data))

        self._handlers[payload.TYPE] = handle

    async def dispatch_many(
        self, uow_factory: Callable[[], UnitOfWork], messages: list[Message]
    ) -> list[bool]:
        """Handle ``messages`` in order in one transaction, each at most once in effect: one
        statement records the group's event ids in the inbox and says which were new; an id seen
        before, or a second copy inside the group, is skipped. Whether each had an effect.
        Raises if any handler does, and then nothing of the group is kept."""
        envelopes = [Envelope.from_bytes(message.value) for message in messages]
        now = utcnow()
        rows = {
            str(e.id): {"event_id": str(e.id), "event_type": e.type, "processed_at": now}
            for e in envelopes
            if e.type in self._handlers
        }
        if not rows:  # events of types nobody here handles: acknowledged, nothing recorded
            return [False] * len(messages)
        async with uow_factory() as uow:
            fresh = {
                event_id
                for (event_id,) in await uow.infra.record_events.execute(
                    uow.session, list(rows.values())
                )
            }
            applied: list[bool] = []
            for envelope in envelopes:
                event_id = str(envelope.id)
                if event_id not in fresh:
                    applied.append(False)
                    continue
                fresh.discard(event_id)  # a second copy in the group has no second effect
                token = correlation_id.set(envelope.correlation_id)
                try:
                    await self._handlers[envelope.type](uow, envelope)
                finally:
                    correlation_id.reset(token)
                applied.append(True)
                await asyncio.sleep(0)  # let requests of this process run between events
            await uow.commit()
        return applied

    async def dispatch(self, uow_factory: Callable[[], UnitOfWork], message: Message) -> bool:
        """Handle one message exactly once in effect. Returns whether it had an effect."""
        [applied] = await self.dispatch_many(uow_factory, [message])
        return applied
