"""Issue 10's check, end to end: PostgreSQL, TWO gateway processes (``python bot.py`` with
``SHARD_COUNT=2`` and ``SHARD_IDS=0`` / ``1``) and THREE workers (``python worker.py``),
all real OS processes, against the fake Discord and the fake Spaces, which run in the test's
own process (on 127.0.0.1, where every subprocess reaches them).

Jobs come from users spread over ten servers, five on each shard; every user asks for
``JOBS_EACH`` pictures. One worker is SIGKILLed mid-run; then one Cancel for a job running on
a worker is pressed through the gateway of the *other* shard than the one that took the job.
Checked: 0 lost (every interaction ends with exactly one ending), 0 duplicated (no reply drawn
twice), 0 x 429, per-user order and one running job per user (from the job log's started_at /
finished_at), never more than ``MAX_CONCURRENT_JOBS`` at once, and the cancelled job ends as
cancelled. Then a second wave (one job per user, issue 16): a worker running jobs is stopped
with SIGTERM and a new one started, then PostgreSQL restarts under every process; again 0 lost,
0 duplicated.

It runs the issue's full size (100 users x 3 jobs = 300 jobs; about 25 s on two cores); a
smaller size (30 users, 90 jobs) for a quick local run:

    SCALE_E2E_SMALL=1 .venv/bin/python -m pytest tests/test_scale_e2e.py
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
from collections import defaultdict
from pathlib import Path

import sqlalchemy as sa

from imagine.store import Store, job_queue, jobs
from tests.fakes.discord.protocol import DEFAULT_ATTACHMENT_LIMIT, MESSAGE_COMPONENT
from tests.harness import running_bot
from tests.processes import ended, endings, start, stop

SMALL = os.environ.get("SCALE_E2E_SMALL", "") not in ("", "0")
USERS = 30 if SMALL else 100
JOBS_EACH = 3
GUILDS_PER_SHARD = 5  # at most 60 commands per server per minute (GUILD_BURST)
LIMIT = 24  # MAX_CONCURRENT_JOBS, across the three workers
PER_WORKER = 10  # WORKER_CONCURRENCY
LEASE = 3.0
GENERATION = 0.3


async def test_two_shards_three_workers(tmp_path, postgres_server, postgres_url):
    env = {
        "DATABASE_URL": postgres_url,
        "MAX_CONCURRENT_JOBS": str(LIMIT),
        "MAX_JOBS_PER_USER": str(JOBS_EACH),
        "WORKER_CONCURRENCY": str(PER_WORKER),
        "JOB_LEASE_SECONDS": str(LEASE),
        "SHUTDOWN_GRACE_SECONDS": "2",
        "SHARD_COUNT": "2",
    }
    async with running_bot(tmp_path, start=False, shards=2, **env) as h:
        fake = h.discord
        h.space.generation_delay = GENERATION
        guilds = [
            fake.add_guild(f"Shard {shard} #{n}", shard=(shard, 2))
            for shard in (0, 1)
            for n in range(GUILDS_PER_SHARD)
        ]
        users = []
        for index in range(USERS):
            user = fake.add_user(f"user{index}")
            fake.add_member(guilds[index % len(guilds)].id, user)
            users.append(user)
        home = {user["id"]: guilds[i % len(guilds)] for i, user in enumerate(users)}
        for guild in guilds:
            fake.add_member(guild.id, h.alice)

        logs: dict[str, Path] = {}
        processes: dict[str, subprocess.Popen] = {}

        def launch(name: str, args: list[str], **extra: str) -> None:
            logs[name] = tmp_path / f"{name}.log"
            processes[name] = start(args, {**h.env, **extra}, logs[name])

        store = await Store.open(postgres_url)
        try:
            launch("gateway0", ["bot.py"], SHARD_IDS="0")
            launch("gateway1", ["bot.py"], SHARD_IDS="1")
            for n in range(3):
                launch(f"worker{n}", ["worker.py"])
            await _until_gateways_ready(fake, processes, within=60)
            t0 = asyncio.get_running_loop().time()

            # Round by round, so each user's jobs are asked for in a known order.
            interactions = []
            for n in range(JOBS_EACH):
                round_ = [
                    await h.slash(
                        {"prompt": f"{user['username']} picture {n}"},
                        user=user,
                        guild_id=home[user["id"]].id,
                    )
                    for user in users
                ]
                for interaction in round_:
                    callback = await interaction.wait_callback(10)
                    assert callback["type"] == 5, (n, callback)
                interactions += round_
                await _until_logged(store, len(interactions), within=10)
                print(f"round {n} asked at {asyncio.get_running_loop().time() - t0:.1f}s")

            # A worker killed mid-run, while jobs are running on it.
            done_before_kill = len(interactions) // 3
            await fake.wait_until(
                lambda: sum(ended(i.original) for i in interactions) >= done_before_kill, 60
            )
            owners = await _running_owners(store)
            victim_name, victim = next(
                (name, p)
                for name, p in processes.items()
                if name.startswith("worker") and any(f":{p.pid}:" in o for o in owners)
            )
            victim.send_signal(signal.SIGKILL)
            victim.wait(5)
            print(f"{victim_name} killed at {asyncio.get_running_loop().time() - t0:.1f}s")

            await fake.wait_until(lambda: all(ended(i.original) for i in interactions), LEASE + 90)
            rows = await _final_rows(store, len(interactions))
            elapsed = asyncio.get_running_loop().time() - t0
            print(f"{len(interactions)} jobs in {elapsed:.1f}s; killed {victim_name}")

            # 0 lost, 0 duplicated: one ending per reply, a picture in each, every job done.
            assert [r.state for r in rows] == ["done"] * len(interactions)
            for interaction in interactions:
                assert len(endings(interaction.original)) == 1, interaction.original.versions
                assert interaction.original.attachments
                # The gateway's place in line never lands after the worker's "Starting".
                shown = [v.data["content"] for v in interaction.original.history]
                started = next(i for i, text in enumerate(shown) if "Starting" in text)
                assert not any("in line" in text for text in shown[started:]), shown
            if fake.count_429:
                print("429s:", *_429s(fake), sep="\n")
            assert fake.count_429 == 0
            # The killed worker's running jobs were taken over by the others (lease ran out).
            survivors = "".join(
                logs[name].read_text() for name in processes if name.startswith("worker")
            )
            assert "its worker died; running it again" in survivors or (
                "already shows its ending" in survivors
            )
            # Per-user order and one at a time; never more than LIMIT at once.
            per_user = defaultdict(list)
            for r in rows:
                per_user[r.user_id].append(r)
            assert len(per_user) == USERS
            for runs in per_user.values():
                runs.sort(key=lambda r: int(r.prompt.rsplit(" ", 1)[1]))
                for before, after in itertools.pairwise(runs):
                    assert after.started_at >= before.finished_at, (before, after)
            events = sorted([(r.started_at, 1) for r in rows] + [(r.finished_at, -1) for r in rows])
            running = most = 0
            for _, step in events:
                running += step
                most = max(most, running)
            assert most <= LIMIT

            # Issue 16: a deploy and a database restart in the middle of a second wave.
            await _second_wave(h, store, users, home, processes, launch, postgres_server)

            # Cancel through the other shard's gateway, for a job running on a worker.
            h.space.generation_delay = 30
            taken_on_one = guilds[GUILDS_PER_SHARD]  # a server of shard 1
            assert (taken_on_one.id >> 22) % 2 == 1
            slow = await h.slash(
                {"prompt": "a slow painting"}, user=h.alice, guild_id=taken_on_one.id
            )
            message = await fake.wait_until(
                lambda: (
                    slow.original
                    and slow.original.components
                    and "Starting" in (slow.original.content or "")
                    and slow.original
                ),
                20,
            )
            cancel = _buttons(message)[0]
            assert cancel.startswith("imagine:cancel:")
            job_id = int(cancel.rsplit(":", 1)[1])
            assert (await _queue_state(store, job_id)) == "running"
            press = await _press_through_shard_zero(fake, guilds[0], message, cancel, h.alice)
            (zero,) = [s for s in fake.sessions if s.shard == [0, 2]]
            (one,) = [s for s in fake.sessions if s.shard == [1, 2]]
            assert _delivered(zero, press.id) and not _delivered(one, press.id)
            await fake.wait_until(
                lambda: (slow.original.content or "").startswith("Cancelled by alice"), 10
            )
            assert (await press.wait_callback(5)) is not None
            assert await _job_state(store, job_id, "cancelled") == "cancelled"
            assert not endings(slow.original)  # no picture drawn into it afterwards
            await asyncio.sleep(1)
            assert not slow.original.attachments
            assert fake.count_429 == 0
            assert fake.internal_errors == []
        finally:
            await store.close()
            for process in processes.values():
                stop(process)
            for name, log in logs.items():
                print(f"----- {name}\n{log.read_text()[-3000:]}")


WAVE_GENERATION = 4.0  # longer than SHUTDOWN_GRACE_SECONDS: a stopped worker hands jobs back


async def _second_wave(h, store, users, home, processes, launch, server) -> None:
    """One more job per user; a worker running jobs is stopped with SIGTERM (a deploy) and a
    new one started; then PostgreSQL restarts under everyone. 0 lost (every reply ends with
    exactly one result), 0 duplicated (none drawn twice into one reply)."""
    fake = h.discord
    loop = asyncio.get_running_loop()
    h.space.generation_delay = WAVE_GENERATION
    wave = []
    for user in users:
        wave.append(
            await h.slash(
                {"prompt": f"{user['username']} second wave"},
                user=user,
                guild_id=home[user["id"]].id,
            )
        )
    for interaction in wave:
        assert (await interaction.wait_callback(10))["type"] == 5
    # Stopped while it runs jobs just begun (they outlast the grace: they are handed back).
    await _until_running(store, min(len(wave), LIMIT) * 2 // 3)
    owners = await _running_owners(store)
    name, victim = max(
        (
            (name, p)
            for name, p in processes.items()
            if name.startswith("worker") and p.poll() is None
        ),
        key=lambda item: sum(f":{item[1].pid}:" in o for o in owners),
    )
    t0 = loop.time()
    victim.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(victim.wait, 30) == 0
    print(f"{name} stopped with SIGTERM in {loop.time() - t0:.1f}s")
    launch("worker3", ["worker.py"])
    await fake.wait_until(lambda: sum(ended(i.original) for i in wave) >= len(wave) // 2, 90)
    t0 = loop.time()
    await asyncio.to_thread(server.restart)
    print(f"PostgreSQL restarted in {loop.time() - t0:.1f}s")
    await fake.wait_until(lambda: all(ended(i.original) for i in wave), 120)
    for interaction in wave:
        message = interaction.original
        assert len(endings(message)) == 1, message.versions
        assert message.attachments, message.embeds
        shown = [v.data["content"] or "" for v in message.history]
        last_start = max(i for i, text in enumerate(shown) if "Starting" in text)
        assert not any("in line (" in t or "Next in line" in t for t in shown[last_start:])
    handed_back = [
        i
        for i in wave
        if any("Back in line" in (v.get("content") or "") for v in i.original.versions)
    ]
    print(f"{len(handed_back)} job(s) handed back by the stopped worker")
    assert handed_back  # the stop did interrupt running jobs, and they were drawn again
    ids = {await _job_id_of(store, i) for i in wave}
    await _until_queue_empty(store)  # each job's log is written before it leaves the queue
    async with store.engine.connect() as conn:
        states = dict(
            (await conn.execute(sa.select(jobs.c.id, jobs.c.state).where(jobs.c.id.in_(ids)))).all()
        )
    assert set(states.values()) == {"done"}, states
    assert fake.count_429 == 0


async def _until_running(store: Store, count: int, within: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while len(await _running_owners(store)) < count:
        assert asyncio.get_running_loop().time() < deadline, "the wave did not start"
        await asyncio.sleep(0.05)


async def _job_id_of(store: Store, interaction) -> int:
    async with store.engine.connect() as conn:
        return int(
            await conn.scalar(
                sa.select(jobs.c.id).where(jobs.c.message_id == interaction.original.id)
            )
        )


async def _until_queue_empty(store: Store, within: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        async with store.engine.connect() as conn:
            left = await conn.scalar(sa.select(sa.func.count()).select_from(job_queue))
        if not left:
            return
        assert asyncio.get_running_loop().time() < deadline, f"{left} job(s) left in the queue"
        await asyncio.sleep(0.1)


async def _until_gateways_ready(fake, processes, within: float) -> None:
    """Both shards' sessions are ready, and shard 0 has synced the commands."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        shards = sorted(s.shard[0] for s in fake.sessions if s.ready and s.shard)
        if shards == [0, 1] and fake.commands:
            return
        for name, process in processes.items():
            assert process.poll() is None, f"{name} exited with {process.returncode}"
        assert asyncio.get_running_loop().time() < deadline, "the gateways were not ready"
        await asyncio.sleep(0.1)


async def _until_logged(store: Store, count: int, within: float) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        async with store.engine.connect() as conn:
            logged = await conn.scalar(sa.select(sa.func.count()).select_from(jobs))
        if logged >= count:
            return
        assert asyncio.get_running_loop().time() < deadline, (logged, count)
        await asyncio.sleep(0.05)


async def _final_rows(store: Store, count: int, within: float = 10) -> list:
    """Every job's log row, once all are final (the log follows the reply)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        async with store.engine.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(
                        jobs.c.id,
                        jobs.c.user_id,
                        jobs.c.prompt,
                        jobs.c.state,
                        jobs.c.started_at,
                        jobs.c.finished_at,
                    ).order_by(jobs.c.started_at)
                )
            ).all()
        if sum(r.state == "done" for r in rows) == count:
            return rows
        if asyncio.get_running_loop().time() > deadline:
            return rows
        await asyncio.sleep(0.05)


async def _running_owners(store: Store) -> list[str]:
    async with store.engine.connect() as conn:
        return list(
            await conn.scalars(sa.select(job_queue.c.owner).where(job_queue.c.state == "running"))
        )


async def _queue_state(store: Store, job_id: int) -> str | None:
    async with store.engine.connect() as conn:
        return await conn.scalar(sa.select(job_queue.c.state).where(job_queue.c.job_id == job_id))


async def _job_state(store: Store, job_id: int, expected: str, within: float = 5) -> str:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        state = (await store.job(job_id)).state
        if state == expected or asyncio.get_running_loop().time() > deadline:
            return state
        await asyncio.sleep(0.05)


async def _press_through_shard_zero(fake, guild, message, custom_id: str, user):
    """The click on ``message`` (a server of shard 1), delivered to shard 0's gateway.

    Discord delivers a click to the shard of the message's server, so a click never reaches
    another shard by itself; the fake is told the click came from a server of shard 0 so
    that the process that did NOT take the job is the one that must stop it (the Cancel
    crosses processes through the database, whichever gateway receives it)."""
    drivers = fake.drivers
    channel, routed = drivers._context(user=user, guild_id=guild.id, channel_id=guild.channel_id)
    return drivers._new_interaction(
        MESSAGE_COMPONENT,
        {"custom_id": custom_id, "component_type": 2},
        user=user,
        channel=channel,
        guild=routed,
        permissions=None,
        attachment_size_limit=DEFAULT_ATTACHMENT_LIMIT,
        context=None,
        extra={"message": message.to_json()},
        source_message=message,
    )


def _delivered(session, interaction_id: int) -> bool:
    return any(
        payload["t"] == "INTERACTION_CREATE" and int(payload["d"]["id"]) == interaction_id
        for _, payload in session.buffer
    )


def _429s(fake) -> list:
    """Where the 429s were: each hit interaction's reply versions (who edited it how often)."""
    return [
        (i.id, i.errors, [(round(v.at, 2), v.data["content"][:60]) for v in i.original.history])
        for i in fake.interactions.values()
        if any(status == 429 for status, _ in i.errors)
    ] + [(r.method, r.path) for r in fake.requests if r.status == 429]


def _buttons(message) -> list[str]:
    return [
        c["custom_id"]
        for row in message.components
        for c in row.get("components", [])
        if "custom_id" in c
    ]
