"""The event bus port: what the outbox relay and the consumers need from a log.

Two adapters implement it: :mod:`libs.common.eventlog` (the embedded durable log in a SQLite file,
the default on one machine) and :mod:`libs.common.kafka` (Apache Kafka via aiokafka, production).
Domain code never sees either: it writes events to the outbox and handles envelopes.

Contract (checked by ``tests/test_bus_contract.py`` against both adapters):

* ``publish`` returns only once the log has durably accepted the message, and raises
  :class:`PublishError` otherwise. A raised error means *unknown*, never *not sent*: the caller
  retries and consumers deduplicate by event id.
* Messages with the same key land in the same partition and are delivered in publish order.
* A consumer group shares the partitions among its members; each message is handled by one member.
* An offset is committed only after the handler returned; a crash before that redelivers it.
* ``publish_many`` publishes in order and confirms a prefix: on a failure,
  :attr:`PublishError.confirmed` says how many leading messages the log has for certain.
* ``commit_many`` commits, per partition, the last of the given messages (``commit`` is the
  commit of one).
"""

from __future__ import annotations

import abc
import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from libs.common.faults import is_transient
from libs.common.tasks import LoopTask

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Message:
    topic: str
    partition: int
    offset: int
    key: str
    value: bytes
    headers: dict[str, str] = field(default_factory=dict)


class PublishError(Exception):
    """The log did not confirm the message in time: its fate is unknown, so send it again.

    From :meth:`EventBus.publish_many`, ``confirmed`` leading messages are durably in the log;
    the fate of the others is unknown."""

    def __init__(self, message: str, *, confirmed: int = 0) -> None:
        super().__init__(message)
        self.confirmed = confirmed


@dataclass(frozen=True)
class Outgoing:
    """One message to publish: what :meth:`EventBus.publish_many` takes."""

    topic: str
    key: str
    value: bytes
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Message], Awaitable[None]]
BatchHandler = Callable[[list[Message]], Awaitable[None]]


def last_per_partition(messages: Sequence[Message]) -> list[Message]:
    """The last message of each (topic, partition) among ``messages``: what to commit."""
    last: dict[tuple[str, int], Message] = {}
    for message in messages:
        last[(message.topic, message.partition)] = message
    return list(last.values())


class Subscription(abc.ABC):
    """One member of a consumer group, pulling batches and committing after handling."""

    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def fetch(self, max_records: int = 100, timeout_s: float = 1.0) -> list[Message]:
        """Messages of the partitions this member owns, in order per partition (may be empty)."""

    async def commit(self, message: Message) -> None:
        """Record that ``message`` and everything before it in its partition is done."""
        await self.commit_many([message])

    @abc.abstractmethod
    async def commit_many(self, messages: Sequence[Message]) -> None:
        """Record that ``messages`` (in fetch order) and everything before them are done: for
        each partition among them, its last one (:func:`last_per_partition`), in one request
        or transaction. A partition this member no longer owns is skipped (its new owner
        redelivers from the last committed offset; the inbox absorbs that)."""

    @abc.abstractmethod
    async def stop(self) -> None: ...


class EventBus(abc.ABC):
    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def stop(self) -> None: ...

    @abc.abstractmethod
    async def publish(
        self, topic: str, key: str, value: bytes, headers: dict[str, str] | None = None
    ) -> None: ...

    async def publish_many(self, messages: Sequence[Outgoing]) -> None:
        """Publish ``messages`` in order; on a failure raise :class:`PublishError` whose
        ``confirmed`` counts the leading messages the log has. Adapters override this to write
        many messages at the cost of one (one transaction, one fsync)."""
        for index, message in enumerate(messages):
            try:
                await self.publish(message.topic, message.key, message.value, message.headers)
            except PublishError as exc:
                raise PublishError(str(exc), confirmed=index) from exc

    @abc.abstractmethod
    def subscribe(self, group: str, topics: Sequence[str]) -> Subscription: ...

    async def healthy(self) -> bool:
        """Whether the log answers; used by ``/readyz``."""
        return True


class Consumer:
    """Runs a subscription: hand each message to ``handler``, commit after it returns.

    Failures are told apart (``transient``, by default :func:`libs.common.faults.is_transient`):

    * a *transient* one (the database or broker unreachable, a lock timeout, a serialization
      failure) is retried with capped exponential backoff for as long as it takes; consumption is
      paused meanwhile (the next message waits) and :attr:`stuck_since` says so (``/readyz``);
    * anything else is *poison*: retried ``max_attempts`` times, then ``dead_letter`` stores the
      message (nothing dropped silently, re-drivable later) and the offset moves on.

    Messages of one partition are handled one after another, preserving per-key order.

    With a ``batch_handler``, the messages of a fetch are handed over in groups of up to
    ``batch_max`` messages and ``batch_bytes`` bytes of payload (one transaction for the group,
    one offset commit per partition: the per-event transaction and commit are what an event
    costs). If a group fails for any reason, it is handled again message by message with the
    rules above, so a poison message is still isolated and dead-lettered alone.
    """

    def __init__(
        self,
        subscription: Subscription,
        handler: Handler,
        *,
        dead_letter: Callable[[Message, str], Awaitable[None]] | None = None,
        max_attempts: int = 5,
        backoff_s: float = 0.2,
        max_backoff_s: float = 30.0,
        transient: Callable[[BaseException], bool] = is_transient,
        name: str = "consumer",
        batch_handler: BatchHandler | None = None,
        batch_max: int = 32,
        batch_bytes: int = 64 << 10,
    ) -> None:
        self.subscription = subscription
        self.handler = handler
        self.batch_handler = batch_handler
        self.batch_max = batch_max
        self.batch_bytes = batch_bytes
        self.batches_failed = 0  # groups handled again one by one
        self.dead_letter = dead_letter
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.transient = transient
        self.name = name
        # set while a transient failure holds the consumer up: (monotonic start, error type)
        self.stuck_since: float | None = None
        self.stuck_on: str | None = None
        self._loop = LoopTask(name)
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        """Start consuming in the background; a broker that is not there yet is waited for
        (not ready meanwhile), so a service starts whatever the broker's state."""
        self._loop.spawn(self._run())

    async def stop(self) -> None:
        self._stopping.set()
        await self._loop.cancel()
        await self.subscription.stop()

    async def _connect(self) -> None:
        delay = self.backoff_s
        while True:
            try:
                await self.subscription.start()
                self.stuck_since = self.stuck_on = None
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.stuck_since is None:
                    self.stuck_since = time.monotonic()
                    log.warning(
                        "cannot join the consumer group yet; retrying",
                        extra={"consumer": self.name, "error": type(exc).__name__},
                    )
                self.stuck_on = f"{type(exc).__name__} (joining)"
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_backoff_s)

    async def _run(self) -> None:
        await self._connect()
        while not self._stopping.is_set():
            try:
                batch = await self.subscription.fetch()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("fetch failed", extra={"consumer": self.name})
                await asyncio.sleep(1.0)
                continue
            for group in self._groups(batch):
                if len(group) > 1 and await self._handle_group(group):
                    await self._commit(group)
                    continue
                for message in group:
                    await self._handle(message)
                    await self._commit([message])

    def _groups(self, batch: list[Message]) -> list[list[Message]]:
        """``batch`` cut into what one ``batch_handler`` call takes (singletons without one)."""
        if self.batch_handler is None:
            return [[message] for message in batch]
        groups: list[list[Message]] = []
        size = 0
        for message in batch:
            if (
                not groups
                or len(groups[-1]) >= self.batch_max
                or size + len(message.value) > self.batch_bytes
            ):
                groups.append([])
                size = 0
            groups[-1].append(message)
            size += len(message.value)
        return groups

    async def _handle_group(self, group: list[Message]) -> bool:
        """One ``batch_handler`` call; False (nothing done) if it raised."""
        assert self.batch_handler is not None
        try:
            await self.batch_handler(group)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.batches_failed += 1
            log.info(
                "a group of events failed; handling them one by one",
                extra={"consumer": self.name, "events": len(group), "error": type(exc).__name__},
            )
            return False
        self.stuck_since = self.stuck_on = None
        return True

    async def _commit(self, messages: list[Message]) -> None:
        while True:
            try:
                await self.subscription.commit_many(messages)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                # Losing a commit only means a redelivery, which the inbox absorbs; keep trying
                # briefly, then move on rather than stall the partition.
                log.warning("commit failed, retrying", extra={"consumer": self.name})
                await asyncio.sleep(0.5)
                if self._stopping.is_set():
                    return

    async def _handle(self, message: Message) -> None:
        failures = 0  # poison attempts; transient failures do not count
        waits = 0
        while True:
            try:
                await self.handler(message)
                self.stuck_since = self.stuck_on = None
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.transient(exc):
                    if self.stuck_since is None:
                        self.stuck_since = time.monotonic()
                        log.warning(
                            "transient failure; retrying until it passes (consumption paused)",
                            extra={"consumer": self.name, "error": type(exc).__name__},
                        )
                    self.stuck_on = type(exc).__name__
                    failures = 0
                else:
                    self.stuck_since = self.stuck_on = None
                    failures += 1
                    if failures >= self.max_attempts:
                        log.exception(
                            "handler gave up; dead-lettering",
                            extra={"consumer": self.name, "topic": message.topic},
                        )
                        if self.dead_letter is not None:
                            await self._dead_letter(message, f"{type(exc).__name__}: {exc}")
                        return
                await asyncio.sleep(min(self.backoff_s * 2**waits, self.max_backoff_s))
                waits += 1

    async def _dead_letter(self, message: Message, reason: str) -> None:
        # A failing dead-letter store must neither end the consumer task (it would stop consuming
        # without anyone noticing) nor let the offset move past an unstored message: keep trying.
        assert self.dead_letter is not None
        delay = self.backoff_s
        while True:
            try:
                await self.dead_letter(message, reason)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("dead-lettering failed, retrying", extra={"consumer": self.name})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
