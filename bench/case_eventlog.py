"""Case 1: the embedded event log (``libs.common.eventlog.EmbeddedLog``).

* publish: ``await log.publish(...)`` one message at a time, as the outbox relay does. Each call
  is one ``BEGIN IMMEDIATE`` transaction on a WAL file with ``synchronous=FULL`` (an fsync per
  message). Baseline: raw ``sqlite3`` inserts of the same rows into a table of the same shape,
  with the same pragmas and one transaction per row, called directly (no event loop, no thread
  hop, no partition/offset lookups). The ratio is the share of the durable-commit floor of this
  disk that the log achieves.
* consume+commit: ``fetch`` batches of 100 and ``commit`` each message, as ``bus.Consumer`` does
  (an offset commit per message, each a durable transaction). Baseline: raw ``sqlite3`` reading
  the same rows in batches of 100 and upserting the group offset in one transaction per message.

Both run on a temp directory on the same filesystem as the system temp dir (fsyncs are real
unless that is a tmpfs; ``run.py`` records the filesystem type).
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from bench.common import Result, Rounds, rate
from libs.common.eventlog import EmbeddedLog, partition_for

TOPIC = "claims.events"
KEYS = [f"00000000-0000-4000-8000-{i:012d}" for i in range(64)]  # aggregate ids
VALUE = json.dumps(
    {
        "id": "6f1c0c36-9f7e-4f0a-9d59-3c7a4f0b1e2d",
        "type": "claim.submitted",
        "version": 1,
        "source": "claims",
        "occurred_at": "2026-11-26T03:00:00+00:00",
        "subject": KEYS[0],
        "correlation_id": "bench",
        "data": {"title": "Training course " + "x" * 200, "requested_hours": 8.0},
    }
).encode()
HEADERS = {"event_type": "claim.submitted", "correlation_id": "bench"}
PARTITIONS = 4

_RAW_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, "offset" INTEGER NOT NULL,
    key TEXT NOT NULL, value BLOB NOT NULL, headers TEXT NOT NULL, ts REAL NOT NULL,
    PRIMARY KEY (topic, partition, "offset")
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS group_offsets (
    grp TEXT NOT NULL, topic TEXT NOT NULL, partition INTEGER NOT NULL,
    next_offset INTEGER NOT NULL, PRIMARY KEY (grp, topic, partition)
);
"""


class _RawLog:
    """The baseline: the same rows and durability, straight through ``sqlite3``."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(str(path), isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.executescript(_RAW_SCHEMA)
        # offsets are kept in memory: the baseline skips the log's MAX(offset) lookup on purpose
        self.next_offset = [0] * PARTITIONS
        self.read_position = [0] * PARTITIONS
        headers = json.dumps(HEADERS)
        self._headers = headers

    def publish(self, count: int, start: int) -> int:
        conn = self.conn
        for i in range(start, start + count):
            key = KEYS[i % len(KEYS)]
            p = partition_for(key, PARTITIONS)
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                'INSERT INTO messages(topic, partition, "offset", key, value, headers, ts) '
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (TOPIC, p, self.next_offset[p], key, VALUE, self._headers, time.time()),
            )
            conn.execute("COMMIT")
            self.next_offset[p] += 1
        return count

    def consume(self, count: int) -> int:
        conn = self.conn
        done = 0
        while done < count:
            progressed = False
            for p in range(PARTITIONS):
                rows = conn.execute(
                    'SELECT "offset", key, value, headers FROM messages '
                    'WHERE topic=? AND partition=? AND "offset">=? ORDER BY "offset" LIMIT ?',
                    (TOPIC, p, self.read_position[p], min(100, count - done)),
                ).fetchall()
                for offset, _key, _value, headers in rows:
                    json.loads(headers)
                    conn.execute("BEGIN IMMEDIATE")
                    conn.execute(
                        "INSERT INTO group_offsets(grp, topic, partition, next_offset) "
                        "VALUES (?,?,?,?) ON CONFLICT(grp, topic, partition) "
                        "DO UPDATE SET next_offset=excluded.next_offset",
                        ("bench", TOPIC, p, offset + 1),
                    )
                    conn.execute("COMMIT")
                    self.read_position[p] = offset + 1
                    done += 1
                    progressed = True
                if done >= count:
                    break
            if not progressed:
                raise RuntimeError("baseline ran out of messages")
        return count

    def close(self) -> None:
        self.conn.close()


async def run(workdir: Path, *, messages: int, rounds: int) -> list[Result]:
    """``messages`` per round and side; ``rounds`` alternations of baseline and subject."""
    raw = _RawLog(workdir / "raw.db")
    log = EmbeddedLog(workdir / "events.db", partitions=PARTITIONS, poll_interval_s=0.01)
    await log.start()
    try:
        publish = Rounds()
        # warm-up (not measured): create the topic and grow both files and WALs a little,
        # so the first measured round does not pay for file creation
        warm = min(messages, 200)
        raw.publish(warm, 0)
        for i in range(warm):
            await log.publish(TOPIC, KEYS[i % len(KEYS)], VALUE, HEADERS)
        published = warm
        for _ in range(rounds):
            start = time.perf_counter()
            n = raw.publish(messages, published)
            publish.baseline.append(rate(n, time.perf_counter() - start))
            start = time.perf_counter()
            for i in range(published, published + messages):
                await log.publish(TOPIC, KEYS[i % len(KEYS)], VALUE, HEADERS)
            publish.subject.append(rate(messages, time.perf_counter() - start))
            published += messages

        total = published
        consume = Rounds()
        sub = log.subscribe("bench", [TOPIC])
        await sub.start()
        try:
            per_round = total // rounds
            for _ in range(rounds):
                start = time.perf_counter()
                n = raw.consume(per_round)
                consume.baseline.append(rate(n, time.perf_counter() - start))
                start = time.perf_counter()
                got = 0
                while got < per_round:
                    batch = await sub.fetch(max_records=min(100, per_round - got), timeout_s=2.0)
                    if not batch:
                        raise RuntimeError("the embedded log delivered nothing within 2 s")
                    for message in batch:
                        await sub.commit(message)
                    got += len(batch)
                consume.subject.append(rate(got, time.perf_counter() - start))
        finally:
            await sub.stop()
    finally:
        await log.stop()
        raw.close()

    size = len(VALUE)
    return [
        Result(
            case="eventlog.publish",
            metric="EmbeddedLog.publish, sequential, fsync per message",
            unit="msg/s",
            figure=publish.subject_median,
            baseline=publish.baseline_median,
            baseline_label="raw sqlite3 INSERT, WAL+FULL, 1 txn/row",
            better="higher",
            details={"messages_per_round": messages, "value_bytes": size, **publish.details()},
        ),
        Result(
            case="eventlog.consume",
            metric="fetch(100) + commit per message",
            unit="msg/s",
            figure=consume.subject_median,
            baseline=consume.baseline_median,
            baseline_label="raw sqlite3 SELECT + offset UPSERT, 1 txn/msg",
            better="higher",
            details={"messages_per_round": total // rounds, **consume.details()},
        ),
    ]
