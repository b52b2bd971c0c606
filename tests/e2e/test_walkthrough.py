"""The README walk-through, end to end through HTTP, on both runtimes."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from libs.common.idnumber import check_character
from tests.e2e.stack import Stack, start_distributed, start_embedded
from tests.e2e.walkthrough import World, walk_through
from tests.fixtures.broker import Broker

pytestmark = pytest.mark.e2e


def test_walkthrough_embedded(tmp_path: Path) -> None:
    stack = start_embedded(tmp_path / "var")
    try:
        seconds = stack.wait_healthy()
        print(f"embedded stack healthy in {seconds:.1f}s")
        world = walk_through(stack)
        cli_import_and_report(stack, world, tmp_path)
    finally:
        codes = stack.stop()
    # Ctrl-C (SIGINT) stops everything cleanly
    assert codes == [0], stack.tail()


@pytest.mark.postgres
@pytest.mark.kafka
def test_walkthrough_distributed(
    tmp_path: Path, make_pg_database: Callable[[str], str], kafka_broker: Broker
) -> None:
    urls = {name: make_pg_database(name) for name in ("claims", "review", "registry", "sync")}
    stack = start_distributed(tmp_path / "var", urls, kafka_broker.bootstrap)
    try:
        seconds = stack.wait_healthy(timeout_s=90)
        print(f"distributed stack healthy in {seconds:.1f}s")
        walk_through(stack)
    finally:
        codes = stack.stop()
    assert all(c == 0 for c in codes), stack.tail()


def cli_import_and_report(stack: Stack, world: World, tmp_path: Path) -> None:
    """``ce import-persons`` registers a unit's staff from a CSV, safely re-runnable, and
    ``ce report`` downloads the district's compliance report."""
    rows = [("37040219900101123", "李明"), ("37040219850315242", "王芳")]
    lines = ["id_number,name,phone,affiliation_kind,org_id"]
    lines += [f"{d}{check_character(d)},{n},,unit,{world.unit_id}" for d, n in rows]
    lines.append(f"370402198001011230,坏号码,,unit,{world.unit_id}")  # wrong check character
    csv_file = tmp_path / "staff.csv"
    csv_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    claims = ["--url", stack.url("claims")]
    for _ in range(2):  # the second run replays: nobody is registered twice
        result = stack.ce("import-persons", str(csv_file), *claims)
        assert result.returncode == 1, result.stderr
        assert "line 4: 422 invalid_id_number" in result.stdout
        assert json.loads(result.stdout.strip().splitlines()[-1]) == {"registered": 2, "failed": 1}
    result = stack.ce("report", "--year", "2026", "--org", world.district_id, *claims)
    assert result.returncode == 0, result.stderr
    table = list(csv.DictReader(io.StringIO(result.stdout.lstrip("\ufeff"))))
    assert sorted(r["name"] for r in table) == ["张三", "李明", "王芳"]
    assert all(r["compliant"] == "false" for r in table)
    # migrations are idempotent: the running stack is at head already
    migrated = stack.ce("migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert migrated.stdout.split() == [
        w for name in ("claims", "review", "registry", "sync") for w in (f"{name}:", "migrated")
    ]
    refused = stack.ce("token", "--role", "unit_admin")  # an org role without an org
    assert refused.returncode == 2 and "needs an org" in refused.stderr
