"""Creating the schema, or bringing an older one up to date.

``meta.schema_version`` records which of ``MIGRATIONS`` have run. A new database is made from
the newest tables (``schema``) and stamped the newest version; an older one runs the
migrations it lacks, one process at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from .schema import meta, metadata

log = logging.getLogger(__name__)

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


async def _workers(conn: AsyncConnection) -> None:
    """Version 6: persisted Cancels, the workers alive, and where an input image was posted."""
    false = "FALSE" if conn.dialect.name == "postgresql" else "0"
    for statement in (
        f"ALTER TABLE job_queue ADD COLUMN cancel_requested BOOLEAN NOT NULL DEFAULT {false}",
        "ALTER TABLE job_queue ADD COLUMN cancel_by VARCHAR(200)",
        "ALTER TABLE jobs ADD COLUMN input_channel_id BIGINT",
        "ALTER TABLE jobs ADD COLUMN input_message_id BIGINT",
        "CREATE TABLE workers ("
        " name VARCHAR(200) NOT NULL PRIMARY KEY,"
        " concurrency INTEGER NOT NULL,"
        " started_at FLOAT NOT NULL,"
        " seen_at FLOAT NOT NULL)",
    ):
        await conn.execute(sa.text(statement))


async def _free_gpu(conn: AsyncConnection) -> None:
    """Version 7: daily budgets, members' own tokens (encrypted), quota rests shared by every
    process, and what a job cost (kudos, images charged) and where it ran (age-restricted)."""
    false = "FALSE" if conn.dialect.name == "postgresql" else "0"
    for statement in (
        "ALTER TABLE guild_settings ADD COLUMN daily_limit INTEGER",
        f"ALTER TABLE jobs ADD COLUMN nsfw BOOLEAN NOT NULL DEFAULT {false}",
        "ALTER TABLE jobs ADD COLUMN kudos FLOAT",
        "ALTER TABLE jobs ADD COLUMN charged INTEGER NOT NULL DEFAULT 0",
        "CREATE TABLE user_secrets ("
        " user_id BIGINT NOT NULL PRIMARY KEY,"
        " hf_token TEXT NOT NULL,"
        " hf_account VARCHAR(200),"
        " updated_at FLOAT)",
        "CREATE TABLE daily_usage ("
        " guild_id BIGINT NOT NULL,"
        " user_id BIGINT NOT NULL,"
        " day VARCHAR(10) NOT NULL,"
        " images INTEGER NOT NULL,"
        " PRIMARY KEY (guild_id, user_id, day))",
        "CREATE TABLE quota_rests ("
        " backend VARCHAR(200) NOT NULL,"
        " account VARCHAR(64) NOT NULL,"
        " until FLOAT NOT NULL,"
        " reason TEXT,"
        " PRIMARY KEY (backend, account))",
    ):
        await conn.execute(sa.text(statement))


async def _usage_by_server(conn: AsyncConnection) -> None:
    """Version 8: ``ix_jobs_guild_created``, so ``/imagine-config usage`` reads one server's
    jobs of the last week rather than every job the log keeps (no other index starts with
    the server)."""
    await conn.execute(sa.text("CREATE INDEX ix_jobs_guild_created ON jobs (guild_id, created_at)"))


async def _beyond_the_grid(conn: AsyncConnection) -> None:
    """Version 9: what an Upscale, Zoom Out, Pan or Vary (Region) job was asked (its factor,
    direction or cells), so that Retry and Reroll redo the same operation and its buttons
    work after a restart."""
    for statement in (
        "ALTER TABLE jobs ADD COLUMN factor FLOAT",
        "ALTER TABLE jobs ADD COLUMN direction VARCHAR(10)",
        "ALTER TABLE jobs ADD COLUMN cells VARCHAR(200)",
    ):
        await conn.execute(sa.text(statement))


MIGRATIONS: list[Migration | None] = [
    None,  # version 1: the first tables; never run, a new database starts at the newest
    _index_jobs_by_end,  # version 2
    _creative_loop,  # version 3
    _shared_queue,  # version 4
    _members,  # version 5
    _workers,  # version 6
    _free_gpu,  # version 7
    _usage_by_server,  # version 8
    _beyond_the_grid,  # version 9
]
"""``MIGRATIONS[v]`` takes the schema from version v to v + 1, so ``len(MIGRATIONS)`` is the
newest version. Append, never edit. Each one gets the connection of the transaction it runs in
and writes its DDL out in full (never from the live tables above, which are the newest schema),
and the tables above change in the same commit, so a new database (made from them) and an
upgraded one end up alike."""

MIGRATION_LOCK = int.from_bytes(b"imgnschm", "big")
"""PostgreSQL advisory lock key held while migrating: one process migrates, the others wait."""


async def migrate(conn: AsyncConnection, *, is_sqlite: bool) -> int:
    """Create the schema or bring it up to date inside ``conn``'s transaction (the caller
    commits); returns the schema version.

    A new database gets the newest tables and the newest version, and no migration runs;
    an older one runs the migrations it lacks, in order. DDL is transactional on both
    databases, so a failed migration leaves the old version. One process at a time: on
    PostgreSQL an advisory lock, on SQLite the caller's ``BEGIN IMMEDIATE``; a process that
    waited finds the work done.
    """
    newest = len(MIGRATIONS)
    if not is_sqlite:
        await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK)))
    version = await conn.run_sync(_schema_version)
    if version is None:
        await conn.run_sync(metadata.create_all)
        await conn.execute(meta.insert().values(key="schema_version", value=str(newest)))
        return newest
    if version > newest:
        raise RuntimeError(
            f"the database's schema is version {version}, newer than this code's "
            f"{newest}: run the newer bot, or restore a backup"
        )
    if version < newest:
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
    return version


def _schema_version(conn: sa.Connection) -> int | None:
    """The version stamped in ``meta``; None for a database the bot never set up."""
    if not sa.inspect(conn).has_table(meta.name):
        return None
    row = conn.execute(sa.select(meta.c.value).where(meta.c.key == "schema_version")).first()
    return int(row[0]) if row else None
