"""The embedded durable event log: Kafka's model (topics, keyed partitions, consumer groups with
committed offsets) in one SQLite file, so the whole system runs on one machine with no broker.

Several processes may share the file. Each write is one ``BEGIN IMMEDIATE`` transaction, so offsets
are gap-free and a published message survives a crash once ``publish`` returns. Group members hold
time-limited leases on partitions: a member that dies stops renewing them and another member takes
over from the last committed offset (redelivering what was handled but not committed).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
import uuid
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from libs.common.bus import (
    EventBus,
    Message,
    Outgoing,
    PublishError,
    Subscription,
    last_per_partition,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS topics (topic TEXT PRIMARY KEY, partitions INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, "offset" INTEGER NOT NULL,
    key TEXT NOT NULL, value BLOB NOT NULL, headers TEXT NOT NULL, ts REAL NOT NULL,
    PRIMARY KEY (topic, partition, "offset")
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS group_offsets (
    grp TEXT NOT NULL, topic TEXT NOT NULL, partition INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY (grp, topic, partition)
);
CREATE TABLE IF NOT EXISTS members (
    grp TEXT NOT NULL, member TEXT NOT NULL, expires_at REAL NOT NULL, PRIMARY KEY (grp, member)
);
CREATE TABLE IF NOT EXISTS leases (
    grp TEXT NOT NULL, topic TEXT NOT NULL, partition INTEGER NOT NULL,
    member TEXT NOT NULL, expires_at REAL NOT NULL, PRIMARY KEY (grp, topic, partition)
);
"""


def partition_for(key: str, partitions: int) -> int:
    """Stable across processes and runs (unlike ``hash``)."""
    return zlib.crc32(key.encode()) % partitions


class _Db:
    """One SQLite connection used from worker threads, one statement batch at a time."""

    def __init__(self, path: Path, busy_timeout_ms: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(
            str(path), isolation_level=None, check_same_thread=False, timeout=busy_timeout_ms / 1000
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        self._lock = threading.Lock()
        with self._lock:
            self._conn.executescript(_SCHEMA)

    def write(self, fn: Any, *args: Any) -> Any:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(self._conn, *args)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
            return result

    def read(self, fn: Any, *args: Any) -> Any:
        with self._lock:
            return fn(self._conn, *args)

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class EmbeddedLog(EventBus):
    def __init__(
        self,
        path: str | Path,
        *,
        partitions: int = 4,
        session_timeout_s: float = 6.0,
        poll_interval_s: float = 0.05,
        busy_timeout_ms: int = 10_000,
    ) -> None:
        self.path = Path(path)
        self.partitions = partitions
        self.session_timeout_s = session_timeout_s
        self.poll_interval_s = poll_interval_s
        self.busy_timeout_ms = busy_timeout_ms
        self._db: _Db | None = None

    @property
    def db(self) -> _Db:
        if self._db is None:
            raise RuntimeError("EmbeddedLog not started")
        return self._db

    async def start(self) -> None:
        if self._db is None:
            self._db = await asyncio.to_thread(_Db, self.path, self.busy_timeout_ms)

    async def stop(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            await asyncio.to_thread(db.close)

    async def healthy(self) -> bool:
        try:
            await asyncio.to_thread(self.db.read, lambda c: c.execute("SELECT 1").fetchone())
        except Exception:
            return False
        return True

    def _partitions_of(self, conn: sqlite3.Connection, topic: str) -> int:
        row = conn.execute("SELECT partitions FROM topics WHERE topic=?", (topic,)).fetchone()
        if row is not None:
            return int(row[0])
        conn.execute(
            "INSERT OR IGNORE INTO topics(topic, partitions) VALUES (?, ?)",
            (topic, self.partitions),
        )
        return self.partitions

    async def publish(
        self, topic: str, key: str, value: bytes, headers: dict[str, str] | None = None
    ) -> None:
        await self.publish_many([Outgoing(topic, key, value, headers or {})])

    async def publish_many(self, messages: Sequence[Outgoing]) -> None:
        """All of ``messages`` in one transaction (one fsync): all confirmed, or none."""

        def _append(conn: sqlite3.Connection) -> None:
            partitions: dict[str, int] = {}
            next_offsets: dict[tuple[str, int], int] = {}
            rows = []
            now = time.time()
            for m in messages:
                if m.topic not in partitions:
                    partitions[m.topic] = self._partitions_of(conn, m.topic)
                partition = partition_for(m.key, partitions[m.topic])
                where = (m.topic, partition)
                if where not in next_offsets:
                    (last,) = conn.execute(
                        'SELECT COALESCE(MAX("offset"), -1) FROM messages '
                        "WHERE topic=? AND partition=?",
                        where,
                    ).fetchone()
                    next_offsets[where] = last + 1
                offset = next_offsets[where]
                next_offsets[where] = offset + 1
                rows.append((*where, offset, m.key, m.value, json.dumps(m.headers), now))
            conn.executemany(
                'INSERT INTO messages(topic, partition, "offset", key, value, headers, ts) '
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

        if not messages:
            return
        try:
            await asyncio.to_thread(self.db.write, _append)
        except sqlite3.Error as exc:
            raise PublishError(str(exc)) from exc

    def subscribe(self, group: str, topics: Sequence[str]) -> Subscription:
        return _EmbeddedSubscription(self, group, list(topics))


class _EmbeddedSubscription(Subscription):
    def __init__(self, log: EmbeddedLog, group: str, topics: list[str]) -> None:
        self.log = log
        self.group = group
        self.topics = topics
        self.member = uuid.uuid4().hex
        # fetch positions of the partitions this member currently holds a lease on
        self._positions: dict[tuple[str, int], int] = {}
        self._last_rebalance = 0.0

    async def start(self) -> None:
        await self.log.start()
        await asyncio.to_thread(self.log.db.write, self._rebalance)

    def _rebalance(self, conn: sqlite3.Connection) -> None:
        now = time.time()
        expires = now + self.log.session_timeout_s
        conn.execute(
            "INSERT INTO members(grp, member, expires_at) VALUES (?, ?, ?) "
            "ON CONFLICT(grp, member) DO UPDATE SET expires_at=excluded.expires_at",
            (self.group, self.member, expires),
        )
        conn.execute("DELETE FROM members WHERE grp=? AND expires_at<?", (self.group, now))
        members = [
            r[0]
            for r in conn.execute(
                "SELECT member FROM members WHERE grp=? ORDER BY member", (self.group,)
            )
        ]
        mine = members.index(self.member)
        wanted: list[tuple[str, int]] = []
        index = 0
        for topic in sorted(self.topics):
            for p in range(self.log._partitions_of(conn, topic)):
                if index % len(members) == mine:
                    wanted.append((topic, p))
                index += 1
        held: set[tuple[str, int]] = set()
        for topic, p in wanted:
            cur = conn.execute(
                "INSERT INTO leases(grp, topic, partition, member, expires_at) VALUES (?,?,?,?,?) "
                "ON CONFLICT(grp, topic, partition) DO UPDATE SET member=excluded.member, "
                "expires_at=excluded.expires_at "
                "WHERE leases.member=excluded.member OR leases.expires_at<?",
                (self.group, topic, p, self.member, expires, now),
            )
            if cur.rowcount:
                held.add((topic, p))
        # let go of what is no longer ours so its new owner need not wait for the lease to expire
        for topic, p in list(self._positions):
            if (topic, p) not in wanted:
                conn.execute(
                    "DELETE FROM leases WHERE grp=? AND topic=? AND partition=? AND member=?",
                    (self.group, topic, p, self.member),
                )
        for tp in list(self._positions):
            if tp not in held:
                del self._positions[tp]
        for topic, p in held:
            if (topic, p) not in self._positions:
                row = conn.execute(
                    "SELECT next_offset FROM group_offsets WHERE grp=? AND topic=? AND partition=?",
                    (self.group, topic, p),
                ).fetchone()
                self._positions[(topic, p)] = int(row[0]) if row else 0
        self._last_rebalance = now

    def _read(self, conn: sqlite3.Connection, max_records: int) -> list[Message]:
        out: list[Message] = []
        for (topic, p), position in sorted(self._positions.items()):
            rows = conn.execute(
                'SELECT "offset", key, value, headers FROM messages '
                'WHERE topic=? AND partition=? AND "offset">=? ORDER BY "offset" LIMIT ?',
                (topic, p, position, max_records - len(out)),
            ).fetchall()
            for offset, key, value, headers in rows:
                out.append(Message(topic, p, offset, key, bytes(value), json.loads(headers)))
            if rows:
                self._positions[(topic, p)] = rows[-1][0] + 1
            if len(out) >= max_records:
                break
        return out

    async def fetch(self, max_records: int = 100, timeout_s: float = 1.0) -> list[Message]:
        deadline = time.monotonic() + timeout_s
        while True:
            if time.time() - self._last_rebalance > self.log.session_timeout_s / 3:
                await asyncio.to_thread(self.log.db.write, self._rebalance)
            batch: list[Message] = await asyncio.to_thread(
                self.log.db.read, self._read, max_records
            )
            if batch or time.monotonic() >= deadline:
                return batch
            await asyncio.sleep(self.log.poll_interval_s)

    async def commit_many(self, messages: Sequence[Message]) -> None:
        """The offsets of every partition among ``messages`` in one transaction."""

        def _commit(conn: sqlite3.Connection) -> None:
            for message in last_per_partition(messages):
                owner = conn.execute(
                    "SELECT member FROM leases WHERE grp=? AND topic=? AND partition=?",
                    (self.group, message.topic, message.partition),
                ).fetchone()
                if owner is None or owner[0] != self.member:
                    # another member owns the partition now and redelivers from its committed
                    # offset
                    self._positions.pop((message.topic, message.partition), None)
                    continue
                conn.execute(
                    "INSERT INTO group_offsets(grp, topic, partition, next_offset) "
                    "VALUES (?,?,?,?) ON CONFLICT(grp, topic, partition) "
                    "DO UPDATE SET next_offset=excluded.next_offset",
                    (self.group, message.topic, message.partition, message.offset + 1),
                )

        await asyncio.to_thread(self.log.db.write, _commit)

    async def stop(self) -> None:
        def _leave(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM leases WHERE grp=? AND member=?", (self.group, self.member))
            conn.execute("DELETE FROM members WHERE grp=? AND member=?", (self.group, self.member))

        if self.log._db is not None:
            await asyncio.to_thread(self.log.db.write, _leave)
        self._positions.clear()
