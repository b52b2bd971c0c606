"""The one claims test harness: a real claims app in-process (its lifespan: migrations, outbox
relay, event consumer) on a fixed clock, driven through HTTP with ``httpx.ASGITransport``.

Facts from the other services arrive the way they do in production: envelopes published onto the
app's embedded log (``review.events``, ``registry.events``, ``sync.events``); :meth:`Stack.publish`
returns once the claims app has handled the event (its id is in the inbox, which the handler's
transaction writes together with the effect). For the read-model tests (reports, reminders, title
readiness) a stack can also be seeded directly: an org tree into the replica
(:meth:`Stack.add_orgs`), ledger entries and in-review claims (:meth:`Stack.credit`,
:meth:`Stack.pending_claim`), with persons and orgs named by labels.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from libs.common.clock import BEIJING
from libs.common.events import (
    ClaimApproved,
    ClaimRejected,
    Envelope,
    OrgUpserted,
    Payload,
    topic_of,
)
from libs.common.idnumber import check_character
from libs.common.settings import Settings
from services.claims.main import create_app
from services.claims.models import Claim, LedgerEntry, OrgReplica
from tests.support import until

# a fixed "now" inside the 2026 claim window, so the tests do not depend on the machine's date
CLOCK = datetime(2026, 12, 20, 10, 0, tzinfo=BEIJING)
AFTER_WINDOW = datetime(2027, 1, 1, 0, 0, 1, tzinfo=BEIJING)

# numbers drawn by new_id_number() start here, so they never meet a test's own id_number(seq)
_people = itertools.count(1000)
_refs = itertools.count(1)


def id_number(seq: int, region: str = "370402") -> str:
    """The valid GB 11643 number ``seq`` (born 1970-01-01 plus ``seq // 1000`` days)."""
    born = date(1970, 1, 1) + timedelta(days=seq // 1000)
    first17 = f"{region}{born:%Y%m%d}{seq % 1000:03d}"
    return first17 + check_character(first17)


def new_id_number(region: str = "370402") -> str:
    """A fresh, valid GB 11643 number (unique within the test run)."""
    return id_number(next(_people), region)


def with_bad_checksum(id_number: str) -> str:
    wrong = "0" if id_number[-1] != "0" else "1"
    return id_number[:17] + wrong


def one_day_training(evidence_ids: list[str]) -> dict[str, Any]:
    """The body of a valid claim: one day (8 hours) of a filed training, citing the evidence."""
    return {
        "year": 2026,
        "category": "training",
        "title": "急诊医学新进展培训班",
        "hours": 8,
        "start_date": "2026-11-02",
        "end_date": "2026-11-02",
        "reference_no": "鲁卫继备〔2026〕15号",
        "evidence_ids": evidence_ids,
    }


def masked(id_number: str) -> str:
    return id_number[:6] + "*" * 8 + id_number[-4:]


def pdf_bytes(label: str = "") -> bytes:
    """A small PDF whose content (and so hash) is unique per call."""
    return f"%PDF-1.4\n% {label} {uuid.uuid4().hex}\n%%EOF\n".encode()


@dataclass
class Person:
    id: str
    id_number: str
    org_id: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Stack:
    app: FastAPI
    http: httpx.AsyncClient
    data_dir: Path
    orgs: dict[str, str] = field(default_factory=dict)  # label -> org id
    persons: dict[str, str] = field(default_factory=dict)  # label -> person id

    # --- tokens ---------------------------------------------------------------------------

    def token(
        self,
        role: str,
        org: str | None = None,
        person: str | None = None,
        sub: str | None = None,
        ttl_s: int = 3600,
        id_number: str | None = None,
    ) -> str:
        """A token for ``role``; ``org`` and ``person`` are labels of this stack or plain ids."""
        return str(
            self.app.state.tokens.mint(
                role=role,
                org_id=self.orgs.get(org, org) if org else None,
                person_id=self.persons.get(person, person) if person else None,
                sub=sub,
                ttl_s=ttl_s,
                id_number=id_number,
            )
        )

    def auth(
        self,
        role: str,
        org: str | None = None,
        person: str | None = None,
        sub: str | None = None,
        id_number: str | None = None,
    ) -> dict[str, str]:
        token = self.token(role, org, person, sub, id_number=id_number)
        return {"Authorization": f"Bearer {token}"}

    @property
    def city(self) -> dict[str, str]:
        return self.auth("city_admin")

    # --- events in ------------------------------------------------------------------------

    async def publish(self, topic: str, payload: Payload, subject: str) -> Envelope:
        """Publish an envelope as its producer would, and wait until claims has handled it."""
        envelope = payload.envelope(
            source=topic.split(".")[0], subject=subject, correlation_id=None
        )
        await self.app.state.service.bus.publish(
            topic, subject, envelope.to_bytes(), {"event_type": envelope.type}
        )
        await self.until_handled(envelope)
        return envelope

    async def until_handled(self, envelope: Envelope) -> None:
        state = self.app.state.service
        inbox, dead = state.spec.infra.inbox, state.spec.infra.dead_letters

        async def handled() -> bool:
            async with state.sessionmaker() as session:
                seen = await session.scalar(
                    select(func.count())
                    .select_from(inbox)
                    .where(inbox.c.event_id == str(envelope.id))
                )
                dead_letters = (
                    await session.execute(select(dead.c.event_type, dead.c.error))
                ).all()
            assert not any(d.event_type == envelope.type for d in dead_letters), dead_letters
            return bool(seen)

        await until(handled)

    async def add_org(self, type_: str, parent_id: str | None = None) -> str:
        org_id = str(uuid.uuid4())
        code = f"{type_[:3].upper()}-{org_id[:8]}"
        await self.publish(
            topic_of("review"),
            OrgUpserted(org_id=org_id, code=code, name=code, type=type_, parent_id=parent_id),
            subject=org_id,
        )
        return org_id

    async def approve(self, claim: dict[str, Any], revision: int | None = None) -> dict[str, Any]:
        """Stage 2 approved in review: ``claim.approved`` on ``review.events``."""
        await self.publish(
            topic_of("review"),
            ClaimApproved(
                claim_id=claim["id"],
                revision=revision or claim["revision"],
                person_id=claim["person_id"],
                org_id="district",
                actor="district_admin:test",
            ),
            subject=claim["id"],
        )
        return await self.claim(claim["id"])

    async def reject(self, claim: dict[str, Any], reason: str) -> dict[str, Any]:
        await self.publish(
            topic_of("review"),
            ClaimRejected(
                claim_id=claim["id"],
                revision=claim["revision"],
                person_id=claim["person_id"],
                stage="unit",
                org_id="unit",
                actor="unit_admin:test",
                reason=reason,
            ),
            subject=claim["id"],
        )
        return await self.claim(claim["id"])

    # --- HTTP -----------------------------------------------------------------------------

    async def register(
        self, org_id: str, kind: str = "unit", name: str = "张三", number: str | None = None
    ) -> Person:
        """Register a person (ID number ``number``, or a fresh one) through the API."""
        id_number = number or new_id_number()
        r = await self.http.post(
            "/v1/persons",
            json={
                "id_number": id_number,
                "name": name,
                "affiliation": {"kind": kind, "org_id": org_id},
            },
            headers=self.city,
        )
        assert r.status_code == 201, r.text
        person_id = r.json()["id"]
        return Person(person_id, id_number, org_id, self.token("personnel", person=person_id))

    async def upload(self, person: Person, data: bytes | None = None) -> str:
        r = await self.http.post(
            "/v1/evidence",
            files={"file": ("cert.pdf", data or pdf_bytes(person.id), "application/pdf")},
            headers=person.auth,
        )
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    async def submit(
        self, person: Person, body: dict[str, Any], key: str | None = None
    ) -> dict[str, Any]:
        headers = {**person.auth, **({"Idempotency-Key": key} if key else {})}
        r = await self.http.post(
            "/v1/claims", json={"person_id": person.id, **body}, headers=headers
        )
        assert r.status_code == 201, r.text
        return dict(r.json())

    async def claim(self, claim_id: str) -> dict[str, Any]:
        r = await self.http.get(f"/v1/claims/{claim_id}", headers=self.city)
        assert r.status_code == 200, r.text
        return dict(r.json())

    async def claims_of(self, person_id: str) -> list[dict[str, Any]]:
        r = await self.http.get("/v1/claims", params={"person_id": person_id}, headers=self.city)
        assert r.status_code == 200, r.text
        return list(r.json()["items"])

    async def transcript(self, person_id: str, year: int = 2026) -> dict[str, Any]:
        r = await self.http.get(f"/v1/persons/{person_id}/transcripts/{year}", headers=self.city)
        assert r.status_code == 200, r.text
        return dict(r.json())

    # --- seeding the read model directly -------------------------------------------------

    async def add_orgs(self, *orgs: tuple[str, str, str, str | None]) -> None:
        """(label, name, type, parent label), straight into the replica review feeds."""
        async with self.app.state.service.sessionmaker() as session:
            for label, name, type_, parent in orgs:
                org_id = f"org-{label}"
                self.orgs[label] = org_id
                session.add(
                    OrgReplica(
                        id=org_id,
                        code=label.upper(),
                        name=name,
                        type=type_,
                        parent_id=self.orgs[parent] if parent else None,
                    )
                )
            await session.commit()

    async def register_labelled(self, label: str, name: str, org: str, seq: int) -> str:
        """Register person ``label`` (ID number ``id_number(seq)``) in org ``org`` (a label)."""
        kind = "agency" if org.startswith("agency") else "unit"
        person = await self.register(self.orgs[org], kind, name, id_number(seq))
        self.persons[label] = person.id
        return person.id

    async def credit(
        self,
        person: str,
        subject: str,
        hours: str,
        *,
        year: int = 2026,
        source: str = "city_platform",
        at: datetime | None = None,
        revoked: bool = False,
    ) -> None:
        values: dict[str, Any] = {
            "person_id": self.persons.get(person, person),
            "year": year,
            "subject": subject,
            "hours": Decimal(hours),
            "source": source,
            "ref": f"ref-{next(_refs)}",
            "category": "training" if source == "claim" else None,
            "title": "急诊医学新进展培训班" if source == "claim" else "公需课",
            "revoked_at": datetime(2026, 11, 1, tzinfo=UTC) if revoked else None,
        }
        if at is not None:
            values["created_at"] = values["updated_at"] = at
        async with self.app.state.service.sessionmaker() as session:
            session.add(LedgerEntry(**values))
            await session.commit()

    async def pending_claim(self, person: str, hours: float, subject: str = "professional") -> None:
        async with self.app.state.service.sessionmaker() as session:
            session.add(
                Claim(
                    person_id=self.persons.get(person, person),
                    year=2026,
                    category="training",
                    subject=subject,
                    title="在审培训",
                    body={},
                    requested_hours=Decimal(str(hours)),
                    expected_credits=[{"subject": subject, "hours": hours}],
                    status="in_review",
                    stage="unit",
                )
            )
            await session.commit()

    # --- the outbox -----------------------------------------------------------------------

    async def outbox(self, key: str | None = None) -> list[Envelope]:
        """Every event the claims app wrote to its outbox (sent or not), oldest first."""
        state = self.app.state.service
        table = state.spec.infra.outbox
        stmt = select(table.c.payload).order_by(table.c.id)
        if key is not None:
            stmt = stmt.where(table.c.key == key)
        async with state.sessionmaker() as session:
            rows = (await session.execute(stmt)).all()
        return [Envelope.from_bytes(bytes(r.payload)) for r in rows]

    async def outbox_count(self) -> int:
        state = self.app.state.service
        table = state.spec.infra.outbox
        async with state.sessionmaker() as session:
            return int(await session.scalar(select(func.count()).select_from(table)) or 0)

    @asynccontextmanager
    async def no_new_state(self, person_id: str | None = None) -> AsyncIterator[None]:
        """The block leaves no outbox row and (for ``person_id``) no claim behind."""
        before_outbox = await self.outbox_count()
        before = [c["id"] for c in await self.claims_of(person_id)] if person_id else []
        yield
        assert await self.outbox_count() == before_outbox, "an event was written"
        if person_id:
            assert [c["id"] for c in await self.claims_of(person_id)] == before


@asynccontextmanager
async def claims_stack(
    data_dir: Path, database_url: str | None = None, **overrides: Any
) -> AsyncIterator[Stack]:
    """A claims app on SQLite in ``data_dir`` (or ``database_url``), its clock at :data:`CLOCK`;
    ``overrides``: more settings (a shared JWT secret and S3 store for replicas)."""
    url = database_url or f"sqlite+aiosqlite:///{data_dir / 'claims.db'}"
    settings = Settings(
        service="claims", data_dir=data_dir, database_url=url, outbox_poll_s=0.2, **overrides
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        set_clock(app, CLOCK)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://claims") as http:
            yield Stack(app, http, data_dir)


# the backends a module's ``database_url`` fixture runs on (PostgreSQL only under the marker)
DATABASES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def database_url_for(request: pytest.FixtureRequest, name: str) -> str | None:
    """For a fixture parametrized by :data:`DATABASES`: None, the app's SQLite file; on
    PostgreSQL a fresh database ``name`` (created outside the loop)."""
    if request.param == "sqlite":
        return None
    make: Callable[[str], str] = request.getfixturevalue("make_pg_database")
    return make(name)


@asynccontextmanager
async def unit_stack(data_dir: Path, database_url: str | None = None) -> AsyncIterator[Stack]:
    """:func:`claims_stack` with an org tree: ``orgs["district"]`` and its ``orgs["unit"]``."""
    async with claims_stack(data_dir, database_url) as s:
        s.orgs["district"] = await s.add_org("district")
        s.orgs["unit"] = await s.add_org("unit", s.orgs["district"])
        yield s


def set_clock(app: FastAPI, at: datetime) -> None:
    """Stop the app's clock at ``at``."""
    app.state.service.clock = lambda: at


def credits_of(items: list[dict[str, Any]]) -> dict[str, float]:
    return {c["subject"]: c["hours"] for c in items}
