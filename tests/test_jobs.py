"""The scheduler: global limit, one running job per user, round-robin fairness, positions."""

import asyncio

import pytest

from imagine.errors import message_of
from imagine.i18n import Language, texts
from imagine.jobs import QueueFull, Scheduler, SchedulerClosed


async def test_global_limit_and_one_running_job_per_user():
    scheduler = Scheduler(2, max_queued_per_user=5)
    a1 = scheduler.submit("a", 1)
    a2 = scheduler.submit("a", 2)
    b1 = scheduler.submit("b", 3)
    c1 = scheduler.submit("c", 4)
    assert [t.state for t in (a1, a2, b1, c1)] == ["running", "waiting", "running", "waiting"]
    assert scheduler.running == 2
    scheduler.release(a1)
    # c has waited for a turn and has none running; a goes to the back of the line
    assert (c1.state, a2.state) == ("running", "waiting")


async def test_heavy_user_cannot_starve_others():
    scheduler = Scheduler(1, max_queued_per_user=10)
    heavy = [scheduler.submit("heavy", i) for i in range(5)]
    light = scheduler.submit("light", 99)
    started = []
    running = heavy[0]
    for _ in range(6):
        started.append(running.job_id)
        scheduler.release(running)
        nxt = [t for t in [*heavy, light] if t.state == "running"]
        if not nxt:
            break
        running = nxt[0]
    assert started.index(99) == 1  # the light user's job is next after the first heavy one


async def test_positions_are_announced_and_updated():
    scheduler = Scheduler(1, max_queued_per_user=3)
    seen: dict[str, list[int]] = {"b": [], "c": []}
    a = scheduler.submit("a", 1)
    b = scheduler.submit("b", 2, on_position=seen["b"].append)
    c = scheduler.submit("c", 3, on_position=seen["c"].append)
    assert (b.position, c.position) == (1, 2)
    scheduler.release(a)
    assert b.state == "running"
    assert c.position == 1
    assert seen == {"b": [1], "c": [2, 1]}


async def test_queue_limit_per_user():
    scheduler = Scheduler(1, max_queued_per_user=2)
    scheduler.submit("a", 1)
    scheduler.submit("a", 2)
    with pytest.raises(QueueFull, match="already have 2 images in progress"):
        scheduler.submit("a", 3)
    scheduler.submit("b", 4)  # others are not affected


async def test_wait_turn_and_cancel_while_waiting():
    scheduler = Scheduler(1)
    a = scheduler.submit("a", 1)
    b = scheduler.submit("b", 2)
    waiter = asyncio.create_task(scheduler.wait_turn(b))
    await asyncio.sleep(0)
    assert not waiter.done()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert b.state == "done" and scheduler.waiting == 0
    await scheduler.wait_turn(a)  # already running: returns at once
    scheduler.release(a)
    assert scheduler.running == 0


async def test_closed_scheduler_refuses_new_jobs():
    scheduler = Scheduler(1)
    scheduler.close()
    with pytest.raises(SchedulerClosed) as caught:
        scheduler.submit("a", 1)
    said = message_of(caught.value)  # a refusal: in the member's language
    assert said == "The bot is shutting down and takes no new images right now."
    assert texts(Language.RU)(said) != said
