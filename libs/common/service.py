"""The app factory every service uses: one lifespan that builds the engine, migrates, starts the
bus, the outbox relay, the event consumer and any background workers, and stops them in reverse."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Literal, Protocol, TypeVar

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, Field
from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.types import Scope

from libs.common.auth import (
    OPS_ROLES,
    CurrentPrincipal,
    TokenService,
    bearer_token,
    require_role,
    verified_principal,
)
from libs.common.bus import Consumer, EventBus, Message
from libs.common.clock import BEIJING, Clock
from libs.common.db import InfraTables, create_engine, create_sessionmaker, utcnow
from libs.common.errors import Conflict, DomainError, NotFound, Unauthorized
from libs.common.eventlog import EmbeddedLog
from libs.common.events import Envelope, topic_of
from libs.common.faults import is_transient
from libs.common.gateway import RootPathMiddleware
from libs.common.inbox import EventRouter
from libs.common.limits import (
    BodyLimitMiddleware,
    BodyTooLarge,
    FiniteJsonMiddleware,
    Rate,
    RateLimitMiddleware,
    RateStore,
    RouteRate,
    body_too_large_handler,
    rate_store,
)
from libs.common.migrations import upgrade_async
from libs.common.observability import Metrics, RequestContextMiddleware, configure_logging
from libs.common.openapi import install_openapi, operation_id
from libs.common.outbox import OutboxRelay
from libs.common.problems import (
    PROBLEM_RESPONSES,
    ProblemContextMiddleware,
    install_problem_handlers,
    problems_router,
)
from libs.common.settings import Settings
from libs.common.tasks import LoopTask
from libs.common.timestamps import Timestamp
from libs.common.uow import UnitOfWork

log = logging.getLogger(__name__)
E = TypeVar("E")


class Worker(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


@dataclass
class ServiceSpec:
    name: str
    title: str
    infra: InfraTables
    migrations_dir: Path
    routers: Sequence[APIRouter]
    events: EventRouter | None = None
    subscribes: Sequence[str] = ()
    workers: Sequence[Callable[[ServiceState], Worker]] = ()
    # request body limits beyond the default 1 MiB: ``{"POST /v1/persons/batch": bytes}``
    body_limits: Mapping[str, int] = field(default_factory=dict)
    # routes with a rate of their own, per client address, beside the service-wide limits:
    # ``{"GET /v1/certificates/{code}": RouteRate(60, 60.0)}`` → 429 with Retry-After beyond it
    route_rates: Mapping[str, RouteRate] = field(default_factory=dict)
    # refreshes the service's own gauges just before ``GET /metrics`` renders them (one query,
    # bounded by ``Settings.metrics_refresh_timeout_s``), so a scrape shows the state of now
    metrics_refresh: Callable[[ServiceState], Awaitable[None]] | None = None
    # the service's own state (``ServiceState.ext``): entered after the engine and the bus start,
    # before the workers; exited after they stop, so whatever it opens it also closes
    extension: Callable[[ServiceState], AbstractAsyncContextManager[object]] | None = None
    # closed sets of string values the OpenAPI document declares as enums, by field or
    # parameter name (``{"category": (...)}``), beside the shared ones (``subject``)
    openapi_enums: Mapping[str, Sequence[str]] = field(default_factory=dict)


@dataclass
class ServiceState:
    settings: Settings
    spec: ServiceSpec
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    bus: EventBus
    relay: OutboxRelay
    metrics: Metrics
    clock: Clock = field(default=utcnow)  # injectable: tests stand on any day
    consumer: Consumer | None = None  # the event consumer, if the service subscribes
    ext: object = None  # the service's own typed state, read through ``ext_as``

    def ext_as(self, kind: type[E]) -> E:
        """The service's own state, checked to be the ``kind`` its spec's ``extension`` built."""
        if not isinstance(self.ext, kind):
            raise RuntimeError(f"{self.spec.name} has no {kind.__name__} (is the app started?)")
        return self.ext

    def now(self) -> datetime:
        """The service clock (aware): UTC now unless a test set ``clock``."""
        return self.clock()

    def today(self) -> date:
        """Today in Beijing, the calendar every deadline of the notice uses."""
        return self.now().astimezone(BEIJING).date()

    def uow(self) -> UnitOfWork:
        return UnitOfWork(
            self.sessionmaker,
            self.spec.infra,
            source=self.spec.name,
            topic=topic_of(self.spec.name),
            on_commit=self.relay.wake,
            clock=self.clock,
        )


def build_bus(settings: Settings, metrics: Metrics | None = None) -> EventBus:
    if settings.bus == "kafka":
        from libs.common.kafka import KafkaBus

        def offset_lost(topic: str, partition: int, offset: int) -> None:
            if metrics is not None:
                metrics.offsets_lost.labels(metrics.service, topic, str(partition)).inc()

        return KafkaBus(
            settings.kafka_bootstrap,
            enable_idempotence=settings.kafka_idempotence,
            send_timeout_s=settings.kafka_send_timeout_s,
            fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
            partitions=settings.kafka_partitions,
            replication_factor=settings.kafka_replication_factor,
            topic_configs={
                "min.insync.replicas": str(settings.kafka_min_insync_replicas),
                "retention.ms": str(settings.kafka_retention_ms),
            },
            on_offset_out_of_range=offset_lost,
        )
    return EmbeddedLog(settings.event_log_path, partitions=settings.embedded_partitions)


class BusConnector:
    """Starts the bus without letting a missing broker stop the service: the first attempt is
    bounded, then it keeps trying in the background (capped backoff) until the broker answers.
    Meanwhile ``/readyz`` says the bus is down, the outbox keeps the events and the consumer
    waits to join its group."""

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus
        self._loop = LoopTask("bus-connect")

    @classmethod
    async def start(cls, bus: EventBus, first_attempt_s: float) -> BusConnector:
        connector = cls(bus)
        try:
            await asyncio.wait_for(bus.start(), first_attempt_s)
        except Exception as exc:
            log.warning(
                "the broker is not reachable; starting without it and connecting later",
                extra={"error": type(exc).__name__},
            )
            connector._loop.spawn(connector._keep_trying())
        return connector

    async def _keep_trying(self) -> None:
        delay = 0.5
        while True:
            await asyncio.sleep(delay)
            try:
                await self.bus.start()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.info("broker still unreachable", extra={"error": type(exc).__name__})
                delay = min(delay * 2, 15.0)
                continue
            log.info("connected to the broker")
            return

    async def stop(self) -> None:
        await self._loop.cancel()


def state_of(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.service
    return state


# The dependencies are ``async def`` (they do no blocking I/O): a sync one costs every request a
# hop to the threadpool and back.
async def _state_dependency(request: Request) -> ServiceState:
    return state_of(request)


async def uow_of(state: Annotated[ServiceState, Depends(_state_dependency)]) -> UnitOfWork:
    """A fresh, not yet entered unit of work: the route opens it with ``async with uow:``."""
    return state.uow()


StateDep = Annotated[ServiceState, Depends(_state_dependency)]
UowDep = Annotated[UnitOfWork, Depends(uow_of)]


def create_service_app(spec: ServiceSpec, settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings(service=spec.name)
    if settings.env == "production" and settings.public_url is None:
        # documents and QR codes would otherwise point at an internal address
        raise ValueError(
            "production needs CE_PUBLIC_URL (the platform's public address, e.g. "
            "https://ce.example.gov.cn): the URLs in documents and QR codes start with it"
        )
    metrics = Metrics(spec.name)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(spec.name, settings.log_level)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        url = settings.effective_database_url
        if settings.migrate_on_start:
            await upgrade_async(spec.migrations_dir, url)
        engine = create_engine(url)
        sessionmaker = create_sessionmaker(engine)
        bus = build_bus(settings, metrics)
        connector = await BusConnector.start(bus, settings.kafka_connect_timeout_s)
        relay = OutboxRelay(
            engine, sessionmaker, spec.infra, bus, name=spec.name, poll_s=settings.outbox_poll_s
        )
        state = ServiceState(settings, spec, engine, sessionmaker, bus, relay, metrics)
        app.state.service = state
        extension = AsyncExitStack()
        if spec.extension is not None:
            state.ext = await extension.enter_async_context(spec.extension(state))
        started: list[Worker] = [relay]
        await relay.start()
        if spec.events is not None and spec.subscribes:
            consumer = _consumer(state, spec.events, spec.subscribes)
            await consumer.start()
            state.consumer = consumer
            started.append(consumer)
        for make in spec.workers:
            worker = make(state)
            await worker.start()
            started.append(worker)
        log.info("service started", extra={"port": settings.port})
        try:
            yield
        finally:
            for worker in reversed(started):
                try:
                    await worker.stop()
                except Exception:
                    log.exception("worker did not stop cleanly")
            await extension.aclose()
            await limits.aclose()
            await connector.stop()
            await bus.stop()
            await engine.dispose()
            log.info("service stopped")

    # /docs and /redoc with their assets served by the service itself (no CDN)
    app = FastAPIOffline(
        title=spec.title,
        version="1.0",
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
        static_url="/docs-assets",
    )
    install_openapi(app, spec.openapi_enums)
    app.state.tokens = TokenService(settings)
    app.state.settings = settings
    # the rate-limit buckets: this process's, or Redis's shared by the service's replicas
    limits: RateStore = rate_store(
        settings.rate_limit_storage, prefix=f"{settings.rate_limit_key_prefix}{spec.name}:"
    )
    app.state.rate_limits = limits
    # outermost last: CORS, the problems' language, correlation id and metrics, then rate
    # limits, then body limits, then non-finite JSON, then the gateway's path prefix (the
    # limits match the path as the gateway forwards it)
    app.add_middleware(
        RootPathMiddleware, root_path=settings.root_path, trusted=settings.forwarded_allow_ips
    )
    app.add_middleware(FiniteJsonMiddleware)
    app.add_middleware(BodyLimitMiddleware, limits=spec.body_limits)
    app.add_middleware(
        RateLimitMiddleware,
        identify=_caller_of,
        store=limits,
        per_token=_rate("write", settings.rate_limit_write_per_s, settings.rate_limit_write_burst),
        per_address=_rate(
            "anonymous", settings.rate_limit_anonymous_per_s, settings.rate_limit_anonymous_burst
        ),
        routes=spec.route_rates,
    )
    app.add_middleware(RequestContextMiddleware, metrics=metrics)
    app.add_middleware(
        ProblemContextMiddleware, type_base=f"{settings.public_base_url()}/problems/"
    )
    origins = settings.cors_origin_list()
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "Accept-Language",
                "Idempotency-Key",
                "If-Match",
                "If-None-Match",
                "X-Correlation-ID",
            ],
            expose_headers=[
                "ETag",
                "Location",
                "Retry-After",
                "X-Correlation-ID",
                "Content-Disposition",
                "Content-Language",
            ],
            max_age=600,
        )
    install_problem_handlers(app)
    app.add_exception_handler(BodyTooLarge, body_too_large_handler)
    app.include_router(_ops_router(spec.name, metrics))
    app.include_router(problems_router())
    for router in spec.routers:
        app.include_router(router, responses=PROBLEM_RESPONSES)
    return app


def _rate(name: str, rate: float, burst: float) -> Rate | None:
    return Rate(name, rate, burst) if rate > 0 else None


async def _caller_of(scope: Scope) -> str | None:
    """The role and subject of a valid bearer token (the rate-limit key), else None; the route's
    ``CurrentPrincipal`` reuses this verification (:func:`verified_principal`)."""
    if bearer_token(scope) is None:
        return None
    try:
        principal = await verified_principal(scope)
    except Unauthorized:
        return None
    return f"{principal.role}:{principal.sub}"


async def handle_messages(
    state: ServiceState, events: EventRouter, messages: list[Message]
) -> list[bool]:
    """Handle messages through the inbox in one transaction (no second effect); whether each
    had an effect."""
    applied = await events.dispatch_many(state.uow, messages)
    counter = state.metrics.events_handled
    for message, effect in zip(messages, applied, strict=True):
        event_type = message.headers.get("event_type", "unknown")
        counter.labels(state.spec.name, event_type, "applied" if effect else "skipped").inc()
    return applied


async def handle_message(state: ServiceState, events: EventRouter, message: Message) -> bool:
    """:func:`handle_messages` of one message."""
    [applied] = await handle_messages(state, events, [message])
    return applied


def _consumer(state: ServiceState, events: EventRouter, topics: Sequence[str]) -> Consumer:
    async def handle(message: Message) -> None:
        await handle_message(state, events, message)

    async def handle_group(messages: list[Message]) -> None:
        await handle_messages(state, events, messages)

    async def dead_letter(message: Message, error: str) -> None:
        event_type: str | None
        try:
            event_type = Envelope.from_bytes(message.value).type
        except Exception:
            event_type = None
        async with state.sessionmaker() as session:
            await session.execute(
                insert(state.spec.infra.dead_letters).values(
                    topic=message.topic,
                    partition=message.partition,
                    offset=message.offset,
                    key=message.key,
                    event_type=event_type,
                    payload=message.value,
                    error=error[:4000],
                )
            )
            await session.commit()
        state.metrics.events_handled.labels(state.spec.name, event_type or "?", "dead").inc()

    subscription = state.bus.subscribe(state.spec.name, list(topics))
    settings = state.settings
    return Consumer(
        subscription,
        handle,
        dead_letter=dead_letter,
        max_attempts=settings.consumer_poison_attempts,
        backoff_s=settings.consumer_backoff_s,
        max_backoff_s=settings.consumer_max_backoff_s,
        name=f"{state.spec.name}-events",
        batch_handler=handle_group if settings.consumer_batch_max > 1 else None,
        batch_max=settings.consumer_batch_max,
    )


class Health(BaseModel):
    status: Literal["ok"]
    service: str = Field(description="the service answering (claims, review, registry, sync)")
    instance: str = Field(
        description="which replica answered: the host name and process id, for telling the "
        "replicas behind the gateway apart"
    )


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]
    checks: dict[str, str]  # database, bus: "ok" or the error


class DeadLetter(BaseModel):
    id: str
    topic: str
    partition: int
    offset: int
    event_type: str | None
    error: str
    created_at: Timestamp


class DeadLetters(BaseModel):
    items: list[DeadLetter]
    outbox_pending: int


def _ops_router(service: str, metrics: Metrics) -> APIRouter:
    router = APIRouter(tags=["operations"])
    instance = f"{socket.gethostname()}:{os.getpid()}"

    @router.get("/healthz", operation_id="getHealth")
    async def healthz() -> Health:
        """Liveness: the process answers."""
        return Health(status="ok", service=service, instance=instance)

    @router.get(
        "/readyz",
        operation_id="getReadiness",
        response_model=Readiness,
        responses={503: {"model": Readiness}},
    )
    async def readyz(request: Request) -> JSONResponse:
        state = state_of(request)
        checks: dict[str, str] = {}
        try:
            async with state.sessionmaker() as session:
                await session.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"error: {type(exc).__name__}"
        checks["bus"] = "ok" if await state.bus.healthy() else "error"
        consumer = state.consumer
        if consumer is not None and consumer.stuck_since is not None:
            stuck_s = time.monotonic() - consumer.stuck_since
            checks["consumer"] = f"error: {consumer.stuck_on} for {stuck_s:.0f} s, retrying"
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse(
            {"status": "ready" if ok else "not_ready", "checks": checks},
            status_code=200 if ok else 503,
        )

    @router.get("/metrics", operation_id="getMetrics", response_class=PlainTextResponse)
    async def prometheus(request: Request) -> Response:
        """Prometheus metrics; a service's own gauges are refreshed first (see
        ``ServiceSpec.metrics_refresh``), within ``metrics_refresh_timeout_s``."""
        await refresh_gauges(state_of(request))
        return metrics.render()

    @router.get(
        "/v1/admin/dead-letters", operation_id="listDeadLetters", responses=PROBLEM_RESPONSES
    )
    async def dead_letters(request: Request, principal: CurrentPrincipal) -> DeadLetters:
        require_role(principal, *OPS_ROLES)
        state = state_of(request)
        table = state.spec.infra.dead_letters
        async with state.sessionmaker() as session:
            rows = (
                await session.execute(select(table).order_by(table.c.created_at.desc()).limit(200))
            ).all()
        return DeadLetters(
            items=[
                DeadLetter(
                    id=r.id,
                    topic=r.topic,
                    partition=r.partition,
                    offset=r.offset,
                    event_type=r.event_type,
                    error=r.error,
                    created_at=r.created_at.isoformat(),
                )
                for r in rows
            ],
            outbox_pending=await state.relay.pending(),
        )

    @router.post(
        "/v1/admin/dead-letters/{letter_id}/replay",
        responses=PROBLEM_RESPONSES,
    )
    async def replay_dead_letter(
        letter_id: str, request: Request, principal: CurrentPrincipal
    ) -> ReplayOut:
        """Handle a dead letter again (after the handler was fixed), through the inbox: an
        event that had its effect already has none again. On success the letter is removed."""
        require_role(principal, *OPS_ROLES)
        return await replay(state_of(request), letter_id)

    return router


async def refresh_gauges(state: ServiceState) -> None:
    """Run the spec's scrape-time refresh, bounded in time; a failure or a timeout is counted
    (``metrics_refresh_failures_total``) and logged, and the scrape goes on with the values
    the gauges had."""
    refresh = state.spec.metrics_refresh
    if refresh is None:
        return
    timeout_s = state.settings.metrics_refresh_timeout_s
    try:
        await asyncio.wait_for(refresh(state), timeout_s)
    except TimeoutError:
        state.metrics.refresh_failures.labels(state.metrics.service, "timeout").inc()
        log.warning("gauges not refreshed in time for a scrape", extra={"timeout_s": timeout_s})
    except Exception as exc:
        state.metrics.refresh_failures.labels(state.metrics.service, "error").inc()
        log.warning("gauges not refreshed for a scrape", extra={"error": type(exc).__name__})


class ReplayOut(BaseModel):
    id: str
    event_type: str | None
    # applied: it had its effect now; skipped: it had it before (the inbox knew the event id)
    # or this service no longer handles its type
    outcome: Literal["applied", "skipped"]


async def replay(state: ServiceState, letter_id: str) -> ReplayOut:
    """Re-drive one dead letter through the service's handlers and inbox."""
    table = state.spec.infra.dead_letters
    async with state.sessionmaker() as session:
        row = (await session.execute(select(table).where(table.c.id == letter_id))).first()
    if row is None:
        raise NotFound(f"dead letter {letter_id} not found", code="dead_letter_not_found")
    if state.spec.events is None:
        raise Conflict("this service handles no events", code="no_event_handlers")
    message = Message(
        topic=row.topic,
        partition=row.partition,
        offset=row.offset,
        key=row.key,
        value=bytes(row.payload),
        headers={"event_type": row.event_type or "unknown"},
    )
    try:
        applied = await handle_message(state, state.spec.events, message)
    except Exception as exc:
        if is_transient(exc):
            raise DomainError(
                f"a transient failure stopped the replay ({type(exc).__name__}); try again",
                code="temporarily_unavailable",
                status=503,
                title="Temporarily unavailable",
            ) from exc
        error = f"{type(exc).__name__}: {exc}"
        async with state.sessionmaker() as session:
            await session.execute(
                update(table).where(table.c.id == letter_id).values(error=error[:4000])
            )
            await session.commit()
        raise Conflict(
            f"the event failed again: {error[:500]}", code="replay_failed", error=error[:500]
        ) from exc
    async with state.sessionmaker() as session:
        await session.execute(delete(table).where(table.c.id == letter_id))
        await session.commit()
    log.info("dead letter replayed", extra={"dead_letter": letter_id, "applied": applied})
    return ReplayOut(
        id=letter_id, event_type=row.event_type, outcome="applied" if applied else "skipped"
    )
