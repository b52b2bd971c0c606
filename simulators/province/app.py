"""The simulator's HTTP app: the province routes, the admin routes and the app factory."""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Body, Depends, FastAPI, Header, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from libs.common.observability import configure_logging
from libs.common.settings import Settings
from libs.contracts.province import (
    ID_NUMBER_PATTERN,
    RECORD_ID_PATTERN,
    PersonHours,
    Problem,
    RegisterRequest,
    RegisterResponse,
    TotalsPage,
    VoidReceipt,
    VoidRequest,
)
from simulators.province.faults import (
    FaultDecision,
    FaultInjector,
    Faults,
    FaultStats,
    faults_from_env,
)
from simulators.province.problems import (
    ERROR_RESPONSES,
    ProvinceProblem,
    on_http,
    on_problem,
    on_validation,
)
from simulators.province.store import ProvinceStore

log = logging.getLogger(__name__)


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


province = APIRouter(prefix="/province/v1", tags=["province"], responses=ERROR_RESPONSES)
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
    response_model=VoidReceipt,
    summary="Void a record",
    responses={404: {"model": Problem, "description": "No record with this id."}},
)
async def void_record(
    record_id: Annotated[str, PathParam(max_length=128, pattern=RECORD_ID_PATTERN)],
    state: StateDep,
    _decision: FaultsDep,
    body: Annotated[VoidRequest | None, Body()] = None,
) -> VoidReceipt:
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
    app.add_exception_handler(ProvinceProblem, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.include_router(province)
    app.include_router(admin)

    @app.get("/healthz", tags=["health"], summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def create_app(settings: Settings | None = None) -> FastAPI:
    """The simulator as ``ce serve province`` runs it: its state in ``CE_DATA_DIR/province.db``,
    JSON logs like the services' (ID numbers redacted), faults from ``CE_PROVINCE_FAULTS``."""
    settings = settings or Settings(service="province")
    configure_logging("province", settings.log_level)
    return create_simulator_app(settings.data_dir / "province.db")
