"""Case 3: HTTP through the real claims app, in-process (no sockets).

The app is built by ``services.claims.main.create_app`` on a temp data directory (SQLite file,
embedded event log), its lifespan runs as in production (migrations, outbox relay, event
consumer), and requests go through ``httpx.ASGITransport``: routing, the request-context
middleware, auth, validation, the unit of work, SQLite and the outbox are all real; only the
socket and the HTTP parser of a server are left out.

Set-up (not measured): an org tree is written into the claims org replica (as ``org.upserted``
would), a city admin registers a few persons through ``POST /v1/persons``.

Measured one request at a time, the three kinds interleaved request by request:

* ``GET /healthz`` — the baseline: the same app, transport, middleware and client, no work;
* ``POST /v1/evidence`` — a tiny PDF, a distinct file each time (multipart, content sniffing,
  a file write, a row);
* ``POST /v1/claims`` — a training claim backed by one of those files, with an
  ``Idempotency-Key`` (scope check, evidence check, the rules, the claim row, its references,
  the idempotency record and the ``claim.submitted`` outbox row, in one transaction).

After each claim the outbox relay is allowed to publish its event (not timed), so no request
is timed while the relay works for an earlier one: the latencies are those of a request on an
otherwise idle service; the relay's own cost is what the eventlog case measures.

The app's clock is pinned to 2026-11-26 (Beijing) through the ``clock`` hook, so the 2026 claim
window and "not in the future" hold whenever this runs.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from bench.common import Result, percentile, rate
from libs.common.idnumber import check_character
from libs.common.settings import Settings
from services.claims.main import create_app
from services.claims.models import OrgReplica

NOW = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
FIRST_DAY = date(2026, 1, 5)
PERSONS = 8
WARM_UP = 3  # requests of each kind before measuring
HEALTHZ_FACTOR = 2  # /healthz is ~20x faster: a few more of them keep its timing steady
ORGS = [
    ("org-city", "370400", "枣庄市", "city", None),
    ("org-district", "370402", "市中区", "district", "org-city"),
    ("org-department", "370402-01", "市中区卫生健康局", "department", "org-district"),
    ("org-unit", "370402-01-001", "市中区人民医院", "unit", "org-department"),
]


def _pdf(n: int) -> bytes:
    return (
        b"%PDF-1.4\n% bench evidence " + str(n).encode() + b"\n"
        b"1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
    )


def _id_number(n: int) -> str:
    first17 = f"370402198503{(n % 28) + 1:02d}{n % 1000:03d}"
    return first17 + check_character(first17)


class _Timer:
    """Per-request latencies (seconds) and per-round rates of one kind of request."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.rates: list[float] = []
        self._round: list[float] = []

    async def time(self, request: Awaitable[httpx.Response], expect: int) -> httpx.Response:
        start = time.perf_counter()
        response = await request
        self._round.append(time.perf_counter() - start)
        if response.status_code != expect:
            raise RuntimeError(
                f"{response.request.method} {response.request.url.path} answered "
                f"{response.status_code}: {response.text[:500]}"
            )
        return response

    def end_round(self) -> None:
        """Close a round: its rate is requests / time spent in them (one at a time)."""
        self.latencies.extend(self._round)
        self.rates.append(rate(len(self._round), sum(self._round)))
        self._round = []

    def summary(self) -> dict[str, float]:
        return {
            "requests": len(self.latencies),
            "p50_ms": round(percentile(self.latencies, 50) * 1000, 3),
            "p95_ms": round(percentile(self.latencies, 95) * 1000, 3),
            "max_ms": round(max(self.latencies) * 1000, 3),
        }


async def _relay_published(app: Any, before: int, timeout_s: float = 10.0) -> None:
    """Wait until the outbox relay has published (and marked) past ``before`` events."""
    relay = app.state.service.relay
    deadline = time.monotonic() + timeout_s
    while relay.published <= before:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the outbox relay published nothing within {timeout_s:.0f} s")
        await asyncio.sleep(0.001)
    await asyncio.sleep(0.002)  # let the relay finish its last, empty, read of the outbox


async def run(workdir: Path, *, per_round: int, rounds: int) -> list[Result]:
    settings = Settings(
        service="claims",
        env="test",
        data_dir=workdir / "claims",
        database_url=None,
        bus="embedded",
        migrate_on_start=True,
        jwt_secret=SecretStr("bench-secret-" + uuid.uuid4().hex),
        jwt_public_key=None,
        log_level="WARNING",
        rate_limit_write_per_s=0,  # the bench measures the service, not the limiter
        rate_limit_anonymous_per_s=0,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        state = app.state.service
        state.clock = lambda: NOW
        async with state.sessionmaker() as session:
            session.add_all(
                OrgReplica(id=i, code=c, name=n, type=t, parent_id=p) for i, c, n, t, p in ORGS
            )
            await session.commit()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://claims.bench") as client:
            return await _measure(app, client, per_round=per_round, rounds=rounds)
    raise AssertionError("unreachable")


async def _register_people(app: Any, client: httpx.AsyncClient) -> list[tuple[str, dict[str, str]]]:
    """Persons registered by a city admin through the API, each with a personnel token."""
    tokens = app.state.tokens
    admin = {"Authorization": f"Bearer {tokens.mint(role='city_admin')}"}
    people: list[tuple[str, dict[str, str]]] = []
    for n in range(PERSONS):
        response = await client.post(
            "/v1/persons",
            headers={**admin, "Idempotency-Key": f"bench-person-{n}"},
            json={
                "id_number": _id_number(n),
                "name": f"测试人员{n}",
                "affiliation": {"kind": "unit", "org_id": "org-unit"},
            },
        )
        if response.status_code != 201:
            raise RuntimeError(f"registering a person failed: {response.text[:500]}")
        person_id = response.json()["id"]
        token = tokens.mint(role="personnel", person_id=person_id)
        people.append((person_id, {"Authorization": f"Bearer {token}"}))
    return people


async def _measure(
    app: Any, client: httpx.AsyncClient, *, per_round: int, rounds: int
) -> list[Result]:
    people = await _register_people(app, client)
    healthz, evidence, claims = _Timer(), _Timer(), _Timer()

    def upload(n: int) -> Awaitable[httpx.Response]:
        _, headers = people[n % PERSONS]
        files = {"file": (f"certificate-{n}.pdf", _pdf(n), "application/pdf")}
        return client.post("/v1/evidence", headers=headers, files=files)

    def submit(n: int, evidence_id: str) -> Awaitable[httpx.Response]:
        person_id, headers = people[n % PERSONS]  # the person who uploaded evidence n
        day = FIRST_DAY + timedelta(days=n % 300)  # 2026-01-05 .. 2026-11-01
        return client.post(
            "/v1/claims",
            headers={**headers, "Idempotency-Key": f"bench-claim-{n}"},
            json={
                "person_id": person_id,
                "year": 2026,
                "category": "training",
                # professional: a public training needs a public e-certificate (not in the bench)
                "subject": "professional",
                "title": f"Training course {n}: clinical practice update",
                "hours": 1 + n % 8,
                "start_date": day.isoformat(),
                "end_date": day.isoformat(),
                "reference_no": f"鲁人社备〔2026〕{n % 40 + 1}号",  # the training's filing
                "evidence_ids": [evidence_id],
            },
        )

    # Request by request: /healthz, an upload, a claim backed by it, then (untimed) let the
    # relay publish the claim's event. The three kinds thus sample the same moments of the
    # machine's load, and no request is timed while the relay works for an earlier one.
    # Round 0 warms every route up (imports, statement caches, pools) into throwaway timers.
    n = 0  # numbers every evidence file and claim of the run: distinct files, titles, keys
    for round_no in range(rounds + 1):
        t_h, t_e, t_c = (healthz, evidence, claims) if round_no else (_Timer(), _Timer(), _Timer())
        for _ in range(per_round if round_no else WARM_UP):
            for _ in range(HEALTHZ_FACTOR):
                await t_h.time(client.get("/healthz"), 200)
            uploaded = await t_e.time(upload(n), 201)
            before = app.state.service.relay.published
            await t_c.time(submit(n, uploaded.json()["id"]), 201)
            await _relay_published(app, before)
            n += 1
        for timer in (t_h, t_e, t_c):
            timer.end_round()
    published = app.state.service.relay.published
    if await app.state.service.relay.pending():
        raise RuntimeError("events left in the outbox after the run")

    base_rps = statistics.median(healthz.rates)
    h = healthz.summary()
    results = []
    for case, label, timer in (
        ("http.submit_claim", "POST /v1/claims (training)", claims),
        ("http.upload_evidence", "POST /v1/evidence (tiny PDF)", evidence),
    ):
        s = timer.summary()
        low, high = _spread(timer.rates, healthz.rates)
        details: dict[str, Any] = {
            "rounds": rounds,
            "requests_per_round": per_round,
            "healthz_requests_per_round": per_round * HEALTHZ_FACTOR,
            "concurrency": 1,
            "rate": "requests / time inside them, per round (1 / mean latency)",
            "subject": s,
            "baseline": h,
            "subject_rounds": [round(v, 1) for v in timer.rates],
            "baseline_rounds": [round(v, 1) for v in healthz.rates],
            "round_ratio_min": round(low, 4),
            "round_ratio_max": round(high, 4),
        }
        if case == "http.submit_claim":
            details["events_published"] = published
        results.append(
            Result(
                case=case,
                metric=f"{label}, one at a time",
                unit="req/s",
                figure=statistics.median(timer.rates),
                baseline=base_rps,
                baseline_label="GET /healthz, same app and client",
                better="higher",
                details=details,
            )
        )
        for pct in (50, 95):
            results.append(
                Result(
                    case=f"{case}.p{pct}",
                    metric=f"{label}, latency p{pct}",
                    unit="ms",
                    figure=s[f"p{pct}_ms"],
                    baseline=h[f"p{pct}_ms"],
                    baseline_label=f"GET /healthz p{pct}",
                    better="lower",
                    details={"requests": s["requests"], "baseline_requests": h["requests"]},
                )
            )
    return results


def _spread(subject: list[float], baseline: list[float]) -> tuple[float, float]:
    ratios = [a / b for a, b in zip(subject, baseline, strict=True) if b]
    return min(ratios), max(ratios)
