"""The database connection and its discipline: opening (and migrating), the batched writer,
transactions that wait their turn, and a little bot state (``meta``).

SQLite runs in WAL mode on one connection. Writes go through one writer task that commits
whatever has queued up in a single transaction: a transaction costs ~0.5 ms of CPU through
the async driver, a statement inside one ~0.05 ms, and under a burst of jobs the writes batch
themselves. Callers await a write when they need it done (``create_job`` needs the id); a
job-log update nobody waits for is simply not awaited. ``close`` lets queued writes finish.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sqlite3
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Self, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from ..settings import sqlite_path
from .migrations import migrate
from .schema import meta

log = logging.getLogger(__name__)

MAX_BATCH = 256
"""Writes committed in one transaction at most."""

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Statement:
    """A write that is one statement and its parameters. The writer runs consecutive ones of
    the same shape (statement and parameter names) as one executemany: through the async
    driver a statement costs ~0.4 ms of CPU, a row of an executemany ~0.02 ms, and a burst of
    jobs writes the same few shapes over and over. ``key``: an insert whose new primary key
    (that column) is the write's result."""

    sql: Any
    params: dict[str, Any]
    key: sa.Column[Any] | None = None

    @property
    def shape(self) -> tuple[int, tuple[str, ...]]:
        return id(self.sql), tuple(sorted(self.params))


Write = Callable[[AsyncConnection], Awaitable[Any]] | Statement

RETRY_SECONDS = 60.0
"""How long an operation waits for a database that went away (a restart, a failover, a cut
connection) to come back before it fails: a restart takes about a second."""
RETRY_PAUSE = (0.05, 2.0)
"""The first pause between attempts, and the longest (each pause doubles)."""
LOST_SQLSTATES = ("08", "57P")
"""SQLSTATE classes of a lost server: connection exceptions, operator intervention (shutdown,
crash, "the database system is starting up")."""


def lost_connection(exc: BaseException) -> bool:
    """True when the database went away (restarting, unreachable, our connection cut), as
    opposed to an error in what was asked, which asking again would only repeat."""
    if isinstance(exc, OSError):  # refused or reset: asyncpg raises these unwrapped
        return True
    if not isinstance(exc, sa.exc.DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    seen: BaseException | None = exc.orig
    for _ in range(5):  # the driver's error, and what it wraps
        if seen is None:
            break
        code = getattr(seen, "sqlstate", None) or getattr(seen, "pgcode", None)
        if isinstance(code, str) and code.startswith(LOST_SQLSTATES):
            return True
        if isinstance(seen, OSError) or "connection is closed" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


async def retrying(
    operation: Callable[[], Awaitable[T]],
    *,
    what: str,
    within: float = RETRY_SECONDS,
    transient: tuple[type[BaseException], ...] = (),
) -> T:
    """``operation()``, attempted again (with a growing pause) while the database is away, for
    up to ``within`` seconds; any other error, or a database away for longer, is raised.
    ``transient``: more errors that mean the database is away (another driver's).

    Only for operations that are safe to repeat: a transaction that failed did not commit
    (the rare commit whose answer was lost may run twice)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    pause, longest = RETRY_PAUSE
    told = False
    while True:
        try:
            return await operation()
        except Exception as exc:
            away = lost_connection(exc) or isinstance(exc, transient)
            if not away or loop.time() + pause > deadline:
                raise
            if not told:
                log.warning("%s: the database is unreachable (%s); trying again", what, exc)
                told = True
        await asyncio.sleep(pause)
        pause = min(pause * 2, longest)


def async_url(url: str) -> str:
    """Map a plain database URL to its asyncio driver (``sqlite://`` → aiosqlite …)."""
    if url.startswith("sqlite:///") or url == "sqlite://":
        return "sqlite+aiosqlite" + url[len("sqlite") :]
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    return url


class Database:
    """The bot's database. Open with ``await Store.open(url)``; ``close()`` at the end."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._writes: deque[tuple[Write, asyncio.Future[Any]]] = deque()
        self._writer: asyncio.Task[None] | None = None
        self._row_locks: weakref.WeakValueDictionary[tuple[str, int], asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    @classmethod
    async def open(cls, url: str) -> Self:
        path = sqlite_path(url)
        options: dict[str, Any] = {}
        if url.startswith("sqlite"):
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
            options = {"pool_size": 1, "max_overflow": 0, "pool_timeout": 60}
        else:  # a pooled connection may be dead after a database restart: test it first
            options = {"pool_pre_ping": True}
        engine = create_async_engine(async_url(url), **options)
        if url.startswith("sqlite"):
            sa.event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        database = cls(engine)
        await database.migrate()
        await database.load()
        return database

    async def load(self) -> None:
        """What a subclass reads once the schema is ready (its caches)."""

    async def reload_settings(self) -> None:
        """What a subclass reads again when other processes' notices may have been missed."""

    async def close(self) -> None:
        await self.flush()
        await self.engine.dispose()

    async def ping(self) -> None:
        """``SELECT 1`` on a connection of the pool: the database answers (``/readyz``)."""
        async with self.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    def _write(self, write: Write) -> asyncio.Future[Any]:
        """Queue a write; the future resolves once it is committed (errors are logged too)."""
        future = asyncio.get_running_loop().create_future()
        future.add_done_callback(_log_failure)
        self._writes.append((write, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write_all())
        return future

    async def _write_all(self) -> None:
        while self._writes:
            batch = [self._writes.popleft() for _ in range(min(len(self._writes), MAX_BATCH))]
            try:
                results = await retrying(
                    functools.partial(self._commit, [write for write, _ in batch]),
                    what="writing the job log",
                )
            except Exception:
                results = None  # one bad write must not sink the others: one by one
            for index, (write, future) in enumerate(batch):
                if results is None:
                    try:
                        (result,) = await retrying(
                            functools.partial(self._commit, [write]), what="writing the job log"
                        )
                    except Exception as exc:
                        if not future.done():
                            future.set_exception(exc)
                        continue
                else:
                    result = results[index]
                if not future.done():
                    future.set_result(result)

    async def _commit(self, writes: list[Write]) -> list[Any]:
        """``writes`` in one transaction, in order (a run of ``Statement``s of one shape as
        one executemany); their results."""
        results: list[Any] = []
        async with self.engine.begin() as conn:
            start = 0
            while start < len(writes):
                write = writes[start]
                if not isinstance(write, Statement):
                    results.append(await write(conn))
                    start += 1
                    continue
                end = start + 1
                while end < len(writes) and _same_shape(writes[end], write):
                    end += 1
                results += await _execute(conn, cast(list[Statement], writes[start:end]))
                start = end
        return results

    async def flush(self) -> None:
        """Wait until every queued write is committed."""
        while self._writer is not None and not self._writer.done():
            await asyncio.shield(self._writer)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def _insert(self, table: sa.Table) -> Any:
        """The dialect's INSERT, which has ``on_conflict_do_…`` (both dialects spell it alike)."""
        return (postgresql if self.engine.dialect.name == "postgresql" else sqlite).insert(table)

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncConnection]:
        """A transaction for read-then-write work; the caller commits, anything else rolls back.

        On SQLite it is ``BEGIN IMMEDIATE``: a default (deferred) transaction takes the write
        lock only at its first write, and one that read first then fails at once with "database
        is locked" when another process wrote in between, instead of waiting; IMMEDIATE waits
        (busy_timeout) at the start and then owns the database. On PostgreSQL the caller locks
        what it reads (``FOR UPDATE``, advisory locks).
        """
        async with self.engine.connect() as conn:
            if self.is_sqlite:
                await conn.exec_driver_sql("BEGIN IMMEDIATE")
            yield conn

    # -- schema --------------------------------------------------------------------------

    async def migrate(self) -> int:
        """Create the schema or bring it up to date (``migrations.migrate``, one transaction);
        returns the schema version."""
        async with self._transaction() as conn:
            version = await migrate(conn, is_sqlite=self.is_sqlite)
            await conn.commit()
        return version

    # -- meta ----------------------------------------------------------------------------

    async def get_meta(self, key: str) -> str | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(meta.c.value).where(meta.c.key == key))).first()
        return row[0] if row else None

    async def set_meta(self, key: str, value: str) -> None:
        """An upsert: UPDATE-then-INSERT let two processes both INSERT a new key on PostgreSQL."""
        insert = self._insert(meta).values(key=key, value=value)
        upsert = insert.on_conflict_do_update(
            index_elements=[meta.c.key], set_={"value": insert.excluded.value}
        )
        async with self.engine.begin() as conn:
            await conn.execute(upsert)

    # -- guild settings ------------------------------------------------------------------

    def _row_lock(self, table: str, key: int) -> asyncio.Lock:
        """This process's lock for one server's or member's row (kept only while someone
        holds or awaits it)."""
        lock = self._row_locks.get((table, key))
        if lock is None:
            lock = self._row_locks[(table, key)] = asyncio.Lock()
        return lock


def _same_shape(write: Write, statement: Statement) -> bool:
    return isinstance(write, Statement) and write.shape == statement.shape


async def _execute(conn: AsyncConnection, run: list[Statement]) -> list[Any]:
    """Statements of one shape: one execute, or one executemany for several."""
    first = run[0]
    if len(run) == 1:
        result = await conn.execute(first.sql, first.params)
        if first.key is None:
            return [None]
        inserted = result.inserted_primary_key
        assert inserted is not None
        return [int(inserted[0])]
    params = [statement.params for statement in run]
    if first.key is None:
        await conn.execute(first.sql, params)
        return [None] * len(run)
    keyed = first.sql.returning(first.key, sort_by_parameter_order=True)
    return [int(key) for key in (await conn.execute(keyed, params)).scalars()]


def _log_failure(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("a database write failed", exc_info=future.exception())


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA busy_timeout=10000")  # first: switching to WAL may have to wait
    # Switching a new database to WAL needs it to itself and can answer "locked" at once,
    # without the busy handler, while another process makes it: try again for a while.
    deadline = time.monotonic() + 10.0
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
