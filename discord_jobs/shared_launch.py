"""The gateway's launcher when workers run the jobs (PostgreSQL, ``WORKERS`` not inline):
everything ``Launcher`` checks, then the job goes into the shared queue and procrastinate
instead of this process's runner. Its own module: the one-process launcher needs none of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

import discord

from imagine.errors import message_of
from imagine.i18n import Shown, Text, _, joined
from imagine.jobs import QueueFull, SchedulerBusy, Ticket
from imagine.outcomes import Failure, Outcome, Reply, StatusLine
from imagine.progress import StatusEditor
from imagine.roster import Roster
from imagine.runner import queue_status
from imagine.shared import JobGone, SharedScheduler
from imagine.store import JobRecord, JobState
from imagine.store.database import retrying

from .endings import end_failed
from .launch import Admission, Launcher, Plan
from .render import Offers
from .replies import MessageReply

if TYPE_CHECKING:
    import procrastinate

log = logging.getLogger(__name__)

PLACE_EDIT_SECONDS = 2.0
"""The longest a waiting job's place-in-line edit may hold up a worker claiming it."""
PLACE_EDIT_INTERVAL = 5.0
"""A waiting job's place is edited once per token window at most (Discord: 5 per 5 s)."""
NO_WORKER = _("No worker is running right now: this starts as soon as one does.")


def waiting_status(place: int, workers: bool) -> Text:
    """A waiting job's status: its place, and whether anything will ever run it."""
    line = queue_status(place)
    return line if workers else joined("\n", (line, NO_WORKER))


class SharedLauncher(Launcher):
    """The gateway's launcher when workers run the jobs (PostgreSQL, ``WORKERS`` not inline):
    the job's row and reply are made here, the job goes into the shared queue and its task to
    procrastinate; a worker does the rest. Until a worker starts it, this process shows the
    job's place in line (recomputed on every ``positions`` signal)."""

    def __init__(
        self,
        *,
        queue: SharedScheduler,
        app: procrastinate.App,
        roster: Roster,
        lease_seconds: float,
        **options,
    ) -> None:
        super().__init__(**options)
        self.queue = queue
        self.app = app
        self.roster = roster
        self.lease_seconds = lease_seconds
        self.workers = True
        """Whether a worker was alive at the last look (``look_for_workers``)."""
        self.waiting: dict[int, StatusEditor[Shown]] = {}
        self._refresh: asyncio.Task[None] | None = None
        self._again = False

    async def look_for_workers(self) -> bool:
        """Whether any worker runs (renewed its row within a lease); waiting replies are
        told at once when that changes."""
        alive = bool(await self.roster.alive(self.lease_seconds))
        if alive != self.workers:
            if not alive:
                log.warning("no worker is running: queued jobs wait (start python worker.py)")
            else:
                log.info("a worker is running again")
            self.workers = alive
            self.refresh_positions()
        return alive

    async def check_queue(self, user_id: int) -> None:
        """Nothing before the acknowledgement: asking the shared queue means a database round
        trip, which under a burst waits for pool connections behind the accepted jobs' writes
        (200 at once took the ack p99 past a second). The queue's limits are enforced when
        the job is submitted, after the ack (``enqueue``), and the reply says so; the
        per-user burst limit (in memory) still stops a flood before any of that."""

    def take_place(self, plan: Plan) -> Ticket:
        return Ticket(plan.user_id, 0)  # the place is taken in the database, with the job

    async def launch(
        self, interaction: discord.Interaction, plan: Plan, admitted: Admission
    ) -> None:
        job, reply = await self._acknowledged_job(interaction, plan, admitted.charge)
        await self.enqueue(job, plan, reply)

    async def launch_in_channel(
        self,
        channel: discord.abc.Messageable,
        plan: Plan,
        admitted: Admission,
        *,
        reference: discord.Message | None = None,
    ) -> None:
        job = await self._create_job_or_give_back(plan, admitted.charge)
        reply = MessageReply(
            channel,
            job,
            requester=plan.requester,
            reference=reference,
            offers=Offers.of(self.engine),
        )
        try:
            message = await reply.open()
            job.message_id = message.id
            await self.store.update_job(job.id, message_id=message.id)
        except BaseException:
            await self.store.update_job(
                job.id, state=JobState.FAILED, finished_at=time.time(), error="could not reply"
            )
            self.runner.metrics.job_ended(job, Outcome.FAILED)
            raise
        await self.enqueue(job, plan, reply)

    async def enqueue(self, job: JobRecord, plan: Plan, reply: Reply) -> None:
        """Into the shared queue, then procrastinate; a refusal or failure is the job's end."""
        try:
            await self.queue.submit(
                job.id, plan.user_id, requester=plan.requester, fallback=plan.work().fallback
            )
        except (QueueFull, SchedulerBusy) as exc:  # lost a race since the precheck
            await self._end_here(job, reply, message_of(exc))
            return
        except JobGone:  # held up so long that the reaper ended it (and told its reply)
            log.warning("job %s ended before it could be queued", job.id)
            return
        from procrastinate.exceptions import ConnectorException

        from imagine.tasks import enqueue  # procrastinate: the postgres extra

        try:
            await retrying(
                lambda: enqueue(self.app, job.id),
                what="deferring a job's task",
                transient=(ConnectorException,),
            )
        except Exception:
            log.exception("could not queue job %s", job.id)
            await self.queue.release(job.id)
            await self._end_here(
                job, reply, _("Something went wrong on our side; please try again.")
            )
            return

        async def show(text: Shown) -> None:
            # Only while it waits: once a worker has it, the worker's statuses are the reply's.
            # The row is held during the edit, so a claim (and the worker's "Starting") comes
            # after it, never before: a late place in line would cover the worker's status,
            # and the two processes' edits would overrun the token's rate limit (429).
            # Bounded, since a claim of this job waits for it.
            async with self.queue.while_waiting(job.id) as waiting:
                if waiting:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(PLACE_EDIT_SECONDS):
                            await reply.status(StatusLine(text))

        # One place edit per 5 s at most: the worker that claims the job edits the same reply
        # through the same token, whose bucket holds 5 edits per 5 s (see WORKER_EDITS).
        editor: StatusEditor[Shown] = StatusEditor(show, interval=PLACE_EDIT_INTERVAL, per_window=1)
        self.waiting[job.id] = editor
        self.refresh_positions()

    async def _end_here(self, job: JobRecord, reply: Reply, message: Shown) -> None:
        await end_failed(self.store, self.runner.metrics, reply, Failure(job, message))

    async def forget(self, job_id: int) -> None:
        """Stop showing a job's place (a worker started it, or it was cancelled)."""
        editor = self.waiting.pop(job_id, None)
        if editor is not None:
            await editor.close()

    async def show_positions_now(self) -> None:
        """After a reconnection (positions signalled meanwhile are lost)."""
        self.refresh_positions()

    def refresh_positions(self) -> None:
        """Show every waiting job of this process its place (coalesced: one query at a time,
        one more if the queue changed meanwhile)."""
        if self._refresh is not None and not self._refresh.done():
            self._again = True
            return
        self._refresh = asyncio.get_running_loop().create_task(self._show_positions())

    async def _show_positions(self) -> None:
        while True:
            self._again = False
            if self.waiting:
                try:
                    positions = await self.queue.positions()
                except Exception:
                    log.exception("could not read the queue's positions")
                    return
                for job_id in list(self.waiting):
                    place = positions.get(job_id)
                    if place is None:
                        await self.forget(job_id)
                    elif job_id in self.waiting:
                        self.waiting[job_id].update(waiting_status(place, self.workers))
            if not self._again:
                return

    async def close(self) -> None:
        for job_id in list(self.waiting):
            await self.forget(job_id)
