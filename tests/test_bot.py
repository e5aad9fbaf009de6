"""The bot end to end: the real discord.py client against the fake Discord, the real engine
against the fake Spaces. Each test starts the whole bot (cogs, store, scheduler)."""

from __future__ import annotations

import asyncio
import io
import os
import sqlite3
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.harness import MANAGE_GUILD, MANAGE_MESSAGES, running_bot

pytestmark = pytest.mark.timeout(60)
ROOT = Path(__file__).resolve().parents[1]
NONE = {"parse": []}


def field(embed: dict, name: str) -> str:
    return next(f["value"] for f in embed["fields"] if f["name"] == name)


def buttons(message) -> list[str]:
    return [c["custom_id"] for row in message.components for c in row["components"]]


def assert_no_pings(h) -> None:
    for message in h.bot_messages():
        assert not message.would_ping, message.content
        if message.allowed_mentions is not None:
            assert message.allowed_mentions.get("parse") == [], message.allowed_mentions


async def test_imagine_end_to_end(tmp_path):
    async with running_bot(tmp_path) as h:
        h.space.generation_delay = 1.5
        interaction = await h.slash(
            {"prompt": "a red fox in snow", "model": "flux-dev", "width": 768, "height": 512,
             "seed": 7}
        )  # fmt: skip
        callback = await interaction.wait_callback(3)
        assert callback["type"] == 5 and interaction.ack_latency < 0.5
        message = await h.final(interaction)
        statuses = [v["content"] for v in message.versions if v.get("content")]
        assert any("flux-dev" in s for s in statuses), statuses
        assert len(statuses) >= 1
        (embed,) = message.embeds
        assert embed["title"] == "a red fox in snow"
        assert field(embed, "Model") == "flux-dev"
        assert field(embed, "Seed") == "7"
        assert field(embed, "Size") == "768×512"
        assert field(embed, "Time").endswith("s")
        assert message.content in ("", None)
        data = message.attachment_bytes(0)
        assert data == h.space.served[-1].bytes
        assert Image.open(io.BytesIO(data)).size == (768, 512)
        # The embed shows the attached file (Discord resolves attachment:// to its URL).
        assert message.attachments[0]["filename"] in embed["image"]["url"]
        job_id = buttons(message)[0].rsplit(":", 1)[1]
        actions = ("upscale", "vary", "region", "edit", "zoom2", "zoom1.5", "zoom")
        actions += ("pan-up", "pan-down", "reroll", "delete")  # 3:2 may not pan sideways
        assert buttons(message) == [f"imagine:{action}:{job_id}" for action in actions]
        assert h.space.joins("flux-dev")[0].json["data"][:5] == [
            "a red fox in snow",
            7,
            False,
            768,
            512,
        ]
        assert h.discord.count_429 == 0
        assert_no_pings(h)


@pytest.mark.parametrize(
    ("model", "space", "shown"),
    [("flux", "g4f-flux", "flux"), ("flux-schnell", "g4f-flux", "flux"),
     ("janus-pro-7b-image", "janus", "janus-pro-7b-image")],
)  # fmt: skip
async def test_each_model(tmp_path, model, space, shown):
    async with running_bot(tmp_path) as h:
        interaction = await h.slash({"prompt": "a lighthouse", "model": model})
        message = await h.final(interaction)
        assert len(h.space.joins(space)) == 1
        assert field(message.embeds[0], "Model") == shown
        assert message.attachment_bytes(0) in h.space.images_by_url.values()


async def test_default_model_and_size(tmp_path):
    async with running_bot(tmp_path) as h:
        message = await h.final(await h.slash({"prompt": "a boat"}))
        assert field(message.embeds[0], "Model") == "flux"
        assert field(message.embeds[0], "Size") == "1024×1024"


async def test_conversation_is_the_prompt(tmp_path):
    async with running_bot(tmp_path) as h:
        post = h.discord.post_user_message
        post(h.channel_id, h.alice, "an old idea")
        first = await h.final(await h.slash({"prompt": "something else"}))
        assert first.embeds
        post(h.channel_id, h.alice, "a castle")
        post(h.channel_id, h.bob, "nice!")
        post(h.channel_id, h.alice, "on a hill at dusk")
        await asyncio.sleep(0.1)
        message = await h.final(await h.slash({}))
        assert message.embeds[0]["title"] == "a castle on a hill at dusk"
        assert h.space.joins("g4f-flux")[-1].json["data"][0] == "a castle\non a hill at dusk"


async def test_nothing_to_draw_is_an_ephemeral_error(tmp_path):
    async with running_bot(tmp_path) as h:
        h.discord.post_user_message(h.channel_id, h.bob, "bob talks alone")
        interaction = await h.slash({})
        assert "Nothing to draw" in await h.ephemeral(interaction)
        assert h.space.requests == []


async def test_message_menu_imagine_this(tmp_path):
    async with running_bot(tmp_path) as h:
        target = h.discord.post_user_message(h.channel_id, h.bob, "a whale in the sky")
        interaction = await h.discord.send_message_command("Imagine this", target, user=h.alice)
        message = await h.final(interaction)
        assert message.embeds[0]["title"] == "a whale in the sky"
        assert h.space.joins("g4f-flux")[0].json["data"][0] == "a whale in the sky"


async def test_dm_prompt_two_lines_one_reply(tmp_path):
    async with running_bot(tmp_path) as h:
        h.space.generation_delay = 1.2
        channel = h.discord.dm_channel_for(h.alice)
        h.discord.post_user_message(channel, h.alice, "a tiny robot")
        await asyncio.sleep(0.2)
        h.discord.post_user_message(channel, h.alice, "watering plants")

        def finished():
            replies = [m for m in h.discord.channel_history(channel) if m in h.bot_messages()]
            return replies and replies[-1].embeds and replies

        replies = await h.discord.wait_until(finished, 15)
        assert len(replies) == 1  # one reply, edited
        reply = replies[0]
        assert reply.edit_count >= 2  # at least one status edit, then the result
        assert reply.embeds[0]["title"] == "a tiny robot watering plants"
        assert reply.attachment_bytes(0) == h.space.served[-1].bytes
        assert len(h.space.joins("g4f-flux")) == 1
        assert_no_pings(h)


async def test_imagine_in_a_dm_as_a_user_app(tmp_path):
    async with running_bot(tmp_path) as h:
        interaction = await h.discord.send_slash(
            "imagine", {"prompt": "a kite"}, user=h.bob, context=1
        )
        message = await h.final(interaction)
        assert message.embeds[0]["title"] == "a kite"


async def test_everyone_in_a_prompt_pings_no_one(tmp_path):
    async with running_bot(tmp_path) as h:
        h.space.generation_delay = 1.2
        interaction = await h.slash({"prompt": "@everyone look <@&123> @here a dragon"})
        message = await h.final(interaction)
        assert "@everyone" in message.versions[1]["content"]  # shown, as text
        assert_no_pings(h)
        assert all(not v.get("mention_everyone") for v in message.versions)


async def test_buttons_cancel_reroll_delete_and_who_may_press_them(tmp_path):
    async with running_bot(tmp_path) as h:
        h.space.generation_delay = 30
        interaction = await h.slash({"prompt": "a slow painting", "model": "flux-dev"})
        running = await h.discord.wait_until(
            lambda: interaction.original and interaction.original.components
            and interaction.original, 10
        )  # fmt: skip
        cancel = buttons(running)[0]
        assert cancel.startswith("imagine:cancel:")
        refused = await h.discord.press_button(running, cancel, user=h.bob)
        assert "Only the person who asked" in await h.ephemeral(refused)
        await h.discord.press_button(running, cancel, user=h.alice)
        cancelled = await h.final(interaction)
        assert cancelled.content.startswith("Cancelled by alice")
        job_id = int(cancel.rsplit(":", 1)[1])
        assert await h.job_state(job_id, "cancelled") == "cancelled"

        h.space.generation_delay = 0
        done = await h.final(await h.slash({"prompt": "a quick sketch", "seed": 5}))
        *_, reroll, delete = buttons(done)  # the last row: Reroll, Delete
        # Anyone may reroll: a new reply, same prompt, new seed.
        again = await h.discord.press_button(done, reroll, user=h.bob)
        assert (await again.wait_callback(3))["type"] == 5
        rerolled = await h.final(again)
        assert rerolled.id != done.id
        assert rerolled.embeds[0]["title"] == "a quick sketch"
        assert field(rerolled.embeds[0], "Seed") != "5"
        # Delete: not for bob, yes for a moderator.
        refused = await h.discord.press_button(done, delete, user=h.bob)
        assert "Only the person who asked" in await h.ephemeral(refused)
        assert not done.deleted
        await h.discord.press_button(done, delete, user=h.admin, permissions=MANAGE_MESSAGES)
        await h.discord.wait_until(lambda: done.deleted, 5)


async def test_config_set_show_and_survive_a_restart(tmp_path):
    async with running_bot(tmp_path) as h:
        send = h.discord.send_slash
        admin = {"user": h.admin, "guild_id": h.guild.id, "permissions": MANAGE_GUILD}
        art = h.discord.add_channel(h.guild.id, "art")
        for sub, options in [
            ("models", {"models": "flux, flux-dev"}),
            ("model", {"model": "flux-dev"}),
            ("cooldown", {"seconds": 30}),
            ("channels", {"action": "add", "channel": art}),
            ("max-size", {"pixels": 768}),
            ("fallback", {"model": "flux"}),
        ]:
            answer = await h.ephemeral(
                await send("imagine-config", options, subcommand=sub, **admin)
            )
            assert "Manage Server" not in answer, (sub, answer)
        await h.stop_bot()
        await h.start_bot()
        shown = await send("imagine-config", {}, subcommand="show", **admin)
        callback = await shown.wait_callback(3)
        text = callback["data"]["embeds"][0]["description"]
        for expected in (
            "flux-dev",
            "flux, flux-dev",
            "30s",
            f"<#{art}>",
            "768",
            "Fallback model:** flux",
        ):
            assert expected in text, (expected, text)
        # The settings apply: wrong channel, too large, model not allowed.
        refusal = await h.ephemeral(await h.slash({"prompt": "x"}))
        assert "not enabled in this channel" in refusal
        refusal = await h.ephemeral(await h.slash({"prompt": "x", "width": 1024}, channel_id=art))
        assert "largest width on this server is 768" in refusal
        refusal = await h.ephemeral(
            await h.slash({"prompt": "x", "model": "janus-pro-7b-image"}, channel_id=art)
        )
        assert "not enabled on this server" in refusal
        message = await h.final(await h.slash({"prompt": "a fern"}, channel_id=art))
        assert field(message.embeds[0], "Model") == "flux-dev"
        assert field(message.embeds[0], "Size") == "768×768"
        refusal = await h.ephemeral(await h.slash({"prompt": "again"}, channel_id=art))
        assert "30s cooldown" in refusal
        # Autocomplete offers only the allowed models.
        auto = await h.discord.send_autocomplete(
            "imagine", {"model": ""}, "model", user=h.bob, guild_id=h.guild.id, channel_id=art
        )
        choices = (await auto.wait_callback(3))["data"]["choices"]
        assert [c["value"] for c in choices] == ["flux", "flux-dev"]


async def test_non_admin_is_refused_and_nothing_is_stored(tmp_path):
    async with running_bot(tmp_path) as h:
        interaction = await h.discord.send_slash(
            "imagine-config", {"seconds": 999}, subcommand="cooldown", user=h.bob,
            guild_id=h.guild.id, permissions=0,
        )  # fmt: skip
        assert "Manage Server" in await h.ephemeral(interaction)
        with sqlite3.connect(h.database) as db:
            assert db.execute("SELECT COUNT(*) FROM guild_settings").fetchone() == (0,)
        config = next(c for c in h.discord.commands if c["name"] == "imagine-config")
        assert str(config["default_member_permissions"]) == str(MANAGE_GUILD)


async def test_other_servers_settings_are_their_own(tmp_path):
    async with running_bot(tmp_path) as h:
        other = h.discord.add_guild("Other")
        h.discord.add_member(other.id, h.admin, permissions=MANAGE_GUILD)
        await h.discord.send_slash(
            "imagine-config", {"pixels": 256}, subcommand="max-size", user=h.admin,
            guild_id=other.id, permissions=MANAGE_GUILD,
        )  # fmt: skip
        await asyncio.sleep(0.2)
        assert (await h.bot.store.guild(other.id)).max_size == 256
        assert (await h.bot.store.guild(h.guild.id)).max_size is None


async def test_twenty_concurrent_jobs_from_different_users(tmp_path):
    async with running_bot(tmp_path, MAX_CONCURRENT_JOBS="8") as h:
        h.space.generation_delay = 1.0
        users = [h.discord.add_user(f"user{i}") for i in range(20)]
        for user in users:
            h.discord.add_member(h.guild.id, user)
        interactions = await asyncio.gather(
            *(h.slash({"prompt": f"picture {i}"}, user=u) for i, u in enumerate(users))
        )
        messages = await asyncio.gather(*(h.final(i, within=40) for i in interactions))
        assert all(m.attachments for m in messages)
        assert all(i.ack_latency < 3 for i in interactions)
        assert h.discord.count_429 == 0
        statuses = [v["content"] for m in messages for v in m.versions if v.get("content")]
        assert any("in line" in s for s in statuses), "waiting jobs show their place"
        assert_no_pings(h)


async def test_commands_sync_only_when_changed(tmp_path):
    async with running_bot(tmp_path) as h:
        puts = lambda: len(h.discord.requests_for("PUT", "/applications/{application_id}/commands"))  # noqa: E731
        assert puts() == 1
        await h.stop_bot()
        await h.start_bot()
        assert puts() == 1  # unchanged tree: no sync
        await h.stop_bot()
        h.bot = None
        import bot as bot_module

        original = bot_module.ImagineBot.__init__

        def forced(self, settings, **kw):
            original(self, settings, force_sync=True, **kw)

        bot_module.ImagineBot.__init__ = forced
        try:
            await h.start_bot()
        finally:
            bot_module.ImagineBot.__init__ = original
        assert puts() == 2


async def test_bot_without_a_token_exits_2(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DISCORD_TOKEN"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "bot.py"), cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1 and "DISCORD_TOKEN" in lines[0] and ".env.example" in lines[0]


async def test_failover_is_shown_in_the_embed_and_in_config_show(tmp_path):
    from tests.fakes.space import ServerError

    async with running_bot(tmp_path, all_backends=True) as h:
        h.space.set_fault("g4f-flux", ServerError(503))
        message = await h.final(await h.slash({"prompt": "a fox", "model": "flux"}))
        assert message.attachments
        assert "drawn by FLUX.1-schnell (official Space)" in message.embeds[0]["footer"]["text"]
        shown = await h.discord.send_slash(
            "imagine-config", {}, subcommand="show", user=h.admin, guild_id=h.guild.id,
            permissions=MANAGE_GUILD,
        )  # fmt: skip
        embed = (await shown.wait_callback(3))["data"]["embeds"][0]
        backends = next(f["value"] for f in embed["fields"] if f["name"] == "Backends")
        assert "`g4f-flux` (flux): resting" in backends
        assert "`flux-schnell` (flux): healthy" in backends


async def test_bot_with_a_broken_backends_file_exits_2(tmp_path):
    broken = tmp_path / "backends.toml"
    broken.write_text("[models]\nflux = ['ghost']\n")
    env = {**os.environ, "DISCORD_TOKEN": "x" * 30, "IMAGINE_BACKENDS": str(broken)}
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "bot.py"), cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    assert err.decode().strip() == (
        "Invalid setting: IMAGINE_BACKENDS: models.flux names unknown backends: ['ghost']"
    )
