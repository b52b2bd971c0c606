"""The province sender: a background worker that registers due outbound records with the province
in batches (our record id is the idempotency key, so a resend never makes a second record), voids
revoked ones, and books receipts and failures; and the queue's summary by status."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any, cast

from pydantic import ValidationError
from sqlalchemy import Row, Table, bindparam, or_, select, update

from libs.common.db import utcnow
from libs.common.events import (
    SyncRecordFailed,
    SyncRecordRegistered,
    SyncRecordVoided,
    SyncRecordVoidFailed,
)
from libs.common.service import ServiceState
from libs.common.tasks import LoopTask
from libs.common.uow import UnitOfWork
from libs.contracts.province import ProvinceRecord
from services.sync.metrics import queue_state
from services.sync.models import OutboundRecord, RecordStatus
from services.sync.province import ProvinceClient, ProvinceRejected, ProvinceUnavailable

log = logging.getLogger(__name__)
VOID_MAX_ATTEMPTS = 8
ROUND = 500  # records leased, sent (in province batches) and booked together
_outbound = cast(Table, OutboundRecord.__table__)
# what sending a record needs (read as plain rows: no ORM objects for a round of 500)
_SENT_COLUMNS = (
    "id",
    "id_number",
    "name",
    "year",
    "subject",
    "hours",
    "category",
    "title",
    "source",
    "completed_at",
)


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

    async def _claim(self, status: RecordStatus, limit: int) -> list[Row[Any]]:
        """Lease up to ``limit`` due records of ``status`` to this sender (committed at once):
        their columns as plain rows, the lease set with one ``UPDATE``."""
        now = utcnow()
        records = _outbound.c
        async with self.state.uow() as uow:
            rows = list(
                (
                    await uow.session.execute(
                        select(*(records[name] for name in _SENT_COLUMNS))
                        .where(
                            records.status == status,
                            or_(records.next_attempt_at.is_(None), records.next_attempt_at <= now),
                            or_(records.leased_until.is_(None), records.leased_until <= now),
                        )
                        .order_by(records.created_at, records.id)
                        .limit(limit)
                        .with_for_update(skip_locked=True)
                    )
                ).all()
            )
            if rows:
                await uow.session.execute(
                    update(_outbound)
                    .where(records.id.in_([r.id for r in rows]))
                    .values(leased_until=now + self.lease)
                )
            await uow.commit()
        return rows

    async def send_due(self, limit: int = ROUND) -> int:
        """Register a round of due records; book the outcome with one statement per kind of
        outcome (receipts, refusals, retries), not one per record."""
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
        now = utcnow()
        c = _outbound.c
        async with self.state.uow() as uow:
            # what is still pending now (a revocation meanwhile has the last word)
            pending = {
                row.id: row
                for row in await uow.session.execute(
                    select(c.id, c.claim_id, c.attempts).where(
                        c.id.in_([r.id for r in records]), c.status == "pending"
                    )
                )
            }
            registered = [{"b_id": i, "b_receipt": outcome[i]} for i in pending if i in outcome]
            refused = [
                {"b_id": i, "b_error": failures[i]}
                for i in pending
                if i not in outcome and i in failures
            ]
            retried = [
                {
                    "b_id": i,
                    "b_next": now + self._backoff(row.attempts + 1),
                }
                for i, row in pending.items()
                if i not in outcome and i not in failures
            ]
            leased = [r.id for r in records if r.id not in pending]
            booked = c.id == bindparam("b_id"), c.status == "pending"
            done = {"attempts": c.attempts + 1, "leased_until": None, "updated_at": now}
            if registered:
                await uow.session.execute(
                    update(_outbound)
                    .where(*booked)
                    .values(
                        status="registered",
                        receipt=bindparam("b_receipt"),
                        registered_at=now,
                        last_error=None,
                        **done,
                    ),
                    registered,
                )
            if refused:
                await uow.session.execute(
                    update(_outbound)
                    .where(*booked)
                    .values(status="failed", last_error=bindparam("b_error"), **done),
                    refused,
                )
            if retried:
                await uow.session.execute(
                    update(_outbound)
                    .where(*booked)
                    .values(last_error=error, next_attempt_at=bindparam("b_next"), **done),
                    retried,
                )
            if leased:
                await uow.session.execute(
                    update(_outbound).where(c.id.in_(leased)).values(leased_until=None)
                )
            for record_id, row in pending.items():
                # a city-platform record (no claim) has its receipt on the record: nobody
                # consumes the event of one (a million of them would cost claims a
                # transaction each)
                if record_id in outcome and row.claim_id is not None:
                    uow.emit(
                        SyncRecordRegistered(
                            record_id=record_id,
                            claim_id=row.claim_id,
                            province_receipt=outcome[record_id],
                        ),
                        subject=row.claim_id,
                    )
                elif record_id not in outcome and record_id in failures:
                    uow.emit(
                        SyncRecordFailed(
                            record_id=record_id,
                            claim_id=row.claim_id,
                            reason=failures[record_id],
                        ),
                        subject=row.claim_id or record_id,
                    )
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
                        if fresh.claim_id is not None:  # the claim says so (its sync_status)
                            uow.emit(
                                SyncRecordVoidFailed(
                                    record_id=fresh.id, claim_id=fresh.claim_id, reason=refused
                                ),
                                subject=fresh.claim_id,
                            )
                    else:
                        fresh.next_attempt_at = utcnow() + self._backoff(fresh.attempts)
                else:
                    fresh.status, fresh.last_error = "voided", None
                    if fresh.claim_id is not None:
                        uow.emit(
                            SyncRecordVoided(record_id=fresh.id, claim_id=fresh.claim_id),
                            subject=fresh.claim_id,
                        )
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


def _to_province(record: Row[Any]) -> ProvinceRecord:
    return ProvinceRecord(
        record_id=record.id,
        id_number=record.id_number or "",
        name=record.name or "",
        year=record.year,
        subject=record.subject,
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
