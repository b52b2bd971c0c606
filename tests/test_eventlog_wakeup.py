"""The embedded log's doorbell and write queue (libs.common.eventlog): an idle consumer is woken by
an append made through another connection to the file, long before its next poll would read
the log; writers of several processes queue on the lock and lose nothing."""

from __future__ import annotations

import asyncio
import multiprocessing
import sqlite3
import time
from pathlib import Path

import pytest

from libs.common import eventlog
from libs.common.eventlog import EmbeddedLog

POLL_S = 30.0  # so long that only the doorbell can explain a prompt wake-up


async def test_an_idle_consumer_sees_an_append_long_before_its_next_poll(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    consumer_log = EmbeddedLog(path, partitions=2, poll_interval_s=POLL_S)
    writer_log = EmbeddedLog(path, partitions=2)  # another connection, as another process has
    await consumer_log.start()
    await writer_log.start()
    subscription = consumer_log.subscribe("g", ["t"])
    await subscription.start()
    try:
        for n in range(3):
            fetching = asyncio.create_task(subscription.fetch(timeout_s=POLL_S))
            await asyncio.sleep(0.3)  # the consumer has read an empty log and waits
            assert not fetching.done()
            published = time.monotonic()
            await writer_log.publish("t", f"key-{n}", f"v{n}".encode())
            batch = await asyncio.wait_for(fetching, POLL_S)
            woken_after = time.monotonic() - published
            assert [m.value for m in batch] == [f"v{n}".encode()]
            # the doorbell is looked at every 5 ms; a second covers a loaded machine
            assert woken_after < 1.0, woken_after
    finally:
        await subscription.stop()
        await writer_log.stop()
        await consumer_log.stop()


async def test_the_doorbell_stays_small_and_keeps_ringing_when_emptied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(eventlog, "BELL_MAX_BYTES", 8)
    path = tmp_path / "events.db"
    bell = Path(f"{path}.bell")
    log = EmbeddedLog(path, partitions=1, poll_interval_s=POLL_S)
    await log.start()
    subscription = log.subscribe("g", ["t"])
    await subscription.start()
    try:
        sizes = []
        for _ in range(20):
            await log.publish("t", "k", b"x")
            sizes.append(eventlog.bell_state(bell)[1])
        assert max(sizes) == 8 and sizes.count(1) == 3  # emptied twice on the way
        assert len(await subscription.fetch(max_records=100)) == 20
        # the bell was emptied on the way: an append still wakes the idle consumer
        fetching = asyncio.create_task(subscription.fetch(timeout_s=POLL_S))
        await asyncio.sleep(0.2)
        await log.publish("t", "k", b"last")
        batch = await asyncio.wait_for(fetching, 5.0)
        assert [m.value for m in batch] == [b"last"]
    finally:
        await subscription.stop()
        await log.stop()


def _publish_many(path: str, writer: str, count: int) -> None:
    async def main() -> None:
        log = EmbeddedLog(path, partitions=1)
        await log.start()
        for n in range(count):
            await log.publish("t", "same-key", f"{writer}-{n}".encode())
        await log.stop()

    asyncio.run(main())


@pytest.mark.subprocess
def test_writers_of_two_processes_interleave_without_loss(tmp_path: Path) -> None:
    path = str(tmp_path / "events.db")
    count = 300
    spawn = multiprocessing.get_context("spawn")
    writers = [spawn.Process(target=_publish_many, args=(path, w, count)) for w in ("a", "b")]
    for process in writers:
        process.start()
    for process in writers:
        process.join(60)
        assert process.exitcode == 0
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            'SELECT "offset", value FROM messages WHERE topic=? AND partition=0 ORDER BY "offset"',
            ("t",),
        ).fetchall()
    assert [offset for offset, _ in rows] == list(range(2 * count))  # gap-free, no duplicates
    values = [bytes(v).decode() for _, v in rows]
    for writer in ("a", "b"):
        # every message of each writer, in its own order
        assert [v for v in values if v.startswith(writer)] == [
            f"{writer}-{n}" for n in range(count)
        ]
