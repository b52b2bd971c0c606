"""Bulk imports of ``ce``: persons into claims, city-platform learning records into sync.

A file (CSV in UTF-8 or GBK, or XLSX; :mod:`libs.common.tabular`) is read row by row and sent
in chunks of up to 1,000 rows, one request per chunk; progress goes to stderr. Both imports are
safe to run again: a person registered before answers 200 with that person, a learning record
seen before counts as a duplicate."""

from __future__ import annotations

import csv
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import httpx

from libs.common.tabular import CLI_LIMITS, TableRow, iter_table

CHUNK = 1000
RETRIES = 5  # a chunk refused with 429 or 5xx, or unanswered, is sent again (it is idempotent)

PERSON_ALIASES = {
    "身份证号": "id_number",
    "身份证号码": "id_number",
    "姓名": "name",
    "手机": "phone",
    "手机号": "phone",
    "联系电话": "phone",
    "类型": "affiliation_kind",
    "单位": "org_id",
}
PERSON_COLUMNS = ("id_number", "name", "org_id")
LEARNING_COLUMNS = ("record_id", "id_number", "year", "subject", "hours", "course", "completed_at")


def chunks(
    file: Path, required: tuple[str, ...], aliases: dict[str, str] | None = None
) -> Iterator[list[TableRow]]:
    """The file's rows in chunks of :data:`CHUNK`."""
    chunk: list[TableRow] = []
    for row in iter_table(
        file.read_bytes(),
        required=required,
        filename=file.name,
        aliases=aliases,
        limits=CLI_LIMITS,
    ):
        chunk.append(row)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def post(
    http: httpx.Client, url: str, body: dict[str, Any], headers: dict[str, str]
) -> httpx.Response:
    """POST a chunk; transient refusals (429, 5xx, no answer) are retried with backoff."""
    delay = 0.5
    for attempt in range(RETRIES):
        try:
            r = http.post(url, json=body, headers=headers)
        except httpx.TransportError:
            if attempt == RETRIES - 1:
                raise
        else:
            if r.status_code != 429 and r.status_code < 500:
                return r
            if attempt == RETRIES - 1:
                return r
            delay = float(r.headers.get("retry-after") or delay)
        time.sleep(delay)
        delay = min(delay * 2, 10)
    raise AssertionError("unreachable")  # pragma: no cover


class Progress:
    """``rows done, rate`` on stderr, at most twice a second, and once at the end."""

    def __init__(self, what: str, out: TextIO = sys.stderr) -> None:
        self.what, self.out = what, out
        self.started = self.shown = time.monotonic()
        self.done = 0

    def add(self, n: int, *, final: bool = False) -> None:
        self.done += n
        now = time.monotonic()
        if final or now - self.shown >= 0.5:
            rate = self.done / max(now - self.started, 1e-6)
            self.out.write(f"\r{self.what}: {self.done:,} rows ({rate:,.0f}/s)")
            if final:
                self.out.write("\n")
            self.out.flush()
            self.shown = now


def person_body(row: TableRow) -> dict[str, Any]:
    return {
        "id_number": row.get("id_number"),
        "name": row.get("name"),
        "phone": row.get("phone") or None,
        "affiliation": {
            "kind": row.get("affiliation_kind") or "unit",
            "org_id": row.get("org_id"),
        },
    }


def import_persons(
    http: httpx.Client, file: Path, url: str, headers: dict[str, str], echo: Any
) -> tuple[int, int]:
    """Registered (now or before) and refused rows; each refusal echoed as ``line N: ...``."""
    ok = failed = 0
    progress = Progress("persons")
    for chunk in chunks(file, PERSON_COLUMNS, PERSON_ALIASES):
        r = post(
            http,
            f"{url}/v1/persons/batch",
            {"persons": [person_body(row) for row in chunk]},
            headers,
        )
        if r.status_code != 200:
            raise RuntimeError(f"{r.status_code}: {r.text[:500]}")
        for result in r.json()["results"]:
            if result["status"] in (200, 201):
                ok += 1
                continue
            failed += 1
            line = chunk[result["row"]].line
            echo(f"line {line}: {result['status']} {result['code']}: {result['detail']}")
        progress.add(len(chunk))
    progress.add(0, final=True)
    return ok, failed


def import_learning(
    http: httpx.Client, file: Path, url: str, headers: dict[str, str], report: Path
) -> dict[str, int]:
    """Send every record; the refused ones go to ``report`` (CSV: line, record_id, reason)."""
    totals = {"accepted": 0, "duplicates": 0, "rejected": 0}
    progress = Progress("learning records")
    with report.open("w", encoding="utf-8-sig", newline="") as fh:
        errors = csv.writer(fh)
        errors.writerow(["line", "record_id", "reason"])
        for chunk in chunks(file, LEARNING_COLUMNS):
            lines: dict[str, list[int]] = {}
            records = []
            for row in chunk:
                record_id = row.get("record_id")
                if not record_id:
                    errors.writerow([row.line, "", "record_id: missing"])
                    totals["rejected"] += 1
                    continue
                lines.setdefault(record_id, []).append(row.line)
                records.append({c: row.get(c) for c in LEARNING_COLUMNS})
            if records:
                r = post(http, f"{url}/v1/learning-records", {"records": records}, headers)
                if r.status_code != 202:
                    raise RuntimeError(f"{r.status_code}: {r.text[:500]}")
                body = r.json()
                totals["accepted"] += body["accepted"]
                totals["duplicates"] += body["duplicates"]
                for refused in body["rejected"]:
                    at = lines.get(refused["record_id"]) or [0]
                    errors.writerow(
                        [
                            at.pop(0) if len(at) > 1 else at[0],
                            refused["record_id"],
                            refused["reason"],
                        ]
                    )
                    totals["rejected"] += 1
            progress.add(len(chunk))
    progress.add(0, final=True)
    return totals
