"""The fault suite's harness: the system as one ``ce serve`` process per service (the embedded
durable event log shared by all, a SQLite database each), which a scenario can ``kill -9`` and
restart one at a time; a workload that keeps claims, decisions and city-platform learning records
flowing through whatever is down (each request retried until a deadline, writes idempotent); and
the ledger check every scenario ends with: each accepted claim approved once, its credits booked
once, each record held once by the province (0 lost, 0 duplicated)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from ce.topology import PROCESSES, SERVICES
from libs.common.auth import load_or_create_dev_key
from libs.common.idnumber import check_character
from tests.e2e.stack import Stack, serve
from tests.e2e.walkthrough import PDF, bearer
from tests.support import eventually, free_port

YEAR = 2026
RETRIED = (httpx.TransportError,)


@dataclass
class Cluster:
    """The processes of one system, by name, each killable and restartable."""

    stack: Stack
    env: dict[str, str]
    per_service: dict[str, dict[str, str]] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @classmethod
    def start(
        cls,
        data_dir: Path,
        env: Mapping[str, str] | None = None,
        per_service: Mapping[str, Mapping[str, str]] | None = None,
        start_timeout_s: float = 60.0,
    ) -> Cluster:
        """Every process with ``env``, and the one named in ``per_service`` with its own too."""
        data_dir.mkdir(parents=True, exist_ok=True)
        load_or_create_dev_key(data_dir)  # before the processes race to create it
        cluster = cls(
            Stack(data_dir, {n: free_port() for n in PROCESSES}),
            dict(env or {}),
            {name: dict(extra) for name, extra in (per_service or {}).items()},
        )
        try:
            for name in PROCESSES:
                cluster.launch(name)
            cluster.wait_healthy(*PROCESSES, timeout_s=start_timeout_s)
        except BaseException:
            cluster.stop()  # no process outlives a failed start
            raise
        return cluster

    def launch(self, name: str) -> None:
        self.procs[name] = serve(self.stack, name, {**self.env, **self.per_service.get(name, {})})

    def url(self, name: str) -> str:
        return self.stack.url(name)

    def token(self, role: str, **kw: str | None) -> str:
        return self.stack.token(role, **kw)

    def kill9(self, name: str) -> None:
        """SIGKILL: no shutdown, no flush, no goodbye."""
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        self.stack.procs.remove(proc)

    def restart(self, name: str) -> None:
        self.launch(name)
        self.wait_healthy(name)

    def wait_healthy(self, *names: str, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        pending = set(names)
        while pending:
            for name in list(pending):
                if self.procs[name].poll() is not None:
                    raise RuntimeError(f"{name} exited early:\n{self.stack.tail()}")
                try:
                    if httpx.get(self.url(name) + "/healthz", timeout=1).status_code == 200:
                        pending.discard(name)
                except httpx.HTTPError:
                    pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"not healthy: {pending}\n{self.stack.tail()}")
            time.sleep(0.1)

    def stop(self) -> None:
        self.stack.stop()


def call(
    http: httpx.Client,
    method: str,
    url: str,
    *,
    deadline_s: float = 60.0,
    **kw: Any,
) -> httpx.Response:
    """One request, retried while the service is down or answers 5xx (it may be restarting)."""
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            response = http.request(method, url, **kw)
            if response.status_code < 500:
                return response
            failure = f"{response.status_code}: {response.text[:200]}"
        except RETRIED as exc:
            failure = repr(exc)
        if time.monotonic() > deadline:
            raise TimeoutError(f"{method} {url} kept failing: {failure}")
        time.sleep(0.2)


def pdf_of(day: int) -> bytes:
    """A certificate file of its own (the same file twice is a duplicate_evidence)."""
    return PDF.replace(b"\n", f"\n% certificate {day}\n".encode(), 1)


def id_number_of(n: int) -> str:
    body = f"37040219850101{n:03d}"[:17]
    return body + check_character(body)


@dataclass
class Workload:
    """Claims, decisions and learning records, with what was accepted written down."""

    cluster: Cluster
    persons: int = 4
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=10))
    person_ids: list[str] = field(default_factory=list)
    id_numbers: list[str] = field(default_factory=list)
    unit_admin: str = ""
    district_admin: str = ""
    accepted_claims: dict[str, int] = field(default_factory=dict)  # claim id -> person index
    learning: dict[str, int] = field(default_factory=dict)  # record id -> person index
    claims_submitted: int = 0
    refused: Counter[str] = field(default_factory=Counter)  # claims refused, by status and code
    decisions: int = 0
    _day: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def setup(self) -> None:
        c = self.cluster
        city = bearer(c.token("city_admin"))
        review = c.url("review")
        district = call(
            self.http,
            "POST",
            f"{review}/v1/orgs",
            headers=city,
            json={"code": "370402", "name": "市中区人社局", "type": "district"},
        )
        assert district.status_code == 201, district.text
        unit = call(
            self.http,
            "POST",
            f"{review}/v1/orgs",
            headers=city,
            json={
                "code": "U001",
                "name": "枣庄市立医院",
                "type": "unit",
                "parent_id": district.json()["id"],
            },
        )
        assert unit.status_code == 201, unit.text
        self.unit_admin = c.token("unit_admin", org_id=unit.json()["id"])
        self.district_admin = c.token("district_admin", org_id=district.json()["id"])
        for n in range(self.persons):
            id_number = id_number_of(n)

            def register(id_number: str = id_number, n: int = n) -> httpx.Response | None:
                r = call(
                    self.http,
                    "POST",
                    f"{c.url('claims')}/v1/persons",
                    headers=bearer(self.unit_admin),
                    json={
                        "id_number": id_number,
                        "name": f"职工{n}",
                        "affiliation": {"kind": "unit", "org_id": unit.json()["id"]},
                    },
                )
                return None if r.status_code == 422 and r.json()["code"] == "unknown_org" else r

            person = eventually(register, what="org replica in claims")
            assert person.status_code == 201, person.text
            self.person_ids.append(person.json()["id"])
            self.id_numbers.append(id_number)

    def personnel(self, n: int) -> dict[str, str]:
        return bearer(self.cluster.token("personnel", person_id=self.person_ids[n]))

    def submit_claim(self, n: int) -> None:
        """One training claim of 8 hours on its own day (idempotent by its key)."""
        with self._lock:
            self._day += 1
            day = self._day
        claims = self.cluster.url("claims")
        headers = self.personnel(n)
        evidence = call(
            self.http,
            "POST",
            f"{claims}/v1/evidence",
            headers=headers,
            files={"file": ("certificate.pdf", pdf_of(day), "application/pdf")},
        )
        assert evidence.status_code == 201, evidence.text
        start = f"2026-{1 + day // 28:02d}-{1 + day % 28:02d}"
        claim = call(
            self.http,
            "POST",
            f"{claims}/v1/claims",
            headers={**headers, "Idempotency-Key": f"fault-claim-{day}"},
            json={
                "person_id": self.person_ids[n],
                "year": YEAR,
                "category": "training",
                "title": f"继续教育培训班 第{day}期",
                "hours": 8,
                "start_date": start,
                "end_date": start,
                "reference_no": "鲁卫继备〔2026〕15号",
                "evidence_ids": [evidence.json()["id"]],
            },
        )
        self.claims_submitted += 1
        if claim.status_code == 201:
            self.accepted_claims[claim.json()["id"]] = n
        else:
            self.refused[f"{claim.status_code} {claim.json().get('code')}"] += 1

    def decide_open(self) -> int:
        """Approve every open task at both stages; a task decided meanwhile (409) is fine."""
        done = 0
        review = self.cluster.url("review")
        for token, stage in ((self.unit_admin, "unit"), (self.district_admin, "authority")):
            r = call(
                self.http,
                "GET",
                f"{review}/v1/review-tasks",
                headers=bearer(token),
                params={"status": "open", "stage": stage, "limit": 100},
            )
            assert r.status_code == 200, r.text
            for task in r.json()["items"]:
                d = call(
                    self.http,
                    "POST",
                    f"{review}/v1/review-tasks/{task['id']}/decision",
                    headers=bearer(token),
                    json={"decision": "approve"},
                )
                assert d.status_code in (200, 409), d.text
                done += d.status_code == 200
        self.decisions += done
        return done

    def push_learning(self, n: int, k: int) -> None:
        record_id = f"zzzj-{YEAR}-{k:06d}"
        r = call(
            self.http,
            "POST",
            f"{self.cluster.url('sync')}/v1/learning-records",
            headers=bearer(self.cluster.token("system")),
            json={
                "records": [
                    {
                        "record_id": record_id,
                        "id_number": self.id_numbers[n],
                        "year": YEAR,
                        "subject": "public",
                        "hours": 1.5,
                        "course": f"公需课 {k}",
                        "completed_at": "2026-06-01T10:00:00+08:00",
                    }
                ]
            },
        )
        assert r.status_code == 202, r.text
        if r.json()["accepted"] or r.json()["duplicates"]:
            self.learning[record_id] = n

    def converge(self, timeout_s: float = 90.0) -> Ledger:
        """Decide until every accepted claim is approved, then wait until the province holds
        every record; returns the counts checked."""

        def all_approved() -> bool | None:
            self.decide_open()
            return True if self._unapproved() == [] else None

        eventually(all_approved, timeout_s=timeout_s, what="every accepted claim approved")
        return eventually(self._ledger, timeout_s=timeout_s, what="the province holds all")

    def _unapproved(self) -> list[str]:
        claims = self.cluster.url("claims")
        out = []
        for claim_id, n in self.accepted_claims.items():
            r = call(self.http, "GET", f"{claims}/v1/claims/{claim_id}", headers=self.personnel(n))
            assert r.status_code == 200, r.text
            if r.json()["status"] != "approved":
                out.append(claim_id)
        return out

    def _ledger(self) -> Ledger | None:
        """The counts once the province holds everything, else None (not yet)."""
        claims, province = self.cluster.url("claims"), self.cluster.url("province")
        ledger = Ledger(
            accepted=len(self.accepted_claims),
            learning=len(self.learning),
            submitted=self.claims_submitted,
            refused=dict(self.refused),
            decisions=self.decisions,
        )
        held: Counter[str] = Counter()
        for n, person_id in enumerate(self.person_ids):
            t = call(
                self.http,
                "GET",
                f"{claims}/v1/persons/{person_id}/transcripts/{YEAR}",
                headers=self.personnel(n),
            )
            assert t.status_code == 200, t.text
            refs = Counter(e["ref"] for e in t.json()["entries"] if e["source"] == "claim")
            mine = [c for c, p in self.accepted_claims.items() if p == n]
            ledger.credited += sum(1 for c in mine if refs[c] >= 1)
            ledger.credit_duplicates += sum(count - 1 for count in refs.values() if count > 1)
            ledger.credit_strays += sum(1 for ref in refs if ref not in self.accepted_claims)
            p = call(
                self.http,
                "GET",
                f"{province}/province/v1/persons/{self.id_numbers[n]}/hours",
                params={"year": YEAR},
            )
            assert p.status_code == 200, p.text
            for record in p.json()["records"]:
                rid = record["record_id"]
                # claim-{claim id}-r{revision}-{subject}: one per claim, whatever the revision
                key = rid.rsplit("-r", 1)[0] if rid.startswith("claim-") else rid
                held[key] += 1
        expected = {f"claim-{c}" for c in self.accepted_claims} | {
            f"city-{r}" for r in self.learning
        }
        ledger.registered = sum(1 for key in expected if held[key] >= 1)
        ledger.lost = len(expected) - ledger.registered
        ledger.duplicated = sum(count - 1 for count in held.values() if count > 1)
        ledger.strays = sum(1 for key in held if key not in expected)
        if ledger.lost or ledger.credited < ledger.accepted:
            return None
        return ledger

    def close(self) -> None:
        self.http.close()


@dataclass
class Ledger:
    accepted: int
    learning: int
    submitted: int
    decisions: int
    refused: dict[str, int]
    credited: int = 0
    credit_duplicates: int = 0
    credit_strays: int = 0
    registered: int = 0
    lost: int = 0
    duplicated: int = 0
    strays: int = 0

    def assert_exact(self) -> None:
        assert self.accepted > 0 and self.registered > 0, self
        assert self.credited == self.accepted and self.credit_duplicates == 0, self
        assert self.credit_strays == 0, self
        assert self.registered == self.accepted + self.learning, self
        assert (self.lost, self.duplicated, self.strays) == (0, 0, 0), self

    def report(self, scenario: str, injected: str) -> None:
        """One JSON line per scenario (``-s`` shows it; the closing note quotes it)."""
        line = {"scenario": scenario, "injected": injected, **self.__dict__}
        print("\nRELIABILITY " + json.dumps(line, ensure_ascii=False))
        path = os.environ.get("CE_RELIABILITY_REPORT")
        if path:
            with open(path, "a", encoding="utf-8") as out:
                out.write(json.dumps(line, ensure_ascii=False) + "\n")


def no_dead_letters(cluster: Cluster) -> dict[str, int]:
    """Dead letters per service (none expected: a crash is not a poison event)."""
    city = bearer(cluster.token("city_admin"))
    counts = {}
    with httpx.Client(timeout=10) as http:
        for name in SERVICES:
            r = call(http, "GET", f"{cluster.url(name)}/v1/admin/dead-letters", headers=city)
            assert r.status_code == 200, r.text
            counts[name] = len(r.json()["items"])
    return counts


def settle_exactly_once(
    cluster: Cluster, workload: Workload, scenario: str, injected: str, timeout_s: float = 60
) -> Ledger:
    """The end of a fault scenario: converge, report the counts (with the dead letters), and
    assert the ledger exact and no dead letter in any service."""
    try:
        ledger = workload.converge(timeout_s=timeout_s)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; dead letters: {no_dead_letters(cluster)}") from exc
    letters = no_dead_letters(cluster)
    ledger.report(scenario, f"{injected}; dead letters after: {letters}")
    ledger.assert_exact()
    assert letters == dict.fromkeys(SERVICES, 0), letters
    return ledger


class Driver:
    """The workload in a background thread: rounds of a claim, decisions and a learning record,
    until stopped. Errors are kept and raised by :meth:`stop`."""

    def __init__(self, workload: Workload, pause_s: float = 0.2) -> None:
        self.workload = workload
        self.pause_s = pause_s
        self.rounds = 0
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Driver:
        self._thread.start()
        return self

    def _run(self) -> None:
        w = self.workload
        try:
            while not self._stop.is_set():
                n = self.rounds % w.persons
                w.submit_claim(n)
                w.decide_open()
                w.push_learning(n, self.rounds)
                self.rounds += 1
                self._stop.wait(self.pause_s)
        except BaseException as exc:
            self._error = exc

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=120)
        assert not self._thread.is_alive(), "the workload did not stop"
        if self._error is not None:
            raise self._error
