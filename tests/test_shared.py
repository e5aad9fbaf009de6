"""The shared queue (imagine.shared): the in-memory scheduler's rules, kept in the database,
race-free between processes. Run on SQLite and PostgreSQL; the races on PostgreSQL."""

from __future__ import annotations

import asyncio
import random

import pytest

from imagine.jobs import QueueFull, Scheduler, SchedulerBusy, TicketState
from imagine.shared import RUNNING, WAITING, SharedScheduler
from imagine.store import Store


@pytest.fixture
async def store(database_url):
    store = await Store.open(database_url)
    yield store
    await store.close()


async def test_limits_and_one_running_job_per_user(store):
    queue = SharedScheduler(store, 2, max_queued_per_user=2, max_total=5)
    for job_id, user in ((1, 10), (2, 10), (3, 20), (4, 30), (5, 40)):
        await queue.submit(job_id, user)
    with pytest.raises(QueueFull):
        await queue.submit(6, 10)
    with pytest.raises(SchedulerBusy):
        await queue.submit(7, 50)
    first = await queue.claim("w1")
    second = await queue.claim("w2")
    assert (first.job_id, second.job_id) == (1, 3)  # user 10's second job waits for its first
    assert await queue.claim("w1") is None  # the global limit, across owners
    assert await queue.counts() == (3, 2)
    assert await queue.release(1) == RUNNING
    third = await queue.claim("w1")
    assert third.job_id == 4  # 30 waited its turn; 10 went to the back
    assert (third.owner, third.attempts, third.state) == ("w1", 1, RUNNING)
    assert await queue.active_jobs(10) == 1


async def test_cancel_waiting_only_takes_waiting_jobs(store):
    queue = SharedScheduler(store, 1)
    await queue.submit(1, 10)
    await queue.submit(2, 20)
    await queue.claim("w")
    assert not await queue.cancel_waiting(1)  # running: that takes a signal to its worker
    assert await queue.cancel_waiting(2)
    assert not await queue.cancel_waiting(2)
    assert await queue.order() == []


async def test_positions_follow_the_round_robin(store):
    queue = SharedScheduler(store, 1, max_queued_per_user=5)
    for job_id, user in ((1, 10), (2, 10), (3, 10), (4, 20), (5, 30), (6, 20)):
        await queue.submit(job_id, user)
    await queue.claim("w")  # job 1 (user 10)
    # 20 and 30 are in line; 10 has a job running, so its jobs come after, one per round.
    assert await queue.order() == [4, 5, 2, 6, 3]
    assert (await queue.positions())[2] == 3
    await queue.release(1)
    assert (await queue.claim("w")).job_id == 4
    assert await queue.order() == [5, 2, 6, 3]


async def test_same_order_as_the_in_memory_scheduler(store):
    """A random run of submits and ends: the same jobs start, in the same order."""
    rng = random.Random(10)
    memory = Scheduler(3, max_queued_per_user=3, max_total=12)
    queue = SharedScheduler(store, 3, max_queued_per_user=3, max_total=12)
    tickets = {}
    running: set[int] = set()
    for job_id in range(1, 80):
        if rng.random() < 0.55:
            user = rng.randrange(6)
            try:
                tickets[job_id] = memory.submit(user, job_id)
            except (QueueFull, SchedulerBusy) as exc:
                with pytest.raises(type(exc)):
                    await queue.submit(job_id, user)
            else:
                await queue.submit(job_id, user)
        elif running:
            done = rng.choice(sorted(running))
            memory.release(tickets[done])
            await queue.release(done)
        while (claim := await queue.claim("w")) is not None:
            running.add(claim.job_id)
        expected = {j for j, t in tickets.items() if t.state is TicketState.RUNNING}
        assert running - {j for j, t in tickets.items() if t.state is TicketState.DONE} == expected
        running = expected
        assert await queue.order() == [t.job_id for t in memory.order()]


async def test_leases_heartbeats_and_take_over(store):
    queue = SharedScheduler(store, 2, lease_seconds=30)
    await queue.submit(1, 10)
    claim = await queue.claim("dead")
    assert await queue.take_over("w2") == []  # the lease holds
    assert (await queue.heartbeat("dead", [1]))[1].held
    assert not (await queue.heartbeat("someone-else", [1]))[1].held
    (taken,) = await queue.take_over("w2", now=claim.lease_until + 31)
    assert (taken.job_id, taken.owner, taken.attempts) == (1, "w2", 2)
    assert not (await queue.heartbeat("dead", [1]))[1].held  # the dead owner lost it


async def test_concurrent_claimers_never_share_a_job_nor_pass_the_limit(postgres_url):
    """Two processes' worth of claimers (two Stores, several connections each) race for
    jobs: every job is claimed once, and no more than the limit run at any time."""
    stores = [await Store.open(postgres_url) for _ in range(2)]
    try:
        queues = [SharedScheduler(s, 3, max_queued_per_user=100) for s in stores]
        for job_id in range(1, 61):
            await queues[0].submit(job_id, job_id % 20)
        claimed: list[int] = []
        most = 0

        async def claimer(queue: SharedScheduler, name: str) -> None:
            nonlocal most
            while True:
                claim = await queue.claim(name)
                if claim is None:
                    waiting, running = await queue.counts()
                    if not waiting and not running:
                        return
                    await asyncio.sleep(0.002)
                    continue
                claimed.append(claim.job_id)
                _, running = await queue.counts()
                most = max(most, running)
                assert running <= 3
                await asyncio.sleep(0.005)
                assert await queue.release(claim.job_id) == RUNNING

        await asyncio.gather(*(claimer(queues[i % 2], f"w{i}") for i in range(6)))
        assert sorted(claimed) == list(range(1, 61))
        assert most <= 3
        assert await queues[1].counts() == (0, 0)
    finally:
        for s in stores:
            await s.close()


async def test_a_place_edit_holds_up_no_claim_only_that_jobs_first_status(postgres_url):
    """Issue 16, defect 8: while the gateway edits a waiting job's place in line, claims go
    on (that job's and everyone else's: the edit used to hold the job's row, and a claim
    waiting on it held the queue's lock, stalling every claim in the cluster for up to 2 s);
    only the claimed job's first status waits for the edit, so it still lands after it."""
    stores = [await Store.open(postgres_url) for _ in range(2)]
    try:
        gateway, worker = (SharedScheduler(s, 2) for s in stores)
        await gateway.submit(1, 10)
        await gateway.submit(2, 20)
        loop = asyncio.get_running_loop()
        order: list[str] = []

        async def first_status(job_id: int) -> None:
            await worker.wait_place_shown(job_id)
            order.append("first status")

        async with gateway.while_waiting(1) as waiting:
            assert waiting
            started = loop.time()
            async with asyncio.timeout(1.5):
                claimed = [await worker.claim("w"), await worker.claim("w")]
            assert loop.time() - started < 0.5
            assert sorted(c.job_id for c in claimed if c) == [1, 2]
            showing = asyncio.create_task(first_status(1))
            await asyncio.sleep(0.3)
            assert not showing.done()  # job 1's first status waits for its place edit
            order.append("edited")
        await showing
        assert order == ["edited", "first status"]
        await worker.wait_place_shown(2)  # nobody was editing job 2: no wait
        async with gateway.while_waiting(1) as waiting:
            assert not waiting  # running now: the worker's statuses are the reply's
    finally:
        for s in stores:
            await s.close()


async def test_states_are_named(store):
    assert (WAITING, RUNNING) == ("waiting", "running")


# -- signals between processes (PostgreSQL LISTEN/NOTIFY) ------------------------------------


async def _until(check, within: float = 1.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "no signal within the time"
        await asyncio.sleep(0.01)


async def test_signals_cancel_positions_and_settings(postgres_url):
    from imagine.signals import Signals

    here, there = await Store.open(postgres_url), await Store.open(postgres_url)
    signals = await Signals.connect(postgres_url)
    try:
        cancels: list[tuple[int, str | None]] = []
        moves: list[int] = []
        await signals.on_cancel(lambda job_id, by: cancels.append((job_id, by)))
        await signals.on_positions(lambda: moves.append(1))
        await signals.follow_settings(there)

        queue = SharedScheduler(here, 1)
        await queue.submit(1, 10)
        await _until(lambda: moves)
        await queue.submit(2, 20)
        await queue.request_cancel(1, by="Ann")
        await queue.request_cancel(2)
        assert not await queue.request_cancel(3)  # not queued: nobody to tell
        await _until(lambda: len(cancels) == 2)
        assert cancels == [(1, "Ann"), (2, None)]

        assert (await there.guild(7)).cooldown_seconds == 0
        await here.update_guild(7, cooldown_seconds=9.0)
        # The other process's cache follows within a second.
        await _until(lambda: there._guilds.get(7) is not None)
        assert (await there.guild(7)).cooldown_seconds == 9.0
        await here.update_guild(7, cooldown_seconds=2.0)
        await _until(lambda: there._guilds[7].cooldown_seconds == 2.0)
    finally:
        await signals.close()
        await here.close()
        await there.close()


# -- a worker taking over a dead one's job ---------------------------------------------------


class _Reply:
    """A reply as a worker sees it: what it shows now, and what it is told."""

    def __init__(self, shown) -> None:
        self.shown = shown
        self.told: list = []

    async def fetch(self):
        return self.shown

    async def fail(self, failure) -> None:
        self.told.append(failure)


def _message(*, embeds=(), content="", attachments=()):
    from types import SimpleNamespace

    return SimpleNamespace(embeds=list(embeds), content=content, attachments=list(attachments))


async def test_taking_over_looks_at_the_reply_first(store):
    from types import SimpleNamespace

    from imagine.settings import Settings
    from imagine.shared import Claim
    from worker import Worker

    worker = Worker(Settings(), name="w2")
    worker.store = store

    def claim(job_id: int, attempts: int) -> Claim:
        return Claim(job_id, 10, RUNNING, "w2", None, attempts, None, None)

    async def job() -> object:
        return await store.create_job(
            user_id=10, guild_id=None, channel_id=None, source="slash", prompt="a fern",
            model="flux", width=64, height=64,
            seed=None, state="running",
        )  # fmt: skip

    # The dead worker had shown the result: only the log catches up, nothing is drawn again.
    done = await job()
    picture = SimpleNamespace(filename="imagine-1.png")
    reply = _Reply(_message(embeds=[SimpleNamespace(title="a fern")], attachments=[picture]))
    assert not await worker._resume(claim(done.id, 2), done, reply)
    assert reply.told == []
    assert (await store.job(done.id)).state == "done"
    # Only statuses shown: run it again, once.
    again = await job()
    reply = _Reply(_message(content="**a fern** · flux\nSampling 3/4"))
    assert await worker._resume(claim(again.id, 2), again, reply)
    # Its second worker died too: it is told as interrupted, with Retry.
    assert not await worker._resume(claim(again.id, 3), again, reply)
    assert reply.told[0].interrupted
    assert (await store.job(again.id)).state == "interrupted"
