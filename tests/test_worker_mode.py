"""Issue 16: worker mode that loses nothing. Each test reproduces one defect found by running
the gateway and workers as an operator would: PostgreSQL, real procrastinate, the gateway in
this process against the fake Discord and the fake Spaces, workers as real ``python
worker.py`` processes stopped with real signals (SIGTERM, SIGKILL, SIGSTOP for a worker cut
off), and LISTEN connections dropped by PostgreSQL itself (``pg_terminate_backend``)."""

from __future__ import annotations

import asyncio
import logging
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from imagine.store import job_queue, jobs
from tests.fakes.openai_server import FakeOpenAI
from tests.harness import MANAGE_GUILD, Harness, running_bot
from tests.processes import ROOT, ended, endings, start, stop

LEASE = 3.0
WORKER = ["worker.py"]


def worker_env(**extra: str) -> dict[str, str]:
    return {
        "JOB_LEASE_SECONDS": str(LEASE),
        "SHUTDOWN_GRACE_SECONDS": "1",
        "WORKER_CONCURRENCY": "4",
        **extra,
    }


class Workers:
    """``python worker.py`` processes of one test, logged to files, stopped at the end."""

    def __init__(self, h: Harness, folder: Path) -> None:
        self.h = h
        self.folder = folder
        self.processes: list[subprocess.Popen] = []

    def start(self, **env: str) -> subprocess.Popen:
        log = self.folder / f"worker{len(self.processes)}.log"
        process = start(WORKER, {**self.h.env, **env}, log)
        process.log = log  # type: ignore[attr-defined]
        self.processes.append(process)
        return process

    def log(self, process: subprocess.Popen) -> str:
        return process.log.read_text()  # type: ignore[attr-defined]

    async def stop_all(self) -> None:
        """Stopped while this loop (the fakes) keeps answering them."""
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)
            await asyncio.to_thread(stop, process)
        for process in self.processes:
            print(f"----- {process.log}\n{self.log(process)[-4000:]}")  # type: ignore[attr-defined]


async def eventually(check: Callable[[], Any], within: float, step: float = 0.05) -> Any:
    """``check()`` (awaited if need be) once it is truthy; fails after ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        assert loop.time() < deadline, "not within the time"
        await asyncio.sleep(step)


async def queue_rows(h: Harness) -> dict[int, Any]:
    async with h.bot.store.engine.connect() as conn:
        rows = await conn.execute(sa.select(job_queue))
        return {row.job_id: row for row in rows}


def shows(interaction, text: str) -> bool:
    """Whether the interaction's reply shows ``text`` now."""
    message = interaction.original
    return message is not None and text in (message.content or "")


def cancel_button(interaction) -> str:
    """The custom id of the Cancel button on the interaction's reply."""
    return next(
        c["custom_id"]
        for row in interaction.original.components
        for c in row["components"]
        if c.get("custom_id", "").startswith("imagine:cancel:")
    )


def job_id_of(interaction) -> int:
    for row in interaction.original.components:
        for component in row.get("components", []):
            if component.get("custom_id", "").startswith("imagine:"):
                return int(component["custom_id"].rsplit(":", 1)[1])
    raise AssertionError("no job button yet")


def drawn(h: Harness, prompt: str) -> int:
    """How many times the fake Space was asked to draw ``prompt``."""
    return sum(
        r.json and r.json.get("data", [None])[0] == prompt for r in h.space.joins("g4f-flux")
    )


async def members(h: Harness, count: int) -> list[dict]:
    users = []
    for index in range(count):
        user = h.discord.add_user(f"member{index}")
        h.discord.add_member(h.guild.id, user)
        users.append(user)
    return users


# -- 1. A worker stopped with SIGTERM strands waiting jobs -----------------------------------


async def test_sigterm_hands_back_and_strands_no_waiting_job(tmp_path, postgres_url):
    """Three jobs, one may run at a time, a worker with two task slots: one runs, the others
    wait in its slots. SIGTERM: the running one is handed back once the grace is over, and
    every waiting job keeps a task, so the next worker draws all three, each once."""
    env = worker_env(MAX_CONCURRENT_JOBS="1", WORKER_CONCURRENCY="2")
    async with running_bot(tmp_path, DATABASE_URL=postgres_url, **env) as h:
        workers = Workers(h, tmp_path)
        try:
            h.space.generation_delay = 8
            users = await members(h, 3)
            asked = [
                await h.slash({"prompt": f"painting {i}"}, user=u) for i, u in enumerate(users)
            ]
            first = workers.start()
            await eventually(lambda: shows(asked[0], "Starting"), 30)
            first.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(first.wait, 20) == 0
            h.space.generation_delay = 0.2
            workers.start()
            await h.discord.wait_until(lambda: all(ended(i.original) for i in asked), 40)
            for index, interaction in enumerate(asked):
                assert len(endings(interaction.original)) == 1
                assert interaction.original.attachments, interaction.original.embeds
                assert drawn(h, f"painting {index}") in (1, 2)  # the first maybe cut off once
            shown = [v.get("content") or "" for v in asked[0].original.versions]
            assert any("Back in line" in text for text in shown)
            await eventually(lambda: _queue_empty(h), 5)
        finally:
            await workers.stop_all()


# -- 2. Lease takeover races -------------------------------------------------------------------


async def test_a_cut_off_worker_neither_ends_nor_releases_the_new_owners_job(
    tmp_path, postgres_url
):
    """Worker A is frozen (SIGSTOP: cut off, no heartbeats) for longer than the lease while it
    draws; B takes the job over and draws it. A, thawed, must let the job go: no ending of its
    own, and the queue row (B's) stays, so Cancel still reaches the job."""
    async with running_bot(tmp_path, DATABASE_URL=postgres_url, **worker_env()) as h:
        workers = Workers(h, tmp_path)
        try:
            h.space.generation_delay = 6
            a = workers.start()
            asked = await h.slash({"prompt": "a contested painting"}, user=h.alice)
            await eventually(lambda: shows(asked, "Starting"), 30)
            job_id = job_id_of(asked)
            a.send_signal(signal.SIGSTOP)
            h.space.generation_delay = 30
            b = workers.start()
            await eventually(
                lambda: _owner_is(h, job_id, lambda owner: f":{b.pid}:" in owner), LEASE * 4
            )
            a.send_signal(signal.SIGCONT)
            await asyncio.sleep(LEASE)  # A's drawing ends, and a heartbeat passes
            row = (await queue_rows(h)).get(job_id)
            assert row is not None and f":{b.pid}:" in row.owner  # B's row, still there
            assert not endings(asked.original)  # A showed no ending for a job it lost
            cancel = cancel_button(asked)
            await h.discord.press_button(asked.original, cancel, user=h.alice)
            await h.discord.wait_until(lambda: shows(asked, "Cancelled by alice"), 10)
            assert not asked.original.attachments
            assert "lease lost to another worker" in workers.log(a)
        finally:
            await workers.stop_all()


async def _queue_empty(h: Harness) -> bool:
    return await queue_rows(h) == {}


async def _owner_is(h: Harness, job_id: int, test: Callable[[str], bool]) -> bool:
    row = (await queue_rows(h)).get(job_id)
    return bool(row is not None and row.owner and test(row.owner))


SKEWED_CLOCK = """
import os, time
_skew = float(os.environ.get("CLOCK_SKEW_SECONDS", "0"))
_time = time.time
time.time = lambda: _time() + _skew
"""


async def test_leases_are_on_the_databases_clock_not_a_machines(tmp_path, postgres_url):
    """A worker on a machine whose clock runs two minutes ahead must not see every lease of
    the others as run out (and take their jobs over, drawing them twice)."""
    skew = tmp_path / "skew"
    skew.mkdir()
    (skew / "sitecustomize.py").write_text(SKEWED_CLOCK)
    async with running_bot(tmp_path, DATABASE_URL=postgres_url, **worker_env()) as h:
        workers = Workers(h, tmp_path)
        try:
            h.space.generation_delay = 5
            workers.start()
            asked = await h.slash({"prompt": "a painting on time"}, user=h.alice)
            await eventually(lambda: shows(asked, "Starting"), 30)
            ahead = workers.start(PYTHONPATH=str(skew), CLOCK_SKEW_SECONDS="120")
            await h.discord.wait_until(lambda: ended(asked.original), 30)
            await asyncio.sleep(LEASE / 2)
            assert len(endings(asked.original)) == 1
            assert drawn(h, "a painting on time") == 1
            assert "taking it over" not in workers.log(ahead)
        finally:
            await workers.stop_all()


# -- 3. A dead worker's jobs are taken over in one pass ---------------------------------------


async def test_a_dead_workers_jobs_are_all_taken_over_at_once(tmp_path, postgres_url):
    env = worker_env(MAX_CONCURRENT_JOBS="4", WORKER_CONCURRENCY="4")
    async with running_bot(tmp_path, DATABASE_URL=postgres_url, **env) as h:
        workers = Workers(h, tmp_path)
        try:
            h.space.generation_delay = 30
            users = await members(h, 4)
            doomed = workers.start()
            asked = [await h.slash({"prompt": f"job {i}"}, user=u) for i, u in enumerate(users)]
            await eventually(lambda: all(shows(i, "Starting") for i in asked), 30)
            ids = [job_id_of(i) for i in asked]
            h.space.generation_delay = 0.2
            survivor = workers.start()
            await eventually(lambda: "ready" in workers.log(survivor), 30)
            loop = asyncio.get_running_loop()
            doomed.send_signal(signal.SIGKILL)
            await asyncio.to_thread(doomed.wait, 5)
            killed = loop.time()
            taken: dict[int, float] = {}

            async def all_taken() -> bool:
                rows = await queue_rows(h)
                for job_id in ids:
                    row = rows.get(job_id)
                    gone = row is None or f":{survivor.pid}:" in (row.owner or "")
                    if gone and job_id not in taken:
                        taken[job_id] = loop.time() - killed
                return len(taken) == len(ids)

            await eventually(all_taken, LEASE * 4, step=0.02)
            # Within the lease plus a third of it (the watch's pass), and all in one pass.
            assert max(taken.values()) <= LEASE + LEASE / 3 + 1.0, taken
            assert max(taken.values()) - min(taken.values()) < LEASE / 3 - 0.2, taken
            await h.discord.wait_until(lambda: all(ended(i.original) for i in asked), 30)
            for interaction in asked:
                assert len(endings(interaction.original)) == 1
                assert interaction.original.attachments
        finally:
            await workers.stop_all()


# -- 4. Cancel can be lost ----------------------------------------------------------------------


async def _drop_worker_listeners(h: Harness) -> int:
    """PostgreSQL ends every LISTEN connection of ours but the gateway's (in this process)."""
    mine = h.bot.signals._conn.get_server_pid()
    async with h.bot.store.engine.connect() as conn:
        dropped = await conn.scalar(
            sa.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE query LIKE 'LISTEN \"imagine_%' AND pid <> :mine"
            ),
            {"mine": mine},
        )
    return int(dropped or 0)


async def test_a_cancel_pressed_while_the_workers_listener_is_down_still_ends_the_job(
    tmp_path, postgres_url
):
    async with running_bot(tmp_path, DATABASE_URL=postgres_url, **worker_env()) as h:
        workers = Workers(h, tmp_path)
        try:
            h.space.generation_delay = 20
            workers.start()
            asked = await h.slash({"prompt": "a painting to cancel"}, user=h.alice)
            await eventually(lambda: shows(asked, "Starting"), 30)
            assert await _drop_worker_listeners(h) >= 1
            cancel = cancel_button(asked)
            await h.discord.press_button(asked.original, cancel, user=h.alice)
            await h.discord.wait_until(lambda: shows(asked, "Cancelled by alice"), 10)
            assert await h.job_state(job_id_of(asked), "cancelled") == "cancelled"
            await asyncio.sleep(1)
            assert not asked.original.attachments
        finally:
            await workers.stop_all()


# -- 5. Settings changes reach workers, and a gateway after a reconnection ---------------------


async def test_workers_follow_a_servers_settings_without_a_restart(tmp_path, postgres_url):
    async with FakeOpenAI() as api:
        env = {**worker_env(), **api.env(OPENAI_VISION_MODEL="gpt-4o")}
        async with running_bot(tmp_path, DATABASE_URL=postgres_url, **env) as h:
            workers = Workers(h, tmp_path)
            try:
                worker = workers.start()
                await eventually(lambda: "ready" in workers.log(worker), 30)
                admin = {"user": h.admin, "guild_id": h.guild.id, "permissions": MANAGE_GUILD}
                chosen = await h.discord.send_slash(
                    "imagine-config", {"model": "gpt-4o"}, subcommand="translate", **admin
                )
                assert "gpt-4o" in await h.ephemeral(chosen)
                await asyncio.sleep(0.5)
                reply = await h.final(await h.slash({"prompt": "рыжий кот"}, user=h.alice), 30)
                assert h.space.joins("g4f-flux")[-1].json["data"][0] == "ginger cat"
                assert reply.attachments
            finally:
                await workers.stop_all()


async def test_a_gateway_reads_settings_again_after_its_listener_comes_back(tmp_path, postgres_url):
    """A member's "private results" changed by another process while this gateway's LISTEN
    connection was down: the notice is lost, the gateway must read the settings again."""
    from imagine.store import Store

    async with running_bot(tmp_path, DATABASE_URL=postgres_url, **worker_env()) as h:
        elsewhere = await Store.open(postgres_url)
        try:
            uid = int(h.alice["id"])
            assert not h.bot.store.user(uid).private
            mine = h.bot.signals._conn.get_server_pid()
            async with elsewhere.engine.connect() as conn:
                await conn.scalar(sa.select(sa.func.pg_terminate_backend(mine)))
            await eventually(lambda: h.bot.signals._conn is None, 5, step=0.01)
            await elsewhere.change_user(uid, lambda s: s.__class__(uid, private=True))
            await eventually(lambda: h.bot.store.user(uid).private, 10)
        finally:
            await elsewhere.close()


# -- 6. Jobs left in progress with no queue row end visibly ------------------------------------


async def test_a_job_lost_between_the_ack_and_the_queue_ends_visibly(tmp_path, postgres_url):
    """The gateway acknowledges, logs the job, then never queues it (as if it crashed or its
    database call hung): a reaper must end the reply, and the job leaves the active states."""
    async with running_bot(tmp_path, DATABASE_URL=postgres_url, **worker_env()) as h:
        hang = asyncio.Event()

        async def never(*args: Any, **kwargs: Any) -> None:
            await hang.wait()

        h.bot.launcher.queue.submit = never  # type: ignore[method-assign]
        asked = await h.slash({"prompt": "a painting never queued"}, user=h.alice)
        assert (await asked.wait_callback(5))["type"] == 5  # acknowledged: "thinking…"
        message = await h.discord.wait_until(lambda: ended(asked.original) and asked.original, 30)
        assert "lost" in message.embeds[0]["description"]
        async with h.bot.store.engine.connect() as conn:
            states = list(await conn.scalars(sa.select(jobs.c.state)))
        assert states == ["failed"]
        hang.set()


# -- 10. No worker running, and nobody told ------------------------------------------------------


async def test_with_no_worker_a_waiting_reply_says_so_and_the_gateway_warns(
    tmp_path, postgres_url, caplog
):
    caplog.set_level(logging.WARNING)
    async with running_bot(tmp_path, DATABASE_URL=postgres_url, **worker_env()) as h:
        assert any("no worker is running" in r.getMessage() for r in caplog.records)
        asked = await h.slash({"prompt": "a painting nobody draws"}, user=h.alice)
        await h.discord.wait_until(lambda: shows(asked, "No worker is running"), 10)
        # A worker starts: the job is drawn.
        workers = Workers(h, tmp_path)
        try:
            workers.start()
            await h.discord.wait_until(lambda: ended(asked.original), 30)
            assert asked.original.attachments
        finally:
            await workers.stop_all()


def _check(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "imagine", "--check"],
        cwd=ROOT,
        env={**__import__("os").environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_check_reports_the_workers_it_sees(tmp_path, postgres_url):
    async with running_bot(tmp_path, DATABASE_URL=postgres_url, **worker_env()) as h:
        none = await asyncio.to_thread(_check, h.env)
        assert none.returncode == 1, none.stdout + none.stderr
        assert "NO WORKER IS RUNNING" in none.stdout
        workers = Workers(h, tmp_path)
        try:
            worker = workers.start()
            await eventually(lambda: "ready" in workers.log(worker), 30)
            seen = await asyncio.to_thread(_check, h.env)
            assert "workers: 1 alive" in seen.stdout, seen.stdout + seen.stderr
            assert f":{worker.pid}:" in seen.stdout
            assert seen.returncode == 0, seen.stdout
        finally:
            await workers.stop_all()


# -- in one process: the moments between a claim and the runner -------------------------------


@asynccontextmanager
async def worker_here(h: Harness) -> AsyncIterator[Any]:
    """A ``Worker`` in this process (no procrastinate loop): the test claims and runs."""
    from imagine.settings import Settings
    from worker import Worker

    worker = Worker(Settings.from_env(h.env))
    await worker.start()
    try:
        yield worker
    finally:
        await worker.close()


async def test_a_cancel_pressed_between_the_claim_and_the_start_ends_the_job(
    tmp_path, postgres_url
):
    async with running_bot(tmp_path, DATABASE_URL=postgres_url, **worker_env()) as h:
        h.space.generation_delay = 5
        async with worker_here(h) as worker:
            asked = await h.slash({"prompt": "a painting cancelled early"}, user=h.alice)
            await eventually(lambda: shows(asked, "in line"), 10)
            claim = await worker.queue.claim(worker.name)
            assert claim is not None
            cancel = cancel_button(asked)
            await h.discord.press_button(asked.original, cancel, user=h.alice)
            await asyncio.sleep(0.5)  # the signal arrives before the job has a runner
            await worker.run(claim)
            await h.discord.wait_until(lambda: shows(asked, "Cancelled by alice"), 10)
            assert drawn(h, "a painting cancelled early") == 0
            assert await h.job_state(claim.job_id, "cancelled") == "cancelled"
            assert await queue_rows(h) == {}


async def test_a_worker_failing_before_its_runner_starts_ends_the_job_visibly(
    tmp_path, postgres_url
):
    async with (
        running_bot(tmp_path, DATABASE_URL=postgres_url, **worker_env()) as h,
        worker_here(h) as worker,
    ):
        asked = await h.slash({"prompt": "a painting that breaks"}, user=h.alice)
        await eventually(lambda: shows(asked, "in line"), 10)

        async def broken(job: Any) -> Any:
            raise RuntimeError("a bug before the runner")

        worker._inputs = broken  # type: ignore[method-assign]
        claim = await worker.queue.claim(worker.name)
        await worker.run(claim)
        message = await h.discord.wait_until(lambda: ended(asked.original) and asked.original)
        assert "Something went wrong" in message.embeds[0]["description"]
        assert await h.job_state(claim.job_id, "failed") == "failed"
        assert await queue_rows(h) == {}


async def test_a_job_whose_lease_was_lost_leaves_the_runner_without_an_ending(
    tmp_path, postgres_url
):
    async with running_bot(tmp_path, DATABASE_URL=postgres_url, **worker_env()) as h:
        h.space.generation_delay = 10
        async with worker_here(h) as worker:
            asked = await h.slash({"prompt": "a painting let go"}, user=h.alice)
            await eventually(lambda: shows(asked, "in line"), 10)
            claim = await worker.queue.claim(worker.name)
            running = asyncio.create_task(worker.run(claim))
            await eventually(lambda: claim.job_id in worker.runner.active, 10)
            (_taken,) = await worker.queue.take_over("elsewhere", now=claim.lease_until + 1)
            leases = await worker.queue.heartbeat(worker.name, {claim.job_id})
            assert not leases[claim.job_id].held
            assert worker.runner.let_go(claim.job_id)
            async with asyncio.timeout(5):
                await running
            assert claim.job_id not in worker.runner.active
            assert not endings(asked.original)
            row = (await queue_rows(h))[claim.job_id]
            assert row.owner == "elsewhere"  # the new owner's row stays
