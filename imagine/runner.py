"""Runs jobs from queue to result, and makes sure every job ends visibly.

A job is shown through a ``Reply`` (in the bot: one Discord message). The runner waits for the
job's turn, streams statuses into a ``StatusEditor``, lets the engine retry and fail over
between the model's backends, hands the job to the fallback model when its own model fails,
downloads and fits the image, and finally tells the reply exactly one of: the result, a
failure, or a cancellation.

The work (waiting, generating, downloading) runs in its own task so that Cancel can stop it —
the backend request included — without ever cancelling a reply edit in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Protocol

from .engine import Engine
from .errors import BackendError, FetchError, ImagineError, QuotaExceeded, UnknownModel, naming
from .fetch import FetchedImage
from .images import fit_image, image_size, pixel_cap
from .jobs import Scheduler, Ticket
from .progress import JobStatus, StatusEditor
from .responses import ImageResponse, Notice, Reasoning
from .store import JobRecord, Store

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Delivery:
    """A finished image, ready to show."""

    job: JobRecord
    image: FetchedImage | None  # None: too large to upload even re-encoded; see ``link``
    model: str
    seed: int | None
    width: int
    height: int
    elapsed: float
    backend: str
    fallback_from: str | None = None
    fallback_reason: str | None = None
    reencoded: bool = False
    extra_images: int = 0
    link: str | None = None


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a job produced no image, in words for the person who asked."""

    job: JobRecord
    message: str
    retry_at: float | None = None  # epoch seconds, when a quota says when
    interrupted: bool = False
    transient: bool = False  # likely to pass: worth a Retry in a moment
    backend: str | None = None


class Reply(Protocol):
    """Where a job shows itself: statuses first, then exactly one ending."""

    upload_limit: int

    async def status(self, text: str) -> None: ...

    async def deliver(self, delivery: Delivery) -> None: ...

    async def fail(self, failure: Failure) -> None: ...

    async def cancelled(self, job: JobRecord, by: str | None) -> None: ...


def queue_status(position: int) -> str:
    """``position`` counts from 1 among the waiting jobs, in the order they will start."""
    if position <= 1:
        return "Next in line"
    ahead = position - 1
    return f"#{position} in line ({ahead} {'job' if ahead == 1 else 'jobs'} ahead of you)"


class StopReason(enum.Enum):
    """Why a job was stopped before its end: a type, so no text a member types (a display
    name, say) can pass for the bot shutting down."""

    CANCELLED = enum.auto()  # someone pressed Cancel
    SHUTDOWN = enum.auto()  # the bot is stopping and the grace period ran out


@dataclass(frozen=True, slots=True)
class Stop:
    reason: StopReason
    by: str | None = None  # who cancelled, as shown to people


@dataclass
class ActiveJob:
    job: JobRecord
    ticket: Ticket
    task: asyncio.Task[None] | None = None
    work: asyncio.Task[Delivery] | None = None
    stop: Stop | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)


class JobRunner:
    def __init__(
        self,
        engine: Engine,
        store: Store,
        scheduler: Scheduler,
        *,
        editor_factory: Callable[[Callable[[str], Awaitable[None]]], StatusEditor] = StatusEditor,
        redact: Callable[[str], str] = str,
    ) -> None:
        self.engine = engine
        self.store = store
        self.scheduler = scheduler
        self.editor_factory = editor_factory
        self.redact = redact  # a backend could echo a secret back: never show it
        self.active: dict[int, ActiveJob] = {}

    def start(
        self, job: JobRecord, ticket: Ticket, reply: Reply, *, fallback: str | None = None
    ) -> asyncio.Task[None]:
        """Run ``job`` in the background; its ``ticket`` came from ``scheduler.submit``."""
        active = ActiveJob(job, ticket)
        self.active[job.id] = active
        active.task = asyncio.get_running_loop().create_task(
            self._run(active, reply, fallback), name=f"imagine-job-{job.id}"
        )
        return active.task

    def cancel(self, job_id: int, by: str | None = None) -> bool:
        """Stop a job (waiting or running) for someone who pressed Cancel; False if it is not
        in progress here (it may have just ended)."""
        return self._stop(job_id, Stop(StopReason.CANCELLED, by))

    def interrupt(self, job_id: int) -> bool:
        """Stop a job because the bot is shutting down; its reply says so and offers Retry."""
        return self._stop(job_id, Stop(StopReason.SHUTDOWN))

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

    async def _run(self, active: ActiveJob, reply: Reply, fallback: str | None) -> None:
        job = active.job
        editor = self.editor_factory(reply.status)
        status = JobStatus(editor)
        ticket = active.ticket
        ticket.on_position = lambda position: status.progress(queue_status(position))
        if ticket.state == "waiting":
            status.progress(queue_status(ticket.position))
        active.work = asyncio.get_running_loop().create_task(
            self._work(job, ticket, status, reply.upload_limit, fallback)
        )
        ending: Callable[[], Awaitable[None]]
        try:
            delivery = await active.work
        except asyncio.CancelledError:
            if active.work.cancelled() and active.stop is not None:
                ending = self._ending_stopped(job, reply, active.stop)
            else:
                raise
        except ImagineError as exc:
            ending = self._ending_failed(job, reply, exc)
        except Exception:
            log.exception("job %s failed unexpectedly", job.id)
            ending = self._ending_failed(
                job, reply, ImagineError("Something went wrong on our side; please try again.")
            )
        else:
            ending = self._ending_delivered(delivery, reply)
        finally:
            self.scheduler.release(ticket)
            await editor.close()  # no status may land after the ending
        try:
            await ending()
        finally:
            active.done.set()
            self.active.pop(job.id, None)

    # -- endings -------------------------------------------------------------------------

    # The user is told first; the job log follows. A crash in between leaves a job that looks
    # active; the restart's recovery then sees its reply already ended and leaves it alone.

    def _ending_delivered(self, delivery: Delivery, reply: Reply) -> Callable[[], Awaitable[None]]:
        async def end() -> None:
            try:
                await self._safely(reply.deliver(delivery), delivery.job)
            finally:
                if delivery.image is not None:
                    delivery.image.close()
            await self.store.update_job(
                delivery.job.id,
                state="done",
                finished_at=time.time(),
                result_seed=delivery.seed,
                result_model=delivery.model,
                result_backend=delivery.backend,
                interaction_token=None,  # the reply is final: the token has no more use
            )

        return end

    def _ending_failed(
        self, job: JobRecord, reply: Reply, error: ImagineError
    ) -> Callable[[], Awaitable[None]]:
        retry_at = None
        if isinstance(error, QuotaExceeded) and error.retry_after is not None:
            retry_at = time.time() + error.retry_after
        failure = Failure(
            job,
            self.redact(str(error)),
            retry_at=retry_at,
            transient=getattr(error, "transient", False),
            backend=getattr(error, "backend", None),
        )

        async def end() -> None:
            await self._safely(reply.fail(failure), job)
            await self.store.update_job(
                job.id,
                state="failed",
                finished_at=time.time(),
                error=failure.message[:1000],
                interaction_token=None,
            )

        return end

    def _ending_stopped(
        self, job: JobRecord, reply: Reply, stop: Stop
    ) -> Callable[[], Awaitable[None]]:
        async def end() -> None:
            if stop.reason is StopReason.SHUTDOWN:
                failure = Failure(
                    job, "The bot restarted before this image was finished.", interrupted=True
                )
                await self._safely(reply.fail(failure), job)
                await self.store.update_job(
                    job.id,
                    state="interrupted",
                    finished_at=time.time(),
                    error=failure.message,
                    interaction_token=None,
                )
                return
            await self._safely(reply.cancelled(job, stop.by), job)
            await self.store.update_job(
                job.id, state="cancelled", finished_at=time.time(), interaction_token=None
            )

        return end

    @staticmethod
    async def _safely(ending: Awaitable[None], job: JobRecord) -> None:
        try:
            await ending
        except Exception:
            log.exception("could not show the end of job %s", job.id)

    # -- the work ------------------------------------------------------------------------

    async def _work(
        self,
        job: JobRecord,
        ticket: Ticket,
        status: JobStatus,
        upload_limit: int,
        fallback: str | None,
    ) -> Delivery:
        await self.scheduler.wait_turn(ticket)
        self.store.update_job(job.id, state="running", started_at=time.time())  # not awaited
        status.progress("Starting")
        started = time.monotonic()
        models = [job.model]
        backup = self._fallback_model(fallback, job)
        if backup is not None:
            models.append(backup)
        avoid: set[str] = set()  # backends that stalled in this job: no model tries them again
        error: ImagineError | None = None
        for index, model in enumerate(models):
            if index:
                status.notice(f"{models[0]} failed ({naming(error)}); trying {model}")
            try:
                delivery = await self._attempt(job, model, status, upload_limit, started, avoid)
            except ImagineError as exc:  # the engine already retried and failed over
                error = exc
                continue
            if index:
                return replace(delivery, fallback_from=models[0], fallback_reason=naming(error))
            return delivery
        assert error is not None
        raise error

    def _fallback_model(self, fallback: str | None, job: JobRecord) -> str | None:
        """The fallback model, if it is one we can draw and not the job's own. One that went
        away (a backends file changed, an API stopped listing it) is ignored, not fatal."""
        if not fallback:
            return None
        try:
            model = self.engine.resolve_model(fallback)
        except UnknownModel:
            log.warning("job %s: fallback model %r is unknown; not using it", job.id, fallback)
            return None
        return None if model == job.model else model

    async def _attempt(
        self,
        job: JobRecord,
        model: str,
        status: JobStatus,
        upload_limit: int,
        started: float,
        avoid: set[str],
    ) -> Delivery:
        result: ImageResponse | None = None
        download: asyncio.Task[tuple[tuple[int, int], FetchedImage | None, bool]] | None = None
        try:
            generation = self.engine.generate(
                model,
                prompt=job.prompt,
                width=job.width,
                height=job.height,
                seed=job.seed,
                avoid=avoid,
            )
            async with contextlib.aclosing(generation) as items:
                async for item in items:
                    if isinstance(item, Notice):
                        status.notice(item.status)
                    elif isinstance(item, Reasoning):
                        if result is None:
                            status.progress(item.status)
                    elif isinstance(item, ImageResponse) and result is None:
                        result = item
                        # Download while the backend's stream winds down.
                        download = asyncio.get_running_loop().create_task(
                            self._download(item, job, upload_limit)
                        )
            if result is None or download is None:
                raise BackendError("The backend finished without an image.")
            (width, height), image, reencoded = await download
        finally:
            if download is not None and not download.done():
                download.cancel()
        return Delivery(
            job=job,
            image=image,
            link=None if image is not None else result.images[0],
            model=result.model or model,
            seed=result.seed,
            width=width,
            height=height,
            elapsed=time.monotonic() - started,
            backend=result.backend,
            reencoded=reencoded,
            extra_images=len(result.images) - 1,
        )

    async def _download(
        self, result: ImageResponse, job: JobRecord, upload_limit: int
    ) -> tuple[tuple[int, int], FetchedImage | None, bool]:
        """``(size, image to upload, re-encoded)``; no image when even re-encoding cannot
        bring it under the upload limit (a link is sent instead)."""
        image = await self.engine.download(result, filename=f"imagine-{job.id}")
        try:
            # The header only; refuses an image far larger than the job asked for (a bomb).
            cap = pixel_cap(job.width, job.height)
            size = image_size(image, max_pixels=cap)
            if image.size <= upload_limit:
                return size, image, False
            try:
                fitted, _ = await asyncio.to_thread(fit_image, image, upload_limit, max_pixels=cap)
            except FetchError as exc:
                log.info("job %s: %s; sending a link instead", job.id, exc)
                return size, None, False
        except BaseException:
            image.close()
            raise
        image.close()
        return size, fitted, True
