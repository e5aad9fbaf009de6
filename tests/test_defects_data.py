"""Data defects from the issue: lost settings changes (7), migrations (18), the job log's
retention and its interaction tokens (19).

The store-level tests run on SQLite and on a real PostgreSQL server (``database_url``).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest
import sqlalchemy as sa

from imagine.store import GuildSettings, Store
from tests.harness import MANAGE_GUILD, running_bot

# -- item 7: settings changes are atomic ---------------------------------------------------


async def _two_admins(h) -> list[dict[str, Any]]:
    second = h.discord.add_user("admin2")
    h.discord.add_member(h.guild.id, second, permissions=MANAGE_GUILD)
    return [h.admin, second]


async def _config(h, user, sub: str, options: dict[str, Any]):
    return await h.discord.send_slash(
        "imagine-config", options, subcommand=sub, user=user, guild_id=h.guild.id,
        permissions=MANAGE_GUILD,
    )  # fmt: skip


async def _shown(h) -> str:
    shown = await _config(h, h.admin, "show", {})
    return (await shown.wait_callback(3))["data"]["embeds"][0]["description"]


async def test_item07_two_admins_adding_channels_at_once_both_kept(tmp_path):
    async with running_bot(tmp_path) as h:
        admins = await _two_admins(h)
        art = h.discord.add_channel(h.guild.id, "art")
        memes = h.discord.add_channel(h.guild.id, "memes")
        sent = await asyncio.gather(
            _config(h, admins[0], "channels", {"action": "add", "channel": art}),
            _config(h, admins[1], "channels", {"action": "add", "channel": memes}),
        )
        for interaction in sent:
            assert "now works in" in await h.ephemeral(interaction)
        assert set((await h.bot.store.guild(h.guild.id)).channels) == {art, memes}
        text = await _shown(h)
        assert f"<#{art}>" in text and f"<#{memes}>" in text, text
        await h.stop_bot()
        await h.start_bot()
        assert set((await h.bot.store.guild(h.guild.id)).channels) == {art, memes}


async def test_item07_two_admins_adding_blocked_words_at_once_both_kept(tmp_path):
    async with running_bot(tmp_path) as h:
        admins = await _two_admins(h)
        sent = await asyncio.gather(
            _config(h, admins[0], "blocked-words", {"action": "add", "words": "gore"}),
            _config(h, admins[1], "blocked-words", {"action": "add", "words": "spoilers, tax"}),
        )
        for interaction in sent:
            assert "blocked word(s) now" in await h.ephemeral(interaction)
        words = (await h.bot.store.guild(h.guild.id)).blocked_words
        assert sorted(words) == ["gore", "spoilers", "tax"]
        assert "**Blocked words:** 3" in await _shown(h)
        await h.stop_bot()
        await h.start_bot()
        assert sorted((await h.bot.store.guild(h.guild.id)).blocked_words) == sorted(words)


async def test_item07_default_model_and_allowed_models_at_once_stay_consistent(tmp_path):
    """`model` checks the allowed list and `models` fixes the default, both on the fresh value:
    the outcome is one of the two orders, and what each admin was told is true."""
    async with running_bot(tmp_path) as h:
        admins = await _two_admins(h)
        sent = await asyncio.gather(
            _config(h, admins[0], "model", {"model": "flux-dev"}),
            _config(h, admins[1], "models", {"models": "flux"}),
        )
        told_model, told_models = [await h.ephemeral(i) for i in sent]
        settings = await h.bot.store.guild(h.guild.id)
        assert settings.allowed_models == ("flux",)
        if "is now **flux-dev**" in told_model:  # model first, then models moved the default
            assert "The default model is now **flux**" in told_models
            assert settings.default_model == "flux"
        else:  # models first, then model was refused
            assert "not among the models" in told_model
            assert settings.default_model is None


async def test_item07_blocked_words_over_the_limit_change_nothing(tmp_path):
    async with running_bot(tmp_path) as h:
        words = ", ".join(f"w{i}" for i in range(199))
        await h.ephemeral(
            await _config(h, h.admin, "blocked-words", {"action": "add", "words": words})
        )
        answer = await h.ephemeral(
            await _config(h, h.admin, "blocked-words", {"action": "add", "words": "x, y"})
        )
        assert "nothing changed" in answer
        assert len((await h.bot.store.guild(h.guild.id)).blocked_words) == 199


async def test_item07_first_writes_from_two_processes_both_kept(database_url):
    """Two stores (two processes) on one database, each first to write a new server's row."""
    first, second = await Store.open(database_url), await Store.open(database_url)
    try:
        guilds = range(100, 110)
        await asyncio.gather(
            *(first.update_guild(g, channels=(g,)) for g in guilds),
            *(second.update_guild(g, blocked_words=(f"w{g}",)) for g in guilds),
        )
    finally:
        await first.close()
        await second.close()
    store = await Store.open(database_url)
    try:
        for g in guilds:
            settings = await store.guild(g)
            assert (settings.channels, settings.blocked_words) == ((g,), (f"w{g}",)), settings
    finally:
        await store.close()


async def test_item07_list_changes_from_two_processes_all_kept(database_url):
    """Appending to one list from two stores at once: every change is applied to the fresh row."""
    first, second = await Store.open(database_url), await Store.open(database_url)

    def adding(channel: int):
        return lambda s: replace(s, channels=(*s.channels, channel))

    try:
        stores = (first, second)
        await asyncio.gather(*(stores[c % 2].change_guild(7, adding(c)) for c in range(20)))
    finally:
        await first.close()
        await second.close()
    store = await Store.open(database_url)
    try:
        assert sorted((await store.guild(7)).channels) == list(range(20))
    finally:
        await store.close()


async def test_item07_refused_change_changes_nothing(database_url):
    store = await Store.open(database_url)

    class Refused(Exception):
        pass

    def refuse(settings: GuildSettings) -> GuildSettings:
        raise Refused("no")

    try:
        with pytest.raises(Refused):
            await store.change_guild(1, refuse)  # a new server: no row may appear
        await store.update_guild(2, cooldown_seconds=5)
        with pytest.raises(Refused):
            await store.change_guild(2, lambda s: refuse(replace(s, cooldown_seconds=9)))
        assert (await store.guild(1)) == GuildSettings(1)
        assert (await store.guild(2)).cooldown_seconds == 5
        async with store.engine.connect() as conn:
            rows = (
                await conn.execute(sa.text("SELECT guild_id, cooldown_seconds FROM guild_settings"))
            ).all()
        assert [tuple(r) for r in rows] == [(2, 5)]
    finally:
        await store.close()
