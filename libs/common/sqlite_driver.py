"""SQLite for SQLAlchemy's asyncio engine with one thread hop per statement.

aiosqlite runs the ``sqlite3`` connection in a worker thread, and SQLAlchemy's adapter sends it
every cursor operation on its own: create the cursor, execute, fetch the rows, close the cursor,
each a round trip to the thread and back through the event loop (a future, a wake-up of the
loop, a resumption of the whole await chain of the request). A statement is tens of
microseconds of SQLite; the round trips cost several times that in CPU.

This adapter keeps aiosqlite's thread and connection and SQLAlchemy's dialect, and replaces the
cursor: ``execute`` ships one function to the thread that creates a ``sqlite3`` cursor, runs the
statement, fetches every row, reads ``description``, ``rowcount`` and ``lastrowid`` and closes
the cursor, so a statement is one round trip. Rows are buffered as the stock adapter buffers
them. Server-side cursors (``stream_results``) keep the stock adapter.

No round trip at all while the connection holds SQLite's write lock: once a ``BEGIN IMMEDIATE``
(or ``EXCLUSIVE``) has returned, no other connection can make a statement of this transaction
wait, so the statements up to its end run on the event loop's thread (the connection is opened
with ``check_same_thread=False``; SQLAlchemy runs one statement at a time on a connection). They
cost tens of microseconds of CPU and a page-cache read or a WAL write, less than a thread hop.
What can wait still runs in the thread: the ``BEGIN`` itself (on the lock), reads outside a write
transaction, and ``COMMIT`` (a WAL checkpoint fsyncs). A ``commit()`` or ``rollback()`` with no
transaction open (the pool's reset of a connection after its commit) is a no-op in ``sqlite3``
and costs no round trip here.

Pass :func:`dbapi` as ``module=`` to ``create_async_engine`` for a ``sqlite+aiosqlite`` URL.
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Sequence
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util.concurrency import await_

_Outcome = tuple[Any, Sequence[Any], int, int | None]
_TAKES_WRITE_LOCK = ("BEGIN IMMEDIATE", "BEGIN EXCLUSIVE")


def _run(connection: aiosqlite.Connection, operation: str, parameters: Any, many: bool) -> _Outcome:
    """In aiosqlite's thread: the whole life of a cursor for one statement."""
    cursor: sqlite3.Cursor = connection._conn.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else ()
        return description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


class OneHopCursor(AsyncAdapt_aiosqlite_cursor):
    """A buffered DBAPI cursor whose ``execute`` is one round trip to the SQLite thread."""

    __slots__ = ("_arraysize", "_description", "_lastrowid", "_rowcount")

    server_side = False

    def __init__(self, adapt_connection: AsyncAdapt_aiosqlite_connection) -> None:
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None
        self._arraysize = 1

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int:
        return self._lastrowid  # type: ignore[return-value]

    @property
    def arraysize(self) -> int:
        return self._arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._arraysize = value

    async def _async_soft_close(self) -> None:
        """Nothing to close: the ``sqlite3`` cursor was closed in the thread already."""

    def close(self) -> None:
        self._rows.clear()

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        return self._call(operation, parameters, many=False)

    def executemany(self, operation: Any, seq_of_parameters: Any) -> Any:
        return self._call(operation, seq_of_parameters, many=True)

    def _call(self, operation: Any, parameters: Any, *, many: bool) -> None:
        adapt: OneHopConnection = self._adapt_connection  # type: ignore[assignment]
        try:
            if adapt._write_locked and not adapt._execute_mutex.locked():
                outcome = await_(self._inline(operation, parameters, many))
            else:
                outcome = await_(self._locked(operation, parameters, many))
                if not adapt._write_locked:
                    adapt._write_locked = (
                        str(operation).lstrip().upper().startswith(_TAKES_WRITE_LOCK)
                    )
        except Exception as error:
            adapt._write_locked = adapt._write_locked and self._connection._conn.in_transaction
            adapt._handle_exception(error)
        # a COMMIT or ROLLBACK sent as a statement (or an error SQLite rolled back) ends it too
        adapt._write_locked = adapt._write_locked and self._connection._conn.in_transaction
        self._description, rows, self._rowcount, self._lastrowid = outcome
        self._rows = collections.deque(rows)

    async def _inline(self, operation: Any, parameters: Any, many: bool) -> _Outcome:
        """On the loop's thread, at once; a coroutine still, as SQLAlchemy's ``AsyncConnection``
        checks that a statement went through one (it never suspends, so costs no loop turn)."""
        connection: Any = self._connection
        return _run(connection, operation, parameters, many)

    async def _locked(self, operation: Any, parameters: Any, many: bool) -> _Outcome:
        async with self._adapt_connection._execute_mutex:
            connection = self._connection
            outcome: _Outcome = await connection._execute(
                _run, connection, operation, parameters, many
            )
            return outcome

    def nextset(self) -> None:
        raise NotImplementedError("sqlite3 has no nextset()")

    def setinputsizes(self, *inputsizes: Any) -> None:
        """A no-op, as in ``sqlite3``."""


class OneHopConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ("_write_locked",)
    _cursor_cls = OneHopCursor  # type: ignore[assignment]

    def __init__(self, dbapi: Any, connection: Any) -> None:
        super().__init__(dbapi, connection)
        self._write_locked = False  # a BEGIN IMMEDIATE returned and its transaction is open

    def commit(self) -> None:
        self._write_locked = False
        if self._idle():
            return  # sqlite3 would do nothing either; no round trip to find that out
        super().commit()

    def rollback(self) -> None:
        # the pool's reset of a connection returned after its commit lands here
        self._write_locked = False
        if self._idle():
            return
        super().rollback()

    def _idle(self) -> bool:
        """No transaction open, and no statement on its way in the thread."""
        conn = self._connection._connection
        return conn is not None and not conn.in_transaction and not self._execute_mutex.locked()


class OneHopDbapi(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> OneHopConnection:
        # statements of a write transaction run on the event loop's thread, not aiosqlite's
        kw["check_same_thread"] = False
        stock = super().connect(*arg, **kw)
        return OneHopConnection(self, stock._connection)


def dbapi() -> OneHopDbapi:
    """The DBAPI module object for ``create_async_engine(..., module=dbapi())``."""
    return OneHopDbapi(aiosqlite, sqlite3)
