"""The province sender: a background worker that registers due outbound records with the province
in batches (our record id is the idempotency key, so a resend never makes a second record), voids
revoked ones, and books receipts and failures; and the queue's summary by status."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import or_, select

from libs.common.db import utcnow
from libs.common.events import SyncRecordFailed, SyncRecordRegistered
from libs.common.service import ServiceState
from libs.common.tasks import LoopTask
from libs.common.uow import UnitOfWork
from libs.contracts.province import ProvinceRecord
from services.sync.metrics import queue_state
from services.sync.models import OutboundRecord, RecordStatus
from services.sync.province import ProvinceClient, ProvinceRejected, ProvinceUnavailable

log = logging.getLogger(__name__)
VOID_MAX_ATTEMPTS = 8


class ProvinceSender:
    """Background worker: sends due pending records in batches, books receipts and failures.

    Rows are claimed before they are sent: ``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL and
    a lease (``leased_until``) everywhere, so two sync replicas split the work instead of sending
    the same rows. A record the province contract cannot carry fails on its own, with the reason;
    a void the province refuses backs off and, after ``VOID_MAX_ATTEMPTS``, is ``void_failed``;
    neither ever blocks the records behind it."""

    def __init__(
        self,
        state: ServiceState,
        client: ProvinceClient,
        *,
        poll_s: float = 0.5,
        lease: timedelta | None = None,
    ) -> None:
        self.state = state
        self.client = client
        self.poll_s = poll_s
        self.lease = lease or timedelta(seconds=state.settings.sync_lease_s)
        self.max_backoff = timedelta(seconds=state.settings.sync_retry_max_s)
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

    async def _claim(self, status: RecordStatus, limit: int) -> list[OutboundRecord]:
        """Lease up to ``limit`` due records of ``status`` to this sender (committed at once)."""
        now = utcnow()
        async with self.state.uow() as uow:
            records = list(
                (
                    await uow.session.scalars(
                        select(OutboundRecord)
                        .where(
                            OutboundRecord.status == status,
                            or_(
                                OutboundRecord.next_attempt_at.is_(None),
                                OutboundRecord.next_attempt_at <= now,
                            ),
                            or_(
                                OutboundRecord.leased_until.is_(None),
                                OutboundRecord.leased_until <= now,
                            ),
                        )
                        .order_by(OutboundRecord.created_at, OutboundRecord.id)
                        .limit(limit)
                        .with_for_update(skip_locked=True)
                    )
                ).all()
            )
            for record in records:
                record.leased_until = now + self.lease
            await uow.commit()
        return records

    async def send_due(self, limit: int = 100) -> int:
        records = await self._claim("pending", limit)
        if not records:
            return 0
        payloads: list[ProvinceRecord] = []
        unfit: dict[str, str] = {}
        for record in records:
            try:
                payloads.append(_to_province(record))
            except ValidationError as exc:
                unfit[record.id] = contract_violation(exc)
        outcome, failures, error = await self._register(payloads) if payloads else ({}, {}, None)
        failures.update(unfit)
        async with self.state.uow() as uow:
            loaded = await uow.session.scalars(
                select(OutboundRecord).where(OutboundRecord.id.in_([r.id for r in records]))
            )
            by_id = {r.id: r for r in loaded}  # one query for the batch, not one a record
            for record in records:
                fresh = by_id[record.id]
                fresh.leased_until = None
                if fresh.status != "pending":
                    continue  # changed meanwhile (revoked): the handler's word stands
                fresh.attempts += 1
                if record.id in outcome:
                    fresh.status, fresh.receipt, fresh.registered_at = (
                        "registered",
                        outcome[record.id],
                        utcnow(),
                    )
                    fresh.last_error = None
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
                    fresh.next_attempt_at = utcnow() + self._backoff(fresh.attempts)
            await uow.commit()
        return len(outcome) + len(failures)

    async def void_due(self, limit: int = 100) -> int:
        """Void on the province the records whose credit was revoked here, each on its own: a
        refused void backs off (and gives up after ``VOID_MAX_ATTEMPTS``), the others go on."""
        records = await self._claim("void_pending", limit)
        done = 0
        outage: str | None = None
        for record in records:
            refused: str | None = None
            if outage is None:
                try:
                    await self.client.void(record.id, reason="credit revoked")
                except ProvinceUnavailable as exc:
                    outage = str(exc) or "province unavailable"
                except ProvinceRejected as exc:
                    if exc.status != 404:  # 404: the province never held it, nothing to void
                        refused = f"{exc.code}: {exc.reason}"
            async with self.state.uow() as uow:
                fresh = await uow.session.get(OutboundRecord, record.id)
                if fresh is None or fresh.status != "void_pending":
                    await uow.commit()
                    continue
                fresh.leased_until = None
                if outage is not None:
                    # the province is down: wait, without spending this record's attempts
                    fresh.next_attempt_at = utcnow() + self._backoff(fresh.attempts + 1)
                    fresh.last_error = outage
                elif refused is not None:
                    fresh.attempts += 1
                    fresh.last_error = f"void refused: {refused}"
                    if fresh.attempts >= VOID_MAX_ATTEMPTS:
                        fresh.status = "void_failed"
                    else:
                        fresh.next_attempt_at = utcnow() + self._backoff(fresh.attempts)
                else:
                    fresh.status, fresh.last_error = "voided", None
                    done += 1
                await uow.commit()
        return done

    def _backoff(self, attempts: int) -> timedelta:
        return min(timedelta(seconds=2 ** min(attempts, 10)), self.max_backoff)

    async def _register(
        self, records: list[ProvinceRecord]
    ) -> tuple[dict[str, str], dict[str, str], str | None]:
        """Receipts by record id, permanent failures by record id, and a transient error.

        A record the province refuses fails its whole batch; the batch is then sent again one
        record at a time, so only the refused record is marked failed.
        """
        try:
            receipts = await self.client.register(records)
            return {r.record_id: r.receipt for r in receipts}, {}, None
        except ProvinceUnavailable as exc:
            got = {r.record_id: r.receipt for r in exc.receipts}
            return got, {}, str(exc) or "province unavailable"
        except ProvinceRejected as exc:
            if len(records) == 1:
                return {}, {records[0].record_id: f"{exc.code}: {exc.reason}"}, None
        outcome: dict[str, str] = {}
        failures: dict[str, str] = {}
        error: str | None = None
        for record in records:
            got, failed, transient = await self._register([record])
            outcome.update(got)
            failures.update(failed)
            error = error or transient
        return outcome, failures, error


def contract_violation(exc: ValidationError) -> str:
    """Why the province contract cannot carry a record, without the offending value (it may be
    an ID number)."""
    reasons = "; ".join(
        f"{'.'.join(map(str, error['loc'])) or 'record'}: {error['msg']}" for error in exc.errors()
    )
    return f"province_contract: {reasons}"


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


async def summary(uow: UnitOfWork, breaker: str) -> dict[str, Any]:
    """The queue at a glance: counts by status, pending, in flight, failed, the oldest pending
    record's age and the province circuit breaker's state (of this replica)."""
    current = await queue_state(uow)
    records = current["records"]
    return {
        "records": records,
        "pending": records.get("pending", 0),
        "in_flight": current["in_flight"],
        "failed": records.get("failed", 0) + records.get("void_failed", 0),
        "waiting_person": records.get("waiting_person", 0),
        "void_pending": records.get("void_pending", 0),
        "oldest_pending_age_s": current["oldest_age_s"]["pending"],
        "outbox_unpublished": current["outbox_unpublished"],
        "outbox_oldest_age_s": current["outbox_oldest_age_s"],
        "circuit_breaker": breaker,
    }
