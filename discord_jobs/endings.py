"""A job ended outside its runner (refused after its acknowledgement, cancelled or failed on
a worker before it ran, told as interrupted after a second takeover): its reply is told (a
Discord error is only logged: the log must still end), its log row ends, and it is counted
once — the same three steps the runner's endings take."""

from __future__ import annotations

import logging
import time

import discord

from imagine.metrics import Metrics
from imagine.outcomes import Failure, Outcome, Reply
from imagine.store import JobRecord, JobState, Store

log = logging.getLogger(__name__)


async def end_failed(store: Store, metrics: Metrics, reply: Reply, failure: Failure) -> None:
    """The job failed (``failure.interrupted``: cut off, with Retry)."""
    job = failure.job
    try:
        await reply.fail(failure)
    except discord.HTTPException as exc:
        log.info("could not tell job %s how it ended (%s)", job.id, exc)
    interrupted = failure.interrupted
    await store.update_job(
        job.id,
        state=JobState.INTERRUPTED if interrupted else JobState.FAILED,
        finished_at=time.time(),
        error=failure.message[:1000],
        interaction_token=None,
    )
    metrics.job_ended(job, Outcome.INTERRUPTED if interrupted else Outcome.FAILED)


async def end_cancelled(
    store: Store, metrics: Metrics, reply: Reply, job: JobRecord, by: str | None
) -> None:
    """Someone pressed Cancel before the job ran."""
    try:
        await reply.cancelled(job, by)
    except discord.HTTPException as exc:
        log.info("could not tell job %s it was cancelled (%s)", job.id, exc)
    await store.update_job(
        job.id, state=JobState.CANCELLED, finished_at=time.time(), interaction_token=None
    )
    metrics.job_ended(job, Outcome.CANCELLED)
