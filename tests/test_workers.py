"""Past one process, end to end: PostgreSQL, the bot as gateway, and two worker processes
(``python worker.py`` subprocesses) between the fake Discord and the fake Spaces.

A modest size (30 jobs from 10 users) keeps the suite fast; the issue's full check (300 jobs,
100 users, two shards, three workers) is for a later benchmark.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import subprocess
from collections import defaultdict
from pathlib import Path

import sqlalchemy as sa

from imagine.store import job_queue, jobs
from tests.harness import running_bot
from tests.processes import ended, endings, start, stop

USERS = 10
JOBS_EACH = 3
LIMIT = 3  # MAX_CONCURRENT_JOBS, across both workers
LEASE = 3.0


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen:
    return start(["worker.py"], env, log)


async def test_gateway_and_two_workers(tmp_path, postgres_url):
    env = {
        "DATABASE_URL": postgres_url,
        "MAX_CONCURRENT_JOBS": str(LIMIT),
        "MAX_JOBS_PER_USER": str(JOBS_EACH),
        "WORKER_CONCURRENCY": "3",
        "JOB_LEASE_SECONDS": str(LEASE),
        "SHUTDOWN_GRACE_SECONDS": "2",
    }
    async with running_bot(tmp_path, **env) as h:
        assert h.bot.shared_queue is not None  # gateway mode
        users = []
        for index in range(USERS):
            user = h.discord.add_user(f"user{index}")
            h.discord.add_member(h.guild.id, user)
            users.append(user)
        h.space.generation_delay = 0.4
        # Every job is queued before any worker runs: the start order is then the queue's.
        interactions = []
        for user in users:
            for n in range(JOBS_EACH):
                interactions.append(
                    await h.slash({"prompt": f"{user['username']} picture {n}"}, user=user)
                )
        for interaction in interactions:
            assert (await interaction.wait_callback(5))["type"] == 5  # deferred at once
        await _until_queued(h, len(interactions))
        logs = [tmp_path / f"worker{i}.log" for i in range(2)]
        workers = [start_worker(h.env, log) for log in logs]
        try:
            await h.discord.wait_until(lambda: all(ended(i.original) for i in interactions), 90)
            rows = await _all_logged(h, len(interactions))
            # Delivered exactly once each: one ending per reply, every job done.
            assert [r.state for r in rows] == ["done"] * len(interactions)
            for interaction in interactions:
                assert len(endings(interaction.original)) == 1
                assert interaction.original.attachments
            assert h.discord.count_429 == 0
            # One running job per user, and never more than LIMIT at once across workers.
            per_user = defaultdict(list)
            for r in rows:
                per_user[r.user_id].append(r)
            for runs in per_user.values():
                for before, after in itertools.pairwise(runs):
                    assert after.started_at >= before.finished_at
            events = sorted([(r.started_at, 1) for r in rows] + [(r.finished_at, -1) for r in rows])
            running = most = 0
            for _, step in events:
                running += step
                most = max(most, running)
            assert most <= LIMIT
            # Round-robin: every user's first job starts before any user's second (all were
            # queued first). Later rounds depend on when each user's jobs end (a user goes to
            # the back when a job ends), which test_shared checks against the in-memory
            # scheduler. started_at is stamped by the claim, under the queue's lock.
            firsts = [runs[0].started_at for runs in per_user.values()]
            seconds = [runs[1].started_at for runs in per_user.values()]
            assert len(firsts) == USERS
            assert max(firsts) <= min(seconds)

            # A DM: the gateway sends the reply, a worker edits it through the REST API.
            channel = h.discord.dm_channel_for(h.alice)
            h.discord.post_user_message(channel, h.alice, "a tiny robot")

            def dm_ended():
                mine = [m for m in h.discord.channel_history(channel) if m in h.bot_messages()]
                return mine and mine[-1].embeds and mine

            (dm_reply,) = await h.discord.wait_until(dm_ended, 20)
            assert dm_reply.embeds[0]["title"] == "a tiny robot"
            assert dm_reply.attachments

            # Cancel, pressed through the gateway, stops a job running on a worker.
            h.space.generation_delay = 30
            slow = await h.slash({"prompt": "a slow painting"}, user=h.alice)
            running_reply = await h.discord.wait_until(
                lambda: (
                    slow.original
                    and slow.original.components
                    and "Starting" in (slow.original.content or "")
                    and slow.original
                ),
                20,
            )
            cancel = _buttons(running_reply)[0]
            assert cancel.startswith("imagine:cancel:")
            await h.discord.press_button(running_reply, cancel, user=h.alice)
            await h.discord.wait_until(
                lambda: (slow.original.content or "").startswith("Cancelled by alice"), 10
            )
            job_id = int(cancel.rsplit(":", 1)[1])
            assert await h.job_state(job_id, "cancelled") == "cancelled"

            # A worker killed mid-job: another one takes the job over once the lease ran out.
            h.space.generation_delay = 6
            doomed = await h.slash({"prompt": "an interrupted painting"}, user=h.bob)
            owner = await _running_owner(h, within=20)
            victim = next(w for w in workers if f":{w.pid}:" in owner)
            victim.send_signal(signal.SIGKILL)
            victim.wait(5)
            h.space.generation_delay = 0.2
            await h.discord.wait_until(lambda: ended(doomed.original), LEASE + 25)
            assert len(endings(doomed.original)) == 1  # drawn once into its reply
            assert doomed.original.attachments
            assert h.discord.count_429 == 0
        finally:
            for worker in workers:
                stop(worker)
            for log in logs:
                print(log.read_text()[-3000:])


async def _until_queued(h, count: int, within: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while await h.bot.shared_queue.counts() != (count, 0):
        assert asyncio.get_running_loop().time() < deadline, await h.bot.shared_queue.counts()
        await asyncio.sleep(0.02)


async def _all_logged(h, count: int, within: float = 10) -> list:
    """Every job's log row, once all are final (the log follows the reply)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        async with h.bot.store.engine.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(
                        jobs.c.user_id, jobs.c.state, jobs.c.started_at, jobs.c.finished_at
                    ).order_by(jobs.c.started_at)
                )
            ).all()
        if sum(r.state == "done" for r in rows) == count:
            return rows
        if asyncio.get_running_loop().time() > deadline:
            return rows
        await asyncio.sleep(0.05)


async def _running_owner(h, within: float) -> str:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        async with h.bot.store.engine.connect() as conn:
            owner = await conn.scalar(
                sa.select(job_queue.c.owner).where(job_queue.c.state == "running")
            )
        if owner:
            return owner
        assert asyncio.get_running_loop().time() < deadline, "no job started"
        await asyncio.sleep(0.05)


def _buttons(message) -> list[str]:
    return [
        c["custom_id"]
        for row in message.components
        for c in row.get("components", [])
        if "custom_id" in c
    ]
