"""Gauges of the sync service on ``/metrics``: the province queue by status, how old the oldest
record waiting in each status is, how many are in flight (leased by a sender), and the outbox rows
not yet published with the age of the oldest (a stuck relay shows here before anyone complains).

They are refreshed when ``/metrics`` is scraped (``ServiceSpec.metrics_refresh``: one query,
bounded by ``metrics_refresh_timeout_s``), so a scrape shows the queue as it is, not as it was at
the sender's last pass; the sender's loop no longer refreshes them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prometheus_client import Gauge
from sqlalchemy import case, func, literal, select, union_all

from libs.common.db import utcnow
from libs.common.service import ServiceState
from libs.common.uow import UnitOfWork
from services.sync.models import OutboundRecord, infra

WAITING = ("pending", "void_pending", "waiting_person")


# the outbox's row in the one query of ``queue_state`` (no record status looks like it)
_OUTBOX = "~outbox"


def _age_s(oldest: datetime | None, now: datetime) -> float:
    return max(0.0, (now - oldest).total_seconds()) if oldest else 0.0


async def queue_state(uow: UnitOfWork) -> dict[str, Any]:
    """Counts by status, in flight, the oldest waiting record's age per status, and the
    unpublished outbox rows with the oldest one's age: one query (per status: count, oldest,
    leased; plus one row for the outbox)."""
    now = utcnow()
    outbox = infra.outbox
    per_status = select(
        OutboundRecord.status,
        func.count(),
        func.min(OutboundRecord.created_at),
        func.sum(case((OutboundRecord.leased_until > now, 1), else_=0)),
    ).group_by(OutboundRecord.status)
    unpublished = select(
        literal(_OUTBOX), func.count(), func.min(outbox.c.created_at), literal(0)
    ).where(outbox.c.sent_at.is_(None))
    rows: list[Any] = list((await uow.session.execute(union_all(per_status, unpublished))).all())
    records: dict[str, int] = {}
    oldest: dict[str, datetime | None] = {}
    in_flight = 0
    outbox_rows, outbox_oldest = 0, None
    for status, count, first, leased in rows:
        if status == _OUTBOX:
            outbox_rows, outbox_oldest = int(count or 0), first
            continue
        records[str(status)] = int(count)
        oldest[str(status)] = first
        in_flight += int(leased or 0)
    return {
        "records": records,
        "in_flight": in_flight,
        "oldest_age_s": {status: round(_age_s(oldest.get(status), now), 1) for status in WAITING},
        "outbox_unpublished": outbox_rows,
        "outbox_oldest_age_s": round(_age_s(outbox_oldest, now), 1),
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


async def refresh_gauges(state: ServiceState) -> None:
    """The sync spec's ``metrics_refresh``: the gauges from the queue as it is now."""
    await SyncGauges.of(state).refresh(state)
