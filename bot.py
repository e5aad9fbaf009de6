"""Imagine Bot: ``python bot.py`` (``--sync`` to push the slash commands to Discord now).

Loads ``.env``, sets up logging (secrets redacted at every level), builds the bot with one
HTTP session, one engine, one database and one scheduler for its whole life, loads the cogs,
and runs until SIGTERM/SIGINT, when running jobs get ``SHUTDOWN_GRACE_SECONDS`` to finish.
"""

from __future__ import annotations

import os
import signal
from types import FrameType, TracebackType

if __name__ == "__main__":

    def _stop_early(signum: int, frame: FrameType | None) -> None:
        """A stop before ``run`` put the event loop's handlers in place (the imports alone
        take about a second) ends at once with status 0: nothing is open yet to close.
        Without it, SIGINT printed a KeyboardInterrupt traceback from some import and SIGTERM
        killed the process (status -15). ``os._exit``: an exception raised from here would
        unwind through whatever runs (an import holding a file, the event loop starting)."""
        os._exit(0)

    for _signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(_signum, _stop_early)

import argparse
import asyncio
import functools
import hashlib
import json
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

import aiohttp
import discord
import yarl
from discord.ext import commands
from dotenv import load_dotenv

from cogs.utils.translator import CatalogTranslator
from discord_jobs.language import Languages, LocalizedTree, texts_of
from discord_jobs.launch import Launcher, usable_fallback
from discord_jobs.recovery import reap_orphans, recover_interrupted_jobs
from discord_jobs.region import CellSelect, PaintButton
from discord_jobs.render import NO_PINGS, JobButton
from discord_jobs.shared_launch import SharedLauncher
from discord_jobs.watching import DiscordRequests, gateway_problem
from imagine import logcontext, logsafe
from imagine.backends import BackendTable
from imagine.budget import Budget
from imagine.engine import Engine
from imagine.errors import BadInput, message_of
from imagine.http import new_session
from imagine.i18n import _
from imagine.jobs import Scheduler
from imagine.jsonlog import JsonFormatter
from imagine.member_tokens import MemberTokens
from imagine.metrics import Metrics
from imagine.ops_http import OpsServer, database_answers, serve
from imagine.runner import JobRunner
from imagine.settings import Settings
from imagine.shared import SharedScheduler
from imagine.store import Store, utc_day
from imagine.store.quota_rests import SharedRests
from imagine.vault import Vault
from imagine.whoami import whoami

if TYPE_CHECKING:
    import procrastinate

    from imagine.signals import Signals

log = logging.getLogger("imagine.bot")

EXTENSIONS = (
    "cogs.imagine",
    "cogs.buttons",
    "cogs.beyond",
    "cogs.images",
    "cogs.dm",
    "cogs.admin",
    "cogs.settings",
)
DISCORD_CONNECTIONS = 32
"""Connections kept to Discord's API. discord.py's default is unlimited, which under a burst
opens one new (TLS) connection per request; a bounded, kept-alive pool is much faster."""
QUIET_LOGGERS = ("aiosqlite", "sqlalchemy.engine", "asyncpg")
EXIT_CONFIG = 2
SETTINGS_RELOAD_SECONDS = 60.0
"""Gateway mode: servers' and members' settings are read again this often (a missed notice)."""
HOUSEKEEPING_SECONDS = 3600.0
"""How often the job log is tidied (stale tokens cleared, old jobs purged)."""
USAGE_DAYS_KEPT = 8
"""Days of members' daily-budget counts kept (only today's is checked; yesterday's takes
back the charges of jobs that end after midnight)."""


def point_at_api(base_url: str) -> None:
    """Send discord.py's REST calls (webhooks and interactions included) to ``base_url``."""
    discord.http.Route.BASE = base_url.rstrip("/")


class ImagineBot(commands.AutoShardedBot):
    """The bot: sharded always, so one process or several run the same code. Without
    ``SHARD_COUNT`` discord.py asks ``GET /gateway/bot`` for the count (1 for a small bot)."""

    def __init__(
        self,
        settings: Settings,
        *,
        force_sync: bool = False,
        message_content: bool = True,
        **options,
    ) -> None:
        intents = discord.Intents.default()
        # Guild messages arrive through REST history when a conversation is read; their
        # gateway events (one per message in every channel) would only cost CPU.
        intents.guild_messages = False
        intents.guild_typing = False
        intents.dm_typing = False
        intents.message_content = message_content
        if settings.shard_count is not None:
            options.setdefault("shard_count", settings.shard_count)
        if settings.shard_ids is not None:
            options.setdefault("shard_ids", list(settings.shard_ids))
        options.setdefault(
            "connector", aiohttp.TCPConnector(limit=DISCORD_CONNECTIONS, keepalive_timeout=60)
        )
        metrics = Metrics()  # this process's own registry (several bots may share a process)
        discord_requests = DiscordRequests(metrics.registry)
        if settings.metrics_port is not None:  # counted only where they are served
            options.setdefault("http_trace", discord_requests.trace())
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            allowed_mentions=NO_PINGS,
            help_command=None,
            tree_cls=LocalizedTree,
            **options,
        )
        self.settings = settings
        self.force_sync = force_sync
        self.metrics = metrics
        self.discord_requests = discord_requests
        self.ops: OpsServer | None = None
        self.session: aiohttp.ClientSession | None = None
        self.housekeeping: asyncio.Task[None] | None = None
        self.shutdown_task: asyncio.Future[None] | None = None
        self.shutting_down = False
        self.set_up = asyncio.Event()
        """Set once ``setup_hook`` ended (done or failed): a stop waits for it, since a
        resource cut off while it opens (a database pool, a LISTEN connection) can't be closed."""
        self._launching: asyncio.Task[None] | None = None
        self._closing_all: asyncio.Future[None] | None = None
        self.shared_queue: SharedScheduler | None = None
        self.signals: Signals | None = None
        self.procrastinate: procrastinate.App | None = None
        self.shared_watch: asyncio.Task[None] | None = None

    async def setup_hook(self) -> None:
        try:
            await self._set_up()
        finally:
            self.set_up.set()

    async def _set_up(self) -> None:
        settings = self.settings
        self.ops = await serve(
            self.metrics, self.readiness, host=settings.metrics_host, port=settings.metrics_port
        )
        self.session = new_session()
        self.engine = Engine(settings, session=self.session, observer=self.metrics)
        self.metrics.watch_engine(self.engine)
        await self.engine.discover_models()
        self.store = await Store.open(settings.database_url)
        self.member_tokens = MemberTokens(self.store, Vault.from_setting(settings.secrets_key))
        await self.member_tokens.reseal_all()  # a key put in front of the old one: use it
        self.whoami = functools.partial(whoami, self.session, settings.hf_endpoint)
        self.shared_rests = SharedRests(self.engine.rests, self.store)
        await self.shared_rests.refresh()  # rests met before a restart, or by other processes
        self.languages = Languages(self.store)
        tree = cast(LocalizedTree, self.tree)
        tree.languages = self.languages
        await tree.set_translator(CatalogTranslator())
        self.scheduler = Scheduler(
            settings.max_concurrent_jobs,
            max_queued_per_user=settings.max_jobs_per_user,
            max_total=settings.max_queued_jobs,
        )
        self.runner = JobRunner(
            self.engine,
            self.store,
            self.scheduler,
            redact=self.engine.redact.shown,
            member_token=self.member_tokens.token_for,
            metrics=self.metrics,
        )
        launching: dict[str, Any] = {
            "engine": self.engine,
            "store": self.store,
            "scheduler": self.scheduler,
            "runner": self.runner,
            "budget": Budget(self.store),
            "fallback_model": usable_fallback(self.engine, settings.fallback_model),
        }
        self.launcher: Launcher = (
            await self.start_shared(launching) if settings.uses_workers else Launcher(**launching)
        )
        if self.shared_queue is not None:  # counted in the database, at most once a second
            self.metrics.watch_shared_queue(self.shared_queue.counts)
        else:
            scheduler = self.scheduler
            self.metrics.watch_queue(lambda: (scheduler.waiting, scheduler.running))
        self.add_dynamic_items(JobButton, CellSelect, PaintButton)
        self.tree.error(self.on_app_command_error)
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        await self.point_gateway()
        await self.sync_commands()
        if self.shared_queue is None:  # with workers, a job outlives this process: leases
            await recover_interrupted_jobs(self)
        await self.keep_job_log()  # after recovery, which still needs the tokens it clears
        self.housekeeping = asyncio.create_task(self.keep_job_log_forever())
        if isinstance(self.launcher, SharedLauncher):
            self.shared_watch = asyncio.create_task(self.look_after_shared(self.launcher))

    async def start_shared(self, launching: dict) -> SharedLauncher:
        """Gateway mode (PostgreSQL, workers): jobs go to the shared queue and procrastinate;
        Cancel, positions and settings travel between processes as signals."""
        from imagine.roster import Roster
        from imagine.signals import Signals
        from imagine.tasks import build_app, prepare_schema

        settings = self.settings
        self.shared_queue = SharedScheduler.from_settings(self.store, settings)
        app = build_app(settings.database_url)
        self.procrastinate = await app.open_async()
        await prepare_schema(app, self.store)
        launcher = SharedLauncher(
            queue=self.shared_queue,
            app=app,
            roster=Roster(self.store),
            lease_seconds=settings.job_lease_seconds,
            **launching,
        )
        self.signals = await Signals.connect(settings.database_url)
        await self.signals.follow_settings(self.store)
        await self.signals.on_positions(launcher.refresh_positions)
        self.signals.on_reconnect(launcher.show_positions_now)
        log.info("gateway mode: jobs run in python worker.py processes")
        await launcher.look_for_workers()  # warns when none runs
        return launcher

    async def look_after_shared(self, launcher: SharedLauncher) -> None:
        """Gateway mode, now and then: whether workers run (waiting replies say so when none
        does), jobs left without a queue (a gateway that failed before queueing them: their
        replies are told), and everyone's settings read again (a missed notice)."""
        lease = self.settings.job_lease_seconds
        passes = 0
        while True:
            await asyncio.sleep(lease / 3)
            passes += 1
            try:
                await launcher.look_for_workers()
                await reap_orphans(
                    launcher.queue,
                    self.store,
                    self,
                    image_input=bool(self.engine.image_models()),
                    metrics=self.metrics,
                )
                await self.shared_rests.refresh()  # what the workers' refusals taught them
                if passes * lease / 3 >= SETTINGS_RELOAD_SECONDS:
                    passes = 0
                    await self.store.reload_settings()
            except Exception as exc:
                log.warning("could not look after the shared queue (%s)", exc)

    async def readiness(self) -> str | None:
        """``/readyz``: every shard of this process connected to Discord, and the database
        answers (None), or what is not so."""
        if not self.set_up.is_set():
            return "starting"
        if self.shutting_down:
            return "shutting down"
        problem = gateway_problem(self)
        if problem is not None:
            return problem
        return await database_answers(self.store.ping)

    async def point_gateway(self) -> None:
        """Ask ``GET /gateway/bot`` where the gateway is, so that a custom API base also moves
        it: discord.py's sharded client uses that URL only when it asks for the shard count
        itself; with ``SHARD_COUNT`` set (and for a RESUME after an invalid session) it
        connects to ``DEFAULT_GATEWAY``."""
        _, url, _ = await self.http.get_bot_gateway()
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(url)

    async def keep_job_log(self) -> None:
        """Interaction tokens nobody can use any more are cleared, and finished jobs older
        than ``JOB_RETENTION_DAYS`` are deleted (0 keeps them)."""
        now = time.time()
        cleared = await self.store.clear_stale_tokens(now)
        days = self.settings.job_retention_days
        purged = await self.store.purge_jobs(now - days * 86400) if days > 0 else 0
        await self.store.purge_usage(utc_day(now - USAGE_DAYS_KEPT * 86400))
        if cleared or purged:
            log.info("job log: %d stale token(s) cleared, %d old job(s) purged", cleared, purged)

    async def keep_job_log_forever(self) -> None:
        while True:
            await asyncio.sleep(HOUSEKEEPING_SECONDS)
            try:
                await self.keep_job_log()
            except Exception:
                log.exception("could not tidy the job log; trying again later")

    async def command_hash(self) -> str:
        """The commands as they would be synced, their translations included."""
        translator = self.tree.translator
        commands = self.tree.get_commands()
        if translator is None:
            payload = [command.to_dict(self.tree) for command in commands]
        else:
            payload = [await c.get_translated_payload(self.tree, translator) for c in commands]
        canonical = json.dumps(payload, sort_keys=True, default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()

    async def sync_commands(self) -> bool:
        """Sync the command tree only when it changed since the last sync (or ``--sync``).

        Only the process running shard 0 syncs: the commands are the application's, not a
        shard's, so N gateway processes must not push them N times (or race on the hash)."""
        if not self.settings.runs_shard_zero:
            log.info("slash commands are synced by the process running shard 0, not this one")
            return False
        key = f"command_hash:{self.application_id}"
        digest = await self.command_hash()
        if not self.force_sync and await self.store.get_meta(key) == digest:
            log.info("slash commands unchanged since the last sync; not syncing")
            return False
        synced = await self.tree.sync()
        await self.store.set_meta(key, digest)
        log.info("synced %d application commands", len(synced))
        return True

    @property
    def http_session(self) -> aiohttp.ClientSession:
        """The one HTTP session of the bot's life (backends, downloads, attachments)."""
        assert self.session is not None
        return self.session

    @property
    def me_id(self) -> int:
        """The bot's own user id (known once logged in, before any event arrives)."""
        assert self.user is not None
        return self.user.id

    async def on_app_command_error(
        self, interaction: discord.Interaction, error: discord.app_commands.AppCommandError
    ) -> None:
        if isinstance(error, discord.app_commands.CheckFailure):
            return  # the check already answered
        original = getattr(error, "original", error)
        tr = texts_of(interaction)
        if isinstance(original, BadInput):
            text = tr(message_of(original))
        else:
            log.error("command failed", exc_info=original)
            text = tr(_("Something went wrong on our side; please try again."))
        try:
            if interaction.response.is_done():
                await interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_PINGS)
            else:
                await interaction.response.send_message(
                    text, ephemeral=True, allowed_mentions=NO_PINGS
                )
        except discord.HTTPException:
            pass

    async def on_ready(self) -> None:
        log.info("ready as %s (%s) in %d servers", self.user, self.me_id, len(self.guilds))

    async def launch_shards(self) -> None:
        """discord.py's, as a task that ``close`` can cancel: a shard whose connection fails
        is retried every 5 s for ever, even once the client is closed, so a stop while
        connecting would otherwise log an error every 5 s and never end."""
        self._launching = asyncio.ensure_future(super().launch_shards())
        try:
            await self._launching
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if not self._launching.cancelled() or (current and current.cancelling()):
                raise
            # cancelled by close(): connect() goes on to its loop, which sees the client closed

    async def shutdown(self) -> None:
        """Stop taking jobs, let running ones finish within the grace period, tell the rest."""
        if self.shutting_down:
            return
        self.shutting_down = True
        await self.set_up.wait()
        runner: JobRunner | None = getattr(self, "runner", None)
        if runner is None:  # setup_hook failed: start() raises and the bot closes anyway
            await self.close()
            return
        grace = self.settings.shutdown_grace_seconds
        log.info("shutting down: %d job(s) active, %gs grace", len(runner.active), grace)
        self.scheduler.close()
        started = time.monotonic()
        if not await runner.wait_idle(grace):
            for job_id in list(runner.active):
                runner.interrupt(job_id)
            await runner.wait_idle(max(5.0, grace - (time.monotonic() - started)))
        await self.close()

    async def close(self) -> None:
        """Close everything, once; every caller (the signals' shutdown, ``async with``'s exit,
        discord.py itself after a fatal gateway error, the tests) waits until all is closed.

        discord.py's ``close`` and ``__aexit__`` wait only for discord.py's own part (the
        gateway, its REST session): ``start`` then returns, ``run`` returns, and
        ``asyncio.Runner`` cancels whatever is still closing. Our session, database and LISTEN
        connection closed after that part were cut off half way (a ``CancelledError`` in the
        database's close, "Unclosed client session")."""
        if self._closing_all is None:
            self._closing_all = asyncio.ensure_future(self._close_all())
        await asyncio.shield(self._closing_all)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def _close_all(self) -> None:
        """Jobs and the gateway first (nothing new comes in), then what they used."""
        background = [t for t in (self.housekeeping, self.shared_watch) if t is not None]
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        try:
            if getattr(self, "runner", None) is not None:
                await self.runner.stop()
            launcher = getattr(self, "launcher", None)
            if isinstance(launcher, SharedLauncher):
                await launcher.close()
            if self._launching is not None and not self._launching.done():
                self._launching.cancel()
                await asyncio.gather(self._launching, return_exceptions=True)
            await super().close()
        finally:
            closers: list[tuple[str, Callable[[], Awaitable[object]]]] = []
            if self.ops is not None:
                closers.append(("the metrics server", self.ops.close))
            shared_rests: SharedRests | None = getattr(self, "shared_rests", None)
            if shared_rests is not None:
                closers.append(("the quota rests being kept", shared_rests.close))
            if self.signals is not None:
                closers.append(("the signal connection", self.signals.close))
            if self.procrastinate is not None:
                closers.append(("procrastinate", self.procrastinate.close_async))
            if getattr(self, "store", None) is not None:
                closers.append(("the database", self.store.close))
            if self.session is not None:
                closers.append(("the HTTP session", self.session.close))
            for name, close in closers:
                try:
                    await close()
                except Exception:
                    log.exception("could not close %s", name)
        log.info("stopped")


def setup_logging(settings: Settings, handler: logging.Handler | None = None) -> None:
    """discord.py's log format and colours, or one JSON object a line (``LOG_FORMAT=json``),
    with every secret redacted at every level; records about a job carry its ids."""
    level = getattr(logging, settings.log_level, logging.INFO)
    secrets = BackendTable.build(settings).secrets()  # IMAGINE_BACKENDS' keys too
    formatter: logging.Formatter = discord.utils.MISSING
    if settings.log_format == "json":
        formatter = JsonFormatter(logsafe.Redactor(secrets))
        logging.captureWarnings(True)  # a warning printed as text would break the lines
    discord.utils.setup_logging(
        handler=handler or discord.utils.MISSING, formatter=formatter, level=level, root=True
    )
    # The database layers log SQL parameters at INFO and DEBUG (interaction tokens among them).
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    logcontext.install()
    logsafe.install(secrets)
    sys.excepthook = log_uncaught


def log_uncaught(
    kind: type[BaseException], error: BaseException, traceback: TracebackType | None
) -> None:
    """An exception that ends the program is a record like any other (redacted, one JSON
    line under ``LOG_FORMAT=json``), not a traceback printed raw to standard error."""
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, error, traceback)
        return
    log.critical("stopped by an uncaught exception", exc_info=(kind, error, traceback))


def shut_down(bot: ImagineBot) -> None:
    """A signal handler: start the graceful shutdown (it runs as its own task, which ``run``
    awaits before it returns); a second signal changes nothing."""
    if bot.shutdown_task is None:
        bot.shutdown_task = asyncio.ensure_future(bot.shutdown())


async def run(settings: Settings, *, force_sync: bool) -> int:
    point_at_api(settings.discord_api_base_url)
    token = settings.discord_token
    if not token:
        raise BadInput("DISCORD_TOKEN is not set")
    message_content = True
    while True:
        bot = ImagineBot(settings, force_sync=force_sync, message_content=message_content)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, functools.partial(shut_down, bot))
        try:
            try:
                async with bot:
                    await bot.start(token)
            finally:
                await _finish_shutdown(bot)
            return 0
        except discord.PrivilegedIntentsRequired:
            if not message_content:
                raise
            log.warning(
                "The Message Content intent is not enabled for this application in the "
                "developer portal; running without it (see README: the conversation is then "
                "empty except in DMs, mentions and 'Imagine this')."
            )
            message_content = False
        except discord.LoginFailure:
            log.error("Discord refused DISCORD_TOKEN: check the token in .env")
            return EXIT_CONFIG


async def _finish_shutdown(bot: ImagineBot) -> None:
    """Let a signal's shutdown task end before ``run`` returns: ``asyncio.Runner`` would
    cancel it (a stop before ``setup_hook`` ended is still waiting for it)."""
    task = bot.shutdown_task
    if task is None:
        return
    if not bot.set_up.is_set():
        task.cancel()
    (outcome,) = await asyncio.gather(task, return_exceptions=True)
    if isinstance(outcome, Exception):
        log.error("the shutdown failed", exc_info=outcome)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run Imagine Bot")
    parser.add_argument("--sync", action="store_true", help="sync slash commands now")
    args = parser.parse_args(argv)
    load_dotenv()
    try:
        settings = Settings.from_env()
        if not settings.discord_token:
            print(
                "DISCORD_TOKEN is not set: copy .env.example to .env and put your bot token there.",
                file=sys.stderr,
            )
            return EXIT_CONFIG
        setup_logging(settings)  # reads IMAGINE_BACKENDS too (its keys are secrets)
    except BadInput as exc:
        print(f"Invalid setting: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(run(settings, force_sync=args.sync))


def loop_factory():
    """uvloop where it is installed (Linux, macOS): the same asyncio API at about half the
    per-event cost, which is what bursts of interactions are made of."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


if __name__ == "__main__":
    sys.exit(main())
