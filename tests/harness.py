"""The whole bot, for real, between local fakes: Discord (REST + gateway), the Spaces and (on
request: ``running_bot(..., horde=True)``) the AI Horde.

The real ``ImagineBot`` (discord.py client, cogs, engine, SQLite store) is started in the test's
event loop against ``FakeDiscord`` and ``FakeSpace`` on 127.0.0.1; tests drive it the way
Discord would (interactions, messages, button presses) and read what it sent back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import discord
from discord.gateway import DiscordWebSocket

import bot as bot_module
from imagine.settings import Settings
from tests.conftest import all_but_horde_file, seed_backends_file
from tests.fakes.discord_server import FakeDiscord, FakeInteraction, Guild, MessageRecord
from tests.fakes.horde import FakeHorde
from tests.fakes.space import FakeSpace

MANAGE_GUILD = 1 << 5
MANAGE_MESSAGES = 1 << 13


@dataclass
class Harness:
    discord: FakeDiscord
    space: FakeSpace
    settings: Settings
    database: Path
    guild: Guild
    alice: dict[str, Any]
    bob: dict[str, Any]
    admin: dict[str, Any]
    bot: bot_module.ImagineBot | None = None
    task: asyncio.Task | None = None
    env: dict[str, str] = field(default_factory=dict)
    #: The fake AI Horde, with ``running_bot(..., horde=True)``.
    horde: FakeHorde | None = None
    #: More bot processes (other shards) beside ``bot``, stopped when the harness ends.
    others: list[tuple[bot_module.ImagineBot, asyncio.Task]] = field(default_factory=list)

    @property
    def channel_id(self) -> int:
        return self.guild.channel_id

    async def start_bot(self, **overrides: str) -> bot_module.ImagineBot:
        settings = Settings.from_env({**self.env, **overrides}) if overrides else self.settings
        self.bot = bot_module.ImagineBot(settings, guild_ready_timeout=0.05)
        self.task = await _launch(self.bot)
        return self.bot

    async def start_other_bot(self, **overrides: str) -> bot_module.ImagineBot:
        """Another bot process in the same loop (same fakes, same database), e.g. a shard."""
        settings = Settings.from_env({**self.env, **overrides})
        bot = bot_module.ImagineBot(settings, guild_ready_timeout=0.05)
        self.others.append((bot, await _launch(bot)))
        return bot

    async def stop_bot(self) -> None:
        if self.bot is not None and self.task is not None:
            await _stop(self.bot, self.task)
        self.bot = None
        self.task = None

    async def stop_all(self) -> None:
        while self.others:
            await _stop(*self.others.pop())
        await self.stop_bot()

    async def slash(self, options: dict | None = None, *, user=None, **kwargs) -> FakeInteraction:
        kwargs.setdefault("guild_id", self.guild.id)
        return await self.discord.send_slash(
            "imagine", options or {}, user=user or self.alice, **kwargs
        )

    async def final(self, interaction: FakeInteraction, within: float = 15) -> MessageRecord:
        """The interaction's reply once it has ended: a result, a failure or a cancellation."""

        def ended():
            message = interaction.original
            if message is None or message.loading:
                return False
            return message.embeds or message.content.startswith("Cancelled")

        await self.discord.wait_until(ended, within)
        return interaction.original

    async def job_state(self, job_id: int, expected: str, within: float = 5) -> str:
        """The job's state in the log once it is ``expected`` (the log follows the reply)."""
        deadline = asyncio.get_running_loop().time() + within
        while True:
            job = await self.bot.store.job(job_id)
            if job.state == expected or asyncio.get_running_loop().time() > deadline:
                return job.state
            await asyncio.sleep(0.02)

    async def ephemeral(self, interaction: FakeInteraction) -> str:
        """The text of an ephemeral refusal (callback type 4 with flag 64)."""
        callback = await interaction.wait_callback(3)
        assert callback["type"] == 4, callback
        assert callback["data"].get("flags", 0) & 64, callback
        return callback["data"]["content"]

    async def refusal(self, interaction: FakeInteraction, within: float = 10) -> str:
        """The text of a private refusal: an ephemeral answer, or (when the bot had to
        acknowledge first, to read an image) an ephemeral follow-up after the "thinking…"
        placeholder was removed, so that nothing is left stuck."""
        callback = await interaction.wait_callback(3)
        if callback["type"] == 4:
            assert callback["data"].get("flags", 0) & 64, callback
            return callback["data"]["content"]
        assert callback["type"] == 5, callback

        def told():
            followups = [m for m in interaction.followups if m.ephemeral]
            return followups and interaction.original.deleted and followups[-1]

        message = await self.discord.wait_until(told, within)
        return message.content

    def bot_messages(self) -> list[MessageRecord]:
        bot_id = int(self.discord.bot_user_id)
        return [m for m in self.discord.messages.values() if int(m.author["id"]) == bot_id]


async def _launch(bot: bot_module.ImagineBot) -> asyncio.Task:
    """Start ``bot`` and wait until it is ready; its running task."""
    bot_module.point_at_api(bot.settings.discord_api_base_url)
    ready = asyncio.Event()
    bot.add_listener(_set_on_ready(ready), "on_ready")
    task = asyncio.create_task(bot.start(bot.settings.discord_token or ""))
    waiter = asyncio.ensure_future(ready.wait())
    done, _ = await asyncio.wait({task, waiter}, timeout=15, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if task in done:
        task.result()  # raise what stopped the bot
    assert ready.is_set(), "the bot did not become ready"
    return task


async def _stop(bot: bot_module.ImagineBot, task: asyncio.Task) -> None:
    await bot.close()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await asyncio.wait_for(task, 10)


def _set_on_ready(event: asyncio.Event):
    async def on_ready() -> None:
        event.set()

    return on_ready


@asynccontextmanager
async def running_bot(
    tmp_path: Path,
    *,
    start: bool = True,
    token: str = "test-token",
    all_backends: bool = False,
    shards: int = 1,
    horde: bool = False,
    **env: str,
) -> AsyncIterator[Harness]:
    """The bot between the fakes; with the seed's backends only unless ``all_backends``.
    ``shards`` is the count the fake's ``GET /gateway/bot`` recommends. ``horde``: the fake
    AI Horde too, its models offered (``HORDE_MODELS``) and its FLUX model behind ``flux`` and
    ``flux-dev``; without it the Horde backend is left out."""
    saved_base = discord.http.Route.BASE
    saved_gateway = DiscordWebSocket.DEFAULT_GATEWAY
    fake_discord = FakeDiscord(token=token, shards=shards)
    fake_space = FakeSpace()
    fake_horde = FakeHorde() if horde else None
    async with fake_discord, fake_space, contextlib.AsyncExitStack() as stack:
        if fake_horde is not None:
            await stack.enter_async_context(fake_horde)
        guild = fake_discord.add_guild("Art Club")
        alice = fake_discord.add_user("alice")
        bob = fake_discord.add_user("bob")
        admin = fake_discord.add_user("admin")
        for user in (alice, bob):
            fake_discord.add_member(guild.id, user)
        fake_discord.add_member(guild.id, admin, permissions=MANAGE_GUILD | MANAGE_MESSAGES | 0x800)
        database = tmp_path / "imagine.db"
        if all_backends:
            backends = {} if horde else {"IMAGINE_BACKENDS": all_but_horde_file(tmp_path)}
        else:
            backends = {"IMAGINE_BACKENDS": seed_backends_file(tmp_path, horde=horde)}
        full_env = {
            **fake_space.env(),
            **(fake_horde.env() if fake_horde is not None else {}),
            "DISCORD_TOKEN": token,
            "DISCORD_API_BASE_URL": fake_discord.rest_base,
            "DATABASE_URL": f"sqlite:///{database}",
            "JOB_WATCHDOG_SECONDS": "10",
            "JOB_TIMEOUT_SECONDS": "30",
            "LOG_LEVEL": "INFO",
            **backends,
            **env,
        }
        harness = Harness(
            discord=fake_discord,
            space=fake_space,
            settings=Settings.from_env(full_env),
            database=database,
            guild=guild,
            alice=alice,
            bob=bob,
            admin=admin,
            env=full_env,
            horde=fake_horde,
        )
        try:
            if start:
                await harness.start_bot()
            yield harness
        finally:
            await harness.stop_all()
            discord.http.Route.BASE = saved_base
            DiscordWebSocket.DEFAULT_GATEWAY = saved_gateway
            logging.getLogger("discord").handlers.clear()
