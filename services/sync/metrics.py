"""Gauges of the sync service on ``/metrics``: the province queue by status, how old the oldest
record waiting in each status is, how many are in flight (leased by a sender), and the outbox rows
not yet published with the age of the oldest (a stuck relay shows here before anyone complains)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prometheus_client import Gauge
from sqlalchemy import func, select

from libs.common.db import utcnow
from libs.common.service import ServiceState
from libs.common.uow import UnitOfWork
from services.sync.models import OutboundRecord, infra

WAITING = ("pending", "void_pending", "waiting_person")


def _age_s(oldest: datetime | None, now: datetime) -> float:
    return max(0.0, (now - oldest).total_seconds()) if oldest else 0.0


async def queue_state(uow: UnitOfWork) -> dict[str, Any]:
    """Counts by status, in flight, the oldest waiting record's age per status, and the
    unpublished outbox rows with the oldest one's age."""
    now = utcnow()
    session = uow.session
    by_status = dict(
        (
            await session.execute(
                select(OutboundRecord.status, func.count()).group_by(OutboundRecord.status)
            )
        ).all()
    )
    oldest: dict[str, datetime] = dict(
        (
            await session.execute(
                select(OutboundRecord.status, func.min(OutboundRecord.created_at))
                .where(OutboundRecord.status.in_(WAITING))
                .group_by(OutboundRecord.status)
            )
        ).all()
    )
    in_flight = await session.scalar(
        select(func.count()).select_from(OutboundRecord).where(OutboundRecord.leased_until > now)
    )
    outbox = infra.outbox
    unpublished, oldest_outbox = (
        await session.execute(
            select(func.count(), func.min(outbox.c.created_at)).where(outbox.c.sent_at.is_(None))
        )
    ).one()
    return {
        "records": {str(status): int(count) for status, count in by_status.items()},
        "in_flight": int(in_flight or 0),
        "oldest_age_s": {status: round(_age_s(oldest.get(status), now), 1) for status in WAITING},
        "outbox_unpublished": int(unpublished or 0),
        "outbox_oldest_age_s": round(_age_s(oldest_outbox, now), 1),
    }


@dataclass
class SyncGauges:
    records: Gauge
    oldest: Gauge
    in_flight: Gauge
    outbox_rows: Gauge
    outbox_age: Gauge

    @classmethod
    def of(cls, state: ServiceState) -> SyncGauges:
        """The gauges on this app's registry, registered once."""
        metrics: Any = state.metrics
        existing = getattr(metrics, "sync_gauges", None)
        if isinstance(existing, SyncGauges):
            return existing
        registry = metrics.registry
        gauges = cls(
            records=Gauge(
                "sync_records", "Outbound province records by status", ["status"], registry=registry
            ),
            oldest=Gauge(
                "sync_oldest_record_age_seconds",
                "Age of the oldest record waiting in a status (pending, void_pending, ...)",
                ["status"],
                registry=registry,
            ),
            in_flight=Gauge(
                "sync_records_in_flight", "Records leased by a sender", registry=registry
            ),
            outbox_rows=Gauge(
                "outbox_unpublished_rows", "Outbox rows not yet published", registry=registry
            ),
            outbox_age=Gauge(
                "outbox_oldest_unpublished_age_seconds",
                "Age of the oldest outbox row not yet published",
                registry=registry,
            ),
        )
        metrics.sync_gauges = gauges
        return gauges

    async def refresh(self, state: ServiceState) -> None:
        async with state.uow() as uow:
            current = await queue_state(uow)
        for status, count in current["records"].items():
            self.records.labels(status).set(count)
        for status, age in current["oldest_age_s"].items():
            self.oldest.labels(status).set(age)
        self.in_flight.set(current["in_flight"])
        self.outbox_rows.set(current["outbox_unpublished"])
        self.outbox_age.set(current["outbox_oldest_age_s"])
