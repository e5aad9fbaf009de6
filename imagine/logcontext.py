"""Which job a log record is about: its job id, server and member, where they are known.

The identifiers live in a ``contextvars`` variable, set in the context of the task that runs
a job (``JobRunner.start``; a worker's ``Worker.start_run``, from its claim on). Each asyncio
task has its own copy, taken when the task is made, so the identifiers follow a job into
every task it starts (its work, its status edits, discord.py's requests on its behalf) and
never reach the lines of another job running at the same time. ``JobFields``, a logging
filter on the handlers, copies them onto each record for the formats that show them
(``LOG_FORMAT=json``). Nothing here knows Discord: the ids are plain integers.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import Context, ContextVar, copy_context
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class JobIds:
    job_id: int | None = None
    guild_id: int | None = None
    user_id: int | None = None


FIELDS = ("job_id", "guild_id", "user_id")
"""The record attributes ``JobFields`` sets."""
NO_JOB = JobIds()
CURRENT: ContextVar[JobIds] = ContextVar("imagine_log_job", default=NO_JOB)


def job_context(job_id: int, *, guild_id: int | None = None, user_id: int | None = None) -> Context:
    """A copy of the current context, about this job: for the task that runs it
    (``loop.create_task(…, context=job_context(…))``), and every task that one starts."""
    context = copy_context()
    context.run(CURRENT.set, JobIds(job_id, guild_id, user_id))
    return context


@contextmanager
def about_job(
    job_id: int, *, guild_id: int | None = None, user_id: int | None = None
) -> Iterator[None]:
    """Records logged inside this block (and by tasks started inside it) are about this job."""
    token = CURRENT.set(JobIds(job_id, guild_id, user_id))
    try:
        yield
    finally:
        CURRENT.reset(token)


def learn(*, guild_id: int | None = None, user_id: int | None = None) -> None:
    """More of what is known of the current job (a worker reads its server once it has the
    job's row), for the rest of this task (its context is its own) or ``about_job`` block."""
    known = CURRENT.get()
    CURRENT.set(
        dataclasses.replace(
            known,
            guild_id=known.guild_id if guild_id is None else guild_id,
            user_id=known.user_id if user_id is None else user_id,
        )
    )


class JobFields(logging.Filter):
    """Puts the current job's identifiers on each record (None where unknown); a value
    already given with ``extra=`` is kept."""

    def filter(self, record: logging.LogRecord) -> bool:
        ids = CURRENT.get()
        record.__dict__.setdefault("job_id", ids.job_id)
        record.__dict__.setdefault("guild_id", ids.guild_id)
        record.__dict__.setdefault("user_id", ids.user_id)
        return True


def install(logger: logging.Logger | None = None) -> JobFields:
    """Attach ``JobFields`` to every handler of ``logger`` (the root by default)."""
    target = logger or logging.getLogger()
    stamp = JobFields()
    for handler in target.handlers:
        handler.addFilter(stamp)
    return stamp
