"""Issue 16, defect 13: a clean stop logs no error.

Each process is started for real (``python bot.py`` on SQLite and as the PostgreSQL gateway,
``python worker.py``) between the fake Discord and the fake Spaces, stopped with SIGTERM (a
deploy, ``docker compose stop``) or SIGINT (Ctrl-C), and must exit with status 0 and a log
without an error, a traceback, an unclosed session or connection, or a destroyed task.

The processes run with ResourceWarnings shown (``PYTHONWARNINGS``): without them, a database
connection nobody closed vanishes silently at exit, and aiohttp's "Unclosed client session"
shows only when the garbage collector gets to it in time, so a leak would pass by luck.
"""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web

from tests.fakes.discord_server import FakeDiscord
from tests.harness import Harness, running_bot
from tests.processes import start

DIRTY = (
    "ERROR",
    "Traceback",
    "Unclosed",
    "unclosed",
    "ResourceWarning",
    "Task was destroyed",
    "Exception ignored",
)
SHOW_LEAKS = {"PYTHONWARNINGS": "always::ResourceWarning"}
GRACE = 2.0  # SHUTDOWN_GRACE_SECONDS
STOP_WITHIN = 20.0  # a stop with nothing running takes well under a second
SIGNALS = {"SIGTERM": signal.SIGTERM, "SIGINT": signal.SIGINT}


def launch(
    h: Harness, tmp_path: Path, args: list[str], **env: str
) -> tuple[subprocess.Popen, Path]:
    log = tmp_path / f"{Path(args[-1]).stem}.log"
    return start(args, {**h.env, **SHOW_LEAKS, **env}, log), log


def read(log: Path) -> str:
    """The process's log so far (a small file: read at once, even from a coroutine)."""
    return log.read_text()


async def until_logged(
    process: subprocess.Popen, log: Path, found: Callable[[str], bool], within: float = 30
) -> None:
    deadline = time.monotonic() + within
    while not found(read(log)):
        assert process.poll() is None, f"exited with {process.returncode}:\n{read(log)}"
        assert time.monotonic() < deadline, f"not seen in time:\n{read(log)[-3000:]}"
        await asyncio.sleep(0.01)


def logged(text: str) -> Callable[[str], bool]:
    return lambda log: text in log


async def stop(process: subprocess.Popen, signum: int, within: float = STOP_WITHIN) -> float:
    """Send ``signum``; the seconds until the process exited (it must, with status 0)."""
    started = time.monotonic()
    process.send_signal(signum)
    await exited(process, within, after=signal.Signals(signum).name)
    return time.monotonic() - started


async def exited(process: subprocess.Popen, within: float, *, after: str) -> None:
    """The process ends within ``within`` seconds, with status 0."""
    try:
        code = await asyncio.to_thread(process.wait, within)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)
        pytest.fail(f"still running {within:g}s after {after}")
    assert code == 0, f"exit status {code}"


def assert_clean(log: Path) -> str:
    text = read(log)
    dirty = [marker for marker in DIRTY if marker in text]
    assert not dirty, f"{dirty} in the log:\n{text[-4000:]}"
    return text


async def stop_cleanly(process: subprocess.Popen, log: Path, signum: int) -> str:
    try:
        await stop(process, signum)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
    return assert_clean(log)


@pytest.mark.parametrize(
    ("database", "signame"),
    [
        ("sqlite", "SIGINT"),
        ("sqlite", "SIGTERM"),
        ("postgresql", "SIGTERM"),
        ("postgresql", "SIGINT"),
    ],
)
async def test_the_bot_stops_cleanly(tmp_path, request, database, signame):
    """Nothing running: the database, the HTTP session, the LISTEN connection and
    procrastinate (gateway mode) are all closed before the process ends."""
    env = {"DATABASE_URL": request.getfixturevalue("postgres_url")} if database != "sqlite" else {}
    async with running_bot(tmp_path, start=False, **env) as h:
        process, log = launch(h, tmp_path, ["bot.py"])
        await until_logged(process, log, logged("ready as"))
        if database == "postgresql":
            assert "gateway mode" in read(log)
        text = await stop_cleanly(process, log, SIGNALS[signame])
        assert text.rstrip().endswith("stopped"), text[-2000:]  # the close ran to its end


async def test_the_bot_stopped_with_a_job_running_tells_it_and_stops_cleanly(tmp_path):
    async with running_bot(tmp_path, start=False, SHUTDOWN_GRACE_SECONDS=str(GRACE)) as h:
        process, log = launch(h, tmp_path, ["bot.py"])
        await until_logged(process, log, logged("ready as"))
        h.space.generation_delay = 60
        slow = await h.slash({"prompt": "a slow painting"})
        await h.discord.wait_until(lambda: slow.original and slow.original.components, 10)
        await stop_cleanly(process, log, signal.SIGINT)
        assert slow.original.embeds[0]["title"] == "Interrupted"
        labels = [c["label"] for row in slow.original.components for c in row["components"]]
        assert "Retry" in labels


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
async def test_a_worker_stops_cleanly(tmp_path, postgres_url, signame):
    async with running_bot(tmp_path, start=False, DATABASE_URL=postgres_url) as h:
        process, log = launch(h, tmp_path, ["worker.py"])
        await until_logged(process, log, logged("Starting worker"))
        await asyncio.sleep(0.5)  # its loops have started (heartbeat, LISTEN, procrastinate)
        await stop_cleanly(process, log, SIGNALS[signame])


async def test_a_worker_stopped_with_a_job_running_hands_it_back_and_stops_cleanly(
    tmp_path, postgres_url
):
    """The job gets SHUTDOWN_GRACE_SECONDS, then goes back to the queue, visibly; the stop
    itself logs nothing wrong."""
    env = {"DATABASE_URL": postgres_url, "SHUTDOWN_GRACE_SECONDS": str(GRACE)}
    async with running_bot(tmp_path, **env) as h:  # the gateway runs in the test's loop
        process, log = launch(h, tmp_path, ["worker.py"])
        try:
            h.space.generation_delay = 60
            slow = await h.slash({"prompt": "a slow painting"})
            await h.discord.wait_until(
                lambda: slow.original and "Starting" in (slow.original.content or ""), 30
            )
            took = await stop(process, signal.SIGTERM, within=GRACE + 30)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(5)
        assert_clean(log)
        assert took >= GRACE  # the job had its grace period
        assert "Back in line" in (slow.original.content or ""), slow.original.content


async def test_the_bot_stopped_while_connecting_to_the_gateway_stops_cleanly(tmp_path, monkeypatch):
    """discord.py retries a shard's failed connection every 5 s for ever, closed or not: a
    stop while connecting logged 'Failed to connect' tracebacks and never ended."""
    connected = asyncio.Event()

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connected.set()
        await reader.read()
        writer.close()

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/gateway"
    monkeypatch.setattr(FakeDiscord, "gateway_url", property(lambda _fake: url))
    async with server, running_bot(tmp_path, start=False) as h:
        process, log = launch(h, tmp_path, ["bot.py"])
        await asyncio.wait_for(connected.wait(), 30)
        await stop_cleanly(process, log, signal.SIGTERM)


@asynccontextmanager
async def held_models_api(asked: asyncio.Event, release: asyncio.Event) -> AsyncIterator[str]:
    """An OpenAI-compatible ``GET /v1/models`` that answers only once ``release`` is set."""

    async def models(_request: web.Request) -> web.Response:
        asked.set()
        await release.wait()
        return web.json_response({"object": "list", "data": []})

    app = web.Application()
    app.router.add_get("/v1/models", models)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
    finally:
        release.set()
        await runner.cleanup()


async def test_the_bot_stopped_while_setting_up_stops_cleanly(tmp_path):
    """A stop inside ``setup_hook`` (here: the bot asks an OpenAI-compatible API for its
    models) waits for it to end, then closes what it opened; it used to fail on the job
    runner not made yet, and the bot went on running."""
    asked, release = asyncio.Event(), asyncio.Event()
    async with (
        held_models_api(asked, release) as base_url,
        running_bot(tmp_path, start=False, OPENAI_BASE_URL=base_url) as h,
    ):
        process, log = launch(h, tmp_path, ["bot.py"], OPENAI_API_KEY="sk-test-key-123")
        try:
            await asyncio.wait_for(asked.wait(), 30)
            process.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.3)
            release.set()
            await exited(process, STOP_WITHIN, after="SIGTERM")
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(5)
        text = assert_clean(log)
        assert text.rstrip().endswith("stopped"), text[-2000:]


IMPORTED_AIOHTTP = re.compile(r"\|\s*aiohttp$", re.MULTILINE)


@pytest.mark.parametrize("program", ["bot.py", "worker.py"])
@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
async def test_a_process_stopped_while_importing_exits_quietly(tmp_path, signame, program):
    """The imports take most of a second before the event loop's handlers exist: a stop
    then printed a KeyboardInterrupt traceback (SIGINT) or killed the process (SIGTERM)."""
    async with running_bot(tmp_path, start=False) as h:
        # -X importtime logs each import as it ends: aiohttp is one of the first, and
        # discord, the cogs and the engine still follow.
        process, log = launch(h, tmp_path, ["-X", "importtime", program])
        await until_logged(process, log, IMPORTED_AIOHTTP.search, within=30)
        await stop_cleanly(process, log, SIGNALS[signame])
        assert "logging in" not in read(log)  # it was stopped before it started
