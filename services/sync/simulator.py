"""A simulator of the province continuing-education platform (省平台).

The real province API is not public, so this module *is* the contract: its OpenAPI document
(``/docs``, ``/openapi.json``) describes what :mod:`services.sync.province` talks to. It keeps its
state in a small SQLite file, so it survives restarts and is the end-to-end truth for "registered
exactly once".

It can misbehave on purpose (``PUT /province/admin/faults``, the ``faults`` argument of
:func:`create_simulator_app`, or ``CE_PROVINCE_FAULTS`` as JSON): extra latency, 5xx, hung requests,
429 with ``Retry-After`` above a rate limit, and "duplicate receipts" (the records are stored but
the response is lost, so the client resends). Fault decisions come from a seedable
``random.Random``.

Every write runs synchronously on the event loop in one ``BEGIN IMMEDIATE`` transaction, so two
requests never interleave inside a registration.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import math
import os
import random
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, FastAPI, Header, Query, Request
from fastapi import Path as PathParam
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

MAX_BATCH = 100
FAULTS_ENV = "CE_PROVINCE_FAULTS"
PROBLEM_BASE = "https://province.example/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"

ID_NUMBER_PATTERN = r"^\d{17}[\dX]$"
RECORD_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"

Subject = Literal["public", "professional"]
Source = Literal["claim", "city_platform"]


# --------------------------------------------------------------------------------------------------
# Contract models
# --------------------------------------------------------------------------------------------------


def _tenths(hours: float) -> int:
    return round(hours * 10)


class RecordIn(BaseModel):
    """One continuing-education record a city submits for registration."""

    model_config = ConfigDict(extra="forbid")

    record_id: str = Field(
        min_length=1,
        max_length=128,
        pattern=RECORD_ID_PATTERN,
        description="The submitter's own id of the record; registration is idempotent by it.",
    )
    id_number: str = Field(
        pattern=ID_NUMBER_PATTERN, description="Resident ID number (18 characters) of the person."
    )
    name: str = Field(min_length=1, max_length=64, description="The person's name.")
    year: int = Field(ge=2000, le=2100, description="The year the hours count for.")
    subject: Subject = Field(description="Public (公需科目) or professional (专业科目) hours.")
    hours: float = Field(gt=0, le=1000, description="Hours, at most one decimal.")
    category: str = Field(
        min_length=1, max_length=64, description="Kind of learning (training, exam, paper, ...)."
    )
    title: str = Field(min_length=1, max_length=256, description="What was learned.")
    source: Source = Field(
        description="`claim` (approved by a city reviewer) or `city_platform` (city e-learning)."
    )
    completed_at: datetime = Field(description="When the learning was completed (ISO 8601).")

    @field_validator("hours")
    @classmethod
    def _one_decimal(cls, value: float) -> float:
        if abs(value * 10 - round(value * 10)) > 1e-6:
            raise ValueError("hours must have at most one decimal")
        return value


class RegisterRequest(BaseModel):
    """A batch of records to register."""

    model_config = ConfigDict(extra="forbid")

    records: list[RecordIn] = Field(
        min_length=1, max_length=MAX_BATCH, description=f"1 to {MAX_BATCH} records."
    )


class ReceiptOut(BaseModel):
    """The province's receipt for one record."""

    record_id: str = Field(description="The submitter's record id.")
    receipt: str = Field(description="The province's receipt number; the same on every replay.")
    duplicate: bool = Field(description="True when the record was already registered before.")
    voided: bool = Field(default=False, description="True when the record has since been voided.")


class RegisterResponse(BaseModel):
    """Receipts for a batch, in request order."""

    receipts: list[ReceiptOut]


class VoidRequest(BaseModel):
    """Why a record is voided (optional)."""

    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=256, description="Free-text reason.")


class VoidResponse(BaseModel):
    """A voided record; voiding again returns the same."""

    record_id: str
    receipt: str
    voided_at: datetime = Field(description="When the record was first voided.")


class RecordOut(BaseModel):
    """A registered, non-voided record as the province holds it."""

    record_id: str
    receipt: str
    name: str
    year: int
    subject: Subject
    hours: float
    category: str
    title: str
    source: Source
    completed_at: datetime
    registered_at: datetime


class PersonHours(BaseModel):
    """A person's hours for one year: totals of the non-voided records and the records."""

    id_number: str
    year: int
    public: float = Field(description="Public hours, rounded to one decimal.")
    professional: float = Field(description="Professional hours, rounded to one decimal.")
    records: list[RecordOut]


class PersonTotal(BaseModel):
    """One person's totals for a year (non-voided records only)."""

    id_number: str
    public: float
    professional: float
    records: int = Field(description="Number of non-voided records.")


class TotalsPage(BaseModel):
    """One page of per-person totals, ordered by ID number."""

    year: int
    items: list[PersonTotal]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )


class Faults(BaseModel):
    """Faults to inject into every `/province/v1` request. Unset fields mean "no such fault"."""

    model_config = ConfigDict(extra="forbid")

    error_rate: float = Field(
        default=0.0, ge=0, le=1, description="Share of requests answered with 503."
    )
    timeout_rate: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Share of requests that hang for `hang_s`, then answer 504.",
    )
    rate_limit_per_s: float | None = Field(
        default=None,
        gt=0,
        description="Requests per second allowed; above it 429 with Retry-After.",
    )
    latency_ms: float = Field(
        default=0.0, ge=0, le=60_000, description="Extra latency on every request."
    )
    duplicate_receipt_rate: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Share of registrations that are stored but whose response is lost "
        "(a 502 or a hang), so the client resends them.",
    )
    hang_s: float = Field(default=30.0, gt=0, le=600, description="How long a hung request hangs.")
    seed: int | None = Field(
        default=None, description="Reseeds the fault dice, for reproducible runs."
    )


class FaultStats(BaseModel):
    """What the simulator has seen and injected since it started."""

    requests: int = 0
    rate_limited: int = 0
    errors: int = 0
    timeouts: int = 0
    duplicate_receipts: int = 0
    records: int = Field(default=0, description="Records stored (voided ones included).")
    voided: int = 0


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    code: str = Field(description="Stable machine-readable code.")
    detail: str | None = None


# --------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------


class ProvinceProblem(Exception):
    """An error the simulator answers with, rendered as problem details."""

    def __init__(
        self,
        status: int,
        code: str,
        title: str,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.headers = headers or {}


def _problem(
    status: int,
    code: str,
    title: str,
    detail: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {"type": PROBLEM_BASE + code, "title": title, "status": status}
    body["code"] = code
    if detail:
        body["detail"] = detail
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProvinceProblem)
    return _problem(exc.status, exc.code, exc.title, exc.detail, exc.headers)


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]
    detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)
    return _problem(422, "validation_error", "The request does not match the contract", detail,
                    errors=jsonable_encoder(errors))  # fmt: skip


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return _problem(exc.status_code, f"http_{exc.status_code}", str(exc.detail))


_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    422: {"model": Problem, "description": "The request does not match the contract."},
    429: {"model": Problem, "description": "Over the rate limit; retry after `Retry-After` s."},
    503: {"model": Problem, "description": "Temporarily unavailable; retry with backoff."},
}


# --------------------------------------------------------------------------------------------------
# Storage
# --------------------------------------------------------------------------------------------------

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
        self, records: list[RecordIn], *, batch_key: str | None, body_sha256: str
    ) -> list[ReceiptOut]:
        """Store the batch atomically; records already held come back as duplicates."""
        receipts: list[ReceiptOut] = []
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
                        ReceiptOut(
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
                receipts.append(
                    ReceiptOut(record_id=rec.record_id, receipt=receipt, duplicate=False)
                )
        return receipts

    def void(self, record_id: str, reason: str | None) -> VoidResponse | None:
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
        return VoidResponse(
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
                RecordOut(
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


# --------------------------------------------------------------------------------------------------
# Faults
# --------------------------------------------------------------------------------------------------


@dataclass
class FaultDecision:
    """The dice thrown for one request, all up front so a seed gives a reproducible sequence."""

    hang: bool = False
    error: bool = False
    duplicate_receipt: bool = False
    duplicate_hangs: bool = False


@dataclass
class FaultInjector:
    """Holds the current faults, the seeded dice, the server-side token bucket and the stats."""

    faults: Faults = field(default_factory=lambda: Faults())
    rng: random.Random = field(default_factory=random.Random)
    stats: FaultStats = field(default_factory=lambda: FaultStats())
    _tokens: float = 0.0
    _refilled_at: float = 0.0

    def configure(self, faults: Faults) -> None:
        """Replace the faults (the unset ones are cleared)."""
        self.faults = faults
        if faults.seed is not None:
            self.rng.seed(faults.seed)
        self._tokens = faults.rate_limit_per_s or 0.0
        self._refilled_at = time.monotonic()

    def _retry_after(self) -> float | None:
        """Take a token; when none is left, the seconds until one is."""
        rate = self.faults.rate_limit_per_s
        if rate is None:
            return None
        now = time.monotonic()
        capacity = max(1.0, rate)
        self._tokens = min(capacity, self._tokens + (now - self._refilled_at) * rate)
        self._refilled_at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return None
        return (1.0 - self._tokens) / rate

    async def before(self, request: Request) -> FaultDecision:
        """Apply the faults that strike before the request is handled."""
        self.stats.requests += 1
        wait = self._retry_after()
        if wait is not None:
            self.stats.rate_limited += 1
            raise ProvinceProblem(
                429,
                "rate_limited",
                "Too many requests",
                f"over {self.faults.rate_limit_per_s}/s",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )
        f, dice = self.faults, [self.rng.random() for _ in range(4)]
        decision = FaultDecision(
            hang=dice[0] < f.timeout_rate,
            error=dice[1] < f.error_rate,
            duplicate_receipt=dice[2] < f.duplicate_receipt_rate,
            duplicate_hangs=dice[3] < 0.5,
        )
        if f.latency_ms:
            await asyncio.sleep(f.latency_ms / 1000)
        if decision.hang:
            self.stats.timeouts += 1
            await self.hang(request)
        if decision.error:
            self.stats.errors += 1
            raise ProvinceProblem(503, "unavailable", "Service temporarily unavailable")
        return decision

    async def lose_response(self, request: Request, decision: FaultDecision) -> None:
        """The work is done and committed, but the client never gets to know."""
        self.stats.duplicate_receipts += 1
        if decision.duplicate_hangs:
            await self.hang(request)
        raise ProvinceProblem(502, "bad_gateway", "Bad gateway")

    async def hang(self, request: Request) -> None:
        """Hang for ``hang_s`` (or until the client gives up), then answer 504."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.faults.hang_s
        while loop.time() < deadline:
            if await request.is_disconnected():
                break
            await asyncio.sleep(0.02)
        raise ProvinceProblem(504, "gateway_timeout", "Gateway timeout")


def faults_from_env() -> Faults | None:
    """Faults from ``CE_PROVINCE_FAULTS`` (JSON), if set."""
    raw = os.environ.get(FAULTS_ENV)
    return Faults.model_validate_json(raw) if raw else None


# --------------------------------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------------------------------


@dataclass
class SimulatorState:
    """What the simulator's routes need, kept on ``app.state.simulator``."""

    store: ProvinceStore
    faults: FaultInjector


def _state(request: Request) -> SimulatorState:
    state: SimulatorState = request.app.state.simulator
    return state


StateDep = Annotated[SimulatorState, Depends(_state)]


async def _apply_faults(request: Request, state: StateDep) -> FaultDecision:
    return await state.faults.before(request)


FaultsDep = Annotated[FaultDecision, Depends(_apply_faults)]


def _encode_cursor(id_number: str) -> str:
    return base64.urlsafe_b64encode(id_number.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ProvinceProblem(422, "invalid_cursor", "Invalid cursor") from exc


province = APIRouter(prefix="/province/v1", tags=["province"], responses=_ERROR_RESPONSES)
admin = APIRouter(prefix="/province/admin", tags=["admin (simulator only)"])


@province.post(
    "/records",
    response_model=RegisterResponse,
    summary="Register a batch of records",
    responses={409: {"model": Problem, "description": "A record id is held with other content."}},
)
async def register_records(
    body: RegisterRequest,
    state: StateDep,
    decision: FaultsDep,
    request: Request,
    idempotency_key: Annotated[
        str | None,
        Header(
            max_length=128,
            description="The batch's key: a replay with the same key must carry the same body.",
        ),
    ] = None,
) -> RegisterResponse:
    """Register up to 100 records, idempotently by `record_id`.

    A record already held (same id, same person, year, subject and hours) is not stored again: its
    receipt comes back with `duplicate: true`. The batch is stored atomically.
    """
    body_sha256 = hashlib.sha256(body.model_dump_json().encode()).hexdigest()
    receipts = state.store.register(
        body.records, batch_key=idempotency_key, body_sha256=body_sha256
    )
    if decision.duplicate_receipt:
        await state.faults.lose_response(request, decision)
    return RegisterResponse(receipts=receipts)


@province.post(
    "/records/{record_id}/void",
    response_model=VoidResponse,
    summary="Void a record",
    responses={404: {"model": Problem, "description": "No record with this id."}},
)
async def void_record(
    record_id: Annotated[str, PathParam(max_length=128, pattern=RECORD_ID_PATTERN)],
    state: StateDep,
    _decision: FaultsDep,
    body: Annotated[VoidRequest | None, Body()] = None,
) -> VoidResponse:
    """Void a registered record so it no longer counts. Idempotent."""
    voided = state.store.void(record_id, body.reason if body else None)
    if voided is None:
        raise ProvinceProblem(404, "record_not_found", "No such record")
    return voided


@province.get("/persons/{id_number}/hours", response_model=PersonHours, summary="A person's hours")
async def person_hours(
    id_number: Annotated[str, PathParam(pattern=ID_NUMBER_PATTERN)],
    year: Annotated[int, Query(ge=2000, le=2100)],
    state: StateDep,
    _decision: FaultsDep,
) -> PersonHours:
    """The person's non-voided records of the year, with public and professional totals."""
    return state.store.person_hours(id_number, year)


@province.get("/totals", response_model=TotalsPage, summary="Per-person totals of a year")
async def totals(
    year: Annotated[int, Query(ge=2000, le=2100)],
    state: StateDep,
    _decision: FaultsDep,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> TotalsPage:
    """Totals of every person with non-voided records in the year, for reconciliation."""
    after = _decode_cursor(cursor) if cursor else ""
    items = state.store.totals(year, after, limit + 1)
    more = len(items) > limit
    items = items[:limit]
    next_cursor = _encode_cursor(items[-1].id_number) if more else None
    return TotalsPage(year=year, items=items, next_cursor=next_cursor)


@admin.put("/faults", response_model=Faults, summary="Set the injected faults")
async def put_faults(faults: Faults, state: StateDep) -> Faults:
    """Replace the faults; `{}` clears them all."""
    state.faults.configure(faults)
    log.info("province simulator faults set: %s", faults.model_dump_json(exclude_defaults=True))
    return state.faults.faults


@admin.get("/faults", response_model=Faults, summary="The injected faults")
async def get_faults(state: StateDep) -> Faults:
    """The faults in force."""
    return state.faults.faults


@admin.get("/stats", response_model=FaultStats, summary="Requests seen and faults injected")
async def get_stats(state: StateDep) -> FaultStats:
    """Counters since start, plus the records held."""
    records, voided = state.store.counts()
    return state.faults.stats.model_copy(update={"records": records, "voided": voided})


def create_simulator_app(
    db_path: Path, faults: Faults | None = None, *, seed: int | None = None
) -> FastAPI:
    """Build the province simulator keeping its state in ``db_path``.

    ``faults`` (else ``CE_PROVINCE_FAULTS``) are in force from the start; ``seed`` seeds the fault
    dice (``faults.seed`` wins when both are given).
    """
    store = ProvinceStore(db_path)
    injector = FaultInjector(rng=random.Random(seed))
    injector.configure(faults or faults_from_env() or Faults())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            store.close()

    app = FastAPI(
        title="Province continuing-education platform (simulator)",
        version="1.0.0",
        description=(
            "The contract between the city's sync service and the province platform (省平台). "
            "Registration is idempotent by `record_id`; errors are RFC 9457 problem details; "
            "429 carries `Retry-After` in seconds. The `admin` routes exist only in the simulator."
        ),
        lifespan=lifespan,
    )
    app.state.simulator = SimulatorState(store=store, faults=injector)
    app.add_exception_handler(ProvinceProblem, _on_problem)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.include_router(province)
    app.include_router(admin)

    @app.get("/healthz", tags=["health"], summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def main() -> None:
    """Run the simulator from the shared settings (``CE_DATA_DIR``, ``CE_HOST``, ``CE_PORT``)."""
    import uvicorn

    from libs.common.settings import DEFAULT_PORTS, Settings

    settings = Settings(service="province")
    logging.basicConfig(level=settings.log_level)
    app = create_simulator_app(settings.data_dir / "province.db")
    port = settings.port if settings.port is not None else DEFAULT_PORTS["province"]
    # The access log would carry ID numbers (they are in the person-hours path).
    uvicorn.run(app, host=settings.host, port=port, access_log=False, log_level="warning")


if __name__ == "__main__":
    main()
