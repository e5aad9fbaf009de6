"""Keeping the job log small and free of live secrets: stale interaction tokens cleared,
old finished jobs purged (``JOB_RETENTION_DAYS``)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from .database import Database
from .records import FINAL_STATES
from .schema import job_ended_at, jobs

TOKEN_LIFETIME = 15 * 60
"""Discord honours an interaction token for 15 minutes."""
PURGE_BATCH = 1000
"""Jobs deleted per transaction: a first purge of a long log must not hold up job writes."""


class Retention(Database):
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
