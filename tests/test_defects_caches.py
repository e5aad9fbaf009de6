"""Issue 8, item 20: caches keyed by user or server stay bounded, DMs are rate-checked before
any history read, and the whole bot has a bound on the jobs it holds."""

from __future__ import annotations

import asyncio

import pytest

from imagine.limits import Cooldowns, RateLimiter
from tests.harness import running_bot

pytestmark = pytest.mark.timeout(60)


def test_item20_cooldowns_forget_members_whose_cooldown_ran_out():
    now = [0.0]
    cooldowns = Cooldowns(clock=lambda: now[0])
    for user in range(5000):
        cooldowns.start(("guild", user), 1.0)
    assert cooldowns.remaining(("guild", 7), 1.0) == pytest.approx(1.0)
    now[0] = 2.0
    for user in range(5000, 7048):
        cooldowns.start(("other", user), 0.0)  # no cooldown: nothing to remember
    assert len(cooldowns) == 0
    assert cooldowns.remaining(("guild", 7), 1.0) == 0.0


def test_item20_rate_limiter_forgets_idle_keys():
    now = [0.0]
    limiter = RateLimiter(5, 60.0, clock=lambda: now[0])
    for user in range(5000):
        assert limiter.hit(user) == 0.0
    now[0] = 61.0
    assert limiter.hit("someone new") == 0.0
    assert len(limiter) == 1


async def test_item20_settings_cache_holds_only_servers_with_settings(tmp_path):
    from imagine.store import Store

    store = await Store.open(f"sqlite:///{tmp_path / 'imagine.db'}")
    try:
        await store.update_guild(1, cooldown_seconds=5.0)
        for guild_id in range(1000, 3000):  # servers a user-installed app was used in
            assert (await store.guild(guild_id)).cooldown_seconds == 0.0
        assert (await store.guild(1)).cooldown_seconds == 5.0
        assert len(store._guilds) == 1
    finally:
        await store.close()


async def test_item20_dm_floods_are_refused_before_any_history_read(tmp_path):
    async with running_bot(tmp_path) as h:
        h.bot.get_cog("DirectMessages").gather_seconds = 0.05  # each line is its own prompt
        h.space.generation_delay = 30  # jobs stay in progress: MAX_JOBS_PER_USER (3) is reached
        channel = h.discord.dm_channel_for(h.alice)
        for i in range(6):  # each past the 1 s a DM waits for more lines: six prompts
            h.discord.post_user_message(channel, h.alice, f"picture {i}")
            await asyncio.sleep(1.1)
        await asyncio.sleep(0.5)
        reads = [
            r for r in h.discord.requests_for("GET", "/channels/{channel_id}/messages")
            if str(channel) in r.url
        ]  # fmt: skip
        assert len(reads) == 3, len(reads)  # one per accepted prompt, none for refused ones
        bot_id = int(h.discord.bot_user_id)

        def replies():
            history = h.discord.channel_history(channel)
            return [m for m in history if int(m.author["id"]) == bot_id]

        # The refusal may wait for the channel's rate-limit bucket (the replies used it).
        await h.discord.wait_until(lambda: any("in progress" in m.content for m in replies()), 10)
        await asyncio.sleep(1.0)
        refusals = [m for m in replies() if "in progress" in m.content]
        assert len(replies()) == 4 and len(refusals) == 1, [m.content for m in replies()]
        assert h.discord.count_429 == 0


async def test_item20_the_bot_refuses_past_max_queued_jobs(tmp_path):
    async with running_bot(tmp_path, MAX_CONCURRENT_JOBS="1", MAX_QUEUED_JOBS="2") as h:
        h.space.generation_delay = 30
        carol = h.discord.add_user("carol")
        h.discord.add_member(h.guild.id, carol)
        for user in (h.alice, h.bob):
            interaction = await h.slash({"prompt": "a tree"}, user=user)
            assert (await interaction.wait_callback(3))["type"] == 5
        refused = await h.slash({"prompt": "a tree"}, user=carol)
        assert "very busy" in await h.ephemeral(refused)
        assert len(h.bot.scheduler.order()) + h.bot.scheduler.running == 2
