"""The job service's procrastinate side, free of Discord: the app on the bot's database, its
schema, and the one task the gateways defer for every job they queue.

The task means "a job is waiting: run the fairest one the shared queue lets start" (see
``imagine.shared``); ``worker.py`` defines what running means. A gateway only defers it.
"""

from __future__ import annotations

import contextlib
import logging

import procrastinate
import sqlalchemy as sa

from .signals import plain_url
from .store import Store

log = logging.getLogger(__name__)

TASK = "imagine.run_next"
"""The procrastinate task: run the fairest waiting job."""
SCHEMA_LOCK = int.from_bytes(b"imgnproc", "big")
"""Advisory lock held while procrastinate's schema is applied (one process does it)."""


def build_app(database_url: str) -> procrastinate.App:
    """The procrastinate app on the bot's database (psycopg 3, its own connections)."""
    return procrastinate.App(
        connector=procrastinate.PsycopgConnector(conninfo=plain_url(database_url))
    )


async def prepare_schema(app: procrastinate.App, store: Store) -> None:
    """Apply procrastinate's schema once, whichever process comes first."""
    async with store.engine.connect() as conn:
        await conn.execute(sa.select(sa.func.pg_advisory_lock(SCHEMA_LOCK)))
        try:
            if not await app.check_connection_async():
                log.info("applying procrastinate's schema")
                await app.schema_manager.apply_schema_async()
        finally:
            await conn.execute(sa.select(sa.func.pg_advisory_unlock(SCHEMA_LOCK)))
            await conn.commit()


async def enqueue(app: procrastinate.App, job_id: int) -> None:
    """Defer the task for a job just put in the shared queue (never twice for one job)."""
    deferrer = app.configure_task(TASK, queueing_lock=f"job-{job_id}")
    with contextlib.suppress(procrastinate.exceptions.AlreadyEnqueued):
        await deferrer.defer_async(job_id=job_id)


MISSING_TASKS = sa.text(
    "SELECT q.job_id FROM job_queue q"
    " WHERE q.state = 'waiting' AND NOT EXISTS ("
    "  SELECT 1 FROM procrastinate_jobs p"
    "  WHERE p.queueing_lock = 'job-' || q.job_id::text AND p.status = 'todo')"
    " ORDER BY q.job_id"
)
"""Waiting jobs with no task ready to be fetched for them."""


async def defer_missing(app: procrastinate.App, store: Store) -> int:
    """Defer a task for every waiting job that has none ready: whatever lost one (a worker
    stopped or killed while its tasks waited for a turn, a task that failed) is made good,
    and a spare task finds nothing to start and ends. Returns how many were deferred."""
    async with store.engine.connect() as conn:
        missing = list(await conn.scalars(MISSING_TASKS))
    for job_id in missing:
        await enqueue(app, job_id)
    return len(missing)


async def clear_stalled(app: procrastinate.App, seconds: float) -> int:
    """Tasks left ``doing`` by workers dead for ``seconds`` (no procrastinate heartbeat):
    finished, so they do not stay for ever (the jobs they stood for get new ones from
    ``defer_missing``, and the shared queue's leases cover the jobs that were running)."""
    cleared = 0
    for stalled in await app.job_manager.get_stalled_jobs(
        task_name=TASK, seconds_since_heartbeat=seconds
    ):
        await app.job_manager.finish_job(stalled, procrastinate.jobs.Status.FAILED, delete_job=True)
        cleared += 1
    return cleared
