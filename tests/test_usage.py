"""Issue 17, part 5: ``/imagine-config usage``, an admin's view of one server's use. The real
bot between the fake Discord and the fake Spaces; the job log and the quota rests are
written as the schema has them (the Horde's kudos and the quota rests come from elsewhere)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import sqlalchemy as sa

from imagine.store import ACTIVE_STATES, jobs, quota_rests
from tests.fakes.space import ServerError
from tests.harness import MANAGE_GUILD, Harness, running_bot

pytestmark = pytest.mark.timeout(90)


def field(embed: dict, name: str) -> str:
    return next(f["value"] for f in embed["fields"] if f["name"] == name)


async def usage(h: Harness, guild_id: int) -> tuple[Any, dict]:
    """The usage message and its embed, asked by the admin in ``guild_id``."""
    asked = await h.discord.send_slash(
        "imagine-config", {}, subcommand="usage", user=h.admin, guild_id=guild_id,
        permissions=MANAGE_GUILD,
    )  # fmt: skip
    callback = await asked.wait_callback(3)
    assert callback["type"] == 4 and callback["data"]["flags"] & 64, callback  # private
    message = await h.discord.wait_until(lambda: asked.original, 5)
    return message, callback["data"]["embeds"][0]


async def settled(h: Harness) -> None:
    """Until every job's ending is in the log (a reply shows its ending first)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while await h.bot.store.jobs_in_states(ACTIVE_STATES):
        assert loop.time() < deadline, "jobs still active"
        await asyncio.sleep(0.02)
    await h.bot.store.flush()


async def job_ids(h: Harness) -> list[int]:
    async with h.bot.store.engine.connect() as conn:
        return list(await conn.scalars(sa.select(jobs.c.id).order_by(jobs.c.id)))


async def test_usage_counts_one_servers_images_kudos_rests_and_members(tmp_path):
    async with running_bot(tmp_path) as h:
        other = h.discord.add_guild("Elsewhere")
        h.discord.add_member(other.id, h.alice)
        h.discord.add_member(other.id, h.admin, permissions=MANAGE_GUILD)
        alice, bob = int(h.alice["id"]), int(h.bob["id"])
        # Here: alice a grid of 2 and one image, bob one image, and a job that failed.
        await h.final(await h.slash({"prompt": "two foxes", "count": 2}))
        await h.final(await h.slash({"prompt": "a fox"}))
        await h.final(await h.slash({"prompt": "an owl"}, user=h.bob))
        h.space.set_fault("g4f-flux", ServerError(503))
        await h.final(await h.slash({"prompt": "a failed owl"}, user=h.bob))
        h.space.clear_faults()
        await h.final(await h.slash({"prompt": "an old fox"}))  # moved back a week below
        # Elsewhere: alice draws 3 (none of it may show here).
        await h.final(await h.slash({"prompt": "three crows", "count": 3}, guild_id=other.id))
        await settled(h)
        _grid, single, owl, failed, old, crows = await job_ids(h)
        now = time.time()
        await h.bot.store.update_job(old, created_at=now - 7 * 86400)  # before the 7 days
        await h.bot.store.update_job(single, created_at=now - 3 * 86400)  # this week, not today
        await h.bot.store.update_job(owl, kudos=12.5)
        await h.bot.store.update_job(failed, kudos=4)  # the Horde charged a job that failed
        await h.bot.store.update_job(crows, kudos=100)  # another server's
        async with h.bot.store.engine.begin() as conn:
            await conn.execute(
                quota_rests.insert(),
                [
                    {"backend": "g4f-flux", "account": "bot", "until": now + 3600},
                    {"backend": "g4f-flux-dev", "account": "member:9f2c9f2c", "until": now + 600},
                    {"backend": "g4f-janus", "account": "bot", "until": now - 60},  # over
                ],
            )
        await h.bot.store.flush()

        message, embed = await usage(h, h.guild.id)
        assert "**3** today, **4** in the last 7 days" in embed["description"]
        assert field(embed, "By model") == "`flux`: 3 today · 4 in 7 days"
        assert field(embed, "By backend") == "`G4F flux`: 3 today · 4 in 7 days"
        assert field(embed, "Horde kudos spent") == "16.5 today · 16.5 in 7 days"
        rests = field(embed, "Quota rests now").splitlines()
        assert rests == [  # as /imagine-config show words them, by the backends' names
            f"FLUX.1-dev: out of GPU quota for a member's own account until <t:{int(now + 600)}:R>",
            f"G4F flux: out of GPU quota for the bot's account until <t:{int(now + 3600)}:R>",
        ]
        assert field(embed, "Top members, last 7 days").splitlines() == [
            f"1. <@{alice}>: 3 (2 today)",
            f"2. <@{bob}>: 1 (1 today)",
        ]
        assert message.allowed_mentions == {"parse": []}  # mentions shown, nobody pinged
        assert not message.would_ping

        _message, embed = await usage(h, other.id)
        assert "**3** today, **3** in the last 7 days" in embed["description"]
        assert field(embed, "Horde kudos spent") == "100.0 today · 100.0 in 7 days"
        assert field(embed, "Top members, last 7 days") == f"1. <@{alice}>: 3 (3 today)"
        assert str(bob) not in str(embed)


async def test_usage_of_a_quiet_server_and_in_russian(tmp_path):
    async with running_bot(tmp_path) as h:
        _message, embed = await usage(h, h.guild.id)
        assert "**0** today, **0** in the last 7 days" in embed["description"]
        assert [f["name"] for f in embed["fields"]] == ["Horde kudos spent", "Quota rests now"]
        assert field(embed, "Quota rests now") == "none: every backend has quota"
        asked = await h.discord.send_slash(
            "imagine-config", {}, subcommand="usage", user=h.admin, guild_id=h.guild.id,
            permissions=MANAGE_GUILD, locale="ru",
        )  # fmt: skip
        embed = (await asked.wait_callback(3))["data"]["embeds"][0]
        assert embed["title"] == "Использование Imagine на этом сервере"


async def test_usage_is_for_admins_only(tmp_path):
    async with running_bot(tmp_path) as h:
        asked = await h.discord.send_slash(
            "imagine-config", {}, subcommand="usage", user=h.alice, guild_id=h.guild.id,
            permissions=0,
        )  # fmt: skip
        assert "Manage Server" in await h.ephemeral(asked)


async def test_usage_shows_what_the_ai_horde_drew_and_the_kudos_it_charged(tmp_path):
    async with running_bot(tmp_path, horde=True) as h:
        assert h.horde is not None
        h.horde.queue_places = 1
        asked = await h.slash({"prompt": "a lighthouse", "model": "horde:Deliberate", "count": 2})
        assert len((await h.final(asked, within=30)).attachments) == 2
        charged = sum(job.kudos for job in h.horde.jobs.values())
        assert charged > 0
        await settled(h)
        _message, embed = await usage(h, h.guild.id)
        assert field(embed, "By model") == "`horde:Deliberate`: 2 today · 2 in 7 days"
        assert field(embed, "By backend") == "`AI Horde`: 2 today · 2 in 7 days"
        kudos = f"{charged:,.1f}"
        assert field(embed, "Horde kudos spent") == f"{kudos} today · {kudos} in 7 days"
