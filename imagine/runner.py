"""Runs jobs from queue to result, and makes sure every job ends visibly.

A job is shown through a ``Reply`` (in the bot: one Discord message). The runner waits for the
job's turn, streams statuses (and previews) into a ``StatusEditor``, has the job drawn or
described (``imagine.drawing``), and finally tells the reply exactly one of: the result, a
failure, or a cancellation.

The work (waiting, generating, downloading) runs in its own task so that Cancel can stop it —
the backend request included — without ever cancelling a reply edit in flight.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace

from .drawing import Drawing, Work, describe_image
from .engine import Engine
from .errors import FetchError, ImagineError, QuotaExceeded, message_of
from .i18n import Shown, Text, _, n_
from .images import pixel_cap, preview_jpeg
from .jobs import Scheduler, Ticket, TicketState
from .logcontext import job_context
from .metrics import Metrics
from .outcomes import Delivery, Described, Failure, Outcome, Picture, Reply, StatusLine
from .progress import JobStatus, Look, StatusEditor
from .responses import ImagePreview
from .store import JobKind, JobRecord, JobState, Store

log = logging.getLogger(__name__)


def as_is(text: Shown) -> Shown:
    """No redaction: a runner given no secrets to hide."""
    return text


def queue_status(position: int) -> Text:
    """``position`` counts from 1 among the waiting jobs, in the order they will start."""
    if position <= 1:
        return _("Next in line")
    return n_(
        "#{position} in line ({n} job ahead of you)",
        "#{position} in line ({n} jobs ahead of you)",
        position - 1,
        position=position,
    )


HANDED_BACK = _("Back in line: the worker drawing this stopped; another one will start it.")


Show = Callable[[Awaitable[None]], Awaitable[None]]
"""An ending's work: it is given the status editor's closing to wait for before it shows
anything (it may write the job log meanwhile)."""


@dataclass(frozen=True, slots=True)
class Ending:
    """What a job's reply must end with (``show``), and how the metrics count it: ``outcome``
    (None: not an ending here, e.g. a job handed back to the queue) and the backend's label."""

    show: Show
    outcome: Outcome | None
    backend: str | None = None


class StopReason(enum.Enum):
    """Why a job was stopped before its end: a type, so no text a member types (a display
    name, say) can pass for the bot shutting down."""

    CANCELLED = enum.auto()  # someone pressed Cancel
    SHUTDOWN = enum.auto()  # the bot is stopping and the grace period ran out
    HANDED_BACK = enum.auto()  # a worker is stopping: the job waits for the next worker
    LEASE_LOST = enum.auto()  # another worker took the job over: its reply is theirs now


@dataclass(frozen=True, slots=True)
class Stop:
    reason: StopReason
    by: str | None = None  # who cancelled, as shown to people


@dataclass
class ActiveJob:
    job: JobRecord
    ticket: Ticket
    task: asyncio.Task[None] | None = None
    work: asyncio.Task[Delivery | Described] | None = None
    stop: Stop | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    quiet: asyncio.Future[None] | None = None  # the status editor closed: nothing more shown


class JobRunner:
    def __init__(
        self,
        engine: Engine,
        store: Store,
        scheduler: Scheduler,
        *,
        editor_factory: Callable[
            [Callable[[Look], Awaitable[None]]], StatusEditor[Look]
        ] = StatusEditor,
        redact: Callable[[Shown], Shown] = as_is,
        still_mine: Callable[[JobRecord], Awaitable[bool]] | None = None,
        member_token: Callable[[int], Awaitable[str | None]] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.engine = engine
        self.metrics = metrics if metrics is not None else Metrics()
        """Each job's wait and ending are counted here (a process's ``/metrics``)."""
        self.store = store
        self.scheduler = scheduler
        self.editor_factory = editor_factory
        self.redact = redact  # a backend could echo a secret back: never show it
        self.still_mine = still_mine
        """Asked just before an ending is shown (a worker: is the job's lease still ours?);
        False leaves the reply and the log to the job's new owner."""
        self.member_token = member_token
        """The requester's own Hugging Face token (``MemberTokens.token_for``), read when a
        job's turn comes; None: every job uses the bot's account."""
        self.active: dict[int, ActiveJob] = {}

    def start(
        self, job: JobRecord, ticket: Ticket, reply: Reply, work: Work | None = None
    ) -> asyncio.Task[None]:
        """Run ``job`` in the background; its ``ticket`` came from ``scheduler.submit``."""
        active = ActiveJob(job, ticket)
        self.active[job.id] = active
        active.task = asyncio.get_running_loop().create_task(
            self._run(active, reply, work or Work()),
            name=f"imagine-job-{job.id}",
            context=job_context(job.id, guild_id=job.guild_id, user_id=job.user_id),
        )
        return active.task

    def cancel(self, job_id: int, by: str | None = None) -> bool:
        """Stop a job (waiting or running) for someone who pressed Cancel; False if it is not
        in progress here (it may have just ended)."""
        return self._stop(job_id, Stop(StopReason.CANCELLED, by))

    def interrupt(self, job_id: int) -> bool:
        """Stop a job because the bot is shutting down; its reply says so and offers Retry."""
        return self._stop(job_id, Stop(StopReason.SHUTDOWN))

    def hand_back(self, job_id: int) -> bool:
        """Stop a job because this worker is stopping: its reply says it waits for another
        worker, and the caller puts it back in the queue."""
        return self._stop(job_id, Stop(StopReason.HANDED_BACK))

    def let_go(self, job_id: int) -> bool:
        """Stop a job another worker has taken over, leaving its reply and log alone."""
        return self._stop(job_id, Stop(StopReason.LEASE_LOST))

    def _stop(self, job_id: int, stop: Stop) -> bool:
        active = self.active.get(job_id)
        if active is None or active.stop is not None:
            return False
        active.stop = stop
        if active.work is not None:
            active.work.cancel()
        return True

    async def wait_idle(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109
        """Wait until no job is active; False if ``timeout`` passed first."""
        tasks = [a.task for a in self.active.values() if a.task is not None]
        if not tasks:
            return True
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        return not pending

    async def stop(self, grace: float = 2.0) -> None:
        """At close: let endings in flight finish for ``grace`` seconds, then cancel the rest
        (they are told after the restart, by the recovery of interrupted jobs)."""
        if await self.wait_idle(grace):
            return
        tasks = [a.task for a in self.active.values() if a.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, active: ActiveJob, reply: Reply, work: Work) -> None:
        try:
            ending = await self._outcome(active, reply, work)
            assert active.quiet is not None
            if await self._may_end(active):
                await ending.show(active.quiet)
                if ending.outcome is not None:
                    self.metrics.job_ended(active.job, ending.outcome, ending.backend)
            else:
                await active.quiet
        finally:
            active.done.set()
            self.active.pop(active.job.id, None)

    async def _outcome(self, active: ActiveJob, reply: Reply, work: Work) -> Ending:
        """Wait for the job's work; what its reply must end with. The status editor is closed
        in the background (``active.quiet``): an ending writes the job log meanwhile, and
        waits for it only before it shows anything (no status may land after the ending)."""
        job = active.job
        work = replace(work, upload_limit=reply.upload_limit)
        editor = self.editor_factory(PreviewingStatus(self.engine, job, reply))
        status = JobStatus(editor)
        ticket = active.ticket
        ticket.on_position = lambda position: status.progress(queue_status(position))
        if ticket.state is TicketState.WAITING:
            status.progress(queue_status(ticket.position))
        active.work = asyncio.get_running_loop().create_task(self._work(job, ticket, status, work))
        try:
            outcome = await active.work
        except asyncio.CancelledError:
            if active.work.cancelled() and active.stop is not None:
                return self._ending_stopped(job, reply, active.stop)
            raise
        except ImagineError as exc:
            return self._ending_failed(job, reply, exc)
        except Exception:
            log.exception("job %s failed unexpectedly", job.id)
            return self._ending_failed(
                job, reply, ImagineError(_("Something went wrong on our side; please try again."))
            )
        finally:
            self.scheduler.release(ticket)
            active.quiet = asyncio.ensure_future(editor.close())
        if isinstance(outcome, Described):
            return self._ending_described(outcome, reply)
        return self._ending_delivered(outcome, reply)

    async def _may_end(self, active: ActiveJob) -> bool:
        """False when the job is another worker's now (``still_mine``): its ending is theirs."""
        if active.stop is not None and active.stop.reason is StopReason.LEASE_LOST:
            return False
        if self.still_mine is None:
            return True
        try:
            mine = await self.still_mine(active.job)
        except Exception:
            log.exception("job %s: could not check its lease; showing its ending", active.job.id)
            return True
        if not mine:
            log.warning("job %s: taken over by another worker; its ending is theirs", active.job.id)
        return mine

    # -- endings -------------------------------------------------------------------------

    # The user is told first; the job log follows. A crash in between leaves a job that looks
    # active; the restart's recovery then sees its reply already ended and leaves it alone.

    # What a result's buttons read (a grid's seeds, /describe's prompts) is logged before the
    # result is shown: a button pressed the moment it appears must find it.

    def _ending_delivered(self, delivery: Delivery, reply: Reply) -> Ending:
        async def end(quiet: Awaitable[None]) -> None:
            job_id = delivery.job.id
            first = delivery.first
            await self.store.update_job(
                job_id,
                result_seed=first.seed,
                result_model=first.model,
                result_backend=first.backend,
                result=json.dumps([picture_record(p) for p in delivery.pictures]),
                translated_prompt=delivery.job.translated_prompt,
                kudos=delivery.job.kudos,
            )
            try:
                await quiet
                await self._safely(reply.deliver(delivery), delivery.job)
            finally:
                delivery.close()
            await self.store.update_job(
                job_id,
                state=JobState.DONE,
                finished_at=time.time(),
                interaction_token=None,  # the reply is final: the token has no more use
            )

        return Ending(end, Outcome.DONE, delivery.first.backend)

    def _ending_described(self, described: Described, reply: Reply) -> Ending:
        async def end(quiet: Awaitable[None]) -> None:
            job_id = described.job.id
            await self.store.update_job(
                job_id, result_backend=described.backend, result=json.dumps(list(described.prompts))
            )
            await quiet
            await self._safely(reply.described(described), described.job)
            await self.store.update_job(
                job_id, state=JobState.DONE, finished_at=time.time(), interaction_token=None
            )

        return Ending(end, Outcome.DONE, described.backend)

    def _ending_failed(self, job: JobRecord, reply: Reply, error: ImagineError) -> Ending:
        retry_at = None
        if isinstance(error, QuotaExceeded) and error.retry_after is not None:
            retry_at = time.time() + error.retry_after
        message = message_of(error)
        clean = self.redact(message)
        failure = Failure(
            job,
            message if clean == message else clean,
            retry_at=retry_at,
            transient=getattr(error, "transient", False),
            backend=getattr(error, "backend", None),
        )

        async def end(quiet: Awaitable[None]) -> None:
            await quiet
            await self._safely(reply.fail(failure), job)
            await self.store.update_job(
                job.id,
                state=JobState.FAILED,
                finished_at=time.time(),
                error=failure.message[:1000],
                kudos=job.kudos,  # a censored image is paid for all the same
                interaction_token=None,
            )

        return Ending(end, Outcome.FAILED, failure.backend)

    def _ending_stopped(self, job: JobRecord, reply: Reply, stop: Stop) -> Ending:
        if stop.reason is StopReason.HANDED_BACK:

            async def back_in_line(quiet: Awaitable[None]) -> None:
                await quiet
                await self._safely(reply.status(StatusLine(HANDED_BACK)), job)

            return Ending(back_in_line, None)  # it ends on the next worker
        if stop.reason is StopReason.SHUTDOWN:

            async def interrupted(quiet: Awaitable[None]) -> None:
                await quiet
                failure = Failure(
                    job, _("The bot restarted before this image was finished."), interrupted=True
                )
                await self._safely(reply.fail(failure), job)
                await self.store.update_job(
                    job.id,
                    state=JobState.INTERRUPTED,
                    finished_at=time.time(),
                    error=failure.message,
                    interaction_token=None,
                )

            return Ending(interrupted, Outcome.INTERRUPTED)

        async def cancelled(quiet: Awaitable[None]) -> None:
            await quiet
            await self._safely(reply.cancelled(job, stop.by), job)
            await self.store.update_job(
                job.id, state=JobState.CANCELLED, finished_at=time.time(), interaction_token=None
            )

        return Ending(cancelled, Outcome.CANCELLED)

    @staticmethod
    async def _safely(ending: Awaitable[None], job: JobRecord) -> None:
        try:
            await ending
        except Exception:
            log.exception("could not show the end of job %s", job.id)

    # -- the work ------------------------------------------------------------------------

    async def _work(
        self, job: JobRecord, ticket: Ticket, status: JobStatus, work: Work
    ) -> Delivery | Described:
        await self.scheduler.wait_turn(ticket)
        self.metrics.job_started(job)
        if job.started_at is None:  # a shared queue stamps it when a worker claims the job
            self.store.update_job(job.id, state=JobState.RUNNING, started_at=time.time())
        status.progress(_("Starting"))
        work = replace(work, hf_token=await self._member_token(job))
        if job.kind == JobKind.DESCRIBE:
            return await describe_image(self.engine, job, work.images, status, work.hf_token)
        return await Drawing(self.engine, job, work, status).run()

    async def _member_token(self, job: JobRecord) -> str | None:
        """The requester's own token, read now (connected or forgotten a moment ago counts);
        the bot's account when it cannot be read."""
        if self.member_token is None:
            return None
        try:
            return await self.member_token(job.user_id)
        except Exception as exc:
            log.warning(
                "job %s: could not read its requester's token (%s); using the bot's",
                job.id,
                type(exc).__name__,
            )
            return None


def picture_record(picture: Picture) -> dict[str, object]:
    """What the job log keeps of one image (its bytes live on Discord, not here)."""
    return {
        "seed": picture.seed,
        "model": picture.model,
        "backend": picture.backend,
        "width": picture.width,
        "height": picture.height,
    }


class PreviewingStatus:
    """Shows a job's status, with its newest preview as a small JPEG: the preview is fetched
    only when an edit is about to show it (at most one per edit slot), never for every
    preview a backend streams."""

    def __init__(self, engine: Engine, job: JobRecord, reply: Reply) -> None:
        self.engine = engine
        self.job = job
        self.reply = reply
        self.shown: ImagePreview | None = None

    async def __call__(self, value: Look) -> None:
        jpeg = None
        preview = value.preview
        if preview is not None and preview is not self.shown:
            self.shown = preview
            jpeg = await self._jpeg(preview)
        await self.reply.status(StatusLine(value.text, jpeg))

    async def _jpeg(self, preview: ImagePreview) -> bytes | None:
        try:
            image = await self.engine.download(preview, filename=f"preview-{self.job.id}")
        except (FetchError, IndexError) as exc:
            log.debug("job %s: preview not shown (%s)", self.job.id, exc)
            return None
        try:
            cap = pixel_cap(self.job.width, self.job.height)
            return await asyncio.to_thread(preview_jpeg, image, max_pixels=cap)
        except FetchError as exc:
            log.debug("job %s: preview not shown (%s)", self.job.id, exc)
            return None
        finally:
            image.close()
