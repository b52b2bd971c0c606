"""Case: the web console under reviewers, on the embedded stack of ``ce run`` (console included).

Set-up (not measured): a city, a district and a unit through the review API, persons of the
unit (``POST /v1/persons/batch``), and ``tasks`` training claims submitted by them, each with its
own evidence file, until the unit's 待审核 queue holds ``tasks`` open tasks. Eight reviewers sign
in to the console through its dev form (a session cookie each).

Measured, in interleaved rounds at 8 concurrent clients:

* ``GET /healthz`` of claims — the baseline: the same machine, the same client, no work;
* ``GET /review`` on the console — the unit's queue page (50 rows of ``tasks``, with the total):
  the console's session check, one call to review, the template;
* ``GET /review/tasks/{id}`` on the console — a task page: the task, then the claim, its
  history, the person's year and the evidence file's name, fetched together.

Figures are p50 and p99 latencies over all rounds, each beside the same percentile of
``/healthz`` in the same run.
"""

from __future__ import annotations

import asyncio
import re
import time
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from bench import runtime
from bench.case_system import Claims, _concurrent, _id_number, _ok, _orgs
from bench.common import Result, latency_result

REVIEWERS = 8
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


async def _people(stack: runtime.Stack, http: httpx.AsyncClient, unit: str, n: int) -> list[str]:
    rows = [
        {
            "id_number": _id_number(900_000 + i),
            "name": f"审核样本{i}",
            "affiliation": {"kind": "unit", "org_id": unit},
        }
        for i in range(n)
    ]
    r = await http.post(
        f"{stack.url('claims')}/v1/persons/batch",
        json={"persons": rows},
        headers=stack.auth("city_admin"),
    )
    body = await _ok(r, 200)
    return [x["person"]["id"] for x in body["results"]]


async def _queue_filled(
    stack: runtime.Stack, http: httpx.AsyncClient, unit: str, tasks: int
) -> None:
    headers = stack.auth("unit_admin", org_id=unit)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        r = await http.get(
            f"{stack.url('review')}/v1/review-tasks",
            params={"status": "open", "stage": "unit", "limit": 1},
            headers=headers,
        )
        if (await _ok(r, 200)).get("total", 0) >= tasks:
            return
        await asyncio.sleep(0.5)
    raise RuntimeError("the claims did not reach the unit's queue")


async def _reviewer(stack: runtime.Stack, unit: str) -> httpx.AsyncClient:
    """A browser-like client of the console, signed in as the unit's admin (dev form)."""
    client = httpx.AsyncClient(base_url=stack.url("console"), timeout=60)
    page = await client.get("/login")
    match = CSRF.search(page.text)
    if match is None:
        raise RuntimeError(f"no sign-in form at the console: {page.status_code}")
    form = {"csrf_token": match.group(1), "role": "unit_admin", "org_id": unit, "person_id": ""}
    r = await client.post("/login", data=form)
    if r.status_code != 303:
        raise RuntimeError(f"console sign-in answered {r.status_code}: {r.text[:300]}")
    return client


def _result(
    name: str,
    metric: str,
    pct: float,
    subject: list[float],
    base: list[float],
    details: dict[str, Any],
) -> Result:
    return latency_result(
        f"console.{name}_p{pct:g}",
        f"{metric}, p{pct:g} at {REVIEWERS} concurrent reviewers",
        pct,
        subject,
        base,
        f"claims /healthz p{pct:g}, same run",
        details,
    )


async def run(workdir: Path, *, tasks: int, rounds: int, per_round: int) -> list[Result]:
    stack = await runtime.start("embedded", workdir, {})
    reviewers: list[httpx.AsyncClient] = []
    try:
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64, keepalive_expiry=1)
        async with httpx.AsyncClient(timeout=120, limits=limits) as http:
            _, unit = await _orgs(stack, http)
            people = await _people(stack, http, unit, max(8, tasks // 40))
            load = Claims(stack, http, people)
            prepared = await load.prepare(tasks)
            pending = list(prepared)

            async def submitter() -> None:
                while pending:
                    n, evidence_id = pending.pop()
                    await load.submit(n, evidence_id)

            await asyncio.gather(*(submitter() for _ in range(8)))
            await _queue_filled(stack, http, unit, tasks)
            task_ids = [
                t["id"]
                for t in (
                    await _ok(
                        await http.get(
                            f"{stack.url('review')}/v1/review-tasks",
                            params={"status": "open", "limit": 100},
                            headers=stack.auth("unit_admin", org_id=unit),
                        ),
                        200,
                    )
                )["items"]
            ]
            reviewers = [await _reviewer(stack, unit) for _ in range(REVIEWERS)]
            healthz = stack.url("claims") + "/healthz"
            samples: dict[str, list[float]] = {"healthz": [], "queue": [], "task": []}

            def jobs(kind: str, n: int) -> list[Any]:
                out = []
                for i in range(n):
                    if kind == "healthz":
                        out.append(partial(_get, http, healthz))
                    elif kind == "queue":
                        out.append(partial(_get, reviewers[i % REVIEWERS], "/review"))
                    else:
                        path = f"/review/tasks/{task_ids[i % len(task_ids)]}"
                        out.append(partial(_get, reviewers[i % REVIEWERS], path))
                return out

            for kind in ("healthz", "queue", "task"):  # warm-up, not counted
                await _concurrent(jobs(kind, REVIEWERS), REVIEWERS)
            for _ in range(rounds):
                for kind in ("healthz", "queue", "task"):
                    latencies, _ = await _concurrent(jobs(kind, per_round), REVIEWERS)
                    samples[kind] += latencies
    finally:
        for client in reviewers:
            await client.aclose()
        await runtime.stop(stack)
    details = {"open_tasks": tasks, "rows_per_page": 50, "requests": len(samples["queue"])}
    base = samples["healthz"]
    return [
        _result("queue_page", "GET /review (unit queue)", 50, samples["queue"], base, details),
        _result("queue_page", "GET /review (unit queue)", 99, samples["queue"], base, details),
        _result("task_page", "GET /review/tasks/{id}", 50, samples["task"], base, details),
        _result("task_page", "GET /review/tasks/{id}", 99, samples["task"], base, details),
    ]


async def _get(client: httpx.AsyncClient, url: str) -> None:
    response = await client.get(url)
    if response.status_code != 200:
        raise RuntimeError(f"{response.request.url.path} answered {response.status_code}")
