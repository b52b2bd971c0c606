"""The Kafka adapter of the event bus port (:mod:`libs.common.bus`), through aiokafka.

Production settings, chosen against aiokafka's defaults (see STYLE.md, "Traps others fell into"):

* the producer waits for every in-sync replica (``acks="all"``) and is idempotent unless told
  otherwise, so a retried batch is not written twice;
* every publish is bounded by ``send_timeout_s``: aiokafka's ``send`` blocks while the broker is
  unreachable, and the outbox relay must get an answer, not hang. A timeout or a Kafka error raises
  :class:`~libs.common.bus.PublishError` (fate unknown; the relay retries, consumers deduplicate);
* consumers never auto-commit: the :class:`~libs.common.bus.Consumer` runner commits an offset only
  after the handler's transaction;
* a consumer that lost all its partitions and never rejoins (aiokafka issues #720, #1187) is
  restarted, see :class:`_KafkaSubscription`;
* a committed offset that is no longer in the log (the consumer was down longer than the topic's
  retention) is never skipped silently: it is logged as an error and reported through
  ``on_offset_out_of_range`` (a metric), then the member resumes at the oldest offset kept;
* topics are created with ``partitions``, ``replication_factor`` and ``topic_configs``
  (``min.insync.replicas``, ``retention.ms``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    KafkaError,
    NoOffsetForPartitionError,
    OffsetOutOfRangeError,
    TopicAlreadyExistsError,
    for_code,
)

from libs.common.bus import EventBus, Message, PublishError, Subscription, last_per_partition

log = logging.getLogger(__name__)

_TOPIC_ALREADY_EXISTS = TopicAlreadyExistsError.errno


class KafkaBus(EventBus):
    """An :class:`~libs.common.bus.EventBus` on Apache Kafka (or any Kafka-protocol broker).

    ``topics`` are created on :meth:`start` when missing, with ``partitions`` partitions and
    ``replication_factor`` replicas; a topic first seen by :meth:`publish` or :meth:`subscribe` is
    created the same way. ``enable_idempotence`` should stay on in production; brokers without
    ``InitProducerId`` (the test broker) need it off.

    Consumer groups use ``session_timeout_ms`` / ``heartbeat_interval_ms`` (a short session makes a
    dead member's partitions move sooner, and some brokers also delay joins by a fraction of it).
    A member whose assignment has stayed empty for ``stale_assignment_s`` while the group has too
    few other members to explain it is restarted.
    """

    def __init__(
        self,
        bootstrap: str,
        *,
        topics: Sequence[str] = (),
        partitions: int = 4,
        replication_factor: int = 1,
        enable_idempotence: bool = True,
        send_timeout_s: float = 10.0,
        admin_timeout_s: float = 5.0,
        session_timeout_ms: int = 10_000,
        heartbeat_interval_ms: int = 3_000,
        max_poll_interval_ms: int = 300_000,
        fetch_max_wait_ms: int = 500,
        stale_assignment_s: float = 60.0,
        client_id: str = "zz-ce",
        topic_configs: Mapping[str, str] | None = None,
        on_offset_out_of_range: Callable[[str, int, int], None] | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.topics = list(topics)
        self.partitions = partitions
        self.replication_factor = replication_factor
        self.topic_configs = dict(topic_configs or {})
        self.on_offset_out_of_range = on_offset_out_of_range
        self.enable_idempotence = enable_idempotence
        self.send_timeout_s = send_timeout_s
        self.admin_timeout_s = admin_timeout_s
        self.session_timeout_ms = session_timeout_ms
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.max_poll_interval_ms = max_poll_interval_ms
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.stale_assignment_s = stale_assignment_s
        self.client_id = client_id
        self._producer: AIOKafkaProducer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._known_topics: set[str] = set()
        self._topics_lock = asyncio.Lock()

    @property
    def _request_timeout_ms(self) -> int:
        return max(1_000, int(self.send_timeout_s * 1000))

    async def start(self) -> None:
        """Connect the producer and the admin client and create the configured topics.

        Raises (a ``KafkaError``) when the broker cannot be reached; the caller decides whether to
        retry or fail its own start.
        """
        if self._producer is not None:
            return
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.bootstrap,
            client_id=f"{self.client_id}-admin",
            request_timeout_ms=int(self.admin_timeout_s * 1000),
        )
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            client_id=self.client_id,
            acks="all",
            enable_idempotence=self.enable_idempotence,
            request_timeout_ms=self._request_timeout_ms,
        )
        try:
            await admin.start()
            await producer.start()
        except BaseException:
            await _quietly(producer.stop())
            await _quietly(admin.close())
            raise
        self._admin, self._producer = admin, producer
        if self.topics:
            await self.ensure_topics(self.topics)

    async def stop(self) -> None:
        """Flush what the producer still holds (bounded by ``send_timeout_s``) and disconnect."""
        producer, self._producer = self._producer, None
        admin, self._admin = self._admin, None
        if producer is not None:
            try:
                await asyncio.wait_for(producer.stop(), self.send_timeout_s)
            except (TimeoutError, KafkaError, OSError):
                log.warning("kafka producer did not stop cleanly", exc_info=True)
        if admin is not None:
            await _quietly(admin.close())
        self._known_topics.clear()

    @property
    def admin(self) -> AIOKafkaAdminClient:
        if self._admin is None:
            raise RuntimeError("KafkaBus not started")
        return self._admin

    async def ensure_topics(self, names: Sequence[str]) -> None:
        """Create the topics among ``names`` that do not exist yet; existing ones are left alone."""
        wanted = [n for n in dict.fromkeys(names) if n not in self._known_topics]
        if not wanted:
            return
        async with self._topics_lock:
            existing = set(await self.admin.list_topics())
            missing = [n for n in wanted if n not in existing]
            if missing:
                try:
                    response = await self.admin.create_topics(
                        [
                            NewTopic(
                                n,
                                self.partitions,
                                self.replication_factor,
                                topic_configs=self.topic_configs,
                            )
                            for n in missing
                        ]
                    )
                except TopicAlreadyExistsError:
                    pass  # another process won the race
                else:
                    for topic, code, *_ in response.topic_errors:
                        if code not in (0, _TOPIC_ALREADY_EXISTS):
                            raise for_code(code)(f"creating topic {topic}")
            self._known_topics.update(wanted)

    async def publish(
        self, topic: str, key: str, value: bytes, headers: dict[str, str] | None = None
    ) -> None:
        """Return once all in-sync replicas have the message; raise :class:`PublishError` if
        that is not confirmed within ``send_timeout_s`` (the message may still arrive)."""
        producer = self._producer
        if producer is None:  # not connected (yet): the caller retries, as after a timeout
            raise PublishError(f"publish to {topic}: not connected to the broker")
        kafka_headers = [(k, v.encode()) for k, v in (headers or {}).items()]

        async def _send() -> None:
            await self.ensure_topics([topic])
            await producer.send_and_wait(topic, value, key=key.encode(), headers=kafka_headers)

        try:
            await asyncio.wait_for(_send(), self.send_timeout_s)
        except (TimeoutError, KafkaError, OSError) as exc:
            raise PublishError(f"publish to {topic} unconfirmed: {exc!r}") from exc

    def subscribe(self, group: str, topics: Sequence[str]) -> Subscription:
        """A new member of consumer group ``group``; call ``start`` on it before fetching."""
        return _KafkaSubscription(self, group, list(topics))

    async def healthy(self) -> bool:
        """Whether the broker answers a metadata request within ``admin_timeout_s``."""
        if self._admin is None:
            return False
        try:
            await asyncio.wait_for(self._admin.list_topics(), self.admin_timeout_s)
        except Exception:
            return False
        return True


class _AssignmentTracker(ConsumerRebalanceListener):
    """Remembers what the group gave this member and since when it has had nothing."""

    def __init__(self) -> None:
        self.assignment: set[TopicPartition] = set()
        self.empty_since: float | None = time.monotonic()
        self.unchecked: set[TopicPartition] = set()  # committed offsets not yet checked

    async def on_partitions_revoked(self, revoked: Any) -> None:
        self.assignment.difference_update(revoked)
        if not self.assignment and self.empty_since is None:
            self.empty_since = time.monotonic()

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self.assignment = set(assigned)
        self.unchecked = set(assigned)
        self.empty_since = None if self.assignment else time.monotonic()


class _KafkaSubscription(Subscription):
    """One consumer-group member on an :class:`AIOKafkaConsumer` (manual commits).

    Lost-assignment guard (aiokafka #720, #1187): a consumer can end up in a state where it owns no
    partition and never rejoins the group, so its share of the log stops being consumed without
    any error. An :class:`_AssignmentTracker` follows the rebalances; when the assignment has been
    empty for ``stale_assignment_s``, ``fetch`` asks the coordinator who is in the group. If this
    member is not listed, or the other members are fewer than the subscribed partitions (so they
    cannot legitimately hold everything), the consumer is stopped and a fresh one joins. If the
    group cannot be described the consumer is restarted as well: a needless restart costs one
    rebalance, a stuck member costs an outage.
    """

    def __init__(self, bus: KafkaBus, group: str, topics: list[str]) -> None:
        self.bus = bus
        self.group = group
        self.topics = topics
        self.restarts = 0
        self.offsets_lost = 0
        self._running = False
        self._consumer: AIOKafkaConsumer | None = None
        self._tracker = _AssignmentTracker()

    @property
    def assignment(self) -> set[TopicPartition]:
        """The partitions this member owns as of the last rebalance."""
        return set(self._tracker.assignment)

    async def start(self) -> None:
        """Create missing topics and join the group; the assignment arrives with a later fetch."""
        self._running = True
        await self._open()

    async def _open(self) -> None:
        await self.bus.ensure_topics(self.topics)
        self._tracker = _AssignmentTracker()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bus.bootstrap,
            client_id=f"{self.bus.client_id}-{self.group}",
            group_id=self.group,
            enable_auto_commit=False,
            # "none": an offset out of range raises instead of jumping silently (see fetch)
            auto_offset_reset="none",
            session_timeout_ms=self.bus.session_timeout_ms,
            heartbeat_interval_ms=self.bus.heartbeat_interval_ms,
            max_poll_interval_ms=self.bus.max_poll_interval_ms,
            fetch_max_wait_ms=self.bus.fetch_max_wait_ms,
        )
        consumer.subscribe(self.topics, listener=self._tracker)
        try:
            await consumer.start()
        except BaseException:
            await _quietly(consumer.stop())
            raise
        self._consumer = consumer

    @property
    def consumer(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise RuntimeError("subscription not started")
        return self._consumer

    async def fetch(self, max_records: int = 100, timeout_s: float = 1.0) -> list[Message]:
        """Up to ``max_records`` messages of the owned partitions, in order per partition."""
        if self._consumer is None and self._running:
            await self._open()  # a restart failed half-way (broker down): try again
        await self._guard_lost_assignment()
        if self._tracker.unchecked:
            await self._check_committed_offsets()
        try:
            batches = await self.consumer.getmany(
                timeout_ms=int(timeout_s * 1000), max_records=max_records
            )
        except NoOffsetForPartitionError as exc:
            # a group's first read of a partition: start at the oldest event
            await self.consumer.seek_to_beginning(*exc.args)
            return []
        except OffsetOutOfRangeError as exc:
            await self._offsets_lost(exc.args[0])
            return []
        return [
            Message(
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                key=record.key.decode() if record.key is not None else "",
                value=record.value if record.value is not None else b"",
                headers={k: v.decode() for k, v in record.headers},
            )
            for records in batches.values()
            for record in records
        ]

    async def _check_committed_offsets(self) -> None:
        """On a new assignment: is each committed offset still inside its partition's log?
        (A broker answers a fetch outside it with OFFSET_OUT_OF_RANGE, or, some brokers, with
        nothing at all; this check does not depend on which.)"""
        tps = sorted(self._tracker.unchecked)
        self._tracker.unchecked.clear()
        begin = await self.consumer.beginning_offsets(tps)
        end = await self.consumer.end_offsets(tps)
        lost = {}
        for tp in tps:
            committed = await self.consumer.committed(tp)
            if committed is not None and not begin[tp] <= committed <= end[tp]:
                lost[tp] = committed
        if lost:
            await self._offsets_lost(lost)

    async def _offsets_lost(self, positions: Mapping[TopicPartition, int]) -> None:
        """The log no longer has the offsets this group was at: events between them and the
        oldest offset kept were deleted unread (retention shorter than the outage). Alert, then
        go on from the oldest offset kept; the inbox absorbs anything delivered twice."""
        for tp, offset in positions.items():
            log.error(
                "committed offset %s of %s[%s] is out of the log: events were deleted before "
                "this consumer read them; resuming at the oldest offset kept",
                offset,
                tp.topic,
                tp.partition,
                extra={"group": self.group, "topic": tp.topic, "partition": tp.partition},
            )
            self.offsets_lost += 1
            if self.bus.on_offset_out_of_range is not None:
                self.bus.on_offset_out_of_range(tp.topic, tp.partition, offset)
        await self.consumer.seek_to_beginning(*positions)

    async def commit_many(self, messages: Sequence[Message]) -> None:
        """One commit request: ``offset + 1`` of the last message of every owned partition
        among ``messages``; a partition this member no longer owns is skipped."""
        owned = self.consumer.assignment()
        offsets = {}
        for message in last_per_partition(messages):
            tp = TopicPartition(message.topic, message.partition)
            if tp in owned:
                offsets[tp] = message.offset + 1
            else:
                log.info("not committing %s@%s: partition moved", tp, message.offset)
        if offsets:
            await self.consumer.commit(offsets)

    async def stop(self) -> None:
        """Leave the group without committing anything further."""
        self._running = False
        await self._close()

    async def _close(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()

    async def _guard_lost_assignment(self) -> None:
        empty_since = self._tracker.empty_since
        if empty_since is None or time.monotonic() - empty_since < self.bus.stale_assignment_s:
            return
        if not await self._assignment_explained():
            log.warning(
                "consumer owned no partition for %.0fs and the group does not explain it; "
                "restarting it",
                time.monotonic() - empty_since,
                extra={"group": self.group},
            )
            self.restarts += 1
            await self._close()
            await self._open()
        else:
            self._tracker.empty_since = time.monotonic()

    async def _assignment_explained(self) -> bool:
        """Whether an empty assignment is legitimate: we are in the group and the other members
        are at least as many as the partitions."""
        try:
            partitions = 0
            for topic in self.topics:
                partitions += len(self.consumer.partitions_for_topic(topic) or ())
            responses = await asyncio.wait_for(
                self.bus.admin.describe_consumer_groups([self.group]), self.bus.admin_timeout_s
            )
            member_ids = {
                member[0]
                for response in responses
                for group in response.groups
                if group[1] == self.group
                for member in group[5]
            }
        except Exception:
            log.warning("cannot describe group %s", self.group, exc_info=True)
            return False
        me = self.consumer._coordinator.member_id if self.consumer._coordinator else None
        return me in member_ids and len(member_ids - {me}) >= partitions > 0


async def _quietly(awaitable: Any) -> None:
    try:
        await awaitable
    except Exception:
        log.debug("ignored error while closing a kafka client", exc_info=True)
