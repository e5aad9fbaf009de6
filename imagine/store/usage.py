"""Daily budgets and what a server used: images charged to a member's UTC day (one atomic
statement, so two gateways cannot both take the last image), a job's charge given back once,
and the jobs ``/imagine-config usage`` reads (the quota rests it shows are ``quota_rests``'s).

Days are ``YYYY-MM-DD`` in UTC. A job's charge belongs to the day of its ``created_at``,
which the launcher sets to the moment of the charge: a job charged at 23:59 and failing at
00:01 gives its images back to the day it took them from.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from .database import Database
from .schema import daily_usage, jobs

DAY_SECONDS = 86400


def utc_day(at: float) -> str:
    """The UTC day of an instant, as ``daily_usage.day`` spells it."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d")


def day_start(at: float) -> float:
    """The UTC midnight that began ``at``'s day."""
    return float(int(at // DAY_SECONDS) * DAY_SECONDS)


@dataclass(frozen=True, slots=True)
class JobUse:
    """What the usage report needs of one job of a server."""

    user_id: int
    kind: str
    state: str
    created_at: float
    result: str | None
    result_model: str | None
    result_backend: str | None
    kudos: float | None


async def give_back_charge(conn: AsyncConnection, job_id: int) -> int:
    """Inside the transaction that ends a job without an image: its charge back to the day it
    was taken from, once (the charge is cleared on the job's row in the same transaction, so
    a second ending, here or in another process, finds nothing to give). Returns the images
    given back.

    The first statement writes, so it takes the row (PostgreSQL) or the database (SQLite)
    before anything is read: it negates the charge, and RETURNING (which shows the new
    value) says how much it was."""
    taken = (
        await conn.execute(
            jobs.update()
            .where(jobs.c.id == job_id, jobs.c.charged > 0)
            .values(charged=-jobs.c.charged)
            .returning(jobs.c.charged, jobs.c.guild_id, jobs.c.user_id, jobs.c.created_at)
        )
    ).first()
    if taken is None:
        return 0
    images = -int(taken.charged)
    await conn.execute(jobs.update().where(jobs.c.id == job_id).values(charged=0))
    if taken.guild_id is not None:
        await _uncount(conn, taken.guild_id, taken.user_id, utc_day(taken.created_at), images)
    return images


async def _uncount(conn: AsyncConnection, guild_id: int, user_id: int, day: str, n: int) -> None:
    remaining = sa.case((daily_usage.c.images > n, daily_usage.c.images - n), else_=0)
    await conn.execute(
        daily_usage.update()
        .where(
            daily_usage.c.guild_id == guild_id,
            daily_usage.c.user_id == user_id,
            daily_usage.c.day == day,
        )
        .values(images=remaining)
    )


class Usage(Database):
    async def charge_usage(
        self, guild_id: int, user_id: int, day: str, images: int, limit: int
    ) -> int | None:
        """Add ``images`` to the member's day unless that would pass ``limit``: the day's new
        total, or None (nothing changed). One statement: an upsert whose update only happens
        while the sum stays within the limit, so concurrent charges from any number of
        processes never pass it together."""
        if images > limit:
            return None
        insert = self._insert(daily_usage).values(
            guild_id=guild_id, user_id=user_id, day=day, images=images
        )
        total = daily_usage.c.images + insert.excluded.images
        statement = insert.on_conflict_do_update(
            index_elements=[daily_usage.c.guild_id, daily_usage.c.user_id, daily_usage.c.day],
            set_={"images": total},
            where=total <= limit,
        ).returning(daily_usage.c.images)

        async def charge(conn: AsyncConnection) -> int | None:
            value = (await conn.execute(statement)).scalar()
            return None if value is None else int(value)

        return await self._write(charge)

    def give_back_usage(
        self, guild_id: int, user_id: int, day: str, images: int
    ) -> asyncio.Future[None]:
        """Take ``images`` off a member's day again: a charge no job was made for (the
        acknowledgement failed, the queue refused)."""

        async def give(conn: AsyncConnection) -> None:
            await _uncount(conn, guild_id, user_id, day, images)

        return self._write(give)

    async def used_on(self, guild_id: int, user_id: int, day: str) -> int:
        """The images a member was charged in a server on a day."""
        query = sa.select(daily_usage.c.images).where(
            daily_usage.c.guild_id == guild_id,
            daily_usage.c.user_id == user_id,
            daily_usage.c.day == day,
        )
        async with self.engine.connect() as conn:
            return int((await conn.execute(query)).scalar() or 0)

    async def guild_jobs_since(self, guild_id: int, since: float) -> list[JobUse]:
        """A server's jobs created since ``since`` (``ix_jobs_guild_created``: the server's
        own rows, not everyone's)."""
        query = sa.select(
            jobs.c.user_id,
            jobs.c.kind,
            jobs.c.state,
            jobs.c.created_at,
            jobs.c.result,
            jobs.c.result_model,
            jobs.c.result_backend,
            jobs.c.kudos,
        ).where(jobs.c.guild_id == guild_id, jobs.c.created_at >= since)
        async with self.engine.connect() as conn:
            rows = await conn.execute(query)
            return [JobUse(**row._mapping) for row in rows]

    async def purge_usage(self, before_day: str) -> int:
        """Forget the days before ``before_day`` (only today's budget is ever checked);
        returns how many rows went."""
        statement = daily_usage.delete().where(daily_usage.c.day < before_day)

        async def delete(conn: AsyncConnection) -> int:
            return (await conn.execute(statement)).rowcount

        return await self._write(delete)
