"""Case 4: the whole system as ``ce run`` starts it (embedded: four services, the province
simulator, SQLite files and the embedded log), driven over real HTTP from this process.

Every figure is set beside a baseline measured in the same run on the same machine:

* ``system.persons_import`` — ``POST /v1/persons/batch`` (1,000 rows a request) in persons/s,
  against a raw multi-row insert of the same rows into a scratch table of the claims database;
  ``system.persons_settled`` — from the first POST until review and sync have handled every
  ``person.registered`` (the services' replicas hold everyone), against the same raw insert;
  the learning phase starts after that, so it is not measured against the persons' backlog;
* ``system.learning_ingest`` — ``POST /v1/learning-records`` (1,000 records a request) in rows/s,
  against a raw multi-row insert into a scratch table of the sync database;
  ``system.learning_settled`` — from the first POST until every record is on a transcript
  (claims ledger) and registered at the province simulator, in rows/s, against the same raw
  insert;
* ``system.submit_claim_32`` — claim submissions/s with 32 concurrent clients (evidence uploaded
  beforehand, untimed), against ``GET /healthz`` with 32 concurrent clients; ``.p50``/``.p99``
  latencies against the healthz ones;
* ``system.event_latency`` — p50/p99 from a claim's 201 to its review task being stored by the
  review service, at a steady offered rate, against the p50/p99 of the 201s themselves;
* ``system.report_csv`` / ``system.report_json`` — the city compliance report of every person
  (CSV in one request; JSON, all pages), against one SQL aggregate over the same rows;
* ``system.rss.<service>`` — peak RSS (VmHWM) of each process at the end, against the
  province simulator's (the smallest process: a FastAPI app with one table).

The load generator runs in this process, on the same cores as the services.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from bench import runtime
from bench.common import Result, latency_result, percentile, rate
from bench.runtime import Mode, Stack
from libs.common.events import PersonRegistered
from libs.common.idnumber import check_character

CLIENTS = 32
FIRST_DAY = date(2026, 1, 5)


def _id_number(n: int) -> str:
    born = date(1960, 1, 1) + timedelta(days=n // 1000)
    first17 = f"370402{born:%Y%m%d}{n % 1000:03d}"
    return first17 + check_character(first17)


async def _ok(response: httpx.Response, status: int) -> dict[str, Any]:
    if response.status_code != status:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path} answered "
            f"{response.status_code}: {response.text[:500]}"
        )
    body: dict[str, Any] = response.json() if response.content else {}
    return body


async def _orgs(stack: Stack, http: httpx.AsyncClient) -> tuple[str, str]:
    """A city, a district and a unit through the review API: (district id, unit id), once claims
    knows the unit."""
    city = stack.auth("city_admin")
    ids: list[str] = []
    for code, type_ in (("ZZ", "city"), ("370402", "district"), ("U-BENCH", "unit")):
        body: dict[str, Any] = {"code": code, "name": f"bench {code}", "type": type_}
        if ids:
            body["parent_id"] = ids[-1]
        r = await http.post(f"{stack.url('review')}/v1/orgs", json=body, headers=city)
        ids.append((await _ok(r, 201))["id"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        known = await stack.fetch(
            "claims", "SELECT count(*) FROM org_replica WHERE id = ?", ids[-1]
        )
        if known[0][0]:
            return ids[1], ids[2]
        await asyncio.sleep(0.1)
    raise RuntimeError("the org tree did not reach claims")


async def _persons(
    stack: Stack, http: httpx.AsyncClient, unit: str, count: int
) -> tuple[list[Result], list[str]]:
    city = stack.auth("city_admin")
    rows = [
        {
            "id_number": _id_number(n),
            "name": f"职工{n}",
            "affiliation": {"kind": "unit", "org_id": unit},
        }
        for n in range(count)
    ]
    ids: list[str] = []
    started = time.perf_counter()
    for start in range(0, count, 1000):
        r = await http.post(
            f"{stack.url('claims')}/v1/persons/batch",
            json={"persons": rows[start : start + 1000]},
            headers=city,
        )
        if r.status_code in (404, 405):  # a build without the batch: one request a person
            ids = [await _person_one_by_one(stack, http, row, city) for row in rows]
            break
        body = await _ok(r, 200)
        if body["registered"] != len(body["results"]):
            raise RuntimeError(f"persons refused: {body['results'][:3]}")
        ids += [x["person"]["id"] for x in body["results"]]
    seconds = time.perf_counter() - started
    raw = await stack.raw_insert(
        "claims",
        [f"{c} text" for c in ("id", "id_number", "name", "phone", "kind", "org_id", "created_at")],
        [
            (str(uuid.uuid4()), f"X{r['id_number']}", r["name"], None, "unit", unit, "2026")
            for r in rows
        ],
    )
    result = Result(
        case="system.persons_import",
        metric="POST /v1/persons/batch, 1,000 a request",
        unit="rows/s",
        figure=rate(count, seconds),
        baseline=rate(count, raw),
        baseline_label="raw multi-row INSERT, claims db",
        better="higher",
        details={"persons": count, "seconds": round(seconds, 2)},
    )
    return [result], ids


async def _person_one_by_one(
    stack: Stack, http: httpx.AsyncClient, row: dict[str, Any], headers: dict[str, str]
) -> str:
    r = await http.post(f"{stack.url('claims')}/v1/persons", json=row, headers=headers)
    return str((await _ok(r, 201))["id"])


async def _persons_settled(stack: Stack, imported: Result, persons: int) -> Result:
    """From the first person POST until every service that keeps a replica has them."""
    drain = await _caught_up(stack, persons, 0)
    seconds = imported.details["seconds"] + drain
    return Result(
        case="system.persons_settled",
        metric="first POST -> every person.registered handled by review and sync",
        unit="rows/s",
        figure=rate(persons, seconds),
        baseline=imported.baseline,
        baseline_label=imported.baseline_label,
        better="higher",
        details={"persons": persons, "seconds": round(seconds, 2), "drain_s": round(drain, 2)},
    )


async def _learning(
    stack: Stack, http: httpx.AsyncClient, persons: int, count: int
) -> list[Result]:
    system = stack.auth("system")
    records = [
        {
            "record_id": f"zzzj-bench-{n:08d}",
            "id_number": _id_number(n % persons),
            "year": 2026,
            "subject": "public" if n % 2 else "professional",
            "hours": 0.5,
            "course": f"公需课 {n % 50}",
            "completed_at": "2026-06-01T10:00:00+08:00",
        }
        for n in range(count)
    ]
    started = time.perf_counter()
    for start in range(0, count, 1000):
        r = await http.post(
            f"{stack.url('sync')}/v1/learning-records",
            json={"records": records[start : start + 1000]},
            headers=system,
        )
        body = await _ok(r, 202)
        if body["rejected"]:
            raise RuntimeError(f"records refused: {body['rejected'][:3]}")
    posted = time.perf_counter() - started
    deadline = time.monotonic() + max(120, count / 50)
    booked = registered = 0
    while time.monotonic() < deadline:
        [(booked,)] = await stack.fetch(
            "claims", "SELECT count(*) FROM ledger WHERE source = 'city_platform'"
        )
        [(registered,)] = await stack.fetch(
            "sync", "SELECT count(*) FROM outbound_records WHERE status = 'registered'"
        )
        if booked >= count and registered >= count:
            break
        await asyncio.sleep(0.2)
    else:
        raise RuntimeError(f"learning records not settled: {booked} booked, {registered} sent")
    settled = time.perf_counter() - started
    raw = await stack.raw_insert(
        "sync",
        [
            "id text",
            "record_id text",
            "id_number text",
            "year integer",
            "subject text",
            "hours real",
            "course text",
            "completed_at text",
        ],
        [
            (
                str(uuid.uuid4()),
                f"X{r['record_id']}",
                r["id_number"],
                2026,
                r["subject"],
                0.5,
                r["course"],
                r["completed_at"],
            )
            for r in records
        ],
    )
    details = {
        "records": count,
        "post_seconds": round(posted, 2),
        "settled_seconds": round(settled, 2),
        "one_million_settled_minutes_extrapolated": round(settled / count * 1e6 / 60, 1),
    }
    return [
        Result(
            case="system.learning_ingest",
            metric="POST /v1/learning-records, 1,000 a request",
            unit="rows/s",
            figure=rate(count, posted),
            baseline=rate(count, raw),
            baseline_label="raw multi-row INSERT, sync db",
            better="higher",
            details=details,
        ),
        Result(
            case="system.learning_settled",
            metric="first POST -> on transcripts and at the province",
            unit="rows/s",
            figure=rate(count, settled),
            baseline=rate(count, raw),
            baseline_label="raw multi-row INSERT, sync db",
            better="higher",
            details=details,
        ),
    ]


class Claims:
    """Claims of the registered persons, each backed by an evidence file uploaded untimed."""

    def __init__(self, stack: Stack, http: httpx.AsyncClient, person_ids: list[str]) -> None:
        self.stack, self.http = stack, http
        self.people = [(pid, stack.auth("personnel", person_id=pid)) for pid in person_ids[:64]]
        self.n = 0
        self.retries = 0  # submissions sent again after a dropped connection

    async def prepare(self, count: int) -> list[tuple[int, str]]:
        """Upload ``count`` evidence files (concurrently, untimed): (claim number, evidence id)."""
        numbers = list(range(self.n, self.n + count))
        self.n += count
        out: list[tuple[int, str]] = []

        async def upload(chunk: list[int]) -> None:
            for n in chunk:
                _, headers = self.people[n % len(self.people)]
                pdf = b"%PDF-1.4\n% bench " + str(n).encode() + b"\n%%EOF\n"
                r = await self.http.post(
                    f"{self.stack.url('claims')}/v1/evidence",
                    headers=headers,
                    files={"file": (f"c{n}.pdf", pdf, "application/pdf")},
                )
                out.append((n, (await _ok(r, 201))["id"]))

        await asyncio.gather(*(upload(numbers[i::8]) for i in range(8)))
        return out

    async def submit(self, n: int, evidence_id: str) -> str:
        person_id, headers = self.people[n % len(self.people)]
        day = FIRST_DAY + timedelta(days=(n // len(self.people)) % 300)
        request = self.http.build_request(
            "POST",
            f"{self.stack.url('claims')}/v1/claims",
            headers={**headers, "Idempotency-Key": f"bench-{n}"},
            json={
                "person_id": person_id,
                "year": 2026,
                "category": "training",
                "subject": "professional",
                "title": f"Training course {n}",
                "hours": 1 + n % 4,
                "start_date": day.isoformat(),
                "end_date": day.isoformat(),
                "reference_no": f"鲁人社备〔2026〕{n % 40 + 1}号",
                "evidence_ids": [evidence_id],
            },
        )
        for attempt in range(3):
            try:
                r = await self.http.send(request)
                break
            except (httpx.ReadError, httpx.RemoteProtocolError):
                # a connection the server dropped under load (seen at load average ~20); the
                # Idempotency-Key makes sending the claim again safe
                self.retries += 1
                if attempt == 2:
                    raise
        return str((await _ok(r, 201))["id"])


async def _concurrent(jobs: list[Any], clients: int) -> tuple[list[float], float]:
    """Run the jobs (coroutine factories) with ``clients`` workers; latencies and wall time."""
    latencies: list[float] = []
    queue = list(reversed(jobs))

    async def worker() -> None:
        while queue:
            job = queue.pop()
            t = time.perf_counter()
            await job()
            latencies.append(time.perf_counter() - t)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return latencies, time.perf_counter() - started


async def _claims_load(
    stack: Stack, http: httpx.AsyncClient, claims: Claims, count: int
) -> list[Result]:
    prepared = await claims.prepare(count)
    healthz = stack.url("claims") + "/healthz"

    async def ping() -> None:
        await _ok(await http.get(healthz), 200)

    cpu = stack.cpu_s("claims")
    base_lat, base_wall = await _concurrent([ping] * count, CLIENTS)
    base_cpu, cpu = stack.cpu_s("claims") - cpu, stack.cpu_s("claims")
    jobs = [lambda n=n, e=e: claims.submit(n, e) for n, e in prepared]
    lat, wall = await _concurrent(jobs, CLIENTS)
    await asyncio.sleep(1.0)  # the relay publishes the last events: part of a claim's cost
    claim_cpu = stack.cpu_s("claims") - cpu
    details = {
        "claims": count,
        "clients": CLIENTS,
        "seconds": round(wall, 2),
        "resent": claims.retries,
    }
    results = [
        Result(
            case="system.submit_claim.cpu",
            metric="claims-process CPU per POST /v1/claims (with its outbox relay)",
            unit="ms",
            figure=claim_cpu / count * 1000,
            baseline=base_cpu / count * 1000,
            baseline_label="claims-process CPU per GET /healthz",
            better="lower",
            details=details,
        ),
        Result(
            case="system.submit_claim_32",
            metric=f"POST /v1/claims, {CLIENTS} clients",
            unit="req/s",
            figure=rate(count, wall),
            baseline=rate(count, base_wall),
            baseline_label=f"GET /healthz, {CLIENTS} clients",
            better="higher",
            details=details,
        ),
    ]
    for pct in (50, 99):
        results.append(
            latency_result(
                f"system.submit_claim_32.p{pct}",
                f"POST /v1/claims p{pct}, {CLIENTS} clients",
                pct,
                lat,
                base_lat,
                f"GET /healthz p{pct}, {CLIENTS} clients",
                details,
            )
        )
    return results


def epoch(value: str | datetime) -> float:
    """A stored timestamp (ISO text on SQLite, a datetime on PostgreSQL) as epoch seconds;
    naive ones are UTC."""
    at = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()


async def paced(jobs: Sequence[Callable[[], Coroutine[Any, Any, None]]], per_s: float) -> float:
    """Start the jobs at a steady ``per_s`` (each in its own task, not waiting for the one
    before) and wait for all; the rate achieved."""
    started = time.perf_counter()
    tasks: list[asyncio.Task[None]] = []
    for i, job in enumerate(jobs):
        delay = started + i / per_s - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(job()))
    await asyncio.gather(*tasks)
    return len(jobs) / (time.perf_counter() - started)


def claim_of_record(record_id: str) -> str:
    """The claim id in the province record id sync gives a claim's credit
    (``claim-<claim id>-r<revision>-<subject>``)."""
    return record_id.removeprefix("claim-").rsplit("-", 2)[0]


async def _open_tasks(stack: Stack, stage: str, claim_ids: set[str]) -> dict[str, str]:
    """The open review tasks at ``stage`` of these claims: claim id -> task id."""
    rows = await stack.fetch(
        "review",
        "SELECT claim_id, id FROM review_tasks WHERE stage = ? AND status = 'open'",
        stage,
    )
    return {claim: task for claim, task in rows if claim in claim_ids}


async def _caught_up(stack: Stack, persons: int, claims: int) -> float:
    """Wait until review and sync have handled every person registered and review has a task
    for every claim submitted so far; the seconds it took. The bulk phases leave a backlog on
    the claims topic (a ``person.registered`` event per person, and the claims' events); the
    steady phase measures latency without it."""
    started = time.perf_counter()
    deadline = time.monotonic() + max(300.0, persons / 20)
    handled = "SELECT count(*) FROM inbox WHERE event_type = ?"
    while time.monotonic() < deadline:
        [(review,)] = await stack.fetch("review", handled, PersonRegistered.TYPE)
        [(sync,)] = await stack.fetch("sync", handled, PersonRegistered.TYPE)
        [(tasks,)] = await stack.fetch("review", "SELECT count(*) FROM review_tasks")
        if review >= persons and sync >= persons and tasks >= claims:
            return time.perf_counter() - started
        await asyncio.sleep(0.2)
    raise RuntimeError(f"backlog not drained: review {review}, sync {sync}, tasks {tasks}")


class Steady:
    """The claims of the steady phase: when each 201 came, and the latencies of the POSTs (the
    baseline of both event latencies)."""

    def __init__(self) -> None:
        self.answered: dict[str, float] = {}
        self.latencies: list[float] = []
        self.offered_per_s = 0.0

    def against_posts(
        self, name: str, what: str, delays: list[float], details: dict[str, Any]
    ) -> list[Result]:
        """p50 and p99 of ``delays`` (seconds) beside those of the claims' POSTs."""
        return [
            Result(
                case=f"system.{name}.p{pct}",
                metric=f"{what}, p{pct}",
                unit="ms",
                figure=percentile(delays, pct) * 1000,
                baseline=percentile(self.latencies, pct) * 1000,
                baseline_label=f"the POST /v1/claims itself, p{pct}",
                better="lower",
                details=details,
            )
            for pct in (50, 99)
        ]


async def _event_latency(
    stack: Stack,
    http: httpx.AsyncClient,
    claims: Claims,
    per_s: float,
    seconds: float,
    persons: int,
) -> tuple[list[Result], Steady]:
    """Once the consumers have caught up with the bulk phases: claims offered at a steady rate;
    from each 201 to its review task stored in review."""
    count = int(per_s * seconds)
    prepared = await claims.prepare(count)
    drain_s = await _caught_up(stack, persons, claims.n - count)
    steady = Steady()
    steady.offered_per_s = per_s

    async def one(n: int, evidence: str) -> None:
        t = time.perf_counter()
        claim_id = await claims.submit(n, evidence)
        steady.latencies.append(time.perf_counter() - t)
        steady.answered[claim_id] = time.time()

    achieved = await paced([partial(one, n, e) for n, e in prepared], per_s)
    visible: dict[str, float] = {}
    deadline = time.monotonic() + max(120, 2 * count)
    while len(visible) < count and time.monotonic() < deadline:
        rows = await stack.fetch(
            "review", "SELECT claim_id, created_at FROM review_tasks WHERE stage = 'unit'"
        )
        visible.update((c, epoch(at)) for c, at in rows if c in steady.answered)
        await asyncio.sleep(0.2)
    if len(visible) < count:
        raise RuntimeError(f"only {len(visible)} of {count} review tasks appeared")
    delays = [max(visible[c] - steady.answered[c], 0.0) for c in steady.answered]
    details = {
        "offered_per_s": per_s,
        "achieved_per_s": round(achieved, 1),
        "claims": count,
        "backlog_drain_s": round(drain_s, 1),
        "resent": claims.retries,
    }
    results = steady.against_posts("event_latency", "201 -> review task stored", delays, details)
    return results, steady


async def _approval_latency(
    stack: Stack, http: httpx.AsyncClient, orgs: tuple[str, str], steady: Steady
) -> list[Result]:
    """The steady phase's claims through both review stages: the unit's approvals in bulk
    (untimed), then the district's final approvals one by one at the same steady rate; from each
    final approval's 200 to the province simulator holding the claim's record."""
    district, unit = orgs
    review = stack.url("review")
    wanted = set(steady.answered)
    first = list((await _open_tasks(stack, "unit", wanted)).values())
    for start in range(0, len(first), 500):
        r = await http.post(
            f"{review}/v1/review-tasks/decisions",
            json={"decision": "approve", "task_ids": first[start : start + 500]},
            headers=stack.auth("unit_admin", org_id=unit),
        )
        body = await _ok(r, 200)
        if body["failed"]:
            raise RuntimeError(f"unit approvals failed: {body['results'][:3]}")
    final = await _open_tasks(stack, "authority", wanted)
    if len(final) < len(wanted):
        raise RuntimeError(f"only {len(final)} of {len(wanted)} claims reached the district")
    district_admin = stack.auth("district_admin", org_id=district)
    approved: dict[str, float] = {}
    decisions: list[float] = []

    async def approve(claim_id: str, task_id: str) -> None:
        t = time.perf_counter()
        r = await http.post(
            f"{review}/v1/review-tasks/{task_id}/decision",
            json={"decision": "approve"},
            headers=district_admin,
        )
        await _ok(r, 200)
        decisions.append(time.perf_counter() - t)
        approved[claim_id] = time.time()

    count = len(final)
    jobs = [partial(approve, c, t) for c, t in final.items()]
    achieved = await paced(jobs, steady.offered_per_s)
    held: dict[str, float] = {}
    deadline = time.monotonic() + max(120, 2 * count)
    while len(held) < len(approved) and time.monotonic() < deadline:
        rows = await stack.fetch(
            "province",
            "SELECT record_id, registered_at FROM records WHERE record_id LIKE 'claim-%'",
        )
        for record_id, registered_at in rows:
            claim_id = claim_of_record(record_id)
            if claim_id in approved:
                at = epoch(registered_at)
                held[claim_id] = min(held.get(claim_id, at), at)
        await asyncio.sleep(0.2)
    if len(held) < len(approved):
        raise RuntimeError(f"only {len(held)} of {len(approved)} records reached the province")
    delays = [max(held[c] - approved[c], 0.0) for c in approved]
    details = {
        "offered_per_s": steady.offered_per_s,
        "achieved_per_s": round(achieved, 1),
        "claims": len(approved),
        "decision_p50_ms": round(percentile(decisions, 50) * 1000, 1),
        "decision_p99_ms": round(percentile(decisions, 99) * 1000, 1),
    }
    what = "final approval -> record at the province"
    return steady.against_posts("approval_latency", what, delays, details)


async def _reports(stack: Stack, http: httpx.AsyncClient, persons: int) -> list[Result]:
    city = stack.auth("city_admin")
    url = f"{stack.url('claims')}/v1/reports/compliance"
    started = time.perf_counter()
    rows = await stack.fetch(
        "claims",
        "SELECT p.id, p.name, "
        "SUM(CASE WHEN l.subject = 'public' THEN l.hours ELSE 0 END), "
        "SUM(CASE WHEN l.subject = 'professional' THEN l.hours ELSE 0 END) "
        "FROM persons p LEFT JOIN ledger l ON l.person_id = p.id AND l.year = 2026 "
        "AND l.revoked_at IS NULL GROUP BY p.id, p.name",
    )
    sql = time.perf_counter() - started
    started = time.perf_counter()
    r = await http.get(url, params={"year": 2026, "format": "csv"}, headers=city, timeout=600)
    if r.status_code != 200:
        raise RuntimeError(f"CSV report: {r.status_code} {r.text[:300]}")
    csv_s = time.perf_counter() - started
    csv_rows = r.text.count("\n") - 1
    started = time.perf_counter()
    cursor: str | None = None
    json_rows = 0
    while True:
        params: dict[str, Any] = {"year": 2026, "limit": 1000}
        if cursor:
            params["cursor"] = cursor
        body = await _ok(await http.get(url, params=params, headers=city, timeout=600), 200)
        json_rows += len(body["items"])
        cursor = body.get("next_cursor")
        if not cursor:
            break
    json_s = time.perf_counter() - started
    if not (csv_rows == json_rows == len(rows) >= persons):
        raise RuntimeError(f"report rows: csv {csv_rows}, json {json_rows}, sql {len(rows)}")
    return [
        Result(
            case=f"system.report_{kind}",
            metric=f"city compliance report, {len(rows):,} people, {kind}",
            unit="ms",
            figure=seconds * 1000,
            baseline=sql * 1000,
            baseline_label=f"one SQL aggregate over the same rows ({stack.mode})",
            better="lower",
            details={"people": len(rows)},
        )
        for kind, seconds in (("csv", csv_s), ("json", json_s))
    ]


async def run(
    workdir: Path,
    *,
    persons: int,
    records: int,
    claims: int,
    steady_per_s: int,
    steady_s: int,
    plain_server: int = 0,
    mode: Mode = "embedded",
) -> list[Result]:
    """The case on the stack of ``mode`` (:mod:`bench.runtime`); on ``pg`` its figures are
    named ``system-pg.*``. ``plain_server=1`` runs the services on asyncio and h11 instead of
    uvloop and httptools (to measure what those buy)."""
    env = {"CE_SERVER_LOOP": "asyncio", "CE_SERVER_HTTP": "h11"} if plain_server else {}
    stack = await runtime.start(mode, workdir, env)
    try:
        # an idle connection is not reused after 1 s: the server closes its own after 5 s, and a
        # request sent on one it is closing fails with a ReadError (seen on a loaded machine)
        limits = httpx.Limits(
            max_connections=64, max_keepalive_connections=64, keepalive_expiry=1.0
        )
        async with httpx.AsyncClient(timeout=120, limits=limits) as http:
            orgs = await _orgs(stack, http)
            results, person_ids = await _persons(stack, http, orgs[1], persons)
            results.append(await _persons_settled(stack, results[0], persons))
            results += await _learning(stack, http, persons, records)
            load = Claims(stack, http, person_ids)
            results += await _claims_load(stack, http, load, claims)
            latency, steady = await _event_latency(
                stack, http, load, steady_per_s, steady_s, persons
            )
            results += latency
            results += await _approval_latency(stack, http, orgs, steady)
            results += await _reports(stack, http, persons)
        rss = stack.peak_rss_mb()
        base = rss.get("province", float("nan"))
        for name in ("claims", "review", "registry", "sync"):
            results.append(
                Result(
                    case=f"system.rss.{name}",
                    metric=f"peak RSS of {name}",
                    unit="MB",
                    figure=rss.get(name, float("nan")),
                    baseline=base,
                    baseline_label="peak RSS of the province simulator",
                    better="lower",
                    details={"all_mb": {k: round(v, 1) for k, v in rss.items()}},
                )
            )
        if mode == "pg":
            for r in results:
                r.case = r.case.replace("system.", "system-pg.", 1)
        return results
    finally:
        await runtime.stop(stack)


if __name__ == "__main__":  # a quick look without the runner
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out = asyncio.run(
            run(Path(tmp), persons=2000, records=2000, claims=128, steady_per_s=20, steady_s=2)
        )
        print(json.dumps([r.as_json() for r in out], indent=1, ensure_ascii=False))
