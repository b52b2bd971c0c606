"""A real registry app in-process (lifespan: migrations, outbox relay, event consumer) driven
through HTTP with ``httpx.ASGITransport``. The org tree and persons arrive as they do in
production: ``org.upserted`` on ``review.events`` and ``person.registered`` on ``claims.events``,
published onto the app's embedded log; :meth:`Registry.publish` returns once they are handled."""

from __future__ import annotations

import io
import itertools
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pypdf
from fastapi import FastAPI
from sqlalchemy import func, select

from libs.common.clock import BEIJING
from libs.common.events import (
    Affiliation,
    Envelope,
    OrgUpserted,
    Payload,
    PersonRegistered,
    topic_of,
)
from libs.common.idnumber import check_character
from libs.common.settings import Settings
from services.registry.main import create_app
from services.registry.state import RegistrySettings
from tests.support import OpenApiResponses, until

# a fixed "now" in the 2026 filing season, before the 20 May deadline
CLOCK = datetime(2026, 4, 15, 10, 0, tzinfo=BEIJING)
PUBLIC_URL = "https://ce.zaozhuang.example"

_people = itertools.count(1)


def new_id_number(region: str = "370402") -> str:
    """A fresh, valid GB 11643 number (unique within the test run)."""
    n = next(_people)
    born = date(1975, 1, 1) + timedelta(days=n // 1000)
    first17 = f"{region}{born:%Y%m%d}{n % 1000:03d}"
    return first17 + check_character(first17)


def with_bad_checksum(id_number: str) -> str:
    return id_number[:17] + ("0" if id_number[-1] != "0" else "1")


def project_body(org_id: str, **changes: Any) -> dict[str, Any]:
    """A valid 附件2 filing: two days, 16 planned hours."""
    return {
        "year": 2026,
        "applicant_org_id": org_id,
        "address": "枣庄市薛城区复元三路1号",
        "name": "数字化管理师（初级）培训班",
        "person_in_charge": "王主任",
        "contact_name": "李老师",
        "contact_phone": "0632-3786666",
        "advanced_seminar": False,
        "plan": "第一天：数字化管理概论\n第二天：数字化转型实务与考核",
        "target_trainees": "全市企事业单位专业技术人员",
        "planned_participants": 120,
        "start_date": "2026-11-02",
        "end_date": "2026-11-03",
        "days": 2,
        "planned_hours": 16,
        "venue": "枣庄学院继续教育基地",
        "form": "offline",
        "kind": "digital_manager",
        "level": "junior",
        **changes,
    }


@dataclass
class Registry:
    app: FastAPI
    http: httpx.AsyncClient
    orgs: dict[str, str] = field(default_factory=dict)

    def auth(
        self, role: str, org: str | None = None, person_id: str | None = None
    ) -> dict[str, str]:
        token = self.app.state.tokens.mint(
            role=role, org_id=self.orgs.get(org, org) if org else None, person_id=person_id
        )
        return {"Authorization": f"Bearer {token}"}

    @property
    def city(self) -> dict[str, str]:
        return self.auth("city_admin")

    def set_clock(self, at: datetime) -> None:
        self.app.state.service.clock = lambda: at

    # --- events in ------------------------------------------------------------------------

    async def publish(self, topic: str, payload: Payload, subject: str) -> Envelope:
        envelope = payload.envelope(
            source=topic.split(".")[0], subject=subject, correlation_id=None
        )
        state = self.app.state.service
        await state.bus.publish(topic, subject, envelope.to_bytes(), {"event_type": envelope.type})
        inbox = state.spec.infra.inbox

        async def handled() -> bool:
            async with state.sessionmaker() as session:
                return bool(
                    await session.scalar(
                        select(func.count())
                        .select_from(inbox)
                        .where(inbox.c.event_id == str(envelope.id))
                    )
                )

        await until(handled)
        return envelope

    async def add_org(
        self, label: str, type_: str, parent: str | None = None, *, active: bool = True
    ) -> str:
        org_id = self.orgs.get(label) or str(uuid.uuid4())
        code = f"{type_[:3].upper()}-{org_id[:8]}"
        await self.publish(
            topic_of("review"),
            OrgUpserted(
                org_id=org_id,
                code=code,
                name=f"{label}单位",
                type=type_,
                parent_id=self.orgs[parent] if parent else None,
                active=active,
            ),
            subject=org_id,
        )
        self.orgs[label] = org_id
        return org_id

    async def add_person(self, id_number: str, name: str = "张三") -> str:
        person_id = str(uuid.uuid4())
        await self.publish(
            topic_of("claims"),
            PersonRegistered(
                person_id=person_id,
                id_number=id_number,
                name=name,
                affiliation=Affiliation(kind="unit", org_id=self.orgs["U"]),
            ),
            subject=person_id,
        )
        return person_id

    # --- HTTP -----------------------------------------------------------------------------

    async def file(self, org: str = "P", role: str = "provider", **changes: Any) -> dict[str, Any]:
        r = await self.http.post(
            "/v1/projects",
            json=project_body(self.orgs[org], **changes),
            headers=self.auth(role, org),
        )
        assert r.status_code == 201, r.text
        return dict(r.json())

    async def submit(
        self, project: dict[str, Any], org: str = "P", role: str = "provider"
    ) -> httpx.Response:
        return await self.http.post(
            f"/v1/projects/{project['id']}/submit", headers=self.auth(role, org)
        )

    async def decide(
        self, project: dict[str, Any], decision: str, opinion: str | None = None
    ) -> httpx.Response:
        body = {"decision": decision, **({"opinion": opinion} if opinion else {})}
        return await self.http.post(
            f"/v1/projects/{project['id']}/decision", json=body, headers=self.city
        )

    async def approved_project(self, **changes: Any) -> dict[str, Any]:
        project = await self.file(**changes)
        assert (await self.submit(project)).status_code == 200
        r = await self.decide(project, "approve", "同意备案")
        assert r.status_code == 200, r.text
        return dict(r.json())

    async def outbox(self, key: str | None = None) -> list[Envelope]:
        state = self.app.state.service
        table = state.spec.infra.outbox
        stmt = select(table.c.payload).order_by(table.c.id)
        if key is not None:
            stmt = stmt.where(table.c.key == key)
        async with state.sessionmaker() as session:
            rows = (await session.execute(stmt)).all()
        return [Envelope.from_bytes(bytes(r.payload)) for r in rows]

    async def count(self, table: str) -> int:
        state = self.app.state.service
        async with state.sessionmaker() as session:
            return int(
                await session.scalar(
                    select(func.count()).select_from(state.spec.infra.outbox.metadata.tables[table])
                )
                or 0
            )


@asynccontextmanager
async def registry_app(
    data_dir: Path,
    *,
    database_url: str | None = None,
    verify_limit: int = 1000,
    **overrides: Any,
) -> AsyncIterator[Registry]:
    """A registry app on SQLite in ``data_dir`` (or ``database_url``); ``overrides``: more
    settings (``public_url`` is :data:`PUBLIC_URL` unless given)."""
    settings = Settings(
        service="registry",
        data_dir=data_dir,
        database_url=database_url or f"sqlite+aiosqlite:///{data_dir / 'registry.db'}",
        outbox_poll_s=0.2,
        **{"public_url": PUBLIC_URL, **overrides},
    )
    app = create_app(settings, RegistrySettings.model_construct(verify_limit=verify_limit))
    # every 2xx JSON response is checked against the registry's own OpenAPI document
    responses = OpenApiResponses(app.openapi())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://registry",
            event_hooks={"response": [responses.hook]},
        ) as http:
            registry = Registry(app, http)
            registry.set_clock(CLOCK)
            await registry.add_org("C", "city")
            await registry.add_org("D", "district", "C")
            await registry.add_org("Dept", "department", "C")
            await registry.add_org("U", "unit", "D")  # a unit of a district: no deadline
            await registry.add_org("UC", "unit", "Dept")  # a city-direct unit: 20 May
            await registry.add_org("P", "provider", "C")
            await registry.add_org("P2", "provider", "C")
            await registry.add_org("X", "exam_center", "C")
            yield registry


def embedded_fonts(pdf: bytes) -> set[str]:
    """The fonts whose glyphs the PDF itself carries (an embedded font file), by base name: a
    reader without any CJK font still shows these."""
    found: set[str] = set()
    for page in pypdf.PdfReader(io.BytesIO(pdf)).pages:
        resources: Any = page["/Resources"].get_object()
        fonts: Any = resources.get("/Font", {}).get_object()
        for ref in fonts.values():
            font = ref.get_object()
            for part in [font, *[d.get_object() for d in font.get("/DescendantFonts", [])]]:
                descriptor = part.get("/FontDescriptor")
                if descriptor is None:
                    continue
                descriptor = descriptor.get_object()
                if any(k in descriptor for k in ("/FontFile", "/FontFile2", "/FontFile3")):
                    # "ABCDEF+Name-0": a subset's tag and ReportLab's subset number dropped
                    found.add(re.sub(r"-\d+$", "", str(part["/BaseFont"]).split("+")[-1]))
    return found
