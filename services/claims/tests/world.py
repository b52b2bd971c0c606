"""A claims service running in-process with an org tree, persons and credited hours, for the
compliance-report, reminder and title-readiness tests."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from libs.common.idnumber import check_character
from libs.common.settings import Settings
from services.claims.main import create_app
from services.claims.models import Claim, LedgerEntry, OrgReplica

_refs = itertools.count(1)


def id_number(seq: int) -> str:
    """A valid GB 11643 number of someone born in 枣庄市中区 on 1985-01-01."""
    first17 = f"37040219850101{seq:03d}"
    return first17 + check_character(first17)


@asynccontextmanager
async def claims_app(data_dir: Path, database_url: str | None = None) -> AsyncIterator[FastAPI]:
    url = database_url or f"sqlite+aiosqlite:///{data_dir / 'claims.db'}"
    app = create_app(Settings(service="claims", data_dir=data_dir, database_url=url))
    async with app.router.lifespan_context(app):
        app.state.service.clock = lambda: datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
        yield app


@dataclass
class World:
    app: FastAPI
    http: httpx.AsyncClient
    orgs: dict[str, str] = field(default_factory=dict)  # label -> org id
    persons: dict[str, str] = field(default_factory=dict)  # label -> person id

    def token(self, role: str, org: str | None = None, person: str | None = None) -> str:
        tokens = self.app.state.tokens
        return str(
            tokens.mint(
                role=role,
                org_id=self.orgs[org] if org else None,
                person_id=self.persons[person] if person else None,
            )
        )

    def auth(self, role: str, org: str | None = None, person: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(role, org, person)}"}

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

    async def register(self, label: str, name: str, org: str, seq: int) -> str:
        kind = "agency" if org.startswith("agency") else "unit"
        response = await self.http.post(
            "/v1/persons",
            json={
                "id_number": id_number(seq),
                "name": name,
                "affiliation": {"kind": kind, "org_id": self.orgs[org]},
            },
            headers=self.auth("city_admin"),
        )
        assert response.status_code == 201, response.text
        self.persons[label] = response.json()["id"]
        return self.persons[label]

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
            "person_id": self.persons[person],
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
                    person_id=self.persons[person],
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


@asynccontextmanager
async def world(data_dir: Path, database_url: str | None = None) -> AsyncIterator[World]:
    async with claims_app(data_dir, database_url) as app:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://claims") as http:
            yield World(app, http)
