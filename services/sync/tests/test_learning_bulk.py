"""City-platform records in bulk: a full 1,000-record push is stored with a few set-based
statements, announced in chunks (``learning.recorded_batch``), deduplicated per record id within
the push and against earlier pushes, and every accepted record reaches the province once."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from libs.common.events import Envelope, LearningRecordedBatch
from libs.common.idnumber import check_character
from services.sync.learning import CHUNK
from services.sync.models import LearningRecord, OutboundRecord
from services.sync.tests.test_sync_api import Sync
from services.sync.tests.test_sync_api import start_simulator as start_simulator
from services.sync.tests.test_sync_api import sync as sync
from tests.support import until


def _id_number(n: int) -> str:
    first17 = f"370402198{n % 10}0{(n % 9) + 1}{(n % 28) + 1:02d}{n % 1000:03d}"[:17]
    return first17 + check_character(first17)


def _record(n: int, **overrides: Any) -> dict[str, Any]:
    return {
        "record_id": f"zzzj-bulk-{n:06d}",
        "id_number": _id_number(n),
        "year": 2026,
        "subject": "public" if n % 2 else "professional",
        "hours": 1.5,
        "course": f"课程 {n}",
        "completed_at": "2026-06-01T10:00:00+08:00",
        **overrides,
    }


async def _batches(sync: Sync) -> list[LearningRecordedBatch]:
    outbox = sync.app.state.service.spec.infra.outbox
    async with sync.app.state.service.uow() as uow:
        payloads = (
            await uow.session.scalars(
                select(outbox.c.payload)
                .where(outbox.c.event_type == LearningRecordedBatch.TYPE)
                .order_by(outbox.c.id)
            )
        ).all()
    return [LearningRecordedBatch.model_validate(Envelope.from_bytes(p).data) for p in payloads]


async def test_a_full_push_is_stored_announced_in_chunks_and_registered_once(sync: Sync) -> None:
    records = [_record(n) for n in range(1, 1000)]
    records[10] = _record(11, hours=0)  # refused, the rest is not
    records.append(records[20])  # the same record twice in one push
    records[30]["completed_at"] = "2026-06-02 09:00:00"  # no offset: Beijing time
    r = await sync.http.post(
        "/v1/learning-records", json={"records": records}, headers=sync.auth("system")
    )
    assert r.status_code == 202, r.text
    body = r.json()
    assert (body["accepted"], body["duplicates"]) == (998, 1)
    assert [x["record_id"] for x in body["rejected"]] == ["zzzj-bulk-000011"]

    batches = await _batches(sync)
    assert [len(b.records) for b in batches] == [CHUNK, 998 - CHUNK]
    announced = [rec.record_id for b in batches for rec in b.records]
    assert len(announced) == len(set(announced)) == 998
    naive = next(rec for b in batches for rec in b.records if rec.record_id == "zzzj-bulk-000031")
    assert naive.completed_at.isoformat() == "2026-06-02T01:00:00+00:00"

    # a resend of part of the push (and one new record) stores and announces only the new one
    again = [*records[:5], _record(5000)]
    r = await sync.http.post(
        "/v1/learning-records", json={"records": again}, headers=sync.auth("system")
    )
    assert (r.json()["accepted"], r.json()["duplicates"]) == (1, 5)
    batches = await _batches(sync)
    assert [rec.record_id for rec in batches[-1].records] == ["zzzj-bulk-005000"]

    async def all_registered() -> bool:
        async with sync.app.state.service.uow() as uow:
            stored = await uow.session.scalar(select(func.count()).select_from(LearningRecord))
            done = await uow.session.scalar(
                select(func.count())
                .select_from(OutboundRecord)
                .where(OutboundRecord.status == "registered")
            )
        assert stored == 999
        return done == 999

    await until(all_registered, timeout_s=60)
    assert (await sync.province.stats())["records"] == 999


async def test_records_completed_outside_their_year_are_refused_per_row(sync: Sync) -> None:
    """四(二): a record of 2026 completed in 2027 or in 2025 (Beijing time) counts for no year;
    the rest of the push is accepted."""
    records = [
        _record(7001, completed_at="2027-02-01T10:00:00+08:00"),
        _record(7002, completed_at="2025-06-01T10:00:00+08:00"),
        # 2025-12-31 23:30 in UTC is 2026-01-01 07:30 in Beijing: in the year
        _record(7003, completed_at="2025-12-31T23:30:00+00:00"),
        # 2026-12-31 20:00 in UTC is 2027-01-01 04:00 in Beijing: outside it
        _record(7004, completed_at="2026-12-31T20:00:00Z"),
        _record(7005),
    ]
    r = await sync.http.post(
        "/v1/learning-records", json={"records": records}, headers=sync.auth("system")
    )
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["accepted"] == 2
    refused = {x["record_id"]: x["reason"] for x in body["rejected"]}
    assert set(refused) == {"zzzj-bulk-007001", "zzzj-bulk-007002", "zzzj-bulk-007004"}
    assert "2027-02-01" in refused["zzzj-bulk-007001"]
    assert "outside the record's year 2026" in refused["zzzj-bulk-007002"]
    async with sync.app.state.service.uow() as uow:
        stored = set(
            (
                await uow.session.scalars(
                    select(LearningRecord.record_id).where(
                        LearningRecord.record_id.like("zzzj-bulk-007%")
                    )
                )
            ).all()
        )
    assert stored == {"zzzj-bulk-007003", "zzzj-bulk-007005"}
