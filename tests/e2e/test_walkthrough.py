"""The README walk-through, end to end through HTTP, on both runtimes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.stack import start_distributed, start_embedded
from tests.e2e.walkthrough import walk_through
from tests.fixtures.broker import Broker

pytestmark = pytest.mark.e2e


def test_walkthrough_embedded(tmp_path: Path) -> None:
    stack = start_embedded(tmp_path / "var")
    try:
        seconds = stack.wait_healthy()
        print(f"embedded stack healthy in {seconds:.1f}s")
        walk_through(stack)
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
