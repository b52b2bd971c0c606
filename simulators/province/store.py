"""The simulator's state in one SQLite file."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from libs.contracts.province import (
    HeldRecord,
    PersonHours,
    PersonTotal,
    ProvinceRecord,
    Receipt,
    VoidReceipt,
)
from simulators.province.problems import ProvinceProblem


def _tenths(hours: float) -> int:
    return round(hours * 10)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    record_id     TEXT PRIMARY KEY,
    receipt       TEXT NOT NULL UNIQUE,
    id_number     TEXT NOT NULL,
    name          TEXT NOT NULL,
    year          INTEGER NOT NULL,
    subject       TEXT NOT NULL CHECK (subject IN ('public', 'professional')),
    hours_tenths  INTEGER NOT NULL CHECK (hours_tenths > 0),
    category      TEXT NOT NULL,
    title         TEXT NOT NULL,
    source        TEXT NOT NULL,
    completed_at  TEXT NOT NULL,
    registered_at TEXT NOT NULL,
    voided_at     TEXT,
    void_reason   TEXT
);
CREATE INDEX IF NOT EXISTS ix_records_year_person ON records (year, id_number);
CREATE TABLE IF NOT EXISTS batch_keys (
    key         TEXT PRIMARY KEY,
    body_sha256 TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
"""


def _now() -> str:
    return datetime.now(UTC).isoformat()


class ProvinceStore:
    """The simulator's state in one SQLite file (WAL, ``BEGIN IMMEDIATE`` for writers)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Used only from the event-loop thread, which need not be the thread that built the app.
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def register(
        self, records: list[ProvinceRecord], *, batch_key: str | None, body_sha256: str
    ) -> list[Receipt]:
        """Store the batch atomically; records already held come back as duplicates."""
        receipts: list[Receipt] = []
        with self._write() as db:
            if batch_key is not None:
                row = db.execute(
                    "SELECT body_sha256 FROM batch_keys WHERE key = ?", (batch_key,)
                ).fetchone()
                if row is None:
                    db.execute(
                        "INSERT INTO batch_keys (key, body_sha256, created_at) VALUES (?, ?, ?)",
                        (batch_key, body_sha256, _now()),
                    )
                elif row["body_sha256"] != body_sha256:
                    raise ProvinceProblem(
                        422,
                        "idempotency_key_reused",
                        "Idempotency-Key reused with a different body",
                    )
            for rec in records:
                row = db.execute(
                    "SELECT receipt, id_number, year, subject, hours_tenths, voided_at"
                    " FROM records WHERE record_id = ?",
                    (rec.record_id,),
                ).fetchone()
                if row is not None:
                    held = (row["id_number"], row["year"], row["subject"], row["hours_tenths"])
                    if held != (rec.id_number, rec.year, rec.subject, _tenths(rec.hours)):
                        raise ProvinceProblem(
                            409,
                            "record_conflict",
                            "A record with this id is registered with different content",
                            f"record {rec.record_id} differs from the registered one",
                        )
                    receipts.append(
                        Receipt(
                            record_id=rec.record_id,
                            receipt=row["receipt"],
                            duplicate=True,
                            voided=row["voided_at"] is not None,
                        )
                    )
                    continue
                receipt = f"SD{rec.year}-{uuid.uuid4().hex[:16].upper()}"
                db.execute(
                    "INSERT INTO records (record_id, receipt, id_number, name, year, subject,"
                    " hours_tenths, category, title, source, completed_at, registered_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        rec.record_id,
                        receipt,
                        rec.id_number,
                        rec.name,
                        rec.year,
                        rec.subject,
                        _tenths(rec.hours),
                        rec.category,
                        rec.title,
                        rec.source,
                        rec.completed_at.isoformat(),
                        _now(),
                    ),
                )
                receipts.append(Receipt(record_id=rec.record_id, receipt=receipt, duplicate=False))
        return receipts

    def void(self, record_id: str, reason: str | None) -> VoidReceipt | None:
        """Void a record (once; later calls return the first voiding). None if unknown."""
        with self._write() as db:
            row = db.execute(
                "SELECT receipt, voided_at FROM records WHERE record_id = ?", (record_id,)
            ).fetchone()
            if row is None:
                return None
            voided_at = row["voided_at"]
            if voided_at is None:
                voided_at = _now()
                db.execute(
                    "UPDATE records SET voided_at = ?, void_reason = ? WHERE record_id = ?",
                    (voided_at, reason, record_id),
                )
        return VoidReceipt(
            record_id=record_id, receipt=row["receipt"], voided_at=datetime.fromisoformat(voided_at)
        )

    def person_hours(self, id_number: str, year: int) -> PersonHours:
        """The person's non-voided records of the year and their totals."""
        rows = self._db.execute(
            "SELECT * FROM records WHERE id_number = ? AND year = ? AND voided_at IS NULL"
            " ORDER BY registered_at, record_id",
            (id_number, year),
        ).fetchall()
        tenths = {"public": 0, "professional": 0}
        records = []
        for row in rows:
            tenths[row["subject"]] += row["hours_tenths"]
            records.append(
                HeldRecord(
                    record_id=row["record_id"],
                    receipt=row["receipt"],
                    name=row["name"],
                    year=row["year"],
                    subject=row["subject"],
                    hours=row["hours_tenths"] / 10,
                    category=row["category"],
                    title=row["title"],
                    source=row["source"],
                    completed_at=datetime.fromisoformat(row["completed_at"]),
                    registered_at=datetime.fromisoformat(row["registered_at"]),
                )
            )
        return PersonHours(
            id_number=id_number,
            year=year,
            public=tenths["public"] / 10,
            professional=tenths["professional"] / 10,
            records=records,
        )

    def totals(self, year: int, after: str, limit: int) -> list[PersonTotal]:
        """Per-person totals of the year for ID numbers after ``after``, at most ``limit``."""
        rows = self._db.execute(
            "SELECT id_number,"
            " SUM(CASE WHEN subject = 'public' THEN hours_tenths ELSE 0 END) AS public,"
            " SUM(CASE WHEN subject = 'professional' THEN hours_tenths ELSE 0 END) AS professional,"
            " COUNT(*) AS n"
            " FROM records WHERE year = ? AND voided_at IS NULL AND id_number > ?"
            " GROUP BY id_number ORDER BY id_number LIMIT ?",
            (year, after, limit),
        ).fetchall()
        return [
            PersonTotal(
                id_number=row["id_number"],
                public=row["public"] / 10,
                professional=row["professional"] / 10,
                records=row["n"],
            )
            for row in rows
        ]

    def counts(self) -> tuple[int, int]:
        """(records stored, records voided)."""
        row = self._db.execute(
            "SELECT COUNT(*) AS n, COUNT(voided_at) AS v FROM records"
        ).fetchone()
        return int(row["n"]), int(row["v"])
