"""Reconciliation: our registered totals per person and year against the province's."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from libs.common.idnumber import mask_id_number
from libs.common.uow import UnitOfWork
from services.sync.models import OutboundRecord
from services.sync.province import ProvinceClient


async def reconcile(uow: UnitOfWork, client: ProvinceClient, year: int) -> dict[str, Any]:
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
    return {
        "year": year,
        "checked": checked,
        "matched": checked - len(mismatched),
        "mismatched": mismatched,
    }
