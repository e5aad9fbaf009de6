"""Persistence: per-server settings, the job log, and a little bot state.

All SQL lives here, written with SQLAlchemy Core so the same code runs on SQLite (the
default, through aiosqlite) and PostgreSQL (``postgresql://`` through asyncpg). The schema is
created and migrated by the bot itself: ``meta.schema_version`` records which of ``MIGRATIONS``
have run. A new database is made from the newest tables below and stamped the newest version;
an older one runs the migrations it lacks, one process at a time.

Per-server settings are cached in memory, so reading them costs no I/O on the interaction hot
path: all of them are loaded at start-up, so a server without a row simply has the defaults.

Settings change through ``change_guild``: a function of the current settings, applied to the
row read (and locked) inside the transaction, under a per-server lock in this process; so two
admins, or two processes, changing one server at once both keep their change.

SQLite runs in WAL mode on one connection. Writes go through one writer task that commits
whatever has queued up in a single transaction: a transaction costs ~0.5 ms of CPU through
the async driver, a statement inside one ~0.05 ms, and under a burst of jobs the writes batch
themselves. Callers await a write when they need it done (``create_job`` needs the id); a
job-log update nobody waits for is simply not awaited. ``close`` lets queued writes finish.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

log = logging.getLogger(__name__)

metadata = sa.MetaData()

guild_settings = sa.Table(
    "guild_settings",
    metadata,
    sa.Column("guild_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("default_model", sa.String(100)),
    sa.Column("allowed_models", sa.Text),  # JSON list; NULL = all
    sa.Column("cooldown_seconds", sa.Float, nullable=False, server_default="0"),
    sa.Column("channels", sa.Text),  # JSON list of channel ids; NULL/empty = everywhere
    sa.Column("max_size", sa.Integer),
    sa.Column("fallback_model", sa.String(100)),
    sa.Column("blocked_words", sa.Text),  # JSON list
    sa.Column("updated_at", sa.Float),
    sa.Column("default_count", sa.Integer),  # images per /imagine; NULL = 1
    sa.Column("max_count", sa.Integer),  # the most a member may ask; NULL = 4
    sa.Column("translate_model", sa.String(100)),  # version 5; NULL = prompts never translated
)

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("user_id", sa.BigInteger, nullable=False),
    sa.Column("guild_id", sa.BigInteger),
    sa.Column("channel_id", sa.BigInteger),
    sa.Column("source", sa.String(20), nullable=False),
    sa.Column("prompt", sa.Text, nullable=False),
    sa.Column("model", sa.String(100), nullable=False),
    sa.Column("width", sa.Integer, nullable=False),
    sa.Column("height", sa.Integer, nullable=False),
    sa.Column("seed", sa.BigInteger),  # as asked; NULL = random
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("application_id", sa.BigInteger),
    sa.Column("interaction_token", sa.Text),  # valid 15 min; lets a restart edit the reply
    sa.Column("token_expires_at", sa.Float),
    sa.Column("message_id", sa.BigInteger),
    sa.Column("result_seed", sa.BigInteger),
    sa.Column("result_model", sa.String(100)),
    sa.Column("result_backend", sa.String(200)),
    sa.Column("error", sa.Text),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("started_at", sa.Float),
    sa.Column("finished_at", sa.Float),
    # Version 3: the creative loop.
    sa.Column("kind", sa.String(20), nullable=False, server_default="imagine"),
    sa.Column("count", sa.Integer, nullable=False, server_default="1"),
    sa.Column("negative", sa.Text),
    sa.Column("parent_id", sa.Integer),  # the job whose image this one starts from (U, V)
    sa.Column("image_index", sa.Integer),  # which of the parent's images (0-based)
    sa.Column("input_url", sa.Text),  # an input image, by its Discord attachment URL
    sa.Column("input_sha256", sa.String(64)),  # and the hash of its bytes (never the bytes)
    sa.Column("result", sa.Text),  # JSON: each image's seed and backend; /describe's prompts
    # Version 5: members' own settings and languages.
    sa.Column("language", sa.String(10)),  # what the requester reads; NULL = English
    sa.Column("private", sa.Boolean, nullable=False, server_default=sa.false()),  # ephemeral
    sa.Column("translated_prompt", sa.Text),  # the English drawn, when the prompt was translated
    sa.Index("ix_jobs_state", "state"),
    sa.Index("ix_jobs_user", "user_id", "id"),  # version 5: a member's latest job
)
job_ended_at = sa.func.coalesce(jobs.c.finished_at, jobs.c.created_at)
"""When a job ended (or began, if it never recorded an end): what the retention purge compares,
spelled as its index is so that the database uses the index."""
sa.Index("ix_jobs_state_ended_at", jobs.c.state, job_ended_at)

# Version 4: the shared queue (``imagine.shared``), used with PostgreSQL and workers.
job_queue = sa.Table(
    "job_queue",
    metadata,
    sa.Column("job_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("user_id", sa.BigInteger, nullable=False),
    sa.Column("state", sa.String(20), nullable=False),  # waiting, running
    sa.Column("submitted_at", sa.Float, nullable=False),
    sa.Column("started_at", sa.Float),
    sa.Column("owner", sa.String(200)),  # the worker running it
    sa.Column("lease_until", sa.Float),  # renewed by the owner's heartbeats
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("requester", sa.String(200)),  # the name shown under the result
    sa.Column("fallback", sa.String(100)),  # the fallback model chosen at the request
    sa.Index("ix_job_queue_state", "state"),
)
queue_users = sa.Table(
    "queue_users",
    metadata,
    sa.Column("user_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("turn", sa.BigInteger, nullable=False),  # lower goes first; back = max + 1
)

# Version 5: each member's own defaults (``/settings``) and last known Discord locale.
user_settings = sa.Table(
    "user_settings",
    metadata,
    sa.Column("user_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("model", sa.String(100)),  # NULL: the server's default
    sa.Column("aspect", sa.String(10)),
    sa.Column("count", sa.Integer),
    sa.Column("private", sa.Boolean),  # NULL: public results
    sa.Column("language", sa.String(10)),  # NULL: follow Discord
    sa.Column("locale", sa.String(20)),  # the member's Discord locale when last seen
    sa.Column("updated_at", sa.Float),
)

meta = sa.Table(
    "meta",
    metadata,
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

Migration = Callable[[AsyncConnection], Awaitable[None]]


async def _index_jobs_by_end(conn: AsyncConnection) -> None:
    """Version 2: ``ix_jobs_state_ended_at``, so purging old jobs does not scan the whole log.

    State first: the purge asks for final states and an end before a time, and with the state
    alone indexed too, SQLite's planner (without statistics) would pick the state index.
    """
    await conn.execute(
        sa.text(
            "CREATE INDEX ix_jobs_state_ended_at"
            " ON jobs (state, (coalesce(finished_at, created_at)))"
        )
    )


async def _creative_loop(conn: AsyncConnection) -> None:
    """Version 3: job kinds (grids, variations, edits, /describe), their inputs and results,
    and each server's image count settings."""
    for statement in (
        "ALTER TABLE jobs ADD COLUMN kind VARCHAR(20) NOT NULL DEFAULT 'imagine'",
        "ALTER TABLE jobs ADD COLUMN count INTEGER NOT NULL DEFAULT 1",
        "ALTER TABLE jobs ADD COLUMN negative TEXT",
        "ALTER TABLE jobs ADD COLUMN parent_id INTEGER",
        "ALTER TABLE jobs ADD COLUMN image_index INTEGER",
        "ALTER TABLE jobs ADD COLUMN input_url TEXT",
        "ALTER TABLE jobs ADD COLUMN input_sha256 VARCHAR(64)",
        "ALTER TABLE jobs ADD COLUMN result TEXT",
        "ALTER TABLE guild_settings ADD COLUMN default_count INTEGER",
        "ALTER TABLE guild_settings ADD COLUMN max_count INTEGER",
    ):
        await conn.execute(sa.text(statement))


async def _shared_queue(conn: AsyncConnection) -> None:
    """Version 4: the queue shared by processes (``imagine.shared``): waiting and running
    jobs with their leases, and each user's turn in the round-robin."""
    for statement in (
        "CREATE TABLE job_queue ("
        " job_id INTEGER NOT NULL PRIMARY KEY,"
        " user_id BIGINT NOT NULL,"
        " state VARCHAR(20) NOT NULL,"
        " submitted_at FLOAT NOT NULL,"
        " started_at FLOAT,"
        " owner VARCHAR(200),"
        " lease_until FLOAT,"
        " attempts INTEGER NOT NULL DEFAULT 0,"
        " requester VARCHAR(200),"
        " fallback VARCHAR(100))",
        "CREATE INDEX ix_job_queue_state ON job_queue (state)",
        "CREATE TABLE queue_users (user_id BIGINT NOT NULL PRIMARY KEY, turn BIGINT NOT NULL)",
    ):
        await conn.execute(sa.text(statement))


async def _members(conn: AsyncConnection) -> None:
    """Version 5: members' own settings, each job's language and privacy, and prompt
    translation."""
    false = "FALSE" if conn.dialect.name == "postgresql" else "0"
    for statement in (
        "CREATE TABLE user_settings ("
        " user_id BIGINT NOT NULL PRIMARY KEY,"
        " model VARCHAR(100),"
        " aspect VARCHAR(10),"
        " count INTEGER,"
        " private BOOLEAN,"
        " language VARCHAR(10),"
        " locale VARCHAR(20),"
        " updated_at FLOAT)",
        "ALTER TABLE jobs ADD COLUMN language VARCHAR(10)",
        f"ALTER TABLE jobs ADD COLUMN private BOOLEAN NOT NULL DEFAULT {false}",
        "ALTER TABLE jobs ADD COLUMN translated_prompt TEXT",
        "ALTER TABLE guild_settings ADD COLUMN translate_model VARCHAR(100)",
        "CREATE INDEX ix_jobs_user ON jobs (user_id, id)",
    ):
        await conn.execute(sa.text(statement))


MIGRATIONS: list[Migration | None] = [
    None,  # version 1: the first tables; never run, a new database starts at the newest
    _index_jobs_by_end,  # version 2
    _creative_loop,  # version 3
    _shared_queue,  # version 4
    _members,  # version 5
]
"""``MIGRATIONS[v]`` takes the schema from version v to v + 1, so ``len(MIGRATIONS)`` is the
newest version. Append, never edit. Each one gets the connection of the transaction it runs in
and writes its DDL out in full (never from the live tables above, which are the newest schema),
and the tables above change in the same commit, so a new database (made from them) and an
upgraded one end up alike."""

MIGRATION_LOCK = int.from_bytes(b"imgnschm", "big")
"""PostgreSQL advisory lock key held while migrating: one process migrates, the others wait."""


class JobState(StrEnum):
    """Where a job is. Stored as its text; compared as a type."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"


class JobKind(StrEnum):
    """What a job makes."""

    IMAGINE = "imagine"  # /imagine, "Imagine this", DMs, Reroll, Retry: one image or a grid
    PICK = "pick"  # U1..U4: one image of a grid, alone, with its own buttons (no generation)
    VARY = "vary"  # V1..V4, Vary: a variation of one image (image to image, same prompt)
    EDIT = "edit"  # the image option, "Edit this image", Edit: image to image, a new prompt
    DESCRIBE = "describe"  # /describe, "Describe this image": image to prompts


ACTIVE_STATES = (JobState.QUEUED, JobState.RUNNING)
FINAL_STATES = (JobState.DONE, JobState.FAILED, JobState.CANCELLED, JobState.INTERRUPTED)
TOKEN_LIFETIME = 15 * 60
"""Discord honours an interaction token for 15 minutes."""
PURGE_BATCH = 1000
"""Jobs deleted per transaction: a first purge of a long log must not hold up job writes."""


@dataclass(frozen=True, slots=True)
class GuildSettings:
    """One server's settings; the defaults are what a server that changed nothing gets."""

    guild_id: int
    default_model: str | None = None
    allowed_models: tuple[str, ...] | None = None
    cooldown_seconds: float = 0.0
    channels: tuple[int, ...] = ()
    max_size: int | None = None
    fallback_model: str | None = None
    blocked_words: tuple[str, ...] = ()
    default_count: int | None = None
    max_count: int | None = None
    translate_model: str | None = None


@dataclass(frozen=True, slots=True)
class UserSettings:
    """One member's own defaults (None: not chosen, the server's applies) and the Discord
    locale they were last seen with (what a DM, which carries none, is answered in)."""

    user_id: int
    model: str | None = None
    aspect: str | None = None
    count: int | None = None
    private: bool = False
    language: str | None = None  # an ``imagine.i18n.Language`` code; None: follow Discord
    locale: str | None = None

    def cleared(self) -> UserSettings:
        """Back to the server's defaults; the locale seen is not a choice, so it stays."""
        return UserSettings(self.user_id, locale=self.locale)


@dataclass(slots=True)
class JobRecord:
    id: int
    user_id: int
    guild_id: int | None
    channel_id: int | None
    source: str
    prompt: str
    model: str
    width: int
    height: int
    seed: int | None
    state: str
    application_id: int | None = None
    interaction_token: str | None = field(default=None, repr=False)
    token_expires_at: float | None = None
    message_id: int | None = None
    result_seed: int | None = None
    result_model: str | None = None
    result_backend: str | None = None
    error: str | None = None
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    kind: str = JobKind.IMAGINE
    count: int = 1
    negative: str | None = None
    parent_id: int | None = None
    image_index: int | None = None
    input_url: str | None = None
    input_sha256: str | None = None
    result: str | None = None
    language: str | None = None
    private: bool = False
    translated_prompt: str | None = None

    def results(self) -> list[Any]:
        """``result`` decoded: per-image records, or /describe's prompts."""
        return _json_list(self.result) or []


def async_url(url: str) -> str:
    """Map a plain database URL to its asyncio driver (``sqlite://`` → aiosqlite …)."""
    if url.startswith("sqlite:///") or url == "sqlite://":
        return "sqlite+aiosqlite" + url[len("sqlite") :]
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    return url


def _sqlite_path(url: str) -> Path | None:
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        return Path(url[len("sqlite:///") :])
    return None


def _json_list(value: str | None) -> list[Any] | None:
    if value is None:
        return None
    try:
        data = json.loads(value)
    except ValueError:
        return None
    return data if isinstance(data, list) else None


class Store:
    """The bot's database. Open with ``await Store.open(url)``; ``close()`` at the end."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._guilds: dict[int, GuildSettings] = {}
        self._all_guilds_loaded = False
        self._writes: deque[tuple[Write, asyncio.Future[Any]]] = deque()
        self._writer: asyncio.Task[None] | None = None
        self._row_locks: weakref.WeakValueDictionary[tuple[str, int], asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )
        self._users: dict[int, UserSettings] = {}

    @classmethod
    async def open(cls, url: str) -> Store:
        path = _sqlite_path(url)
        options: dict[str, Any] = {}
        if url.startswith("sqlite"):
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
            options = {"pool_size": 1, "max_overflow": 0, "pool_timeout": 60}
        engine = create_async_engine(async_url(url), **options)
        if url.startswith("sqlite"):
            sa.event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        store = cls(engine)
        await store.migrate()
        await store.load_guilds()
        await store.load_users()
        return store

    async def close(self) -> None:
        await self.flush()
        await self.engine.dispose()

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
                async with self.engine.begin() as conn:
                    results = [await write(conn) for write, _ in batch]
            except Exception:
                results = None  # one bad write must not sink the others: one by one
            for index, (write, future) in enumerate(batch):
                if results is None:
                    try:
                        async with self.engine.begin() as conn:
                            result = await write(conn)
                    except Exception as exc:
                        if not future.done():
                            future.set_exception(exc)
                        continue
                else:
                    result = results[index]
                if not future.done():
                    future.set_result(result)

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
        """Create the schema or bring it up to date; returns the schema version.

        A new database gets the newest tables and the newest version, and no migration runs;
        an older one runs the migrations it lacks, in order. All of it is one transaction
        (DDL is transactional on both databases: a failed migration leaves the old version)
        that one process at a time may hold: PostgreSQL takes an advisory lock, SQLite
        ``BEGIN IMMEDIATE``; a process that waited finds the work done.
        """
        newest = len(MIGRATIONS)
        async with self._transaction() as conn:
            if not self.is_sqlite:
                await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK)))
            version = await conn.run_sync(_schema_version)
            if version is None:
                await conn.run_sync(metadata.create_all)
                await conn.execute(meta.insert().values(key="schema_version", value=str(newest)))
                version = newest
            elif version > newest:
                raise RuntimeError(
                    f"the database's schema is version {version}, newer than this code's "
                    f"{newest}: run the newer bot, or restore a backup"
                )
            elif version < newest:
                while version < newest:
                    migration = MIGRATIONS[version]
                    if migration is None:
                        raise RuntimeError(f"no migration to schema version {version + 1}")
                    log.info("migrating the database to schema version %d", version + 1)
                    await migration(conn)
                    version += 1
                await conn.execute(
                    meta.update().where(meta.c.key == "schema_version").values(value=str(version))
                )
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

    async def load_guilds(self) -> int:
        """Cache every server's settings (one small table), so reads cost no I/O."""
        async with self.engine.connect() as conn:
            rows = (await conn.execute(sa.select(guild_settings))).all()
        for row in rows:
            mapping = row._mapping
            self._guilds[mapping["guild_id"]] = self._guild_from_row(mapping["guild_id"], mapping)
        self._all_guilds_loaded = True
        return len(rows)

    async def guild(self, guild_id: int) -> GuildSettings:
        """A server's settings, from memory (a server without a row has the defaults)."""
        cached = self._guilds.get(guild_id)
        if cached is not None:
            return cached
        if self._all_guilds_loaded:
            # Not cached: ids come from anyone (a user-installed app runs in servers the bot
            # is not in), so only servers with a row take memory.
            return GuildSettings(guild_id)
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(guild_settings).where(guild_settings.c.guild_id == guild_id)
                )
            ).first()
        settings = self._guild_from_row(guild_id, row._mapping if row else None)
        self._guilds[guild_id] = settings
        return settings

    @staticmethod
    def _guild_from_row(guild_id: int, row: Any) -> GuildSettings:
        if row is None:
            return GuildSettings(guild_id)
        allowed = _json_list(row["allowed_models"])
        return GuildSettings(
            guild_id=guild_id,
            default_model=row["default_model"],
            allowed_models=tuple(str(m) for m in allowed) if allowed is not None else None,
            cooldown_seconds=float(row["cooldown_seconds"] or 0),
            channels=tuple(int(c) for c in _json_list(row["channels"]) or ()),
            max_size=row["max_size"],
            fallback_model=row["fallback_model"],
            blocked_words=tuple(str(w) for w in _json_list(row["blocked_words"]) or ()),
            default_count=row["default_count"],
            max_count=row["max_count"],
            translate_model=row["translate_model"],
        )

    async def change_guild(
        self, guild_id: int, change: Callable[[GuildSettings], GuildSettings]
    ) -> GuildSettings:
        """Apply ``change`` to a server's settings as they are now; returns the new settings.

        ``change`` gets the settings read inside the transaction, with the row locked (``FOR
        UPDATE`` on PostgreSQL, the database on SQLite) and under a per-server lock here, so a
        check against the current value sees the fresh value and concurrent changes, from
        this process or another, all apply instead of overwriting each other. To refuse, raise:
        nothing is written and the exception propagates. ``change`` must not do I/O (the row
        is locked while it runs); it may be called with settings newer than the cache's.
        """
        async with self._row_lock("guild", guild_id), self._transaction() as conn:
            row = await self._locked_guild_row(conn, guild_id)
            if row is None:
                # A new server: make the row to lock. A concurrent first write by another
                # process makes this INSERT wait for its commit, and then do nothing.
                await conn.execute(
                    self._insert(guild_settings)
                    .values(guild_id=guild_id)
                    .on_conflict_do_nothing(index_elements=[guild_settings.c.guild_id])
                )
                row = await self._locked_guild_row(conn, guild_id)
            current = self._guild_from_row(guild_id, row)
            new = change(current)
            if new != current:
                await conn.execute(
                    guild_settings.update()
                    .where(guild_settings.c.guild_id == guild_id)
                    .values(**_guild_values(new))
                )
                if not self.is_sqlite:  # other processes drop it from their cache (at commit)
                    await notify(conn, SETTINGS_CHANNEL, str(guild_id))
                await conn.commit()  # otherwise rolled back: no row made for nothing
        self._guilds[guild_id] = new
        return new

    async def refresh_guild(self, guild_id: int) -> GuildSettings:
        """Read one server's settings again (another process changed them)."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(guild_settings).where(guild_settings.c.guild_id == guild_id)
                )
            ).first()
        settings = self._guild_from_row(guild_id, row._mapping if row else None)
        self._guilds[guild_id] = settings
        return settings

    async def update_guild(self, guild_id: int, **changes: Any) -> GuildSettings:
        """Set some of a server's settings to fixed values (atomic, like ``change_guild``)."""
        return await self.change_guild(guild_id, lambda current: replace(current, **changes))

    def _row_lock(self, table: str, key: int) -> asyncio.Lock:
        """This process's lock for one server's or member's row (kept only while someone
        holds or awaits it)."""
        lock = self._row_locks.get((table, key))
        if lock is None:
            lock = self._row_locks[(table, key)] = asyncio.Lock()
        return lock

    @staticmethod
    async def _locked_guild_row(conn: AsyncConnection, guild_id: int) -> Any:
        query = sa.select(guild_settings).where(guild_settings.c.guild_id == guild_id)
        row = (await conn.execute(query.with_for_update())).first()
        return row._mapping if row else None

    # -- members' settings ---------------------------------------------------------------

    async def load_users(self) -> int:
        """Cache every member's settings: rows exist only for members who changed their
        ``/settings`` (a member who never did has none), so reading them costs no I/O before
        an interaction is acknowledged, and memory grows with those members only."""
        async with self.engine.connect() as conn:
            rows = (await conn.execute(sa.select(user_settings))).all()
        for row in rows:
            mapping = row._mapping
            self._users[mapping["user_id"]] = _user_from_row(mapping["user_id"], mapping)
        return len(rows)

    def user(self, user_id: int) -> UserSettings:
        """A member's settings, from memory (a member without a row has none)."""
        return self._users.get(user_id) or UserSettings(user_id)

    async def refresh_user(self, user_id: int) -> UserSettings:
        """Read one member's settings again (another process changed them)."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(user_settings).where(user_settings.c.user_id == user_id)
                )
            ).first()
        settings = _user_from_row(user_id, row._mapping if row else None)
        self._users[user_id] = settings
        return settings

    async def last_language(self, user_id: int) -> str | None:
        """The language of a member's latest job: what a DM, which carries no locale, is
        answered in when the member chose none."""
        query = (
            sa.select(jobs.c.language)
            .where(jobs.c.user_id == user_id, jobs.c.language.is_not(None))
            .order_by(jobs.c.id.desc())
            .limit(1)
        )
        async with self.engine.connect() as conn:
            return (await conn.execute(query)).scalar()

    async def change_user(
        self, user_id: int, change: Callable[[UserSettings], UserSettings]
    ) -> UserSettings:
        """Apply ``change`` to a member's settings as stored, as ``change_guild`` does for a
        server (row locked in the transaction; raise to refuse)."""
        async with self._row_lock("user", user_id), self._transaction() as conn:
            query = sa.select(user_settings).where(user_settings.c.user_id == user_id)
            row = (await conn.execute(query.with_for_update())).first()
            if row is None:
                await conn.execute(
                    self._insert(user_settings)
                    .values(user_id=user_id)
                    .on_conflict_do_nothing(index_elements=[user_settings.c.user_id])
                )
                row = (await conn.execute(query.with_for_update())).first()
            current = _user_from_row(user_id, row._mapping if row else None)
            new = change(current)
            if new != current:
                await conn.execute(
                    user_settings.update()
                    .where(user_settings.c.user_id == user_id)
                    .values(**_user_values(new))
                )
                if not self.is_sqlite:
                    await notify(conn, SETTINGS_CHANNEL, f"u{user_id}")
                await conn.commit()
        self._users[user_id] = new
        return new

    # -- jobs ----------------------------------------------------------------------------

    async def create_job(self, **values: Any) -> JobRecord:
        values.setdefault("state", JobState.QUEUED)
        values.setdefault("created_at", time.time())

        async def insert(conn: AsyncConnection) -> int:
            inserted = (await conn.execute(_INSERT_JOB, values)).inserted_primary_key
            assert inserted is not None
            return int(inserted[0])

        job_id = await self._write(insert)
        fields: dict[str, Any] = {k: values[k] for k in _JOB_FIELDS if k in values}
        return JobRecord(id=job_id, **fields)

    def update_job(self, job_id: int, **values: Any) -> asyncio.Future[None]:
        """Queue a change to a job's row; await the result to know it is committed."""

        async def update(conn: AsyncConnection) -> None:
            await conn.execute(_UPDATE_JOB, {**values, "job_id_": job_id})

        return self._write(update)

    async def job(self, job_id: int) -> JobRecord | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(jobs).where(jobs.c.id == job_id))).first()
        return JobRecord(**row._mapping) if row else None

    async def jobs_in_states(self, states: Iterable[str]) -> list[JobRecord]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                sa.select(jobs).where(jobs.c.state.in_(list(states))).order_by(jobs.c.id)
            )
            return [JobRecord(**row._mapping) for row in rows]

    async def purge_jobs(self, older_than: float) -> int:
        """Delete jobs that ended before ``older_than`` (epoch seconds); returns how many.

        Only jobs in a final state (done, failed, cancelled, interrupted) go, and a job's end
        is its ``finished_at`` or, when it never recorded one, its ``created_at``. Deletes go
        in batches through the writer, so job writes keep flowing during a long first purge.
        Retention is the caller's choice: with ``JOB_RETENTION_DAYS`` = N, pass
        ``now - N * 86400``; N = 0 means keep forever, so then do not call this at all.
        """
        doomed = (
            sa.select(jobs.c.id)
            .where(jobs.c.state.in_(FINAL_STATES), job_ended_at < older_than)
            .limit(PURGE_BATCH)
            .scalar_subquery()
        )
        statement = jobs.delete().where(jobs.c.id.in_(doomed))

        async def delete(conn: AsyncConnection) -> int:
            return (await conn.execute(statement)).rowcount

        total = 0
        while True:
            deleted = await self._write(delete)
            total += deleted
            if deleted < PURGE_BATCH:
                return total

    async def clear_stale_tokens(self, now: float) -> int:
        """Forget interaction tokens nobody can use any more; returns how many rows changed.

        A token goes when its job is in a final state or the token has expired
        (``token_expires_at``, else ``created_at`` + 15 minutes, before ``now``). The runner
        clears a job's token when it ends; this is the safety net for a process that died in
        between, so that the log never keeps live secrets longer than they are useful. Run it
        after start-up recovery, which still uses the tokens of jobs left active.
        """
        expires_at = sa.func.coalesce(jobs.c.token_expires_at, jobs.c.created_at + TOKEN_LIFETIME)
        statement = (
            jobs.update()
            .where(
                jobs.c.interaction_token.is_not(None),
                sa.or_(jobs.c.state.in_(FINAL_STATES), expires_at < now),
            )
            .values(interaction_token=None)
        )

        async def clear(conn: AsyncConnection) -> int:
            return (await conn.execute(statement)).rowcount

        return await self._write(clear)

    async def count_jobs(self, **where: Any) -> int:
        query = sa.select(sa.func.count()).select_from(jobs)
        for key, value in where.items():
            query = query.where(jobs.c[key] == value)
        async with self.engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())


SETTINGS_CHANNEL = "imagine_settings"
"""PostgreSQL NOTIFY channel: a server's settings changed (payload: its id)."""


async def notify(conn: AsyncConnection, channel: str, payload: str = "") -> None:
    """PostgreSQL ``NOTIFY``, sent when the transaction of ``conn`` commits."""
    await conn.execute(sa.select(sa.func.pg_notify(channel, payload)))


def _guild_values(settings: GuildSettings) -> dict[str, Any]:
    """A server's settings as its row's values."""
    return {
        "default_model": settings.default_model,
        "allowed_models": None
        if settings.allowed_models is None
        else json.dumps(list(settings.allowed_models)),
        "cooldown_seconds": settings.cooldown_seconds,
        "channels": json.dumps([str(c) for c in settings.channels]),
        "max_size": settings.max_size,
        "fallback_model": settings.fallback_model,
        "blocked_words": json.dumps(list(settings.blocked_words)),
        "updated_at": time.time(),
        "default_count": settings.default_count,
        "max_count": settings.max_count,
        "translate_model": settings.translate_model,
    }


def _user_values(settings: UserSettings) -> dict[str, Any]:
    return {
        "model": settings.model,
        "aspect": settings.aspect,
        "count": settings.count,
        "private": settings.private,
        "language": settings.language,
        "locale": settings.locale,
        "updated_at": time.time(),
    }


def _user_from_row(user_id: int, row: Any) -> UserSettings:
    if row is None:
        return UserSettings(user_id)
    return UserSettings(
        user_id=user_id,
        model=row["model"],
        aspect=row["aspect"],
        count=row["count"],
        private=bool(row["private"]),
        language=row["language"],
        locale=row["locale"],
    )


_JOB_FIELDS = tuple(c.name for c in jobs.columns if c.name != "id")
_INSERT_JOB = jobs.insert()
_UPDATE_JOB = jobs.update().where(jobs.c.id == sa.bindparam("job_id_"))
"""Built once: the columns to set come from each call's parameters."""
MAX_BATCH = 256

Write = Callable[[AsyncConnection], Awaitable[Any]]


def _schema_version(conn: sa.Connection) -> int | None:
    """The version stamped in ``meta``; None for a database the bot never set up."""
    if not sa.inspect(conn).has_table(meta.name):
        return None
    row = conn.execute(sa.select(meta.c.value).where(meta.c.key == "schema_version")).first()
    return int(row[0]) if row else None


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
