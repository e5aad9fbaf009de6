"""Shards: two gateway processes split the servers (DMs on shard 0) and sync commands once.

Two real ``ImagineBot`` instances run in one event loop against one ``FakeDiscord`` that
shards as Discord does, sharing one SQLite database, as two processes would.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import discord
import pytest

from imagine.errors import BadInput
from imagine.settings import Settings
from tests.harness import running_bot

ROOT = Path(__file__).resolve().parent.parent
COMMANDS_PUT = ("PUT", "/applications/{application_id}/commands")


def test_shard_settings() -> None:
    assert (Settings().shard_count, Settings().shard_ids) == (None, None)
    both = Settings.from_env({"SHARD_COUNT": "4", "SHARD_IDS": " 2, 0 "})
    assert (both.shard_count, both.shard_ids) == (4, (2, 0))
    assert both.runs_shard_zero
    assert both.runs_shard_of(None)  # DMs
    assert both.runs_shard_of(2 << 22) and not both.runs_shard_of(1 << 22)
    one = Settings.from_env({"SHARD_COUNT": "2", "SHARD_IDS": "1"})
    assert not one.runs_shard_zero and not one.runs_shard_of(None)
    assert one.runs_shard_of(1 << 22) and not one.runs_shard_of(2 << 22)
    count_only = Settings.from_env({"SHARD_COUNT": "3"})
    assert count_only.shard_ids is None and count_only.runs_shard_zero


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"SHARD_IDS": "0"}, "SHARD_IDS needs SHARD_COUNT"),
        ({"SHARD_COUNT": "2", "SHARD_IDS": "0,2"}, "shard 2 is out of range for SHARD_COUNT=2"),
        ({"SHARD_COUNT": "2", "SHARD_IDS": "1,1"}, "SHARD_IDS names shard 1 twice"),
        ({"SHARD_COUNT": "2", "SHARD_IDS": "0,-1"}, "comma-separated whole numbers"),
        ({"SHARD_COUNT": "0"}, "SHARD_COUNT must be at least 1"),
        ({"SHARD_COUNT": "two"}, "SHARD_COUNT must be a number"),
    ],
)
def test_bad_shard_settings_are_refused(env: dict[str, str], says: str) -> None:
    with pytest.raises(BadInput, match=says):
        Settings.from_env(env)


async def test_bot_with_shard_ids_but_no_count_exits_2(tmp_path: Path) -> None:
    env = {**os.environ, "DISCORD_TOKEN": "x" * 30, "SHARD_IDS": "0"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "bot.py"), cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    assert err.decode().strip() == (
        "Invalid setting: SHARD_IDS needs SHARD_COUNT (the total number of shards of the bot)"
    )


def _seen(bot: discord.Client) -> tuple[list[int], list[int]]:
    """Record the interactions and DM messages the client's gateway delivered to it."""
    interactions: list[int] = []
    dms: list[int] = []

    async def on_interaction(interaction: discord.Interaction) -> None:
        interactions.append(interaction.id)

    async def on_message(message: discord.Message) -> None:
        if message.guild is None:
            dms.append(message.id)

    bot.add_listener(on_interaction)
    bot.add_listener(on_message)
    return interactions, dms


async def test_two_shard_processes_split_the_servers_and_sync_once(tmp_path: Path) -> None:
    async with running_bot(tmp_path, start=False, shards=2) as h:
        fake = h.discord
        guilds = [fake.add_guild(f"Shard {n}", shard=(n, 2)) for n in (0, 1)]
        for guild in guilds:
            fake.add_member(guild.id, h.alice)
        # Shard 1's process first: it must not sync (the hash is not there yet either).
        one = await h.start_other_bot(SHARD_COUNT="2", SHARD_IDS="1")
        assert len(fake.requests_for(*COMMANDS_PUT)) == 0
        zero = await h.start_bot(SHARD_COUNT="2", SHARD_IDS="0")
        assert (zero.shard_ids, one.shard_ids) == ([0], [1])
        assert sorted(s.shard for s in fake.sessions) == [[0, 2], [1, 2]]
        assert guilds[0].id in {g.id for g in zero.guilds} - {g.id for g in one.guilds}
        assert guilds[1].id in {g.id for g in one.guilds} - {g.id for g in zero.guilds}
        assert len(fake.requests_for(*COMMANDS_PUT)) == 1  # shard 0's process only
        seen_zero, dms_zero = _seen(zero)
        seen_one, dms_one = _seen(one)

        asked = [
            await h.slash({"prompt": f"a fox on shard {n}"}, guild_id=guilds[n].id) for n in (0, 1)
        ]
        for n, interaction in enumerate(asked):
            message = await h.final(interaction)
            assert message.embeds[0]["title"] == f"a fox on shard {n}" and message.attachments
        assert seen_zero == [asked[0].id] and seen_one == [asked[1].id]
        callbacks = fake.requests_for("POST", "/interactions/{interaction_id}/{token}/callback")
        assert len(callbacks) == 2 and all(r.status < 300 for r in callbacks)  # once each
        assert len(h.space.joins("g4f-flux")) == 2

        channel = fake.dm_channel_for(h.alice)
        prompt = fake.post_user_message(channel, h.alice, "a robot in a DM")

        def answered():
            replies = [m for m in fake.channel_history(channel) if m in h.bot_messages()]
            return replies and replies[-1].embeds and replies

        replies = await fake.wait_until(answered, 15)
        assert len(replies) == 1 and replies[0].embeds[0]["title"] == "a robot in a DM"
        assert dms_zero[0] == prompt.id and dms_one == []
        assert len(h.space.joins("g4f-flux")) == 3

        # Restarting the shard-0 process: the tree is unchanged, so still one sync.
        await h.stop_bot()
        await h.start_bot(SHARD_COUNT="2", SHARD_IDS="0")
        assert len(fake.requests_for(*COMMANDS_PUT)) == 1
        assert fake.internal_errors == []


async def test_a_starting_shard_recovers_only_its_own_servers_jobs(tmp_path: Path) -> None:
    """A job running in the other process is not this restart's to call interrupted."""
    from imagine.store import JobState, Store

    async with running_bot(tmp_path, start=False, shards=2) as h:
        guilds = [h.discord.add_guild(f"Shard {n}", shard=(n, 2)) for n in (0, 1)]
        store = await Store.open(h.settings.database_url)
        try:
            jobs = []
            for guild_id in (guilds[0].id, guilds[1].id, None):
                job = await store.create_job(
                    user_id=int(h.alice["id"]), guild_id=guild_id, channel_id=1,
                    source="slash", prompt="a fox", model="flux", width=512, height=512,
                    seed=None, state=JobState.RUNNING,
                )  # fmt: skip
                jobs.append(job)
        finally:
            await store.close()
        bot = await h.start_bot(SHARD_COUNT="2", SHARD_IDS="1")
        states = [(await bot.store.job(job.id)).state for job in jobs]
        assert states == [JobState.RUNNING, JobState.INTERRUPTED, JobState.RUNNING]
        await h.stop_bot()
        bot = await h.start_bot(SHARD_COUNT="2", SHARD_IDS="0")
        states = [(await bot.store.job(job.id)).state for job in jobs]
        assert states == [JobState.INTERRUPTED] * 3
