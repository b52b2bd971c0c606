"""Reconciliation: our registered totals per person and year against the province's, and its
repair: for each mismatched person the records are compared one by one; a record we hold as
registered that the province lacks is queued again, a record the province holds beyond ours (voided
or failed here, or unknown to us) is voided there. ``repair=False`` (the default) only reports what
a repair would do. :class:`ScheduledReconciliation` runs it on a schedule (daily by default)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlalchemy import func, select

from libs.common.idnumber import mask_id_number
from libs.common.service import ServiceState
from libs.common.tasks import LoopTask
from libs.common.uow import UnitOfWork
from services.sync.models import OutboundRecord
from services.sync.province import ProvinceClient, ProvinceRejected

log = logging.getLogger(__name__)


async def reconcile(
    uow: UnitOfWork, client: ProvinceClient, year: int, *, repair: bool = False
) -> dict[str, Any]:
    """Compare, per person, the hours we registered for ``year`` with what the province holds.

    Ours counts records in status ``registered``; a record waiting to be voided still counts at
    the province and so shows as a mismatch until the sender has voided it."""
    rows = await uow.session.execute(
        select(
            OutboundRecord.id_number,
            OutboundRecord.subject,
            func.sum(OutboundRecord.hours),
            func.max(OutboundRecord.person_id),
        )
        .where(OutboundRecord.year == year, OutboundRecord.status == "registered")
        .group_by(OutboundRecord.id_number, OutboundRecord.subject)
    )
    ours: dict[str, dict[str, float]] = {}
    person_of: dict[str, str | None] = {}
    for id_number, subject, hours, person_id in rows.all():
        key = str(id_number)  # registered records always carry the ID number
        ours.setdefault(key, {"public": 0.0, "professional": 0.0})[subject] = round(float(hours), 1)
        person_of[key] = person_of.get(key) or person_id
    theirs: dict[str, dict[str, float]] = {}
    async for total in client.iter_totals(year):
        theirs[total.id_number] = {
            "public": round(total.public, 1),
            "professional": round(total.professional, 1),
        }
    zero = {"public": 0.0, "professional": 0.0}
    mismatched = [
        {
            "person_id": person_of.get(id_number),
            "id_number_masked": mask_id_number(id_number),
            "ours": ours.get(id_number, zero),
            "province": theirs.get(id_number, zero),
        }
        for id_number in sorted(ours.keys() | theirs.keys())
        if ours.get(id_number, zero) != theirs.get(id_number, zero)
    ]
    checked = len(ours.keys() | theirs.keys())
    requeue: list[str] = []
    void: list[str] = []
    for id_number in sorted(ours.keys() | theirs.keys()):
        if ours.get(id_number, zero) != theirs.get(id_number, zero):
            lacking, beyond = await _record_differences(uow, client, id_number, year)
            requeue += lacking
            void += beyond
    if repair:
        await _repair(uow, client, requeue, void)
    return {
        "year": year,
        "checked": checked,
        "matched": checked - len(mismatched),
        "mismatched": mismatched,
        "repair": {"applied": repair, "requeue": requeue, "void": void},
    }


async def _record_differences(
    uow: UnitOfWork, client: ProvinceClient, id_number: str, year: int
) -> tuple[list[str], list[str]]:
    """Record ids we registered that the province lacks, and ids it holds beyond ours."""
    held = {r.record_id for r in (await client.person_hours(id_number, year)).records}
    mine = dict(
        (
            await uow.session.execute(
                select(OutboundRecord.id, OutboundRecord.status).where(
                    OutboundRecord.id_number == id_number, OutboundRecord.year == year
                )
            )
        ).all()
    )
    lacking = sorted(
        rid for rid, status in mine.items() if status == "registered" and rid not in held
    )
    # pending / void_pending records are on their way already: the sender settles them
    beyond = sorted(
        rid for rid in held if mine.get(rid) in (None, "voided", "failed", "void_failed")
    )
    return lacking, beyond


async def _repair(
    uow: UnitOfWork, client: ProvinceClient, requeue: list[str], void: list[str]
) -> None:
    for record_id in requeue:
        record = await uow.session.get(OutboundRecord, record_id)
        if record is not None and record.status == "registered":
            record.status, record.attempts, record.next_attempt_at = "pending", 0, None
            record.last_error = "re-queued by reconciliation: the province lacked it"
    for record_id in void:
        record = await uow.session.get(OutboundRecord, record_id)
        if record is not None:
            record.status, record.attempts, record.next_attempt_at = "void_pending", 0, None
            record.last_error = "void queued by reconciliation: the province held it"
        else:
            try:  # not ours at all: nothing to queue, void it there now
                await client.void(record_id, reason="reconciliation: unknown to the city")
            except ProvinceRejected as exc:
                if exc.status != 404:
                    raise
    await uow.commit()


class ScheduledReconciliation:
    """A worker that reconciles (and by default repairs) this year and last year every
    ``CE_RECONCILE_INTERVAL_S`` seconds (a day by default; 0 turns it off)."""

    def __init__(self, state: ServiceState, client: ProvinceClient) -> None:
        self.state = state
        self.client = client
        self.interval_s = state.settings.reconcile_interval_s
        self.repair = state.settings.reconcile_repair
        self.runs = 0
        self._loop = LoopTask("reconciliation")

    async def start(self) -> None:
        if self.interval_s > 0:
            self._loop.spawn(self._run())

    async def stop(self) -> None:
        await self._loop.cancel()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("scheduled reconciliation failed; next run as scheduled")

    async def run_once(self) -> list[dict[str, Any]]:
        year = self.state.today().year
        results = []
        for y in (year - 1, year):
            async with self.state.uow() as uow:
                result = await reconcile(uow, self.client, y, repair=self.repair)
            log.info(
                "reconciliation %d: %d checked, %d mismatched, %d re-queued, %d voided (%s)",
                y,
                result["checked"],
                len(result["mismatched"]),
                len(result["repair"]["requeue"]),
                len(result["repair"]["void"]),
                "repaired" if self.repair else "dry run",
            )
            results.append(result)
        self.runs += 1
        return results
