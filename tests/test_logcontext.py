"""Which job a log record is about (``imagine.logcontext``): the ids follow a job into every
task it starts, and never into another job's lines or the lines of whoever started it."""

from __future__ import annotations

import asyncio
import logging

from imagine import logcontext
from imagine.progress import StatusEditor


def stamped(**extra: object) -> logging.LogRecord:
    record = logging.LogRecord("imagine.test", logging.INFO, __file__, 1, "hello", None, None)
    record.__dict__.update(extra)
    assert logcontext.JobFields().filter(record)
    return record


def test_records_carry_the_current_jobs_ids_and_keep_their_own():
    with logcontext.about_job(7, guild_id=70, user_id=700):
        inside = stamped()
        explicit = stamped(job_id=8)  # given with extra=: kept
    outside = stamped()
    assert (inside.job_id, inside.guild_id, inside.user_id) == (7, 70, 700)
    assert (explicit.job_id, explicit.guild_id) == (8, 70)
    assert (outside.job_id, outside.guild_id, outside.user_id) == (None, None, None)


async def test_concurrent_jobs_keep_their_own_ids_and_tasks_inherit_them():
    seen: dict[str, logcontext.JobIds] = {}

    async def job(job_id: int, user_id: int) -> None:
        with logcontext.about_job(job_id, user_id=user_id):
            await asyncio.sleep(0.01)  # the other job runs meanwhile
            logcontext.learn(guild_id=job_id * 10)

            async def child() -> None:
                seen[f"child of {job_id}"] = logcontext.CURRENT.get()

            await asyncio.get_running_loop().create_task(child())
            seen[f"job {job_id}"] = logcontext.CURRENT.get()
        seen[f"after {job_id}"] = logcontext.CURRENT.get()

    await asyncio.gather(job(1, 100), job(2, 200))
    assert seen["job 1"] == seen["child of 1"] == logcontext.JobIds(1, 10, 100)
    assert seen["job 2"] == seen["child of 2"] == logcontext.JobIds(2, 20, 200)
    assert seen["after 1"] == seen["after 2"] == logcontext.NO_JOB


async def test_a_task_made_in_a_jobs_context_is_about_it_and_its_maker_is_not():
    async def runs() -> tuple[logcontext.JobIds, logcontext.JobIds]:
        first = logcontext.CURRENT.get()
        logcontext.learn(guild_id=30)  # the server, once the job's row is read
        return first, logcontext.CURRENT.get()

    loop = asyncio.get_running_loop()
    first, later = await loop.create_task(runs(), context=logcontext.job_context(3, user_id=300))
    assert (first, later) == (logcontext.JobIds(3, None, 300), logcontext.JobIds(3, 30, 300))
    assert logcontext.CURRENT.get() == logcontext.NO_JOB


async def test_a_status_editor_edits_in_its_jobs_context_whoever_updates_it():
    """A waiting job's place is updated from the task of the job that freed a slot: its
    edit (and discord.py's request log) must still be about the waiting job."""
    edited: list[int | None] = []
    done = asyncio.Event()

    async def edit(_text: str) -> None:
        edited.append(logcontext.CURRENT.get().job_id)
        done.set()

    with logcontext.about_job(5):
        editor: StatusEditor[str] = StatusEditor(edit, interval=0)
    with logcontext.about_job(6):  # another job's task
        editor.update("#1 in line")
    await asyncio.wait_for(done.wait(), 5)
    await editor.close()
    assert edited == [5]
