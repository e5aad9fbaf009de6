"""The job log: each job's request, its progress and its ending, one row a job.

Jobs are written through the batched writer (``Database._write``): ``create_job`` waits for
its id; an update nobody waits for is simply not awaited.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from .database import Database, Statement
from .records import NOTHING_MADE, JobRecord, JobState
from .schema import jobs
from .usage import give_back_charge

_JOB_FIELDS = tuple(c.name for c in jobs.columns if c.name != "id")
_INSERT_JOB = jobs.insert()
_UPDATE_JOB = jobs.update().where(jobs.c.id == sa.bindparam("job_id_"))
"""Built once: the columns to set come from each call's parameters."""


class JobLog(Database):
    async def create_job(self, **values: Any) -> JobRecord:
        values.setdefault("state", JobState.QUEUED)
        values.setdefault("created_at", time.time())

        job_id = await self._write(Statement(_INSERT_JOB, values, key=jobs.c.id))
        fields: dict[str, Any] = {k: values[k] for k in _JOB_FIELDS if k in values}
        return JobRecord(id=job_id, **fields)

    def update_job(self, job_id: int, **values: Any) -> asyncio.Future[None]:
        """Queue a change to a job's row; await the result to know it is committed.

        Every ending of a job passes through here, in every process (the runner, a worker's
        own endings, recovery, the reaper): one that sets a state without an image
        (``NOTHING_MADE``) gives the job's daily-budget charge back in the same transaction,
        once, however many endings a job is given."""
        change = Statement(_UPDATE_JOB, {**values, "job_id_": job_id})
        if values.get("state") not in NOTHING_MADE:
            return self._write(change)

        async def update_and_give_back(conn: AsyncConnection) -> None:
            await conn.execute(change.sql, change.params)
            await give_back_charge(conn, job_id)

        return self._write(update_and_give_back)

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

    async def count_jobs(self, **where: Any) -> int:
        query = sa.select(sa.func.count()).select_from(jobs)
        for key, value in where.items():
            query = query.where(jobs.c[key] == value)
        async with self.engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())

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
