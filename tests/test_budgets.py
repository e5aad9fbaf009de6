"""Issue 17, part 4: daily budgets. The real bot between the fake Discord and the fake
Spaces: a server's limit of images per member per UTC day, charged when a job is accepted,
given back when it ends without an image, shown on /settings, across a restart and across
the UTC day (the budget's clock injected, not waited for)."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from imagine.store import jobs
from tests.fakes.space import JsonError, ServerError
from tests.harness import MANAGE_GUILD, Harness, running_bot
from tests.processes import ended

pytestmark = pytest.mark.timeout(90)


async def set_limit(h: Harness, images: int) -> str:
    said = await h.discord.send_slash(
        "imagine-config", {"images": images}, subcommand="daily-limit", user=h.admin,
        guild_id=h.guild.id, permissions=MANAGE_GUILD,
    )  # fmt: skip
    return await h.ephemeral(said)


async def settings_page(h: Harness, user, **where) -> dict:
    """The embed of a member's /settings page."""
    asked = await h.discord.send_slash("settings", {}, user=user, **where)
    callback = await asked.wait_callback(3)
    assert callback["type"] == 4 and callback["data"]["flags"] & 64, callback
    return callback["data"]["embeds"][0]


def today_field(embed: dict) -> str | None:
    return next((f["value"] for f in embed["fields"] if f["name"] == "Today"), None)


def reset_time(text: str) -> int:
    found = re.search(r"<t:(\d+):R>", text)
    assert found, text
    return int(found.group(1))


def next_utc_midnight(at: float) -> int:
    return (int(at) // 86400 + 1) * 86400


async def used(h: Harness, user, settled: int | None = None) -> int:
    """Images charged to ``user`` here today; with ``settled``, once it is that (a reply shows
    its ending before the job log follows it), or what it is after 5 s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while True:
        value = await h.bot.launcher.budget.used_today(h.guild.id, int(user["id"]))
        if settled is None or value == settled or loop.time() > deadline:
            return value
        await asyncio.sleep(0.02)


async def test_a_request_past_the_limit_is_refused_privately_and_draws_nothing(tmp_path):
    async with running_bot(tmp_path) as h:
        assert "**3** images" in await set_limit(h, 3)
        for prompt in ("a fox", "an owl"):
            assert (await h.final(await h.slash({"prompt": prompt}))).attachments
        drawn = len(h.space.joins("g4f-flux"))
        refused = await h.slash({"prompt": "two crows", "count": 2})
        text = await h.ephemeral(refused)
        assert "3 images per member per day" in text and "1 left" in text
        assert reset_time(text) == next_utc_midnight(time.time())
        assert len(h.space.joins("g4f-flux")) == drawn  # nothing drawn
        assert await h.bot.store.count_jobs(guild_id=h.guild.id) == 2  # no job made
        assert await used(h, h.alice) == 2  # and nothing charged
        # One image still fits; then nothing does.
        assert (await h.final(await h.slash({"prompt": "a crow"}))).attachments
        text = await h.ephemeral(await h.slash({"prompt": "one more"}))
        assert "You have used all 3 images" in text
        # Bob has a day of his own; /settings shows each their use.
        assert today_field(await settings_page(h, h.alice, guild_id=h.guild.id)) == (
            "3 of 3 images today"
        )
        assert today_field(await settings_page(h, h.bob, guild_id=h.guild.id)) == (
            "0 of 3 images today"
        )
        assert today_field(await settings_page(h, h.alice)) is None  # a DM: no server budget


async def test_a_grid_costs_each_image_and_keeps_its_charge_when_one_image_fails(tmp_path):
    async with running_bot(tmp_path) as h:
        await set_limit(h, 5)
        h.space.set_fault("g4f-flux", JsonError(400, "this one is refused"), times=1)
        grid = await h.final(await h.slash({"prompt": "four owls", "count": 4}), within=30)
        assert len(grid.attachments) == 3
        assert await used(h, h.alice) == 4  # a grid that delivered keeps its whole charge
        text = await h.ephemeral(await h.slash({"prompt": "two more", "count": 2}))
        assert "1 left" in text


async def test_a_failed_job_gives_its_images_back(tmp_path):
    async with running_bot(tmp_path) as h:
        await set_limit(h, 2)
        h.space.set_fault("g4f-flux", ServerError(503))
        failed = await h.final(await h.slash({"prompt": "a fox", "count": 2}), within=30)
        assert not failed.attachments
        assert await used(h, h.alice, settled=0) == 0
        h.space.clear_faults()
        assert (
            len((await h.final(await h.slash({"prompt": "two foxes", "count": 2}))).attachments)
            == 2
        )
        assert await used(h, h.alice) == 2


async def test_a_cancelled_job_gives_its_images_back(tmp_path):
    async with running_bot(tmp_path) as h:
        await set_limit(h, 2)
        h.space.generation_delay = 20
        asked = await h.slash({"prompt": "a slow fox", "count": 2})
        await h.discord.wait_until(lambda: asked.original and asked.original.components, 10)
        assert await used(h, h.alice) == 2
        cancel = next(
            c["custom_id"]
            for row in asked.original.components
            for c in row["components"]
            if c.get("custom_id", "").startswith("imagine:cancel:")
        )
        await h.discord.press_button(asked.original, cancel, user=h.alice)
        await h.final(asked)
        assert asked.original.content.startswith("Cancelled")
        assert await used(h, h.alice, settled=0) == 0


async def test_the_count_survives_a_restart(tmp_path):
    async with running_bot(tmp_path) as h:
        await set_limit(h, 2)
        await h.final(await h.slash({"prompt": "a fox", "count": 2}))
        await h.stop_bot()
        await h.start_bot()
        text = await h.ephemeral(await h.slash({"prompt": "another fox"}))
        assert "You have used all 2 images" in text
        assert today_field(await settings_page(h, h.alice, guild_id=h.guild.id)) == (
            "2 of 2 images today"
        )


async def test_a_job_cut_off_by_a_restart_gives_its_images_back(tmp_path):
    async with running_bot(tmp_path) as h:
        await set_limit(h, 2)
        h.space.generation_delay = 30
        asked = await h.slash({"prompt": "a fox cut off", "count": 2})
        await h.discord.wait_until(lambda: asked.original and asked.original.components, 10)
        assert await used(h, h.alice) == 2
        await h.stop_bot()
        await h.start_bot()
        message = await h.final(asked)
        assert not message.attachments  # told it was interrupted
        assert await used(h, h.alice, settled=0) == 0


async def test_the_day_resets_at_utc_midnight(tmp_path):
    """The budget's clock stands a second before midnight, then just after."""
    midnight = datetime(2026, 5, 1, tzinfo=UTC).timestamp()
    now = [midnight - 1]
    async with running_bot(tmp_path) as h:
        h.bot.launcher.budget.clock = lambda: now[0]
        await set_limit(h, 1)
        await h.final(await h.slash({"prompt": "a late fox"}))
        text = await h.ephemeral(await h.slash({"prompt": "one too many"}))
        assert reset_time(text) == int(midnight)
        now[0] = midnight + 1
        assert (await h.final(await h.slash({"prompt": "an early fox"}))).attachments
        assert today_field(await settings_page(h, h.alice, guild_id=h.guild.id)) == (
            "1 of 1 image today"
        )


async def test_with_workers_the_limit_holds_and_a_job_failing_on_a_worker_gives_back(
    tmp_path, postgres_url
):
    """PostgreSQL, the gateway here and a real ``python worker.py``: four requests at once
    against a limit of 3 (exactly one refused, privately, before any acknowledgement); the
    worker fails one of the three, and its image comes back to the member's day."""
    from tests.test_worker_mode import Workers, worker_env

    async with running_bot(tmp_path, DATABASE_URL=postgres_url, **worker_env()) as h:
        workers = Workers(h, tmp_path)
        try:
            await set_limit(h, 3)
            workers.start()
            h.space.set_fault("g4f-flux", JsonError(400, "this one is refused"), times=1)
            asked = await asyncio.gather(*(h.slash({"prompt": f"fox {i}"}) for i in range(4)))
            callbacks = [await a.wait_callback(5) for a in asked]
            refused = [a for a, c in zip(asked, callbacks, strict=True) if c["type"] == 4]
            assert len(refused) == 1
            text = callbacks[asked.index(refused[0])]["data"]["content"]
            assert "You have used all 3 images" in text
            accepted = [a for a in asked if a not in refused]
            await h.discord.wait_until(
                lambda: all(a.original and not a.original.loading and a.original.embeds
                            for a in accepted),
                40,
            )  # fmt: skip
            delivered = [a for a in accepted if a.original.attachments]
            assert len(delivered) == 2  # the third failed on the worker
            assert await used(h, h.alice, settled=2) == 2
            async with h.bot.store.engine.connect() as conn:
                charged = sorted(await conn.scalars(sa.select(jobs.c.charged)))
            assert charged == [0, 1, 1]
            text = await h.ephemeral(await h.slash({"prompt": "two more", "count": 2}))
            assert "1 left" in text
        finally:
            await workers.stop_all()


async def test_a_job_reaped_as_lost_gives_its_images_back(tmp_path, postgres_url):
    """The gateway acknowledges and logs the job but never queues it: the reaper ends it as
    lost, and its charge comes back."""
    from tests.test_worker_mode import worker_env

    async with running_bot(tmp_path, DATABASE_URL=postgres_url, **worker_env()) as h:
        await set_limit(h, 2)
        hang = asyncio.Event()

        async def never(*args: Any, **kwargs: Any) -> None:
            await hang.wait()

        h.bot.launcher.queue.submit = never  # type: ignore[method-assign]
        asked = await h.slash({"prompt": "a fox never queued", "count": 2})
        assert (await asked.wait_callback(5))["type"] == 5
        assert await used(h, h.alice) == 2
        message = await h.discord.wait_until(lambda: ended(asked.original) and asked.original, 30)
        assert "lost" in message.embeds[0]["description"]
        assert await used(h, h.alice, settled=0) == 0
        hang.set()
