"""Compliance reminders: on each reminder date of a rule year (``ruleset.reminder_dates``,
Beijing date), one ``compliance.reminder_due`` event per person who is not compliant yet, for the
mobile app's push service (DOMAIN.md: units must notify their staff).

Exactly once per (person, year, reminder date), whatever restarts or replicas: the event and the
``reminder_log`` row are written in one unit of work, and the row is inserted with ``ON CONFLICT
DO NOTHING … RETURNING`` on its unique key, so only the inserted rows get an event. Persons are
processed in chunks of :data:`compliance.CHUNK_SIZE`, a transaction per chunk.

The worker checks every ``interval_s`` (``ClaimsState.reminder_interval_s``, default 60 s; the first
check one interval after start). A reminder date missed while the service was down is caught up
for :data:`CATCH_UP_DAYS` days, with the scheduled date in the event, but never after the claim
window has closed. ``POST /v1/reminders/run`` (city_admin, system) runs a date now.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from libs.common.auth import OPS_ROLES, CurrentPrincipal, require_role
from libs.common.clock import BEIJING
from libs.common.errors import RuleViolation
from libs.common.events import ComplianceReminderDue
from libs.common.service import ServiceState
from libs.common.tasks import LoopTask
from libs.common.uow import UnitOfWork
from services.claims import compliance, rules
from services.claims.deps import State
from services.claims.models import ReminderLog
from services.claims.notifications import notify
from services.claims.scope import CITY
from services.claims.state import DEFAULT_REMINDER_INTERVAL_S, claims_of
from services.claims.views import ReminderRunView

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1", tags=["reminders"])

DEFAULT_INTERVAL_S = DEFAULT_REMINDER_INTERVAL_S
CATCH_UP_DAYS = 3


@dataclass(frozen=True)
class ReminderRun:
    year: int
    reminder_date: date
    checked: int = 0
    compliant: int = 0
    emitted: int = 0
    already_sent: int = 0

    def view(self) -> ReminderRunView:
        return ReminderRunView(**{**asdict(self), "reminder_date": self.reminder_date.isoformat()})


def due_dates(today: date, catch_up_days: int = CATCH_UP_DAYS) -> list[tuple[int, date]]:
    """(year, reminder date) pairs due on ``today``: the date itself or up to ``catch_up_days``
    before it, while the year's claim window is still open."""
    due = []
    for year in (today.year - 1, today.year):
        try:
            ruleset = rules.load_ruleset(year)
        except RuleViolation:
            continue
        if today > ruleset.claim_window.closes.astimezone(BEIJING).date():
            continue
        for reminder_date in ruleset.reminder_dates:
            if 0 <= (today - reminder_date).days <= catch_up_days:
                due.append((year, reminder_date))
    return due


async def _log_once(
    session: AsyncSession, person_ids: list[str], year: int, on: date, now: datetime
) -> set[str]:
    """Insert the reminder-log rows; returns the persons whose row is new (not sent before)."""
    if not person_ids:
        return set()
    rows = [
        {"person_id": p, "year": year, "reminder_date": on, "created_at": now} for p in person_ids
    ]
    dialect = session.get_bind().dialect.name
    stmt: Any
    if dialect == "postgresql":
        stmt = pg_insert(ReminderLog).values(rows).on_conflict_do_nothing()
    elif dialect == "sqlite":
        stmt = sqlite_insert(ReminderLog).values(rows).on_conflict_do_nothing()
    else:  # pragma: no cover - only the two dialects above are supported
        stmt = insert(ReminderLog).values(rows)
    result = await session.execute(stmt.returning(ReminderLog.person_id))
    return set(result.scalars())


async def _remind_chunk(
    uow: UnitOfWork,
    ruleset: rules.RuleSet,
    chunk: list[compliance.PersonCompliance],
    on: date,
    now: datetime,
) -> tuple[int, int]:
    due = [p for p in chunk if not p.compliant]
    fresh = await _log_once(uow.session, [p.id for p in due], ruleset.year, on, now)
    for person in due:
        if person.id not in fresh:
            continue
        standing = person.standing
        gaps = standing.gaps_view()
        notify(
            uow,
            person.id,
            "reminder_due",
            f"{ruleset.year} hours still missing: {rules.fmt_hours(standing.gap_public)} h public, "
            f"{rules.fmt_hours(standing.gap_professional)} h professional; the claim window "
            f"closes {ruleset.claim_window.closes.date().isoformat()}.",
            data={"year": ruleset.year, "reminder_date": on.isoformat(), "gaps": gaps.model_dump()},
        )
        uow.emit(
            ComplianceReminderDue(
                person_id=person.id,
                org_id=person.org_id,
                year=ruleset.year,
                reminder_date=on,
                credited=standing.credited_view().model_dump(),
                gaps=standing.gaps_view().model_dump(),
                window_closes_at=ruleset.claim_window.closes,
            ),
            subject=person.id,
        )
    return len(fresh), len(due) - len(fresh)


async def send_reminders(
    state: ServiceState, year: int, reminder_date: date, *, chunk_size: int | None = None
) -> ReminderRun:
    """Emit the reminders of (year, reminder date) not sent yet; returns the counts."""
    chunk_size = chunk_size or compliance.CHUNK_SIZE
    ruleset = rules.load_ruleset(year)
    checked = compliant = emitted = already = 0
    after: tuple[str, str] | None = None
    while True:
        async with state.uow() as uow:
            chunk = await compliance.compliance_chunk(uow.session, ruleset, CITY, after, chunk_size)
            if not chunk:
                break
            new, old = await _remind_chunk(uow, ruleset, chunk, reminder_date, state.now())
            await uow.commit()
        checked += len(chunk)
        compliant += sum(p.compliant for p in chunk)
        emitted, already = emitted + new, already + old
        if len(chunk) < chunk_size:
            break
        after = (chunk[-1].org_id, chunk[-1].id)
    run = ReminderRun(year, reminder_date, checked, compliant, emitted, already)
    log.info("compliance reminders", extra=run.view().model_dump())
    return run


class ReminderWorker:
    """Checks every ``interval_s`` whether a reminder date is due (Beijing date of the service
    clock) and sends its reminders; a date fully sent is not scanned again by this process."""

    def __init__(
        self,
        state: ServiceState,
        *,
        interval_s: float = DEFAULT_INTERVAL_S,
        catch_up_days: int = CATCH_UP_DAYS,
    ) -> None:
        self.state = state
        self.interval_s = interval_s
        self.catch_up_days = catch_up_days
        self._done: set[tuple[int, date]] = set()
        self._stopping = asyncio.Event()
        self._background = LoopTask("compliance-reminders")

    async def start(self) -> None:
        self._stopping.clear()
        self._background.spawn(self._loop())

    async def stop(self) -> None:
        self._stopping.set()
        await self._background.cancel()

    async def run_once(self, today: date) -> list[ReminderRun]:
        """Send what is due on ``today``; the runs done (empty when nothing is due)."""
        runs = []
        for year, reminder_date in due_dates(today, self.catch_up_days):
            if (year, reminder_date) in self._done:
                continue
            runs.append(await send_reminders(self.state, year, reminder_date))
            self._done.add((year, reminder_date))
        return runs

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=self.interval_s)
            if self._stopping.is_set():
                return
            try:
                await self.run_once(self.state.today())
            except Exception:
                log.exception("compliance reminders failed; retrying at the next check")


def reminder_worker(state: ServiceState) -> ReminderWorker:
    """The worker factory for ``ServiceSpec.workers``."""
    worker = ReminderWorker(state, interval_s=claims_of(state).reminder_interval_s)
    claims_of(state).reminder_worker = worker
    return worker


class ReminderRunIn(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")
    year: int = Field(ge=2000, le=2100)
    reminder_date: date | None = Field(default=None, alias="date")


@router.post("/reminders/run")
async def run_reminders(
    body: ReminderRunIn, state: State, principal: CurrentPrincipal
) -> ReminderRunView:
    """Send the reminders of ``{year, date?}`` now (date: today, Beijing). Any date inside the
    year's claim window is accepted; a person is reminded once per (year, date)."""
    require_role(principal, *OPS_ROLES)
    ruleset = rules.load_ruleset(body.year)
    on = body.reminder_date or state.today()
    window = ruleset.claim_window
    opens = window.opens.astimezone(BEIJING).date()
    closes = window.closes.astimezone(BEIJING).date()
    if not opens <= on <= closes:
        raise RuleViolation(
            f"a {body.year} reminder date lies within the claim window "
            f"{opens.isoformat()}..{closes.isoformat()} (got {on.isoformat()})",
            code="invalid_reminder_date",
        )
    run = await send_reminders(state, body.year, on)
    return run.view()
