"""``python worker.py``: runs jobs for the gateways (``python bot.py``), on PostgreSQL.

The gateway makes the job's row and reply, puts the job in the shared queue
(``imagine.shared``) and defers one procrastinate task for it (a queueing lock on the job id,
so it is never enqueued twice). A worker's task runs the fairest job that may start — not
necessarily the one it was deferred for: the queue, not procrastinate's order, decides —
and leaves when nothing is waiting. Procrastinate's worker loop (``WORKER_CONCURRENCY`` tasks
at once) does the fetching, the LISTEN for new tasks and the graceful stop on SIGTERM.

A job runs here exactly as in the one-process bot (``imagine.runner``, ``imagine.drawing``):
generated, downloaded, fitted, and shown through a ``WebhookReply`` (the interaction's token;
the bot's REST API for DMs and expired tokens; no gateway connection).

Each running job has a lease renewed every third of ``JOB_LEASE_SECONDS``. A worker that
died (SIGKILL) stops renewing; once its lease ran out another worker takes the job over: if
its reply already shows an ending, only the job log is brought up to date; else it is run
again once, and told as interrupted if it was already run again. A worker that finds it lost
a lease (it was cut off) stops that job without touching its reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import sys
import time
import uuid
from typing import Any

import discord
import procrastinate
from dotenv import load_dotenv

from discord_jobs.recovery import INTERRUPTED, ended_state
from discord_jobs.replies import WebhookReply
from imagine.drawing import InputImage, Work
from imagine.engine import Engine
from imagine.errors import BadInput, FetchError, message_of
from imagine.fetch import fetch_image
from imagine.http import new_session
from imagine.i18n import Shown, _
from imagine.inputs import prepare_input_image
from imagine.jobs import Scheduler
from imagine.outcomes import Failure
from imagine.progress import StatusEditor
from imagine.runner import JobRunner
from imagine.settings import Settings
from imagine.shared import Claim, SharedScheduler
from imagine.signals import Signals
from imagine.store import JobRecord, JobState, Store
from imagine.tasks import TASK, build_app, enqueue, prepare_schema

log = logging.getLogger("imagine.worker")

WORKER_EDITS = 3
"""Status edits per 5 s window here: the token's bucket holds 5; the gateway may have spent
one on the job's place just before the claim, and one is kept for the result."""
MAX_INPUT_BYTES = 10 * 1024 * 1024
STALLED_SECONDS = 60.0
"""A procrastinate task whose worker sent no heartbeat for this long belongs to a dead one."""
IDLE_RECHECK_SECONDS = 1.0
"""A task with jobs waiting but none allowed to start looks again this often (or at once on
a positions signal)."""


class Worker:
    def __init__(self, settings: Settings, *, name: str | None = None) -> None:
        self.settings = settings
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.held: set[int] = set()
        self.wake = asyncio.Event()
        self.tasks: set[asyncio.Task[Any]] = set()
        self.closing = False
        self.app: procrastinate.App | None = None

    async def start(self) -> None:
        settings = self.settings
        discord.http.Route.BASE = settings.discord_api_base_url.rstrip("/")
        self.session = new_session()
        self.engine = Engine(settings, session=self.session)
        await self.engine.discover_models()
        self.store = await Store.open(settings.database_url)
        self.queue = SharedScheduler(
            self.store,
            settings.max_concurrent_jobs,
            max_queued_per_user=settings.max_jobs_per_user,
            max_total=settings.max_queued_jobs,
            lease_seconds=settings.job_lease_seconds,
        )
        # The shared queue decides what runs; the runner's own scheduler never makes it wait.
        self.local = Scheduler(1_000_000, max_queued_per_user=1_000_000)
        self.runner = JobRunner(
            self.engine,
            self.store,
            self.local,
            redact=self.engine.redact.shown,
            editor_factory=functools.partial(StatusEditor, per_window=WORKER_EDITS),
        )
        self.client = discord.Client(intents=discord.Intents.none())
        await self.client.login(settings.discord_token or "")  # REST only: no gateway
        self.signals = await Signals.connect(settings.database_url)
        await self.signals.on_cancel(self.cancel)
        await self.signals.on_positions(self.wake.set)
        self._spawn(self._heartbeat())
        self._spawn(self._watch())
        log.info("worker %s ready", self.name)

    def _spawn(self, work: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def close(self, grace: float = 5.0) -> None:
        """After procrastinate's loop stopped: jobs taken over outside it get ``grace``
        seconds, then are told as interrupted (with Retry)."""
        self.closing = True
        if not await self.runner.wait_idle(grace):
            for job_id in list(self.runner.active):
                self.runner.interrupt(job_id)
            await self.runner.wait_idle(5.0)
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.signals.close()
        await self.client.close()
        await self.store.close()
        await self.session.close()

    # -- signals --------------------------------------------------------------------------

    def cancel(self, job_id: int, by: str | None) -> None:
        """Someone pressed Cancel (in any gateway): stop the job if it runs here."""
        if self.runner.cancel(job_id, by=by):
            log.info("job %s cancelled by %s", job_id, by or "someone")

    # -- running --------------------------------------------------------------------------

    async def run_next(self) -> bool:
        """The procrastinate task: run the fairest job that may start; False when none was
        waiting any more."""
        while not self.closing:
            claim = await self.queue.claim(self.name)
            if claim is not None:
                await self.run(claim)
                return True
            waiting, _ = await self.queue.counts()
            if not waiting:
                return False
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(IDLE_RECHECK_SECONDS):
                    await self.wake.wait()
        return False

    async def run(self, claim: Claim) -> None:
        """Run one claimed job to its ending, then take it out of the queue."""
        self.held.add(claim.job_id)
        try:
            job = await self.store.job(claim.job_id)
            if job is None:
                return
            reply = WebhookReply(
                self.client,
                job,
                requester=claim.requester,
                image_input=bool(self.engine.image_models()),
            )
            if claim.attempts > 1 and not await self._resume(claim, job, reply):
                return
            try:
                images = await self._inputs(job)
            except (FetchError, BadInput) as exc:
                unreadable = _(
                    "The image this started from cannot be read: {error}", error=message_of(exc)
                )
                await self._fail(job, reply, unreadable)
                return
            ticket = self.local.submit(job.user_id, job.id)
            server = await self.store.guild(job.guild_id) if job.guild_id else None
            translate = self.engine.usable_translation_model(
                server.translate_model if server else None
            )
            work = Work(fallback=claim.fallback, images=images, translate=translate)
            task = self.runner.start(job, ticket, reply, work)
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                # Stopping (procrastinate's grace ran out): the job ends visibly, with Retry.
                self.runner.interrupt(job.id)
                await asyncio.wait([task], timeout=10)
                raise
        finally:
            self.held.discard(claim.job_id)
            await self.queue.release(claim.job_id)

    async def _inputs(self, job: JobRecord) -> tuple[InputImage, ...]:
        """The job's input image, read back from Discord and checked against its hash."""
        if not job.input_url:
            return ()
        fetched = await fetch_image(
            self.session, job.input_url, origin=job.input_url, max_bytes=MAX_INPUT_BYTES
        )
        try:
            data = fetched.data
        finally:
            fetched.close()
        prepare = functools.partial(prepare_input_image, data, filename=fetched.filename)
        image = await asyncio.to_thread(prepare)
        if job.input_sha256 and image.sha256 != job.input_sha256:
            raise BadInput("it changed since it was sent")
        return (image.as_media(),)

    async def _fail(self, job: JobRecord, reply: WebhookReply, message: Shown) -> None:
        with contextlib.suppress(discord.HTTPException):
            await reply.fail(Failure(job, message))
        await self.store.update_job(
            job.id,
            state=JobState.FAILED,
            finished_at=time.time(),
            error=message[:1000],
            interaction_token=None,
        )

    async def _resume(self, claim: Claim, job: JobRecord, reply: WebhookReply) -> bool:
        """A job taken over from a worker that died: True to run it again."""
        try:
            message = await reply.fetch()
        except discord.HTTPException:
            message = None
        shown = ended_state(message) if message is not None else None
        if shown is not None:
            log.info("job %s already shows its ending (%s); log brought up to date", job.id, shown)
            await self.store.update_job(
                job.id, state=shown, finished_at=time.time(), interaction_token=None
            )
            return False
        if claim.attempts <= 2:
            log.info("job %s: its worker died; running it again", job.id)
            return True
        log.info("job %s: its worker died twice; telling it as interrupted", job.id)
        with contextlib.suppress(discord.HTTPException):
            await reply.fail(Failure(job, INTERRUPTED, interrupted=True))
        await self.store.update_job(
            job.id,
            state=JobState.INTERRUPTED,
            finished_at=time.time(),
            error=INTERRUPTED,
            interaction_token=None,
        )
        return False

    # -- leases ---------------------------------------------------------------------------

    async def _heartbeat(self) -> None:
        """Renew this worker's leases; a job whose lease went to another worker stops here,
        its reply untouched (the new owner tells it)."""
        while True:
            await asyncio.sleep(self.settings.job_lease_seconds / 3)
            held = set(self.held)
            if not held:
                continue
            try:
                await self.queue.heartbeat(self.name, held)
                for job_id in held:
                    claim = await self.queue.get(job_id)
                    if claim is not None and claim.owner != self.name:
                        active = self.runner.active.get(job_id)
                        log.warning("job %s: lease lost to %s; stopping it", job_id, claim.owner)
                        if active is not None and active.task is not None:
                            active.task.cancel()
            except Exception:
                log.exception("could not renew the job leases")

    async def _watch(self) -> None:
        """Take over the jobs of workers whose leases ran out (and clear procrastinate's
        tasks left ``doing`` by dead workers: the leases cover their jobs)."""
        while True:
            await asyncio.sleep(self.settings.job_lease_seconds / 3)
            cleared = 0
            if self.app is not None:
                try:
                    for stalled in await self.app.job_manager.get_stalled_jobs(
                        task_name=TASK, seconds_since_heartbeat=STALLED_SECONDS
                    ):
                        await self.app.job_manager.finish_job(
                            stalled, procrastinate.jobs.Status.FAILED, delete_job=True
                        )
                        cleared += 1
                except Exception:
                    log.exception("could not clear stalled procrastinate tasks")
            try:
                claim = await self.queue.take_over(self.name)
            except Exception:
                log.exception("could not look for abandoned jobs")
                continue
            if claim is not None:
                task = self._spawn(self.run(claim))
                task.set_name(f"imagine-taken-over-{claim.job_id}")
            if claim is not None or cleared:
                # A worker died: the procrastinate tasks it had fetched (running a job, or
                # waiting in run_next for one to be allowed to start) died with it, and a
                # waiting job may have no task left to run it. Defer one again for each
                # waiting job (the queueing lock skips those that still have one; a spare
                # task finds nothing waiting and ends).
                await self._redefer_waiting()

    async def _redefer_waiting(self) -> None:
        if self.app is None:
            return
        try:
            for job_id in await self.queue.order():
                await enqueue(self.app, job_id)
        except Exception:
            log.exception("could not defer tasks for the waiting jobs")


async def run(settings: Settings) -> int:
    if not settings.database_url.startswith(("postgresql://", "postgres://")):
        log.error("python worker.py needs DATABASE_URL=postgresql://…")
        return 2
    worker = Worker(settings)
    await worker.start()
    app = build_app(settings.database_url)

    async def run_next(job_id: int) -> None:
        await worker.run_next()

    app.task(name=TASK)(run_next)
    try:
        async with app.open_async():
            await prepare_schema(app, worker.store)
            worker.app = app
            await app.run_worker_async(
                name=worker.name,
                concurrency=settings.worker_concurrency,
                shutdown_graceful_timeout=settings.shutdown_grace_seconds,
                delete_jobs="always",
            )
            worker.app = None
    finally:
        await worker.close()
    return 0


def main() -> int:
    load_dotenv()
    from bot import setup_logging  # the bot's log format, secrets redacted

    try:
        settings = Settings.from_env()
        setup_logging(settings)
    except BadInput as exc:
        print(f"Invalid setting: {exc}", file=sys.stderr)
        return 2
    if not settings.discord_token:
        print("DISCORD_TOKEN is not set", file=sys.stderr)
        return 2
    return asyncio.run(run(settings))


if __name__ == "__main__":
    sys.exit(main())
