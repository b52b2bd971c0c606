"""The province sender: a background worker that registers due outbound records with the province
in batches (our record id is the idempotency key, so a resend never makes a second record), voids
revoked ones, and books receipts and failures; and the queue's summary by status."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import func, or_, select

from libs.common.db import utcnow
from libs.common.events import SyncRecordFailed, SyncRecordRegistered
from libs.common.service import ServiceState
from libs.common.tasks import LoopTask
from libs.common.uow import UnitOfWork
from libs.contracts.province import ProvinceRecord
from services.sync.models import OutboundRecord
from services.sync.province import ProvinceClient, ProvinceRejected, ProvinceUnavailable

log = logging.getLogger(__name__)
MAX_BACKOFF = timedelta(minutes=10)


class ProvinceSender:
    """Background worker: sends due pending records in batches, books receipts and failures."""

    def __init__(self, state: ServiceState, client: ProvinceClient, *, poll_s: float = 0.5) -> None:
        self.state = state
        self.client = client
        self.poll_s = poll_s
        self._loop = LoopTask("province-sender")

    async def start(self) -> None:
        self._loop.spawn(self._run())

    async def stop(self) -> None:
        await self._loop.cancel()  # the client is the app's: its lifespan closes it

    async def _run(self) -> None:
        while True:
            try:
                sent = await self.send_due() + await self.void_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("province sender failed; will retry")
                sent = 0
            if not sent:
                await asyncio.sleep(self.poll_s)

    async def send_due(self, limit: int = 100) -> int:
        now = utcnow()
        async with self.state.uow() as uow:
            records = list(
                (
                    await uow.session.scalars(
                        select(OutboundRecord)
                        .where(
                            OutboundRecord.status == "pending",
                            or_(
                                OutboundRecord.next_attempt_at.is_(None),
                                OutboundRecord.next_attempt_at <= now,
                            ),
                        )
                        .order_by(OutboundRecord.created_at)
                        .limit(limit)
                    )
                ).all()
            )
            await uow.commit()
        if not records:
            return 0
        outcome, failures, error = await self._register(records)
        async with self.state.uow() as uow:
            loaded = await uow.session.scalars(
                select(OutboundRecord).where(OutboundRecord.id.in_([r.id for r in records]))
            )
            by_id = {r.id: r for r in loaded}  # one query for the batch, not one a record
            for record in records:
                fresh = by_id[record.id]
                fresh.attempts += 1
                if record.id in outcome:
                    fresh.status, fresh.receipt, fresh.registered_at = (
                        "registered",
                        outcome[record.id],
                        utcnow(),
                    )
                    if fresh.claim_id is None:
                        # a city-platform record: no claim waits for its receipt, and nobody
                        # consumes the event of one (a million of them would cost claims a
                        # transaction each); the receipt is on the record
                        continue
                    uow.emit(
                        SyncRecordRegistered(
                            record_id=fresh.id,
                            claim_id=fresh.claim_id,
                            province_receipt=outcome[record.id],
                        ),
                        subject=fresh.claim_id or fresh.id,
                    )
                elif record.id in failures:
                    fresh.status, fresh.last_error = "failed", failures[record.id]
                    uow.emit(
                        SyncRecordFailed(
                            record_id=fresh.id,
                            claim_id=fresh.claim_id,
                            reason=failures[record.id],
                        ),
                        subject=fresh.claim_id or fresh.id,
                    )
                else:
                    fresh.last_error = error
                    delay = min(timedelta(seconds=2 ** min(fresh.attempts, 10)), MAX_BACKOFF)
                    fresh.next_attempt_at = utcnow() + delay
            await uow.commit()
        return len(outcome)

    async def void_due(self, limit: int = 100) -> int:
        """Void on the province the records whose credit was revoked here."""
        async with self.state.uow() as uow:
            ids = list(
                (
                    await uow.session.scalars(
                        select(OutboundRecord.id)
                        .where(OutboundRecord.status == "void_pending")
                        .limit(limit)
                    )
                ).all()
            )
        done = 0
        for record_id in ids:
            try:
                await self.client.void(record_id, reason="credit revoked")
            except ProvinceUnavailable:
                break
            except ProvinceRejected as exc:
                if exc.status != 404:
                    raise
            async with self.state.uow() as uow:
                record = await uow.session.get(OutboundRecord, record_id)
                if record is not None:
                    record.status = "voided"
                await uow.commit()
            done += 1
        return done

    async def _register(
        self, records: list[OutboundRecord]
    ) -> tuple[dict[str, str], dict[str, str], str | None]:
        """Receipts by record id, permanent failures by record id, and a transient error.

        A record the province refuses fails its whole batch; the batch is then sent again one
        record at a time, so only the refused record is marked failed.
        """
        try:
            receipts = await self.client.register([_to_province(r) for r in records])
            return {r.record_id: r.receipt for r in receipts}, {}, None
        except ProvinceUnavailable as exc:
            got = {r.record_id: r.receipt for r in exc.receipts}
            return got, {}, str(exc) or "province unavailable"
        except ProvinceRejected as exc:
            if len(records) == 1:
                return {}, {records[0].id: f"{exc.code}: {exc}"}, None
        outcome: dict[str, str] = {}
        failures: dict[str, str] = {}
        error: str | None = None
        for record in records:
            got, failed, transient = await self._register([record])
            outcome.update(got)
            failures.update(failed)
            error = error or transient
        return outcome, failures, error


def _to_province(record: OutboundRecord) -> ProvinceRecord:
    return ProvinceRecord(
        record_id=record.id,
        id_number=record.id_number or "",
        name=record.name or "",
        year=record.year,
        subject=record.subject,  # type: ignore[arg-type]
        hours=record.hours,
        category=record.category,
        title=record.title,
        source=record.source,
        completed_at=record.completed_at,
    )


async def summary(uow: UnitOfWork) -> dict[str, Any]:
    rows = await uow.session.execute(
        select(OutboundRecord.status, func.count()).group_by(OutboundRecord.status)
    )
    return {"records": {status: count for status, count in rows.all()}}
