"""Transient failures versus poison: what the consumer waits out and what it dead-letters.

A *transient* failure says nothing about the event: the database or the broker is unreachable,
restarting, out of connections, a lock wait timed out, a serializable transaction lost a race,
SQLite is busy. Retrying the same event later will work, so it must never be dead-lettered.
Anything else (a payload that does not validate, a rule that refuses, a bug) is treated as poison
once a few retries failed the same way.
"""

from __future__ import annotations

import sqlite3

from sqlalchemy import exc as sa_exc

# SQLSTATE classes/codes (PostgreSQL appendix A) that name a passing condition
TRANSIENT_SQLSTATES = (
    "08",  # connection exception
    "53",  # insufficient resources (too many connections, out of memory, disk full)
    "57P",  # operator intervention: admin shutdown, crash shutdown, cannot connect now
    "58",  # system error (I/O)
    "40001",  # serialization failure
    "40P01",  # deadlock detected
    "55P03",  # lock not available (lock_timeout)
    "57014",  # query cancelled (statement_timeout)
)
SQLITE_TRANSIENT = (
    "database is locked",
    "database table is locked",
    "unable to open database file",
    "disk i/o error",
)
# errors of client libraries (asyncpg, aiokafka) that mean "the server is not there right now"
TRANSIENT_NAMES = frozenset(
    {
        "ConnectionDoesNotExistError",
        "ConnectionFailureError",
        "InterfaceError",  # asyncpg: the connection is closed / in a broken state
        "KafkaConnectionError",
        "KafkaTimeoutError",
        "NodeNotReadyError",
        "RequestTimedOutError",
        "NotLeaderForPartitionError",
        "PublishError",
    }
)


def is_transient(error: BaseException) -> bool:
    """Whether ``error`` (or what caused it) is a passing condition of the infrastructure."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _transient(current):
            return True
        orig = getattr(current, "orig", None)  # SQLAlchemy keeps the driver's error there
        current = orig if isinstance(orig, BaseException) else current.__cause__
    return False


def _transient(error: BaseException) -> bool:
    if isinstance(error, OSError):  # ConnectionError, TimeoutError, socket errors
        return True
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, sa_exc.TimeoutError | sa_exc.DisconnectionError):
        return True  # the pool had no connection in time / a connection was lost
    state = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    if isinstance(state, str) and state.startswith(TRANSIENT_SQLSTATES):
        return True
    if isinstance(error, sqlite3.OperationalError | sa_exc.OperationalError):
        message = str(error).lower()
        if any(text in message for text in SQLITE_TRANSIENT):
            return True
    return any(kind.__name__ in TRANSIENT_NAMES for kind in type(error).__mro__)
