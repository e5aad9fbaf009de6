"""``python worker.py``: runs jobs for the gateways (``python bot.py``), on PostgreSQL.

The gateway makes the job's row and reply, puts the job in the shared queue
(``imagine.shared``) and defers one procrastinate task for it (``imagine.tasks``). A task is
a token that says "a job waits": the worker that fetches it claims the fairest job the queue
lets start — not necessarily the one it was deferred for — and runs it in a slot of its own
(``WORKER_CONCURRENCY`` at once), so a job's life never depends on procrastinate's, which
stops and starts again when the database goes away. The queue is the truth; tokens are made
good every few seconds (``defer_missing``), so no waiting job is ever left without one.

A job runs here exactly as in the one-process bot (``imagine.runner``, ``imagine.drawing``):
generated, downloaded, fitted, and shown through a ``WebhookReply`` (the interaction's token;
the bot's REST API for DMs and expired tokens; no gateway connection).

Leases: each running job's lease is renewed every third of ``JOB_LEASE_SECONDS`` on the
database's clock. A worker that died (SIGKILL) stops renewing; once its leases ran out the
others take all its jobs over in one pass: a reply that already shows an ending only has the
job log brought up to date; else the job runs again once, and is told as interrupted if it
was already run again. A worker that finds a lease gone (it was cut off) lets that job go
without touching its reply, and never shows an ending for a job it no longer holds.

Stopping (SIGTERM, SIGINT): no new claims; running jobs get ``SHUTDOWN_GRACE_SECONDS`` to
finish; the rest are handed back to the queue in their place, for the next worker; every
waiting job keeps a task. A Cancel is kept on the job's row and looked at when a job starts
and at every heartbeat, so none is lost with a signal.
"""

from __future__ import annotations

import os
import signal

if __name__ == "__main__":
    # As bot.py: a stop before ``run`` put the loop's handlers in place ends at once, quietly.
    for _signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(_signum, lambda _signum, _frame: os._exit(0))

import asyncio
import contextlib
import functools
import logging
import socket
import sys
import time
import uuid
from collections.abc import Coroutine
from typing import Any

import discord
import procrastinate
from dotenv import load_dotenv

from discord_jobs.earlier_input import read_earlier_input
from discord_jobs.endings import end_cancelled, end_failed
from discord_jobs.recovery import INTERRUPTED, ending_shown, reap_orphans
from discord_jobs.render import Offers
from discord_jobs.replies import WebhookReply
from discord_jobs.watching import DiscordRequests
from imagine import logcontext
from imagine.drawing import InputImage, Work
from imagine.engine import Engine
from imagine.errors import BadInput, FetchError, message_of
from imagine.http import new_session
from imagine.i18n import Shown, _
from imagine.jobs import Scheduler
from imagine.member_tokens import MemberTokens
from imagine.metrics import Metrics
from imagine.ops_http import OpsServer, database_answers, serve
from imagine.outcomes import Failure
from imagine.progress import StatusEditor
from imagine.roster import Roster
from imagine.runner import JobRunner
from imagine.settings import Settings
from imagine.shared import Claim, SharedScheduler
from imagine.signals import Signals
from imagine.store import JobRecord, JobState, Store
from imagine.store.database import retrying
from imagine.store.quota_rests import SharedRests
from imagine.tasks import TASK, build_app, clear_stalled, defer_missing, prepare_schema
from imagine.vault import Vault

log = logging.getLogger("imagine.worker")

WORKER_EDITS = 3
"""Status edits per 5 s window here: the token's bucket holds 5; the gateway may have spent
one on the job's place just before the claim, and one is kept for the result."""
STALLED_SECONDS = 60.0
"""A procrastinate task whose worker sent no heartbeat for this long belongs to a dead one."""
IDLE_RECHECK_SECONDS = 1.0
"""A task with jobs waiting but none allowed to start looks again this often (or at once on
a positions signal)."""
SETTINGS_RELOAD_SECONDS = 60.0
"""Servers' and members' settings are read again this often, in case a notice was missed."""
TASK_LOOP_RESTART_SECONDS = 1.0
"""Procrastinate's loop stops when the database goes away; it is started again after this."""
TASK_LOOP_GRACE_SECONDS = 5.0
"""At a stop, how long procrastinate's loop may take to wind down (our tasks end at once)."""
SOMETHING_WENT_WRONG = _("Something went wrong on our side; please try again.")


class Worker:
    def __init__(self, settings: Settings, *, name: str | None = None) -> None:
        self.settings = settings
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.held: set[int] = set()
        """Jobs this worker holds a lease on (claimed or taken over, until released)."""
        self.handing_back: set[int] = set()
        self.slots = asyncio.Semaphore(settings.worker_concurrency)
        self.wake = asyncio.Event()
        self.tasks: set[asyncio.Task[Any]] = set()
        self.runs: dict[int, asyncio.Task[None]] = {}
        self.closing = False
        self.app: procrastinate.App | None = None
        self.metrics = Metrics()
        self.ops: OpsServer | None = None

    async def start(self) -> None:
        settings = self.settings
        discord.http.Route.BASE = settings.discord_api_base_url.rstrip("/")
        self.ops = await serve(
            self.metrics, self.readiness, host=settings.metrics_host, port=settings.metrics_port
        )
        self.session = new_session()
        self.engine = Engine(settings, session=self.session, observer=self.metrics)
        self.metrics.watch_engine(self.engine)
        await self.engine.discover_models()
        self.store = await Store.open(settings.database_url)
        self.shared_rests = SharedRests(self.engine.rests, self.store)
        await self.shared_rests.refresh()
        self.queue = SharedScheduler.from_settings(self.store, settings)
        self.metrics.watch_shared_queue(self.queue.counts)
        self.roster = Roster(self.store)
        tokens = MemberTokens(self.store, Vault.from_setting(settings.secrets_key))
        # The shared queue decides what runs; the runner's own scheduler never makes it wait.
        self.local = Scheduler(1_000_000, max_queued_per_user=1_000_000)
        self.runner = JobRunner(
            self.engine,
            self.store,
            self.local,
            redact=self.engine.redact.shown,
            editor_factory=functools.partial(StatusEditor, per_window=WORKER_EDITS),
            still_mine=self._still_mine,
            member_token=tokens.token_for,  # a member's own token, read at the job's turn
            metrics=self.metrics,
        )
        traced: dict[str, Any] = {}  # Discord's answers counted where they are served
        if self.ops is not None:
            traced["http_trace"] = DiscordRequests(self.metrics.registry).trace()
        self.client = discord.Client(intents=discord.Intents.none(), **traced)
        await self.client.login(settings.discord_token or "")  # REST only: no gateway
        self.signals = await Signals.connect(settings.database_url)
        await self.signals.on_cancel(self.cancel)
        await self.signals.on_positions(self.wake.set)
        await self.signals.follow_settings(self.store)
        self.signals.on_reconnect(self._check_cancels)
        await self.roster.join(self.name, settings.worker_concurrency)
        self._spawn(self._heartbeat())
        self._spawn(self._watch())
        self._spawn(self._reload_settings())
        log.info("worker %s ready", self.name)

    async def readiness(self) -> str | None:
        """``/readyz``: the database answers (a worker needs no gateway)."""
        if not hasattr(self, "store"):
            return "starting"
        if self.closing:
            return "stopping"
        return await database_answers(self.store.ping)

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def close(self) -> None:
        """Close what ``start`` opened (as far as it got), each even if another fails."""
        if self.ops is not None:
            await self.ops.close()
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        closers = (
            ("leaving the workers", lambda: self.roster.leave(self.name), "roster"),
            ("the signal connection", lambda: self.signals.close(), "signals"),
            ("the Discord client", lambda: self.client.close(), "client"),
            ("the quota rests being kept", lambda: self.shared_rests.close(), "shared_rests"),
            ("the database", lambda: self.store.close(), "store"),
            ("the HTTP session", lambda: self.session.close(), "session"),
        )
        for what, close, needs in closers:
            if not hasattr(self, needs):
                continue
            try:
                await close()
            except Exception:
                log.exception("could not close %s", what)

    # -- signals --------------------------------------------------------------------------

    def cancel(self, job_id: int, by: str | None) -> None:
        """Someone pressed Cancel (in any gateway): stop the job if it runs here."""
        if self.runner.cancel(job_id, by=by):
            log.info("job %s cancelled by %s", job_id, by or "someone")

    async def _check_cancels(self) -> None:
        """After a reconnection: the Cancels signalled meanwhile, from the jobs' rows."""
        for job_id in list(self.held):
            claim = await self.queue.get(job_id)
            if claim is not None and claim.cancel_requested:
                self.cancel(job_id, claim.cancel_by)

    # -- running --------------------------------------------------------------------------

    async def take_turn(self) -> bool:
        """The procrastinate task: claim the fairest job that may start and run it in a slot
        of this worker (not in the task, which ends at once); False when no job was waiting
        any more, or the worker is stopping."""
        while not self.closing:
            await self.slots.acquire()
            try:
                # A slot may come free as the worker begins to stop (a job handed back).
                claim = None if self.closing else await self.queue.claim(self.name)
            except BaseException:
                self.slots.release()
                raise
            if claim is not None:
                self.start_run(claim, slot=True)
                return True
            self.slots.release()
            waiting, _ = await self.queue.counts()
            if not waiting:
                return False
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(IDLE_RECHECK_SECONDS):
                    await self.wake.wait()
        return False

    def start_run(self, claim: Claim, *, slot: bool) -> asyncio.Task[None]:
        """Run a claimed job in this worker's own task. ``slot``: it holds one of the
        worker's ``WORKER_CONCURRENCY`` slots, given back when it ends (a job taken over
        from a dead worker holds none)."""
        self.held.add(claim.job_id)
        task = asyncio.get_running_loop().create_task(
            self._run_claimed(claim, slot),
            name=f"imagine-claim-{claim.job_id}",
            context=logcontext.job_context(claim.job_id, user_id=claim.user_id),  # + its server
        )
        self.runs[claim.job_id] = task
        return task

    async def _run_claimed(self, claim: Claim, slot: bool) -> None:
        try:
            await self.run(claim)
        finally:
            self.held.discard(claim.job_id)
            self.runs.pop(claim.job_id, None)
            if slot:
                self.slots.release()

    async def run(self, claim: Claim) -> None:
        """Run one claimed job to its ending, then take it out of the queue (or hand it back
        when this worker stops first)."""
        job_id = claim.job_id
        try:
            if self.closing:
                self.handing_back.add(job_id)  # claimed as the worker began to stop
                return
            await self._run(claim)
        except Exception:
            log.exception("job %s could not be run", job_id)
            await self._lost_before_start(job_id)
        finally:
            if job_id in self.handing_back:
                self.handing_back.discard(job_id)
                if await self.queue.hand_back(job_id, self.name):
                    log.info("job %s handed back to the queue", job_id)
            else:
                await self.queue.release(job_id, owner=self.name)

    async def _run(self, claim: Claim) -> None:
        job = await retrying(lambda: self.store.job(claim.job_id), what="reading a job")
        if job is None:
            return
        logcontext.learn(guild_id=job.guild_id)
        reply = WebhookReply(
            self.client,
            job,
            requester=claim.requester,
            offers=Offers.of(self.engine),
        )
        if claim.cancel_requested:  # pressed while it was being claimed or taken over
            await self._cancelled(job, reply, claim.cancel_by)
            return
        if claim.attempts > 1 and not await self._resume(claim, job, reply):
            return
        await self.queue.wait_place_shown(job.id)  # its gateway's last place edit lands first
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
        translate = self.engine.usable_translation_model(server.translate_model if server else None)
        work = Work(fallback=claim.fallback, images=images, translate=translate)
        if job.id in self.handing_back:  # the worker began to stop meanwhile
            return
        current = await self.queue.get(job.id)  # a Cancel pressed since the claim: no drawing
        if current is not None and current.cancel_requested:
            self.local.release(ticket)
            await self._cancelled(job, reply, current.cancel_by)
            return
        await self.runner.start(job, ticket, reply, work)  # later Cancels: signal, heartbeat

    async def _cancelled(self, job: JobRecord, reply: WebhookReply, by: str | None) -> None:
        await end_cancelled(self.store, self.metrics, reply, job, by)

    async def _inputs(self, job: JobRecord) -> tuple[InputImage, ...]:
        """The job's input image, read back from Discord and checked against its hash."""
        if not job.input_url:
            return ()
        earlier = await read_earlier_input(self.client, self.session, job)
        return (earlier.image.as_media(),)

    async def _fail(self, job: JobRecord, reply: WebhookReply, message: Shown) -> None:
        await end_failed(self.store, self.metrics, reply, Failure(job, message))

    async def _lost_before_start(self, job_id: int) -> None:
        """Something failed before the runner had the job: its reply must not stay on its
        last status (the reaper catches it if even this fails)."""
        try:
            job = await self.store.job(job_id)
            if job is not None and job.state not in (JobState.DONE, JobState.CANCELLED):
                reply = WebhookReply(self.client, job)
                await self._fail(job, reply, SOMETHING_WENT_WRONG)
        except Exception:
            log.exception("could not tell job %s that it failed", job_id)

    async def _resume(self, claim: Claim, job: JobRecord, reply: WebhookReply) -> bool:
        """A job taken over from a worker that died: True to run it again."""
        shown = await ending_shown(reply.fetch)
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
        failure = Failure(job, INTERRUPTED, interrupted=True)
        await end_failed(self.store, self.metrics, reply, failure)
        return False

    async def _still_mine(self, job: JobRecord) -> bool:
        return await self.queue.owns(job.id, self.name)

    # -- stopping -------------------------------------------------------------------------

    async def wind_down(self, grace: float) -> None:
        """Stop claiming; let running jobs finish within ``grace`` seconds; hand the rest
        back to the queue, where they wait in their place for the next worker."""
        self.closing = True
        self.wake.set()
        runs = dict(self.runs)
        if not runs:
            return
        log.info("stopping: %d job(s) running, %gs to finish", len(runs), grace)
        await asyncio.wait(runs.values(), timeout=grace)
        late = {job_id: task for job_id, task in runs.items() if not task.done()}
        for job_id in late:
            self.handing_back.add(job_id)
            self.runner.hand_back(job_id)
        if late:
            await asyncio.wait(late.values(), timeout=30)

    # -- leases, takeovers, tokens --------------------------------------------------------

    async def _heartbeat(self) -> None:
        """Renew this worker's row and its leases; stop a job whose lease went to another
        worker (its reply untouched: the new owner tells it), and one with a Cancel on it."""
        while True:
            await asyncio.sleep(self.settings.job_lease_seconds / 3)
            try:
                await self.roster.renew(self.name, self.settings.worker_concurrency)
                leases = await self.queue.heartbeat(self.name, set(self.held))
            except Exception as exc:
                log.warning("could not renew the job leases (%s)", exc)
                continue
            for lease in leases.values():
                if not lease.held:
                    if self.runner.let_go(lease.job_id):
                        log.warning(
                            "job %s: lease lost to another worker; letting it go", lease.job_id
                        )
                elif lease.cancel_requested:
                    self.cancel(lease.job_id, lease.cancel_by)

    async def _watch(self) -> None:
        """Take over the jobs of workers whose leases ran out, end jobs left without a queue,
        clear dead workers' tasks, and make sure every waiting job has a task."""
        while True:
            await asyncio.sleep(self.settings.job_lease_seconds / 3)
            await self.look_after_others()

    async def look_after_others(self) -> None:
        try:
            await self.shared_rests.refresh()  # quota rests other workers met
        except Exception as exc:
            log.warning("could not read the quota rests (%s)", exc)
        try:
            taken = await self.queue.take_over(self.name)
        except Exception as exc:
            log.warning("could not look for abandoned jobs (%s)", exc)
            taken = []
        for claim in taken:
            log.info("job %s: taking it over from %s", claim.job_id, claim.owner)
            self.start_run(claim, slot=False)
        try:
            await reap_orphans(
                self.queue,
                self.store,
                self.client,
                image_input=bool(self.engine.image_models()),
                metrics=self.metrics,
            )
        except Exception as exc:
            log.warning("could not look for lost jobs (%s)", exc)
        if self.app is None:
            return
        try:
            await clear_stalled(self.app, STALLED_SECONDS)
            await defer_missing(self.app, self.store)
        except Exception as exc:
            log.warning("could not make good the waiting jobs' tasks (%s)", exc)

    async def _reload_settings(self) -> None:
        while True:
            await asyncio.sleep(SETTINGS_RELOAD_SECONDS)
            try:
                await self.store.reload_settings()
            except Exception as exc:
                log.warning("could not read the settings again (%s)", exc)


async def run_tasks(app: procrastinate.App, worker: Worker, settings: Settings) -> None:
    """Procrastinate's loop, started again whenever it stops by itself (it does when the
    database goes away); only a cancel ends it. Jobs run outside it (``Worker.start_run``),
    so a restart of the loop never touches them."""
    while True:
        try:
            await app.run_worker_async(
                name=worker.name,
                concurrency=settings.worker_concurrency,
                shutdown_graceful_timeout=TASK_LOOP_GRACE_SECONDS,
                delete_jobs="always",
                install_signal_handlers=False,
            )
            log.warning("procrastinate's loop stopped; starting it again")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("procrastinate's loop stopped (%s); starting it again", exc)
        await asyncio.sleep(TASK_LOOP_RESTART_SECONDS)


async def run(settings: Settings) -> int:
    if not settings.database_url.startswith(("postgresql://", "postgres://")):
        log.error("python worker.py needs DATABASE_URL=postgresql://…")
        return 2
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    worker = Worker(settings)
    app = build_app(settings.database_url)

    async def run_next(job_id: int) -> None:
        await worker.take_turn()

    app.task(name=TASK)(run_next)
    try:
        await worker.start()
        async with app.open_async():
            await prepare_schema(app, worker.store)
            worker.app = app
            await worker.look_after_others()  # tokens lost by a previous stop, jobs left
            loop_task = loop.create_task(run_tasks(app, worker, settings))
            await stopping.wait()
            log.info("stopping worker %s", worker.name)
            await worker.wind_down(settings.shutdown_grace_seconds)
            loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop_task
            # The tasks this worker fetched are gone with its loop: every waiting job (the
            # ones handed back too) keeps one for the next worker.
            await defer_missing(app, worker.store)
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
