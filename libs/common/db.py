"""Database plumbing shared by every service: engines for PostgreSQL (asyncpg) and SQLite
(aiosqlite), the tables every service has (outbox, inbox, dead letters, idempotency keys), and a
naming convention for constraints so Alembic migrations are stable."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    bindparam,
    event,
    insert,
)
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql import FromClause
from sqlalchemy.types import TypeDecorator

from libs.common import sqlite_driver

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both PostgreSQL and SQLite (which stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


TYPE_ANNOTATION_MAP: dict[Any, Any] = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


def service_metadata() -> MetaData:
    """Each service declares ``class Base(DeclarativeBase)`` with its own metadata from here
    (one database per service) and :data:`TYPE_ANNOTATION_MAP`."""
    return MetaData(naming_convention=NAMING_CONVENTION)


class IdMixin:
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class InfraTables:
    """The reliability tables every service database has."""

    def __init__(self, metadata: MetaData) -> None:
        self.outbox = Table(
            "outbox",
            metadata,
            Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
            Column("event_id", String(36), nullable=False, unique=True),
            Column("topic", String(100), nullable=False),
            Column("key", String(100), nullable=False),
            Column("event_type", String(100), nullable=False),
            Column("payload", LargeBinary, nullable=False),
            Column("headers", JSON, nullable=False),
            Column("created_at", UTCDateTime(), nullable=False, default=utcnow),
            Column("sent_at", UTCDateTime(), nullable=True, index=True),
            Column("attempts", Integer, nullable=False, default=0),
            Column("last_error", Text, nullable=True),
        )
        self.inbox = Table(
            "inbox",
            metadata,
            Column("event_id", String(36), primary_key=True),
            Column("event_type", String(100), nullable=False),
            Column("processed_at", UTCDateTime(), nullable=False, default=utcnow),
        )
        self.dead_letters = Table(
            "dead_letters",
            metadata,
            Column("id", String(36), primary_key=True, default=new_id),
            Column("topic", String(100), nullable=False),
            Column("partition", Integer, nullable=False),
            Column("offset", BigInteger, nullable=False),
            Column("key", String(100), nullable=False),
            Column("event_type", String(100), nullable=True),
            Column("payload", LargeBinary, nullable=False),
            Column("error", Text, nullable=False),
            Column("created_at", UTCDateTime(), nullable=False, default=utcnow),
        )
        self.idempotency_keys = Table(
            "idempotency_keys",
            metadata,
            Column("id", String(36), primary_key=True, default=new_id),
            Column("caller", String(100), nullable=False),
            Column("key", String(200), nullable=False),
            Column("request_hash", String(64), nullable=False),
            Column("status_code", Integer, nullable=False),
            Column("response", JSON, nullable=False),
            Column("created_at", UTCDateTime(), nullable=False, default=utcnow),
            UniqueConstraint("caller", "key", name="uq_idempotency_keys_caller_key"),
        )
        # the inserts of every write request, built once (run with a dict or a list of them)
        self.insert_outbox = insert(self.outbox)
        self.insert_idempotency_key = insert(self.idempotency_keys)
        # a consumer's group of events into the inbox in one statement: the ids that were new
        self.record_events = BulkInsert(
            self.inbox,
            ["event_id", "event_type", "processed_at"],
            conflict=["event_id"],
            returning=["event_id"],
        )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run beside the writer; busy_timeout waits for a lock instead of failing.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_begin_immediate(conn: Connection) -> None:
    # Take the write lock up front: a deferred transaction that later upgrades to a writer fails
    # with SQLITE_BUSY at once instead of waiting, which breaks concurrent writers.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def create_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    if url.startswith("sqlite"):
        # One connection per process: SQLite has one writer at a time anyway, and every
        # transaction here takes the write lock up front (BEGIN IMMEDIATE). With a pool of many,
        # concurrent requests each hold a connection and wait in SQLite's busy handler, which
        # sleeps and polls (up to 100 ms a try): throughput drops and p99 reaches seconds. With
        # one, they wait in the pool's asyncio queue, first come first served, and each gets the
        # lock the moment the previous transaction ends.
        engine = create_async_engine(
            url,
            echo=echo,
            module=sqlite_driver.dbapi(),  # one thread hop per statement, not four
            connect_args={"timeout": 15},
            pool_size=1,
            max_overflow=0,
            pool_timeout=60,
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin_immediate)
        return engine
    return create_async_engine(url, echo=echo, pool_size=10, max_overflow=10, pool_pre_ping=True)


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[Any]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=True)


def insert_ignoring_duplicates(table: Any, dialect: str, *, index_elements: Any = None) -> Any:
    """``INSERT ... ON CONFLICT DO NOTHING`` on PostgreSQL and SQLite: a set-based insert that skips
    rows whose unique key exists already (add ``.values(rows)`` and ``.returning(...)``)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing(index_elements=index_elements)
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table).on_conflict_do_nothing(index_elements=index_elements)
    raise NotImplementedError(f"no conflict-ignoring insert for {dialect}")  # pragma: no cover


# Bound parameters one statement may carry: SQLite's default limit (32,766 since 3.32, 999
# before) and PostgreSQL's wire protocol (a 16-bit count).
MAX_VARIABLES = {
    "sqlite": 32766 if sqlite3.sqlite_version_info >= (3, 32, 0) else 999,
    "postgresql": 32767,
}


class BulkInsert:
    """``INSERT … ON CONFLICT DO NOTHING [RETURNING …]`` of many rows: one multi-row ``VALUES``
    statement per chunk, on SQLite and PostgreSQL.

    The statement of each chunk size is built with SQLAlchemy Core and compiled once per dialect,
    then cached: an executemany of one row's statement costs a round of SQLAlchemy's per-row
    machinery for every row, and a fresh ``.values(rows)`` a compilation of every bind parameter
    for every chunk; both cost more than the insert itself. Each execution only runs the columns'
    bind processors (once for a value repeated by identity down a column, like a shared ``now``)
    and sends one flat parameter list. Chunks stay within the dialect's parameter limit.

    Rows are mappings with exactly ``columns`` (a table column with a Python-side default must be
    among them: the defaults are not applied here). ``returning`` rows come back as the driver
    gives them (plain tuples, no result processing): use it for ids and other plain values."""

    def __init__(
        self,
        table: FromClause,
        columns: Sequence[str],
        *,
        conflict: Sequence[str] | None = None,
        returning: Sequence[str] = (),
        chunk: int = 500,
    ) -> None:
        unknown = [c for c in (*columns, *(conflict or ()), *returning) if c not in table.c]
        if unknown:
            raise ValueError(f"{table.description} has no column {', '.join(unknown)}")
        defaulted = [
            c.name
            for c in table.c
            if isinstance(c, Column) and c.default is not None and c.name not in columns
        ]
        if defaulted:
            raise ValueError(
                f"{table.description}: give {', '.join(defaulted)} (they have a default)"
            )
        # the table's column order: the order Core renders a row's values in
        self.table = table
        self.columns = [c.name for c in table.c if c.name in set(columns)]
        self.conflict = list(conflict) if conflict is not None else None
        self.returning = list(returning)
        self.chunk = chunk
        self._compiled: dict[tuple[str, int], tuple[str, list[int]]] = {}
        self._processors: dict[str, list[Callable[[Any], Any] | None]] = {}

    def rows_per_statement(self, dialect: str) -> int:
        return max(1, min(self.chunk, MAX_VARIABLES.get(dialect, 999) // len(self.columns)))

    async def execute(
        self, session: AsyncSession, rows: Sequence[Mapping[str, Any]]
    ) -> list[tuple[Any, ...]]:
        """Insert ``rows`` (skipping those that conflict); the ``returning`` values of the rows
        actually inserted, in no particular order."""
        if not rows:
            return []
        conn = await session.connection()
        dialect = conn.dialect
        size = self.rows_per_statement(dialect.name)
        returned: list[tuple[Any, ...]] = []
        for start in range(0, len(rows), size):
            chunk = rows[start : start + size]
            sql, order = self._statement(dialect, len(chunk))
            params = self._parameters(dialect, chunk)
            if order:
                params = [params[i] for i in order]
            result = await conn.exec_driver_sql(sql, tuple(params))
            if self.returning:
                returned += [tuple(r) for r in result.all()]
        return returned

    def _statement(self, dialect: Dialect, rows: int) -> tuple[str, list[int]]:
        """The SQL of a ``rows``-row insert and, if Core orders its parameters other than row by
        row in :attr:`columns` order, the permutation from that order to Core's."""
        key = (dialect.name, rows)
        if key not in self._compiled:
            width = len(self.columns)
            names = {f"r{i}_{j}": i * width + j for i in range(rows) for j in range(width)}
            values = [
                {
                    name: bindparam(f"r{i}_{j}", type_=self.table.c[name].type)
                    for j, name in enumerate(self.columns)
                }
                for i in range(rows)
            ]
            stmt = insert_ignoring_duplicates(
                self.table, dialect.name, index_elements=self.conflict
            ).values(values)
            if self.returning:
                stmt = stmt.returning(*(self.table.c[name] for name in self.returning))
            compiled = stmt.compile(dialect=dialect)
            order = [names[name] for name in compiled.positiontup or ()]
            if len(order) != len(names):
                raise RuntimeError(f"{dialect.name}: a positional parameter style is needed")
            self._compiled[key] = (
                compiled.string,
                [] if order == sorted(order) else order,
            )
        return self._compiled[key]

    def _parameters(self, dialect: Dialect, rows: Sequence[Mapping[str, Any]]) -> list[Any]:
        """The rows' values row by row, each through its column's bind processor."""
        processors = self._processors.get(dialect.name)
        if processors is None:
            processors = [
                self.table.c[name].type._cached_bind_processor(dialect) for name in self.columns
            ]
            self._processors[dialect.name] = processors
        out: list[Any] = []
        for name, process in zip(self.columns, processors, strict=True):
            column = [row[name] for row in rows]
            if process is not None:
                column = _processed(column, process)
            out.append(column)
        # column lists to one row-major list
        return [value for values in zip(*out, strict=True) for value in values]


def _processed(values: list[Any], process: Callable[[Any], Any]) -> list[Any]:
    """``process`` of each value, called once for a run of the same object (a shared ``now``)."""
    out: list[Any] = []
    last: Any = object()
    done: Any = None
    for value in values:
        if value is not last:
            last, done = value, process(value)
        out.append(done)
    return out
