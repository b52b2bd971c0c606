"""The event bus contract (libs/common/bus.py), checked against both adapters.

Every case runs on the embedded log (a SQLite file under tmp_path) and on KafkaBus against the Tansu
broker of the test run; each test uses its own topic and group names.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from libs.common.bus import Consumer, EventBus, Message, Outgoing, PublishError, Subscription
from libs.common.eventlog import EmbeddedLog
from libs.common.kafka import KafkaBus, _KafkaSubscription
from tests.fixtures.broker import Broker

ROOT = Path(__file__).resolve().parents[1]
PARTITIONS = 4
# the embedded log's leases expire after this
SESSION_S = 1.0
# Tansu delays a join by about a session timeout (4s after a leave with 2s sessions); keep it short
KAFKA_SESSION_MS = 1000
WAIT_S = 15.0


@dataclass
class BusCase:
    """One adapter under test, with fresh topic and group names."""

    kind: str
    bus: EventBus
    topic: str
    group: str
    config: dict[str, object] = field(default_factory=dict)

    def owned(self, sub: Subscription) -> set[tuple[str, int]]:
        """The partitions ``sub`` currently owns."""
        if isinstance(sub, _KafkaSubscription):
            return {(tp.topic, tp.partition) for tp in sub.assignment}
        return set(sub._positions)  # type: ignore[attr-defined]


def make_kafka_bus(bootstrap: str, **overrides: object) -> KafkaBus:
    options: dict[str, object] = {
        "partitions": PARTITIONS,
        "enable_idempotence": False,  # Tansu has no InitProducerId
        "send_timeout_s": 3.0,
        "admin_timeout_s": 2.0,
        "session_timeout_ms": KAFKA_SESSION_MS,
        "heartbeat_interval_ms": KAFKA_SESSION_MS // 10,
        "fetch_max_wait_ms": 50,  # Tansu holds a fetch for all of it
    }
    options.update(overrides)
    return KafkaBus(bootstrap, **options)  # type: ignore[arg-type]


@pytest.fixture(params=["embedded", pytest.param("kafka", marks=pytest.mark.kafka)])
async def case(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BusCase]:
    suffix = uuid.uuid4().hex[:10]
    bus: EventBus
    if request.param == "embedded":
        path = tmp_path / "events.db"
        bus = EmbeddedLog(
            path, partitions=PARTITIONS, session_timeout_s=SESSION_S, poll_interval_s=0.02
        )
        config: dict[str, object] = {"path": str(path)}
    else:
        broker: Broker = request.getfixturevalue("kafka_broker")
        bus = make_kafka_bus(broker.bootstrap)
        config = {"bootstrap": broker.bootstrap}
    await bus.start()
    try:
        yield BusCase(request.param, bus, f"t-{suffix}", f"g-{suffix}", config)
    finally:
        await bus.stop()


async def publish_all(case: BusCase, items: Sequence[tuple[str, bytes]]) -> None:
    for key, value in items:
        await case.bus.publish(case.topic, key, value, {"seq": value.decode()})


async def settle(case: BusCase, subs: Sequence[Subscription]) -> list[Message]:
    """Fetch on every member until each owns a partition and together they own them all;
    return whatever was delivered meanwhile (no commits)."""
    everything = {(case.topic, p) for p in range(PARTITIONS)}
    delivered: list[Message] = []
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        for batch in await asyncio.gather(*(s.fetch(100, 0.2) for s in subs)):
            delivered.extend(batch)
        owned = [case.owned(s) for s in subs]
        if all(owned) and set().union(*owned) == everything and sum(map(len, owned)) == PARTITIONS:
            return delivered
    pytest.fail(f"group did not settle: {[case.owned(s) for s in subs]}")


async def collect(
    sub: Subscription, count: int, *, commit: bool = False, timeout_s: float = WAIT_S
) -> list[Message]:
    """Fetch until ``count`` messages arrived (or fail), optionally committing each."""
    got: list[Message] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < count and time.monotonic() < deadline:
        for message in await sub.fetch(100, 0.3):
            got.append(message)
            if commit:
                await sub.commit(message)
    assert len(got) >= count, f"expected {count} messages, got {len(got)}"
    return got


async def fetch_for(sub: Subscription, seconds: float) -> list[Message]:
    """Everything ``sub`` delivers during ``seconds``."""
    got: list[Message] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got.extend(await sub.fetch(100, 0.2))
    return got


class CommitSpy(Subscription):
    """Passes everything through to a real subscription and lets a test wait for a commit."""

    def __init__(self, inner: Subscription) -> None:
        self.inner = inner
        self._committed: dict[bytes, asyncio.Event] = defaultdict(asyncio.Event)

    def committed_value(self, value: bytes) -> asyncio.Event:
        return self._committed[value]

    async def start(self) -> None:
        await self.inner.start()

    async def fetch(self, max_records: int = 100, timeout_s: float = 1.0) -> list[Message]:
        return await self.inner.fetch(max_records, timeout_s)

    async def commit_many(self, messages: Sequence[Message]) -> None:
        await self.inner.commit_many(messages)
        for message in messages:
            self._committed[message.value].set()

    async def stop(self) -> None:
        await self.inner.stop()


async def delivered_after_commit(case: BusCase, count: int) -> list[Message]:
    """Everything a new member of ``case.group`` is delivered: ``count`` messages, then whatever
    else comes within half a second (nothing, when the earlier commits held)."""
    member = case.bus.subscribe(case.group, [case.topic])
    await member.start()
    try:
        got = await collect(member, count)
        got += await fetch_for(member, 0.5)
    finally:
        await member.stop()
    return got


async def test_round_trip_keeps_key_value_and_headers(case: BusCase) -> None:
    headers = {"type": "claim.submitted", "correlation-id": "c-1", "note": "学时"}
    await case.bus.publish(case.topic, "claim-42", b'{"hours": 3}', headers)
    assert await case.bus.healthy()

    sub = case.bus.subscribe(case.group, [case.topic])
    await sub.start()
    try:
        [message] = await collect(sub, 1)
        assert message.topic == case.topic
        assert message.key == "claim-42"
        assert message.value == b'{"hours": 3}'
        assert message.headers == headers
        assert 0 <= message.partition < PARTITIONS
        assert message.offset == 0
    finally:
        await sub.stop()


async def test_same_key_same_partition_in_publish_order(case: BusCase) -> None:
    keys = [f"person-{i}" for i in range(6)]
    items = [(keys[i % len(keys)], f"{i}".encode()) for i in range(90)]
    await publish_all(case, items)

    sub = case.bus.subscribe(case.group, [case.topic])
    await sub.start()
    try:
        got = await collect(sub, len(items))
    finally:
        await sub.stop()

    assert len(got) == len(items)
    by_key: dict[str, list[Message]] = defaultdict(list)
    for message in got:
        by_key[message.key].append(message)
    for key in keys:
        sent = [int(v) for k, v in items if k == key]
        received = by_key[key]
        assert {m.partition for m in received} == {received[0].partition}, key
        assert [int(m.value) for m in received] == sent, key
        assert [m.offset for m in received] == sorted(m.offset for m in received)
    # the keys spread: otherwise the group test below would prove nothing
    assert len({messages[0].partition for messages in by_key.values()}) >= 2


async def test_publish_many_keeps_key_order_and_commit_many_commits_every_partition(
    case: BusCase,
) -> None:
    keys = [f"person-{i}" for i in range(8)]
    items = [(keys[i % len(keys)], f"{i}".encode()) for i in range(40)]
    await case.bus.publish_many([Outgoing(case.topic, k, v, {"seq": v.decode()}) for k, v in items])
    await case.bus.publish_many([])  # nothing to do, no error

    first = case.bus.subscribe(case.group, [case.topic])
    await first.start()
    try:
        got = await collect(first, len(items))
        await first.commit_many(got)  # one call: the last message of every partition
    finally:
        await first.stop()
    assert len({m.partition for m in got}) >= 2, "the keys spread over partitions"
    for key in keys:
        received = [m for m in got if m.key == key]
        assert [int(m.value) for m in received] == [int(v) for k, v in items if k == key]
        assert received[0].headers == {"seq": received[0].value.decode()}

    await case.bus.publish(case.topic, keys[0], b"after")
    rest = await delivered_after_commit(case, 1)
    assert [m.value for m in rest] == [b"after"], "every partition's offset was committed"


async def test_group_members_share_partitions_and_handle_each_message_once(case: BusCase) -> None:
    a = case.bus.subscribe(case.group, [case.topic])
    b = case.bus.subscribe(case.group, [case.topic])
    await a.start()
    await b.start()
    try:
        assert await settle(case, [a, b]) == []
        assert not case.owned(a) & case.owned(b)

        items = [(f"claim-{i % 16}", f"{i}".encode()) for i in range(64)]
        await publish_all(case, items)
        handled: dict[str, list[int]] = {"a": [], "b": []}

        async def run(name: str, sub: Subscription) -> None:
            deadline = time.monotonic() + WAIT_S
            while time.monotonic() < deadline and sum(map(len, handled.values())) < len(items):
                for message in await sub.fetch(20, 0.2):
                    handled[name].append(int(message.value))
                    await sub.commit(message)
            # keep polling a little: a duplicate would show up here
            await fetch_for(sub, 0.5)

        await asyncio.gather(run("a", a), run("b", b))
    finally:
        await a.stop()
        await b.stop()

    everything = handled["a"] + handled["b"]
    assert sorted(everything) == list(range(64)), "each message exactly once across members"
    assert handled["a"] and handled["b"], "both members got a share"


@pytest.mark.parametrize("crash", ["stopped", "killed"])
async def test_uncommitted_messages_are_redelivered_after_a_crash(
    case: BusCase, crash: str
) -> None:
    items = [("claim-7", f"{i}".encode()) for i in range(5)]
    await publish_all(case, items)

    if crash == "stopped":
        # handled but not committed, then the member goes away (a handler crash, a restart)
        first = case.bus.subscribe(case.group, [case.topic])
        await first.start()
        assert [m.value for m in await collect(first, 5)] == [v for _, v in items]
        await first.stop()
    else:
        # a process dies with SIGKILL after fetching: no leave, no commit, its session expires
        await _fetch_in_process_then_kill(case, expected=5)

    second = case.bus.subscribe(case.group, [case.topic])
    await second.start()
    try:
        again = await collect(second, 5)
    finally:
        await second.stop()
    assert [m.value for m in again] == [v for _, v in items]
    assert [m.offset for m in again] == list(range(5))


async def test_committed_messages_are_not_redelivered(case: BusCase) -> None:
    items = [("claim-9", f"{i}".encode()) for i in range(6)]
    await publish_all(case, items)

    first = case.bus.subscribe(case.group, [case.topic])
    await first.start()
    try:
        got = await collect(first, 6)
        await first.commit(got[3])  # 0..3 are done, 4 and 5 are not
    finally:
        await first.stop()

    await case.bus.publish(case.topic, "claim-9", b"6")
    rest = await delivered_after_commit(case, 3)
    assert [m.value for m in rest] == [b"4", b"5", b"6"]


async def test_consumer_dead_letters_after_max_attempts_and_moves_on(case: BusCase) -> None:
    await publish_all(case, [("claim-1", b"ok-1"), ("claim-1", b"poison"), ("claim-1", b"ok-2")])
    attempts: dict[bytes, int] = defaultdict(int)
    handled: list[bytes] = []
    dead: list[tuple[bytes, str]] = []

    async def handler(message: Message) -> None:
        attempts[message.value] += 1
        if message.value == b"poison":
            raise ValueError("cannot parse claim")
        handled.append(message.value)

    async def dead_letter(message: Message, reason: str) -> None:
        dead.append((message.value, reason))

    subscription = CommitSpy(case.bus.subscribe(case.group, [case.topic]))
    consumer = Consumer(
        subscription,
        handler,
        dead_letter=dead_letter,
        max_attempts=3,
        backoff_s=0.01,
    )
    await consumer.start()
    try:
        await asyncio.wait_for(subscription.committed_value(b"ok-2").wait(), WAIT_S)
    finally:
        await consumer.stop()

    assert handled == [b"ok-1", b"ok-2"]
    assert attempts[b"poison"] == 3
    assert dead == [(b"poison", "ValueError: cannot parse claim")]

    # the poison message's offset was committed with the rest: a new member starts after it
    after = case.bus.subscribe(case.group, [case.topic])
    await after.start()
    try:
        redelivered = await settle(case, [after])
        redelivered += await fetch_for(after, 0.5)
        assert redelivered == []
    finally:
        await after.stop()


async def test_consumer_keeps_running_when_dead_lettering_fails_for_a_while(
    tmp_path: Path,
) -> None:
    # runner behaviour, the same on both adapters: the embedded log is enough
    bus = EmbeddedLog(tmp_path / "events.db", partitions=1, poll_interval_s=0.02)
    await bus.start()
    await bus.publish("t", "claim-1", b"poison")
    await bus.publish("t", "claim-1", b"ok")
    handled: list[bytes] = []
    stored: list[bytes] = []
    store_failures = 2

    async def handler(message: Message) -> None:
        if message.value == b"poison":
            raise ValueError("bad")
        handled.append(message.value)

    async def dead_letter(message: Message, reason: str) -> None:
        nonlocal store_failures
        if store_failures:
            store_failures -= 1
            raise OSError("dead-letter table locked")
        stored.append(message.value)

    subscription = CommitSpy(bus.subscribe("g", ["t"]))
    consumer = Consumer(
        subscription, handler, dead_letter=dead_letter, max_attempts=2, backoff_s=0.01
    )
    await consumer.start()
    try:
        await asyncio.wait_for(subscription.committed_value(b"ok").wait(), WAIT_S)
    finally:
        await consumer.stop()
        await bus.stop()
    assert stored == [b"poison"]
    assert handled == [b"ok"]


async def test_consumer_handles_groups_and_isolates_a_poison_message(tmp_path: Path) -> None:
    """With a batch handler, the events of a fetch go in groups (one transaction, one commit);
    a group that fails is handled again one by one, so only the poison message is
    dead-lettered and every other one takes effect exactly once."""
    bus = EmbeddedLog(tmp_path / "events.db", partitions=2, poll_interval_s=0.02)
    await bus.start()
    values = [f"ok-{i}".encode() for i in range(30)]
    values.insert(17, b"poison")
    await bus.publish_many([Outgoing("t", f"k{i % 5}", v) for i, v in enumerate(values)])
    effects: list[bytes] = []  # what "committed" handling left behind
    groups: list[int] = []
    dead: list[bytes] = []

    async def handler(message: Message) -> None:
        if message.value == b"poison":
            raise ValueError("cannot parse")
        effects.append(message.value)

    async def batch_handler(messages: list[Message]) -> None:
        staged = []  # a transaction: nothing stays unless every message went through
        for message in messages:
            if message.value == b"poison":
                raise ValueError("cannot parse")
            staged.append(message.value)
        groups.append(len(messages))
        effects.extend(staged)

    async def dead_letter(message: Message, reason: str) -> None:
        dead.append(message.value)

    subscription = CommitSpy(bus.subscribe("g", ["t"]))
    consumer = Consumer(
        subscription,
        handler,
        dead_letter=dead_letter,
        max_attempts=2,
        backoff_s=0.01,
        batch_handler=batch_handler,
        batch_max=8,
    )
    await consumer.start()
    try:
        for value in values:
            await asyncio.wait_for(subscription.committed_value(value).wait(), WAIT_S)
    finally:
        await consumer.stop()
    assert sorted(effects) == sorted(v for v in values if v != b"poison")
    assert dead == [b"poison"]
    assert consumer.batches_failed == 1
    assert groups and max(groups) <= 8 and sum(groups) < len(values) - 1, groups

    again = bus.subscribe("g", ["t"])
    await again.start()
    try:
        assert await fetch_for(again, 0.5) == [], "every offset was committed"
    finally:
        await again.stop()
        await bus.stop()


# --- Kafka only -----------------------------------------------------------------------------


@pytest.mark.kafka
async def test_kafka_publish_during_outage_raises_within_timeout_then_recovers(
    kafka_broker: Broker,
) -> None:
    topic = f"t-{uuid.uuid4().hex[:10]}"
    bus = make_kafka_bus(kafka_broker.bootstrap, send_timeout_s=1.0, admin_timeout_s=1.0)
    await bus.start()
    try:
        await bus.publish(topic, "k", b"before")
        with kafka_broker.paused():
            started = time.monotonic()
            with pytest.raises(PublishError):
                await bus.publish(topic, "k", b"during")
            assert time.monotonic() - started < 3.0
            assert not await bus.healthy()
        await bus.publish(topic, "k", b"after")
        assert await bus.healthy()

        sub = bus.subscribe(f"g-{topic}", [topic])
        await sub.start()
        try:
            values = [m.value for m in await collect(sub, 2)]
            values += [m.value for m in await fetch_for(sub, 0.5)]
        finally:
            await sub.stop()
        # "during" may or may not have been written (unknown), but never after "after"
        assert values[0] == b"before" and values[-1] == b"after"
        assert set(values) <= {b"before", b"during", b"after"}
    finally:
        await bus.stop()


@pytest.mark.kafka
async def test_kafka_member_without_partitions_and_alone_is_restarted(
    kafka_broker: Broker,
) -> None:
    topic = f"t-{uuid.uuid4().hex[:10]}"
    bus = make_kafka_bus(kafka_broker.bootstrap, stale_assignment_s=0.5)
    await bus.start()
    sub = bus.subscribe(f"g-{topic}", [topic])
    assert isinstance(sub, _KafkaSubscription)
    await sub.start()
    try:
        await collect_assignment(sub, PARTITIONS)
        # what aiokafka #720/#1187 leave behind: a member that owns nothing although no other
        # member holds the partitions
        await sub._tracker.on_partitions_revoked(sub.assignment)
        sub._tracker.empty_since = time.monotonic() - 10
        await bus.publish(topic, "k", b"v")
        got = await collect(sub, 1)
        assert sub.restarts == 1
        assert got[0].value == b"v"
        assert len(sub.assignment) == PARTITIONS
    finally:
        await sub.stop()
        await bus.stop()


@pytest.mark.kafka
async def test_kafka_member_without_partitions_in_a_full_group_is_left_alone(
    kafka_broker: Broker,
) -> None:
    topic = f"t-{uuid.uuid4().hex[:10]}"
    bus = make_kafka_bus(kafka_broker.bootstrap, partitions=1, stale_assignment_s=0.5)
    await bus.start()
    a = bus.subscribe(f"g-{topic}", [topic])
    b = bus.subscribe(f"g-{topic}", [topic])
    assert isinstance(a, _KafkaSubscription) and isinstance(b, _KafkaSubscription)
    await a.start()
    await b.start()
    try:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline and len(a.assignment | b.assignment) < 1:
            await asyncio.gather(a.fetch(10, 0.2), b.fetch(10, 0.2))
        idle = a if not a.assignment else b
        assert not idle.assignment
        await asyncio.gather(a.fetch(10, 0.2), b.fetch(10, 0.2))
        await fetch_for(idle, 1.0)  # well past stale_assignment_s
        assert idle.restarts == 0, "one partition, two members: owning nothing is legitimate"
    finally:
        await a.stop()
        await b.stop()
        await bus.stop()


@pytest.mark.kafka
async def test_kafka_offset_out_of_range_is_reported_not_skipped(kafka_broker: Broker) -> None:
    """A group whose committed offset is no longer in the log (down longer than retention, or
    the topic was recreated) is reported (log + callback behind a metric) and resumes at the
    oldest offset kept, instead of aiokafka's silent reset."""
    from aiokafka import TopicPartition

    topic = f"t-{uuid.uuid4().hex[:10]}"
    group = f"g-{topic}"
    lost: list[tuple[str, int, int]] = []
    bus = make_kafka_bus(
        kafka_broker.bootstrap,
        partitions=1,
        topic_configs={"min.insync.replicas": "1", "retention.ms": "86400000"},
        on_offset_out_of_range=lambda t, p, o: lost.append((t, p, o)),
    )
    await bus.start()
    first = bus.subscribe(group, [topic])
    assert isinstance(first, _KafkaSubscription)
    await first.start()
    try:
        for i in range(3):
            await bus.publish(topic, "k", f"m{i}".encode())
        got = await collect(first, 3)
        assert [m.value for m in got] == [b"m0", b"m1", b"m2"], "a new group starts at the start"
        # the group's position points past anything the log holds
        await first.consumer.commit({TopicPartition(topic, 0): 1000})
    finally:
        await first.stop()
    second = bus.subscribe(group, [topic])
    assert isinstance(second, _KafkaSubscription)
    await second.start()
    try:
        again = await collect(second, 3)
        assert [m.value for m in again] == [b"m0", b"m1", b"m2"]
        assert lost == [(topic, 0, 1000)]
        assert second.offsets_lost == 1
    finally:
        await second.stop()
        await bus.stop()


def test_services_build_their_kafka_bus_from_the_settings_and_count_lost_offsets() -> None:
    from libs.common.observability import Metrics
    from libs.common.service import build_bus
    from libs.common.settings import Settings

    settings = Settings(
        bus="kafka",
        kafka_partitions=12,
        kafka_replication_factor=3,
        kafka_min_insync_replicas=2,
        kafka_retention_ms=1_209_600_000,
    )
    metrics = Metrics("claims")
    bus = build_bus(settings, metrics)
    assert isinstance(bus, KafkaBus)
    assert (bus.partitions, bus.replication_factor) == (12, 3)
    assert bus.topic_configs == {"min.insync.replicas": "2", "retention.ms": "1209600000"}
    assert bus.on_offset_out_of_range is not None
    bus.on_offset_out_of_range("claims.events", 3, 1000)
    labels = {"service": "claims", "topic": "claims.events", "partition": "3"}
    value = metrics.registry.get_sample_value("bus_offsets_out_of_range_total", labels)
    assert value == 1.0
    assert b"bus_offsets_out_of_range_total" in metrics.render().body


async def collect_assignment(sub: _KafkaSubscription, partitions: int) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline and len(sub.assignment) < partitions:
        await sub.fetch(10, 0.2)
    assert len(sub.assignment) == partitions


# --- a consumer in another process, killed without warning -----------------------------------

_CRASHING_MEMBER = """
import asyncio, json, sys, time
config = json.loads(sys.argv[1])

async def main():
    if config["kind"] == "embedded":
        from libs.common.eventlog import EmbeddedLog
        bus = EmbeddedLog(config["path"], partitions=config["partitions"],
                          session_timeout_s=config["session_s"], poll_interval_s=0.02)
    else:
        from libs.common.kafka import KafkaBus
        bus = KafkaBus(config["bootstrap"], partitions=config["partitions"],
                       enable_idempotence=False, session_timeout_ms=config["session_ms"],
                       heartbeat_interval_ms=config["session_ms"] // 10)
    await bus.start()
    sub = bus.subscribe(config["group"], [config["topic"]])
    await sub.start()
    got = 0
    deadline = time.monotonic() + 20
    while got < config["expected"] and time.monotonic() < deadline:
        got += len(await sub.fetch(100, 0.3))
    print(f"FETCHED {got}", flush=True)
    await asyncio.sleep(3600)  # killed here, handled but never committed

asyncio.run(main())
"""


async def _fetch_in_process_then_kill(case: BusCase, expected: int) -> None:
    config = {
        "kind": case.kind,
        "topic": case.topic,
        "group": case.group,
        "partitions": PARTITIONS,
        "session_s": SESSION_S,
        "session_ms": KAFKA_SESSION_MS,
        "expected": expected,
        **case.config,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _CRASHING_MEMBER,
        json.dumps(config),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), WAIT_S + 10)
        if not line:
            assert process.stderr is not None
            pytest.fail(f"crashing member died early: {(await process.stderr.read()).decode()}")
        assert line.decode().strip() == f"FETCHED {expected}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


async def test_a_consumer_held_up_while_its_partitions_move_loses_nothing_and_applies_once(
    case: BusCase,
) -> None:
    """A transient failure holds member A on one message for longer than the group waits for it
    (the embedded log's session; on Kafka, ``max.poll.interval``), and member B joins meanwhile,
    so the partition may move to B while A still holds the message. When the failure passes, every
    message is applied exactly once (the handler dedupes by message, as the inbox does), none is
    dead-lettered, A's late commit does not move B's position back, and the group's committed
    offsets end after the last message."""
    bus: EventBus = case.bus
    if case.kind == "kafka":
        # its own client, so the poll limit can be short
        bus = make_kafka_bus(str(case.config["bootstrap"]), max_poll_interval_ms=1500)
        await bus.start()
    held_s = 4.0
    items = [("claim-7", f"m-{i}".encode()) for i in range(5)]
    for key, value in items:
        await bus.publish(case.topic, key, value, {})
    calls: dict[bytes, int] = defaultdict(int)
    applied: list[bytes] = []
    dead: list[bytes] = []
    first_call: float | None = None
    held = asyncio.Event()

    async def handler(message: Message) -> None:
        nonlocal first_call
        calls[message.value] += 1
        if message.value == b"m-1":
            first_call = first_call or time.monotonic()
            held.set()
            if time.monotonic() - first_call < held_s:
                raise ConnectionRefusedError("database unreachable")
        if message.value not in applied:  # the inbox's dedupe, by event
            applied.append(message.value)

    async def dead_letter(message: Message, reason: str) -> None:
        dead.append(message.value)

    def member() -> Consumer:
        return Consumer(
            bus.subscribe(case.group, [case.topic]),
            handler,
            dead_letter=dead_letter,
            max_attempts=2,
            backoff_s=0.05,
            max_backoff_s=0.5,
        )

    a, b = member(), member()
    await a.start()
    try:
        await asyncio.wait_for(held.wait(), WAIT_S)
        await b.start()  # joins while A is held
        deadline = time.monotonic() + WAIT_S + held_s
        while b"m-4" not in applied or a.stuck_since is not None:
            assert time.monotonic() < deadline, f"not all applied: {applied}"
            await asyncio.sleep(0.1)
    finally:
        await a.stop()
        await b.stop()
    try:
        assert applied == [value for _, value in items]  # in order, each once
        assert dead == []
        assert calls[b"m-1"] > 2  # retried past max_attempts, not dead-lettered
        after = bus.subscribe(case.group, [case.topic])
        await after.start()
        try:
            redelivered = await settle(case, [after])
            redelivered += await fetch_for(after, 0.5)
            assert [m.value for m in redelivered] == []
        finally:
            await after.stop()
    finally:
        if bus is not case.bus:
            await bus.stop()


def test_production_topics_default_to_three_replicas_two_in_sync() -> None:
    from pydantic import SecretStr

    from libs.common.settings import Settings

    url = "postgresql+asyncpg://claims@db/claims"
    production = Settings(env="production", jwt_secret=SecretStr("s" * 32), database_url=url)
    assert (production.kafka_replication_factor, production.kafka_min_insync_replicas) == (3, 2)
    # one broker (compose, a test) says so; development defaults to one broker
    single = Settings(
        env="production",
        jwt_secret=SecretStr("s" * 32),
        database_url=url,
        kafka_replication_factor=1,
        kafka_min_insync_replicas=1,
    )
    assert (single.kafka_replication_factor, single.kafka_min_insync_replicas) == (1, 1)
    development = Settings()
    assert (development.kafka_replication_factor, development.kafka_min_insync_replicas) == (1, 1)
