"""Tests of the fake Discord itself, driven by the real, unmodified discord.py client."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import time
import zlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import discord
import pytest
import yarl
from discord import app_commands
from discord.gateway import DiscordWebSocket
from discord.http import Route
from PIL import Image

from tests.fakes.discord_server import (
    FakeAttachment,
    FakeDiscord,
    FakeInteraction,
    compute_pings,
)

pytestmark = pytest.mark.timeout(30)


def _png(colour: str = "red") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 8), colour).save(buf, format="PNG")
    return buf.getvalue()


PNG = _png()
GRID = [_png(colour) for colour in ("red", "green", "blue", "yellow", "white", "black", "gray")]


class PingView(discord.ui.View):
    """One button; pressing it rewrites the message (callback type 7)."""

    def __init__(self, bot: Bot) -> None:
        super().__init__(timeout=None)
        self.bot = bot

    @discord.ui.button(label="Again", custom_id="ping:again", style=discord.ButtonStyle.primary)
    async def again(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        self.bot.presses.append(interaction.user.id)
        await interaction.response.edit_message(content="pressed", view=None)


class Bot(discord.Client):
    """A throwaway bot: /ping defers, edits with a file and a button; /think only defers."""

    def __init__(self, *, intents: discord.Intents | None = None, **options: Any) -> None:
        super().__init__(
            intents=intents or discord.Intents.default(),
            guild_ready_timeout=0.05,
            **options,
        )
        self.tree = app_commands.CommandTree(self)
        self.ready_event = asyncio.Event()
        self.resumed_event = asyncio.Event()
        self.failures: list[discord.HTTPException] = []
        self.presses: list[int] = []
        self.seen_messages: list[discord.Message] = []
        self.seen_interactions: list[discord.Interaction] = []

        @self.tree.command(name="ping", description="Defer, then answer with an image and a button")
        @app_commands.describe(prompt="What to draw", edits="How many edits", delay="Late ack")
        async def ping(
            interaction: discord.Interaction,
            prompt: str,
            edits: int = 1,
            delay: float = 0.0,
            hold: float = 0.0,
        ) -> None:
            try:
                await asyncio.sleep(delay)
                await interaction.response.defer(thinking=True)
                await asyncio.sleep(hold)
                for step in range(edits - 1):
                    await interaction.edit_original_response(content=f"step {step + 1}")
                await interaction.edit_original_response(
                    content=f"done: {prompt}",
                    attachments=[discord.File(io.BytesIO(PNG), filename="image.png")],
                    view=PingView(self),
                )
            except discord.HTTPException as exc:
                self.failures.append(exc)

        @self.tree.command(name="think", description="Only defer")
        async def think(interaction: discord.Interaction) -> None:
            await interaction.response.defer(thinking=True)

        @self.tree.command(name="style", description="Pick a style")
        async def style(interaction: discord.Interaction, name: str) -> None:
            await interaction.response.send_message(f"style={name}")

        @style.autocomplete("name")
        async def style_names(
            interaction: discord.Interaction, current: str
        ) -> list[app_commands.Choice[str]]:
            names = ("anime", "photo", "pixel")
            return [app_commands.Choice(name=n, value=n) for n in names if n.startswith(current)]

        @app_commands.context_menu(name="Upscale")
        async def upscale(interaction: discord.Interaction, message: discord.Message) -> None:
            await interaction.response.send_message(
                f"upscaling {message.id}: {message.content}",
                file=discord.File(io.BytesIO(PNG), filename="up.png"),
                ephemeral=True,
            )
            await interaction.followup.send("followup done")

        self.tree.add_command(upscale)

    async def on_ready(self) -> None:
        self.ready_event.set()

    async def on_resumed(self) -> None:
        self.resumed_event.set()

    async def on_message(self, message: discord.Message) -> None:
        self.seen_messages.append(message)

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        self.seen_interactions.append(interaction)


@contextlib.asynccontextmanager
async def run_bot(fake: FakeDiscord, bot: Bot | None = None) -> AsyncIterator[Bot]:
    """Start the real client against the fake; restore discord.py's globals afterwards."""
    bot = bot or Bot()
    saved = (Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY)
    Route.BASE = fake.rest_base
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)
    runner = asyncio.create_task(bot.start(fake.token))
    ready = asyncio.create_task(bot.ready_event.wait())
    try:
        done, _ = await asyncio.wait({runner, ready}, timeout=10, return_when="FIRST_COMPLETED")
        if runner in done:
            runner.result()
        assert ready in done, "the client never became ready"
        yield bot
    finally:
        ready.cancel()
        await bot.close()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.wait_for(runner, 5)
        Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = saved


async def eventually(predicate: Any, within: float = 5.0) -> None:
    """Poll client-side state (the fake's own wait_until only re-checks on fake changes)."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition on the client never held")
        await asyncio.sleep(0.01)


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as server:
        yield server
        assert server.internal_errors == []


async def _slash(fake: FakeDiscord, options: dict[str, Any], **kw: Any) -> FakeInteraction:
    guild = next(iter(fake.guilds.values()))
    user = kw.pop("user", None) or fake.add_user("alice")
    return await fake.send_slash(
        kw.pop("name", "ping"), options, user=user, guild_id=guild.id, **kw
    )


async def test_connects_over_zlib_stream_and_sees_guild(fake: FakeDiscord) -> None:
    guild = fake.add_guild("Art Club")
    fake.add_channel(guild.id, "images")
    async with run_bot(fake) as bot:
        session = await fake.wait_ready(timeout=5)
        assert session.ready and session.connected
        assert [p["t"] for _, p in session.buffer] == ["READY", "GUILD_CREATE"]
        assert fake.gateway_queries[0]["compress"] == "zlib-stream"
        assert fake.gateway_queries[0]["v"] == "10"
        assert fake.identifies == 1
        assert bot.user is not None and bot.user.id == fake.bot_user_id
        assert bot.application_id == fake.application_id
        [seen] = bot.guilds
        assert (seen.id, seen.name) == (guild.id, "Art Club")
        assert sorted(c.name for c in seen.text_channels) == ["general", "images"]
        assert seen.me is not None and seen.me.guild_permissions.send_messages
        # A guild added while connected arrives as GUILD_CREATE.
        joined = asyncio.create_task(bot.wait_for("guild_join", timeout=5))
        later = fake.add_guild("Later")
        assert (await joined).id == later.id


async def test_sync_lands_in_fake_commands(fake: FakeDiscord) -> None:
    fake.add_guild()
    async with run_bot(fake) as bot:
        synced = await bot.tree.sync()
        assert sorted(c.name for c in synced) == ["Upscale", "ping", "style", "think"]
        ping = next(c for c in fake.commands if c["name"] == "ping")
        assert {o["name"]: o["type"] for o in ping["options"]} == {
            "prompt": 3,
            "edits": 4,
            "delay": 10,
            "hold": 10,
        }
        assert {c.id for c in synced} == {int(c["id"]) for c in fake.commands}
        # Re-syncing keeps command ids, as Discord does for unchanged names.
        again = await bot.tree.sync()
        assert {c.id for c in again} == {c.id for c in synced}


async def test_slash_defer_then_file_edit(fake: FakeDiscord) -> None:
    fake.add_guild()
    async with run_bot(fake) as bot:
        await bot.tree.sync()
        inter = await _slash(fake, {"prompt": "a cat", "edits": 2})
        assert inter.payload["data"]["options"][1] == {"name": "edits", "type": 4, "value": 2}
        await inter.wait_callback(timeout=5)
        assert inter.callback is not None and inter.callback["type"] == 5
        assert inter.ack_latency is not None and inter.ack_latency < 3
        msg = await fake.wait_for_message(lambda m: m.content == "done: a cat", timeout=5)
        assert msg is inter.original
        assert [v["flags"] for v in msg.versions] == [128, 0, 0]
        assert [v["content"] for v in msg.versions] == ["", "step 1", "done: a cat"]
        assert msg.edit_count == 2
        assert msg.attachment_bytes(0) == PNG
        att = msg.attachments[0]
        assert (att["filename"], att["content_type"], att["width"]) == (
            "image.png",
            "image/png",
            16,
        )
        async with aiohttp.ClientSession() as http, http.get(att["url"]) as resp:
            assert resp.status == 200
            assert await resp.read() == PNG
        assert msg.components[0]["components"][0]["custom_id"] == "ping:again"
        assert bot.failures == []


async def test_late_callback_and_double_ack() -> None:
    async with FakeDiscord(ack_deadline=0.3) as fake:
        fake.add_guild()
        async with run_bot(fake) as bot:
            await bot.tree.sync()
            late = await _slash(fake, {"prompt": "x", "delay": 0.5})
            await late.wait_for(lambda i: bool(i.errors), timeout=5)
            await eventually(lambda: bot.failures)
            assert late.errors == [(404, 10062)]
            assert isinstance(bot.failures[0], discord.NotFound)
            assert bot.failures[0].code == 10062
            assert late.callback is None

            ok = await _slash(fake, {"prompt": "y"})
            await ok.wait_callback(timeout=5)
            url = f"{fake.rest_base}/interactions/{ok.id}/{ok.token}/callback"
            async with aiohttp.ClientSession() as http, http.post(url, json={"type": 5}) as resp:
                assert resp.status == 400
                assert (await resp.json())["code"] == 40060
            assert (400, 40060) in ok.errors


async def test_webhook_bucket_makes_discord_py_wait_not_429() -> None:
    async with FakeDiscord(webhook_limit=2, webhook_window=0.6) as fake:
        fake.add_guild()
        async with run_bot(fake) as bot:
            await bot.tree.sync()
            inter = await _slash(fake, {"prompt": "slow", "edits": 4})
            msg = await fake.wait_for_message(lambda m: m.content == "done: slow", timeout=10)
            assert fake.count_429 == 0
            assert bot.failures == []
            edits = [snap.at for snap in msg.history[1:]]
            assert len(edits) == 4
            # 2 per 0.6 s window: the 3rd edit had to wait for the window to reset.
            assert edits[2] - edits[0] >= 0.5
            patches = fake.requests_for(
                "PATCH", "/webhooks/{application_id}/{token}/messages/{message_id}"
            )
            assert [r.status for r in patches] == [200, 200, 200, 200]
            assert inter.errors == []


async def test_raw_requests_past_the_webhook_limit_get_429(fake: FakeDiscord) -> None:
    fake.webhook_limit, fake.webhook_window = 2, 5.0
    guild = fake.add_guild()
    inter = await fake.send_slash(
        "ping", {"prompt": "x"}, user=fake.add_user("bob"), guild_id=guild.id
    )
    base = fake.rest_base
    async with aiohttp.ClientSession() as http:
        cb = f"{base}/interactions/{inter.id}/{inter.token}/callback?with_response=1"
        async with http.post(cb, json={"type": 4, "data": {"content": "hi"}}) as resp:
            body = await resp.json()
            assert resp.status == 200
            assert body["resource"]["message"]["content"] == "hi"
            assert body["interaction"]["response_message_id"] == str(inter.original.id)
        url = f"{base}/webhooks/{fake.application_id}/{inter.token}/messages/@original"
        statuses, last = [], None
        for _ in range(3):
            async with http.get(url) as resp:
                statuses.append(resp.status)
                last = (dict(resp.headers), await resp.json())
    assert statuses == [200, 200, 429]
    headers, body = last
    assert body["global"] is False and 0 < body["retry_after"] <= 5
    assert headers["X-RateLimit-Remaining"] == "0"
    assert headers["X-RateLimit-Scope"] == "user"
    assert headers["Via"] == "1.1 google"
    assert fake.count_429 == 1
    assert inter.errors == [(429, 0)]


async def test_channel_bucket_is_waited_on_by_the_main_http_client() -> None:
    async with FakeDiscord(channel_limit=2, channel_window=0.5) as fake:
        guild = fake.add_guild()
        async with run_bot(fake) as bot:
            channel = bot.get_channel(guild.channel_id)
            assert isinstance(channel, discord.TextChannel)
            started = time.monotonic()
            for n in range(3):
                await channel.send(f"m{n}")
            assert time.monotonic() - started >= 0.4
            assert fake.count_429 == 0
            assert [m.content for m in fake.channel_history(guild.channel_id)] == ["m0", "m1", "m2"]


async def test_button_press_reaches_the_view(fake: FakeDiscord) -> None:
    fake.add_guild()
    async with run_bot(fake) as bot:
        await bot.tree.sync()
        inter = await _slash(fake, {"prompt": "dog"})
        msg = await fake.wait_for_message(lambda m: m.content == "done: dog", timeout=5)
        assert msg is inter.original
        click = await fake.press_button(msg, "ping:again", user=fake.add_user("carol"))
        callback = await click.wait_callback(timeout=5)
        assert callback["type"] == 7
        assert click.original is msg
        assert bot.presses == [int(click.user["id"])]
        assert msg.content == "pressed" and msg.components == []
        assert msg.attachment_bytes(0) == PNG  # attachments absent from the edit = kept
        with pytest.raises(ValueError, match="no button"):
            await fake.press_button(msg, "ping:again", user=fake.add_user("dan"))


@pytest.mark.parametrize("code", [None, 4000])
async def test_drop_gateway_resumes_and_delivers_queued_interaction(
    fake: FakeDiscord, code: int | None
) -> None:
    fake.add_guild()
    async with run_bot(fake) as bot:
        await bot.tree.sync()
        await fake.drop_gateway(code)
        dropped_at = time.monotonic()
        assert not any(s.connected for s in fake.sessions)
        inter = await _slash(fake, {"prompt": "after the drop"})
        await inter.wait_callback(timeout=10)
        assert fake.resumes == 1
        assert fake.identifies == 1
        assert inter.delivered_at is not None and inter.delivered_at > dropped_at
        await asyncio.wait_for(bot.resumed_event.wait(), 5)
        await fake.wait_for_message(lambda m: m.content == "done: after the drop", timeout=5)


async def test_history_is_newest_first_and_includes_thinking_message(fake: FakeDiscord) -> None:
    guild = fake.add_guild()
    alice = fake.add_user("alice")
    first = fake.post_user_message(guild.channel_id, alice, "one")
    second = fake.post_user_message(guild.channel_id, alice, "two")
    async with run_bot(fake) as bot:
        await bot.tree.sync()
        inter = await _slash(fake, {}, name="think", user=alice)
        await inter.wait_callback(timeout=5)
        assert inter.original is not None and inter.original.loading
        channel = bot.get_channel(guild.channel_id)
        assert isinstance(channel, discord.TextChannel)
        history = [m async for m in channel.history(limit=10)]
        assert [m.id for m in history] == [inter.original.id, second.id, first.id]
        assert history[0].flags.loading and history[0].author.id == fake.bot_user_id
        assert history[0].interaction_metadata is not None
        older = [m async for m in channel.history(limit=10, before=discord.Object(second.id))]
        assert [m.id for m in older] == [first.id]
        newer = [m async for m in channel.history(limit=2, after=discord.Object(first.id))]
        assert [m.id for m in newer] == [second.id, inter.original.id]  # oldest_first


async def test_allowed_mentions_recorded_and_would_ping(fake: FakeDiscord) -> None:
    guild = fake.add_guild()
    async with run_bot(fake) as bot:
        channel = bot.get_channel(guild.channel_id)
        assert isinstance(channel, discord.TextChannel)
        quiet = await channel.send(
            "@everyone look", allowed_mentions=discord.AllowedMentions.none()
        )
        loud = await channel.send(
            "@everyone look", allowed_mentions=discord.AllowedMentions(everyone=True)
        )
        default = await channel.send("@everyone look")
        records = [fake.messages[m.id] for m in (quiet, loud, default)]
        assert records[0].allowed_mentions == {"parse": []}
        assert records[1].allowed_mentions is not None
        assert "everyone" in records[1].allowed_mentions["parse"]
        assert records[2].allowed_mentions is None
        assert [r.pinged_everyone for r in records] == [False, True, True]
        assert [r.would_ping for r in records] == [False, True, True]
        assert [m.mention_everyone for m in (quiet, loud, default)] == [False, True, True]
    assert compute_pings("<@42> hi", {"parse": [], "users": ["42"]}).users == {42}
    assert not compute_pings("<@&7>", {"parse": ["users"]}).anyone


async def test_expired_interaction_token_gives_50027(fake: FakeDiscord) -> None:
    fake.add_guild()
    async with run_bot(fake) as bot:
        await bot.tree.sync()
        fake.expire_tokens_after(0.3)
        inter = await _slash(fake, {"prompt": "late", "hold": 0.5})
        await inter.wait_for(lambda i: bool(i.errors), timeout=5)
        await eventually(lambda: bot.failures)
        assert bot.failures[0].status == 401 and bot.failures[0].code == 50027
        assert inter.errors == [(401, 50027)]
        assert inter.original is not None and inter.original.loading  # never finished


async def test_message_content_intent_and_user_messages() -> None:
    async with FakeDiscord(message_content_intent=False) as fake:
        guild = fake.add_guild()
        alice = fake.add_user("alice")
        intents = discord.Intents.default()
        async with run_bot(fake, Bot(intents=intents)) as bot:
            fake.post_user_message(guild.channel_id, alice, "secret prompt")
            fake.post_user_message(guild.channel_id, alice, "draw me", mentions_bot=True)
            await eventually(lambda: len(bot.seen_messages) == 2)
            assert [m.content for m in bot.seen_messages] == ["", f"<@{fake.bot_user_id}> draw me"]
            channel = bot.get_channel(guild.channel_id)
            assert isinstance(channel, discord.TextChannel)
            rest = [m.content async for m in channel.history(limit=5)]
            assert rest == [f"<@{fake.bot_user_id}> draw me", ""]
        # Asking for the privileged intent the app lacks: Discord closes with 4014.
        intents.message_content = True
        with pytest.raises(discord.PrivilegedIntentsRequired):
            async with run_bot(fake, Bot(intents=intents)):
                pass


async def test_dm_channel_and_unknown_routes(fake: FakeDiscord) -> None:
    fake.add_guild()
    alice = fake.add_user("alice")
    async with run_bot(fake) as bot:
        user = await bot.fetch_user(int(alice["id"]))
        sent = await user.send("hello in DM")
        record = fake.messages[sent.id]
        assert record.channel_id == fake.dm_channel_for(alice)
        assert record.guild_id is None and fake.channels[record.channel_id].type == 1
        with pytest.raises(discord.NotFound):
            await sent.add_reaction("👍")
        assert any("reactions" in r.url for r in fake.unknown_routes)
        await bot.tree.sync()
        in_dm = await fake.send_slash("think", user=alice)
        await in_dm.wait_callback(timeout=5)
        assert in_dm.payload["context"] == 1 and "member" not in in_dm.payload
        assert in_dm.original is not None and in_dm.original.channel_id == record.channel_id
        fake.forbid_channel(record.channel_id)
        with pytest.raises(discord.Forbidden) as err:
            await user.send("again")
        assert err.value.code == 50013


async def test_interaction_permissions_reach_discord_py(fake: FakeDiscord) -> None:
    guild = fake.add_guild()
    async with run_bot(fake) as bot:
        await bot.tree.sync()
        fake.forbid_channel(guild.channel_id)
        inter = await _slash(fake, {}, name="think", permissions=1 << 11)
        await inter.wait_callback(timeout=5)
        seen = bot.seen_interactions[-1]
        assert seen.id == inter.id and seen.guild_id == guild.id
        assert seen.permissions.value == 1 << 11
        assert not seen.app_permissions.send_messages  # the channel is forbidden to the bot
        assert seen.channel is not None and seen.channel.id == guild.channel_id
        # discord.py sees the overwrite too (CHANNEL_UPDATE was dispatched).
        channel = bot.get_channel(guild.channel_id)
        assert isinstance(channel, discord.TextChannel)
        assert not channel.permissions_for(channel.guild.me).send_messages
        # Interaction responses are webhooks: they still work in a forbidden channel.
        assert inter.original is not None and inter.original.loading


async def test_autocomplete_context_menu_ephemeral_and_followup(fake: FakeDiscord) -> None:
    guild = fake.add_guild()
    alice = fake.add_user("alice")
    async with run_bot(fake) as bot:
        await bot.tree.sync()
        typing = await fake.send_autocomplete("style", {"name": "p"}, "name", user=alice)
        callback = await typing.wait_callback(timeout=5)
        assert callback["type"] == 8
        assert [c["value"] for c in callback["data"]["choices"]] == ["photo", "pixel"]
        assert typing.original is None

        target = fake.post_user_message(guild.channel_id, alice, "a castle")
        menu = await fake.send_message_command("Upscale", target, user=alice)
        await menu.wait_for(lambda i: len(i.followups) == 1, timeout=5)
        original = menu.original
        assert original is not None and original.ephemeral
        # Context-menu targets carry content even without the Message Content intent.
        assert original.content == f"upscaling {target.id}: a castle"
        assert original.attachment_bytes(0) == PNG
        assert original.attachments[0]["ephemeral"] is True
        assert menu.followups[0].content == "followup done" and not menu.followups[0].ephemeral
        visible = [m.id for m in fake.channel_history(guild.channel_id)]
        assert original.id not in visible and menu.followups[0].id in visible


async def test_global_limit_and_auth() -> None:
    async with FakeDiscord(global_limit=3) as fake:
        guild = fake.add_guild()
        inter = await fake.send_slash("x", user=fake.add_user("eve"), guild_id=guild.id)
        auth = {"Authorization": f"Bot {fake.token}"}
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{fake.rest_base}/users/@me") as resp:
                assert resp.status == 401
                assert await resp.json() == {"message": "401: Unauthorized", "code": 0}
            statuses = []
            for _ in range(4):
                async with http.get(f"{fake.rest_base}/users/@me", headers=auth) as resp:
                    statuses.append(resp.status)
                    body, headers = await resp.json(), resp.headers
            assert statuses == [200, 200, 200, 429]
            assert body["global"] is True
            assert headers["X-RateLimit-Global"] == "true"
            assert headers["X-RateLimit-Scope"] == "global"
            # Interaction callbacks are exempt from the global limit.
            url = f"{fake.rest_base}/interactions/{inter.id}/{inter.token}/callback"
            async with http.post(url, json={"type": 5}) as resp:
                assert resp.status == 204
            async with http.get(f"{fake.rest_base}/nope", headers=auth) as resp:
                assert resp.status == 404
        assert fake.count_429 == 1
        assert [r.path for r in fake.unknown_routes] == ["/nope"]


async def test_raw_gateway_protocol(fake: FakeDiscord) -> None:
    guild = fake.add_guild()
    identify = {"op": 2, "d": {"token": fake.token, "intents": 513, "properties": {}}}
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(f"{fake.gateway_url}?v=10&encoding=json") as ws:
            hello = await ws.receive()
            assert hello.type is aiohttp.WSMsgType.TEXT
            assert json.loads(hello.data)["d"]["heartbeat_interval"] == 41250
            await ws.send_json({"op": 1, "d": None})
            assert (await ws.receive_json())["op"] == 11
            await ws.send_json({"op": 2, "d": {**identify["d"], "token": "wrong"}})
            closing = await ws.receive()
            assert closing.type is aiohttp.WSMsgType.CLOSE and closing.data == 4004

        url = f"{fake.gateway_url}?v=10&encoding=json&compress=zlib-stream"
        async with http.ws_connect(url) as ws:
            inflater = zlib.decompressobj()  # one context for the whole connection

            async def receive() -> dict[str, Any]:
                frame = await ws.receive()
                assert frame.type is aiohttp.WSMsgType.BINARY
                assert frame.data.endswith(b"\x00\x00\xff\xff")
                return json.loads(inflater.decompress(frame.data))

            assert (await receive())["op"] == 10
            await ws.send_json(identify)
            ready = await receive()
            assert (ready["t"], ready["s"]) == ("READY", 1)
            assert ready["d"]["guilds"] == [{"id": str(guild.id), "unavailable": True}]
            created = await receive()
            assert (created["t"], created["s"], created["d"]["unavailable"]) == (
                "GUILD_CREATE",
                2,
                False,
            )
            session_id = ready["d"]["session_id"]

        async with http.ws_connect(f"{fake.gateway_url}?v=10&encoding=json") as ws:
            await ws.receive()
            resume = {"op": 6, "d": {"token": fake.token, "session_id": "unknown", "seq": 1}}
            await ws.send_json(resume)
            assert await ws.receive_json() == {"op": 9, "s": None, "t": None, "d": False}

    # Leaving ``async with`` closed with 1000: a clean close ends the session, as on Discord.
    assert session_id not in {s.session_id for s in fake.sessions}


# --------------------------------------------------------------------------- media features


class EditImageModal(discord.ui.Modal, title="Edit this image"):
    """The classic layout: bare text inputs, which discord.py sends in action rows."""

    change: discord.ui.TextInput = discord.ui.TextInput(
        label="What should change",
        style=discord.TextStyle.paragraph,
        max_length=200,
        custom_id="change",
    )
    strength: discord.ui.TextInput = discord.ui.TextInput(
        label="Strength", required=False, default="0.8", max_length=4, custom_id="strength"
    )

    def __init__(self, bot: MediaBot, target_id: int) -> None:
        super().__init__(custom_id=f"edit:{target_id}")
        self.bot = bot

    async def on_submit(self, interaction: discord.Interaction) -> None:
        self.bot.submitted.append(
            {"modal": self.custom_id, "change": self.change.value, "strength": self.strength.value}
        )
        self.bot.submit_messages.append(interaction.message)
        await interaction.response.send_message(f"editing: {self.change.value}", ephemeral=True)


class VaryModal(discord.ui.Modal, title="Vary"):
    """The newer layout: a text display, then labels around a text input, a select, files."""

    def __init__(self, bot: MediaBot) -> None:
        super().__init__(custom_id="vary-modal")
        self.bot = bot
        self.change = discord.ui.TextInput(custom_id="vary-change", min_length=3, max_length=50)
        self.style = discord.ui.Select(
            custom_id="vary-style",
            options=[
                discord.SelectOption(label="Photo", value="photo"),
                discord.SelectOption(label="Anime", value="anime", default=True),
            ],
        )
        self.reference = discord.ui.FileUpload(custom_id="vary-ref", required=False, max_values=2)
        self.add_item(discord.ui.TextDisplay("Describe the variation"))
        self.add_item(
            discord.ui.Label(text="What should change", description="Words", component=self.change)
        )
        self.add_item(discord.ui.Label(text="Style", component=self.style))
        self.add_item(discord.ui.Label(text="Reference image", component=self.reference))

    async def on_submit(self, interaction: discord.Interaction) -> None:
        files = [await a.read() for a in self.reference.values]
        self.bot.submitted.append(
            {"change": self.change.value, "style": list(self.style.values), "files": files}
        )
        self.bot.submit_messages.append(interaction.message)
        content = f"varying: {self.change.value} ({self.style.values[0]})"
        await interaction.response.edit_message(content=content, view=None)


class VaryView(discord.ui.View):
    def __init__(self, bot: MediaBot) -> None:
        super().__init__(timeout=None)
        self.bot = bot

    @discord.ui.button(label="Vary", custom_id="vary:open")
    async def vary(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await interaction.response.send_modal(VaryModal(self.bot))


class MediaBot(Bot):
    """The throwaway bot plus what image commands need: attachment options, image menus."""

    MAX_BYTES = 10 * 2**20

    def __init__(self) -> None:
        super().__init__()
        self.seen_attachments: list[list[discord.Attachment]] = []
        self.downloaded: list[bytes] = []
        self.submitted: list[dict[str, Any]] = []
        self.submit_messages: list[discord.Message | None] = []

        @self.tree.command(name="describe", description="Describe an image")
        async def describe(interaction: discord.Interaction, image: discord.Attachment) -> None:
            self.seen_attachments.append([image])
            if image.size > self.MAX_BYTES:  # refused by its declared size, never downloaded
                await interaction.response.send_message("too big", ephemeral=True)
                return
            await interaction.response.defer(thinking=True)
            self.downloaded.append(await image.read())
            await interaction.edit_original_response(content=f"{image.size} bytes")

        @app_commands.context_menu(name="Describe this image")
        async def describe_menu(interaction: discord.Interaction, message: discord.Message) -> None:
            self.seen_attachments.append(list(message.attachments))
            await interaction.response.defer(thinking=True, ephemeral=True)
            self.downloaded.append(await message.attachments[0].read())
            await interaction.edit_original_response(content=f"{len(message.attachments)} files")

        self.tree.add_command(describe_menu)

        @app_commands.context_menu(name="Edit this image")
        async def edit_menu(interaction: discord.Interaction, message: discord.Message) -> None:
            await interaction.response.send_modal(EditImageModal(self, message.id))

        self.tree.add_command(edit_menu)

        @self.tree.command(name="vary", description="A message with a Vary button")
        async def vary(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("a cat", view=VaryView(self))

        @self.tree.command(name="long-title", description="A modal Discord refuses")
        async def long_title(interaction: discord.Interaction) -> None:
            modal = EditImageModal(self, 0)
            modal.title = "x" * 46
            try:
                await interaction.response.send_modal(modal)
            except discord.HTTPException as exc:
                self.failures.append(exc)

        @self.tree.command(name="grid", description="Four images in one edit")
        async def grid(interaction: discord.Interaction) -> None:
            await interaction.response.defer(thinking=True)
            files = [discord.File(io.BytesIO(GRID[i]), filename=f"u{i + 1}.png") for i in range(4)]
            embed = discord.Embed(title="grid").set_image(url="attachment://u3.png")
            await interaction.edit_original_response(content="", embed=embed, attachments=files)

        @self.tree.command(name="whisper", description="Ephemeral reply and follow-ups")
        async def whisper(interaction: discord.Interaction) -> None:
            await interaction.response.defer(thinking=True, ephemeral=True)
            await interaction.edit_original_response(content="only you")
            await interaction.followup.send("public news")
            await interaction.followup.send("psst", ephemeral=True)


async def test_user_message_attachments_reach_a_message_command(fake: FakeDiscord) -> None:
    guild = fake.add_guild()
    alice = fake.add_user("alice")
    async with run_bot(fake, MediaBot()) as bot:
        await bot.tree.sync()
        target = fake.post_user_message(
            guild.channel_id,
            alice,
            "my cat",
            attachments=[("cat.png", PNG), ("notes.txt", b"just text")],
        )
        cat, notes = target.attachments
        assert (cat["filename"], cat["content_type"], cat["size"]) == (
            "cat.png",
            "image/png",
            len(PNG),
        )
        assert (cat["width"], cat["height"]) == (16, 8) and "ephemeral" not in cat
        assert (notes["content_type"], notes["size"]) == ("text/plain", 9) and "width" not in notes
        assert [a["id"] for a in target.to_json()["attachments"]] == [cat["id"], notes["id"]]
        assert "data" not in target.to_json()["attachments"][0]
        # Without the Message Content intent the gateway strips them; the menu target keeps them.
        await eventually(lambda: bot.seen_messages)
        assert bot.seen_messages[-1].attachments == []

        menu = await fake.send_message_command("Describe this image", target, user=alice)
        resolved = menu.payload["data"]["resolved"]["messages"][str(target.id)]
        assert [a["filename"] for a in resolved["attachments"]] == ["cat.png", "notes.txt"]
        reply = await menu.wait_ephemeral(lambda m: m.content == "2 files")
        assert reply is menu.original
        [seen] = bot.seen_attachments
        assert [(a.filename, a.size, a.content_type) for a in seen] == [
            ("cat.png", len(PNG), "image/png"),
            ("notes.txt", 9, "text/plain"),
        ]
        assert (seen[0].width, seen[0].height, seen[1].width) == (16, 8, None)
        assert bot.downloaded == [PNG]
        assert fake.attachment_downloads(cat) == 1 and fake.attachment_downloads(notes) == 0
        async with aiohttp.ClientSession() as http, http.get(notes["url"]) as resp:
            assert resp.headers["Content-Type"].startswith("text/plain")
            assert await resp.read() == b"just text"
    with pytest.raises(ValueError, match="at most 10"):
        fake.post_user_message(guild.channel_id, alice, "", attachments=[PNG] * 11)


async def test_attachment_option_resolves_like_discord_and_declared_size(
    fake: FakeDiscord,
) -> None:
    fake.add_guild()
    async with run_bot(fake, MediaBot()) as bot:
        await bot.tree.sync()
        small = await _slash(fake, {"image": ("cat.png", PNG)}, name="describe")
        [att_id] = small.payload["data"]["resolved"]["attachments"]
        att = small.payload["data"]["resolved"]["attachments"][att_id]
        assert small.payload["data"]["options"] == [{"name": "image", "type": 11, "value": att_id}]
        assert att["url"].startswith(f"{fake.http_base}/attachments/{small.channel_id}/{att_id}/")
        assert att["proxy_url"] == att["url"] and att["ephemeral"] is True
        assert (att["size"], att["content_type"], att["width"], att["height"]) == (
            len(PNG),
            "image/png",
            16,
            8,
        )
        await fake.wait_for_message(lambda m: m.content == f"{len(PNG)} bytes", timeout=5)
        assert bot.downloaded == [PNG] and fake.attachment_downloads(att_id) == 1

        # A "30 MiB upload" without 30 MiB: the JSON claims the size, the CDN serves the bytes.
        huge = await _slash(
            fake, {"image": ("huge.png", PNG, {"size": 30 * 2**20})}, name="describe"
        )
        assert (await huge.wait_ephemeral()).content == "too big"
        [declared] = bot.seen_attachments[-1]
        assert (declared.size, declared.width) == (30 * 2**20, 16)
        assert fake.attachment_downloads(declared.id) == 0

        photo = FakeAttachment("photo.jpg", b"not decoded", width=4000, height=3000)
        claimed = await _slash(fake, {"image": photo}, name="describe")
        await claimed.wait_callback()
        [shown] = bot.seen_attachments[-1]
        assert (shown.content_type, shown.width, shown.height, shown.size) == (
            "image/jpeg",
            4000,
            3000,
            11,
        )

    url = att["url"]
    async with aiohttp.ClientSession() as http:
        async with http.head(url) as resp:
            assert resp.status == 200 and resp.headers["Content-Length"] == str(len(PNG))
            assert resp.headers["Accept-Ranges"] == "bytes"
        async with http.get(url, headers={"Range": "bytes=0-3"}) as resp:
            assert resp.status == 206 and await resp.read() == PNG[:4]
            assert resp.headers["Content-Range"] == f"bytes 0-3/{len(PNG)}"
        async with http.get(url, headers={"Range": "bytes=-5"}) as resp:
            assert resp.status == 206 and await resp.read() == PNG[-5:]
        async with http.get(url, headers={"Range": f"bytes={len(PNG)}-"}) as resp:
            assert resp.status == 416 and resp.headers["Content-Range"] == f"bytes */{len(PNG)}"
        async with http.get(f"{fake.http_base}/attachments/1/2/gone.png") as resp:
            assert resp.status == 404
    assert fake.attachment_downloads(att_id) == 3  # GETs that served bytes; not HEAD, not 416


GONE = "This content is no longer available."


async def test_attachment_urls_are_signed_for_a_day_and_a_message_fetched_again_renews_them(
    fake: FakeDiscord,
) -> None:
    guild = fake.add_guild()
    message = fake.post_user_message(
        guild.channel_id, fake.add_user("bob"), "look", attachments=[("cat.png", PNG)]
    )
    att = message.attachments[0]
    url = yarl.URL(att["url"])
    issued, expiry = int(url.query["is"], 16), int(url.query["ex"], 16)
    assert abs(issued - time.time()) < 5 and expiry - issued == 24 * 3600
    async with run_bot(fake) as bot, aiohttp.ClientSession() as http:
        async with http.get(att["url"]) as resp:
            assert resp.status == 200 and await resp.read() == PNG
        forged = url.update_query(ex=f"{expiry + 3600:x}")  # the signature covers ex
        async with http.get(forged) as resp:
            assert (resp.status, await resp.text()) == (404, GONE)

        fake.age_attachment_urls(24 * 3600 + 60)
        async with http.get(att_url := str(url)) as resp:
            assert (resp.status, await resp.text()) == (404, GONE)
        assert fake.cdn.expired[int(att["id"])] == 2 and fake.attachment_downloads(att) == 1

        channel = await bot.fetch_channel(guild.channel_id)
        fetched = await channel.fetch_message(message.id)  # type: ignore[union-attr]
        fresh = fetched.attachments[0].url
        assert fresh != att_url and int(yarl.URL(fresh).query["ex"], 16) > expiry
        async with http.get(fresh) as resp:
            assert resp.status == 200 and await resp.read() == PNG
        assert fake.attachment_downloads(att) == 2


async def test_helpers_find_ephemeral_replies_and_followups(fake: FakeDiscord) -> None:
    fake.add_guild()
    async with run_bot(fake, MediaBot()) as bot:
        await bot.tree.sync()
        inter = await _slash(fake, {}, name="whisper")
        secret = await inter.wait_ephemeral(lambda m: m.content == "psst")
        public = await inter.wait_followup(lambda m: not m.ephemeral)
        assert public.content == "public news"
        assert (await inter.wait_followup()).content == "public news"  # the first one
        assert (await inter.wait_ephemeral()).content == "only you"  # no longer "thinking…"
        assert inter.messages == [inter.original, public, secret]
        assert inter.ephemeral_messages == [inter.original, secret]
        with pytest.raises(TimeoutError):
            await inter.wait_followup(lambda m: m.content == "never", timeout=0.2)


async def test_modal_from_a_message_command_classic_layout(fake: FakeDiscord) -> None:
    guild = fake.add_guild()
    alice, bob = fake.add_user("alice"), fake.add_user("bob")
    async with run_bot(fake, MediaBot()) as bot:
        await bot.tree.sync()
        target = fake.post_user_message(guild.channel_id, alice, "", attachments=[("c.png", PNG)])
        menu = await fake.send_message_command("Edit this image", target, user=alice)
        modal = await menu.wait_modal()
        assert modal is menu.modal and menu.original is None
        assert (modal["custom_id"], modal["title"]) == (f"edit:{target.id}", "Edit this image")
        rows = modal["components"]
        assert [
            (r["type"], r["id"], [(c["type"], c["id"]) for c in r["components"]]) for r in rows
        ] == [
            (1, 1, [(4, 2)]),
            (1, 3, [(4, 4)]),
        ]
        assert rows[1]["components"][0]["value"] == "0.8"  # pre-filled

        with pytest.raises(ValueError, match="required"):
            await fake.submit_modal(menu, {"change": ""})
        with pytest.raises(ValueError, match="no field"):
            await fake.submit_modal(menu, {"nope": "x"})
        with pytest.raises(ValueError, match=r"0\.\.200"):
            await fake.submit_modal(menu, {"change": "x" * 201})
        with pytest.raises(ValueError, match="shown to"):
            await fake.submit_modal(menu, {"change": "blue"}, user=bob)

        submit = await fake.submit_modal(menu, {"change": "make it blue"})
        assert submit.type == 5 and submit.trigger is menu and "message" not in submit.payload
        assert submit.payload["data"] == {
            "custom_id": f"edit:{target.id}",
            "components": [
                {
                    "type": 1,
                    "id": 1,
                    "components": [
                        {"type": 4, "id": 2, "custom_id": "change", "value": "make it blue"}
                    ],
                },
                {
                    "type": 1,
                    "id": 3,
                    "components": [{"type": 4, "id": 4, "custom_id": "strength", "value": "0.8"}],
                },
            ],
        }
        reply = await submit.wait_ephemeral()
        assert reply.content == "editing: make it blue"
        assert bot.submitted == [
            {"modal": f"edit:{target.id}", "change": "make it blue", "strength": "0.8"}
        ]
        assert bot.submit_messages == [None]
        metadata = reply.interaction_metadata
        assert metadata is not None and metadata["type"] == 5
        assert metadata["triggering_interaction_metadata"]["name"] == "Edit this image"

        # Discord refuses a title over 45 characters (discord.py does not check it).
        refused = await _slash(fake, {}, name="long-title")
        await refused.wait_for(lambda i: bool(i.errors))
        await eventually(lambda: bot.failures)
        assert refused.errors == [(400, 50035)] and refused.modal is None
        assert "title" in bot.failures[0].text
        with pytest.raises(ValueError, match="did not open a modal"):
            await fake.submit_modal(refused, {})


async def test_modal_from_a_button_label_layout_updates_the_message(fake: FakeDiscord) -> None:
    fake.add_guild()
    alice = fake.add_user("alice")
    async with run_bot(fake, MediaBot()) as bot:
        await bot.tree.sync()
        command = await _slash(fake, {}, name="vary", user=alice)
        await command.wait_callback()
        message = command.original
        assert message is not None
        click = await fake.press_button(message, "vary:open", user=alice)
        modal = await click.wait_modal()
        kinds = [(c["type"], c.get("component", {}).get("type")) for c in modal["components"]]
        assert kinds == [(10, None), (18, 4), (18, 3), (18, 19)]
        with pytest.raises(ValueError, match=r"3\.\.50"):
            await fake.submit_modal(click, {"vary-change": "ab"})
        with pytest.raises(ValueError, match="no option"):
            await fake.submit_modal(click, {"vary-change": "abc", "vary-style": ["oil"]})

        submit = await fake.submit_modal(
            click, {"vary-change": "more clouds", "vary-ref": [("ref.png", PNG)]}
        )
        data = submit.payload["data"]
        display, change, style, ref = data["components"]
        assert display == {"type": 10, "id": modal["components"][0]["id"]}
        assert change["type"] == 18 and change["component"] == {
            "type": 4,
            "id": modal["components"][1]["component"]["id"],
            "custom_id": "vary-change",
            "value": "more clouds",
        }
        assert style["component"]["values"] == ["anime"]  # the default option
        [ref_id] = ref["component"]["values"]
        assert data["resolved"]["attachments"][ref_id]["filename"] == "ref.png"
        assert submit.payload["message"]["id"] == str(message.id)

        await fake.wait_until(lambda: message.content.startswith("varying"))
        assert message.content == "varying: more clouds (anime)" and message.components == []
        assert submit.callback is not None and submit.callback["type"] == 7
        assert submit.original is message
        assert bot.submitted == [{"change": "more clouds", "style": ["anime"], "files": [PNG]}]
        [seen_message] = bot.submit_messages
        assert seen_message is not None and seen_message.id == message.id
        assert fake.attachment_downloads(ref_id) == 1


async def test_modal_rules_on_the_wire(fake: FakeDiscord) -> None:
    guild = fake.add_guild()
    alice = fake.add_user("alice")

    def text_input(custom_id: str, **extra: Any) -> dict[str, Any]:
        return {"type": 4, "custom_id": custom_id, "style": 1, "label": "Prompt", **extra}

    def row(item: dict[str, Any]) -> dict[str, Any]:
        return {"type": 1, "components": [item]}

    good = {"custom_id": "m", "title": "Edit", "components": [row(text_input("a"))]}
    bad_modals = {
        "title": {**good, "title": "x" * 46},
        "components": {**good, "components": [row(text_input(f"t{i}")) for i in range(6)]},
        "max_length": {**good, "components": [row(text_input("a", max_length=4001))]},
        "label": {**good, "components": [row(text_input("a", label="y" * 46))]},
        "duplicate": {**good, "components": [row(text_input("a")), row(text_input("a"))]},
        "two in a row": {
            **good,
            "components": [{"type": 1, "components": [text_input("a"), text_input("b")]}],
        },
        "button": {**good, "components": [row({"type": 2, "custom_id": "b", "style": 1})]},
    }
    interaction = await fake.send_slash("edit", user=alice, guild_id=guild.id)
    url = f"{fake.rest_base}/interactions/{interaction.id}/{interaction.token}/callback"
    async with aiohttp.ClientSession() as http:
        for name, modal in bad_modals.items():
            async with http.post(url, json={"type": 9, "data": modal}) as resp:
                body = await resp.json()
                assert (resp.status, body["code"]) == (400, 50035), (name, body)
                assert "data" in body["errors"], (name, body)
        assert interaction.modal is None and interaction.callback is None
        async with http.post(url, json={"type": 9, "data": good}) as resp:
            assert resp.status == 204
        assert interaction.modal is not None and interaction.modal["title"] == "Edit"

        submit = await fake.submit_modal(interaction, {"a": "blue"})
        submit_url = f"{fake.rest_base}/interactions/{submit.id}/{submit.token}/callback"
        # A modal opened by a slash command has no message to update; nor can it open another.
        for cb_type in (6, 7, 9):
            async with http.post(submit_url, json={"type": cb_type, "data": good}) as resp:
                assert resp.status == 400 and (await resp.json())["code"] == 50035
        async with http.post(submit_url, json={"type": 4, "data": {"content": "ok"}}) as resp:
            assert resp.status == 204
    assert submit.original is not None and submit.original.content == "ok"
    assert submit.errors == [(400, 50035)] * 3


async def test_four_files_in_one_edit_then_keep_and_replace(fake: FakeDiscord) -> None:
    fake.add_guild()
    fake.webhook_limit = 10  # seven calls on one token: no need to wait out a window
    async with run_bot(fake, MediaBot()) as bot:
        await bot.tree.sync()
        command = await _slash(fake, {}, name="grid")
        await command.wait_for(lambda i: i.original is not None and bool(i.original.attachments))
        message = command.original
        assert message is not None
        patch = "/webhooks/{application_id}/{token}/messages/{message_id}"
        assert [r.status for r in fake.requests_for("PATCH", patch)] == [200]  # one edit

        def shown() -> list[tuple[str, bytes]]:
            return [(a["filename"], a["data"]) for a in message.attachments]

        assert shown() == [(f"u{i + 1}.png", GRID[i]) for i in range(4)]
        first = [a["id"] for a in message.attachments]
        assert len(set(first)) == 4
        assert message.embeds[0]["image"]["url"] == message.attachments[2]["url"]  # u3.png
        async with aiohttp.ClientSession() as http:
            for att, data in zip(message.attachments, GRID[:4], strict=True):
                async with http.get(att["url"]) as resp:
                    assert await resp.read() == data

        # The test edits with the bot's own discord.py interaction object.
        [interaction] = [i for i in bot.seen_interactions if i.id == command.id]

        # Only new files: they replace every old one.
        await interaction.edit_original_response(
            attachments=[
                discord.File(io.BytesIO(GRID[4]), filename="v1.png"),
                discord.File(io.BytesIO(GRID[5]), filename="v2.png"),
            ]
        )
        assert shown() == [("v1.png", GRID[4]), ("v2.png", GRID[5])]
        assert not {a["id"] for a in message.attachments} & set(first)

        # Listing a kept attachment keeps it (same id and url), beside a new file.
        current = await interaction.original_response()
        kept = current.attachments[1]
        await interaction.edit_original_response(
            attachments=[kept, discord.File(io.BytesIO(GRID[6]), filename="v3.png")]
        )
        assert shown() == [("v2.png", GRID[5]), ("v3.png", GRID[6])]
        assert message.attachments[0]["id"] == str(kept.id)
        assert message.attachments[0]["url"] == kept.url

        # No attachments in the edit: they stay; an empty list removes them all.
        await interaction.edit_original_response(content="two left")
        assert shown() == [("v2.png", GRID[5]), ("v3.png", GRID[6])]
        await interaction.edit_original_response(attachments=[])
        assert message.attachments == [] and message.content == "two left"
        assert [len(v["attachments"]) for v in message.versions] == [0, 4, 2, 2, 2, 0]
        assert command.errors == [] and fake.count_429 == 0


# ---------------------------------------------------------------------- shards


class AutoShardedBot(discord.AutoShardedClient):
    """discord.py's sharded client: asks ``GET /gateway/bot`` how many shards to run."""

    def __init__(self) -> None:
        super().__init__(intents=discord.Intents.default(), guild_ready_timeout=0.05)
        self.ready_event = asyncio.Event()

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """No 5 s between IDENTIFYs: the fake has no identify rate limit."""

    async def on_ready(self) -> None:
        self.ready_event.set()


async def test_auto_sharded_client_takes_the_count_from_gateway_bot() -> None:
    async with FakeDiscord(shards=2) as fake:
        first = fake.add_guild("On shard 0", shard=(0, 2))
        second = fake.add_guild("On shard 1", shard=(1, 2))
        assert ((first.id >> 22) % 2, (second.id >> 22) % 2) == (0, 1)
        async with run_bot(fake, AutoShardedBot()) as bot:  # type: ignore[arg-type]
            assert bot.shard_count == 2
            assert sorted(s.shard for s in fake.sessions) == [[0, 2], [1, 2]]
            for session in fake.sessions:
                created = [p["d"]["id"] for _, p in session.buffer if p["t"] == "GUILD_CREATE"]
                [ready] = [p["d"] for _, p in session.buffer if p["t"] == "READY"]
                mine = first if session.shard == [0, 2] else second
                assert created == [str(mine.id)]
                assert [g["id"] for g in ready["guilds"]] == [str(mine.id)]
            assert {(g.id, g.shard_id) for g in bot.guilds} == {(first.id, 0), (second.id, 1)}
        assert fake.internal_errors == []


async def test_each_shard_gets_its_guilds_events_and_shard_zero_the_dms() -> None:
    async with FakeDiscord(shards=2) as fake:
        zero = fake.add_guild("Zero", shard=(0, 2))
        one = fake.add_guild("One", shard=(1, 2))
        alice = fake.add_user("alice")
        for guild in (zero, one):
            fake.add_member(guild.id, alice)
        async with (
            run_bot(fake, Bot(shard_id=0, shard_count=2)) as bot0,
            run_bot(fake, Bot(shard_id=1, shard_count=2)) as bot1,
        ):
            assert [g.id for g in bot0.guilds] == [zero.id]
            assert [g.id for g in bot1.guilds] == [one.id]
            await bot0.tree.sync()
            # Messages: a guild's to its shard, a DM's to shard 0.
            fake.post_user_message(one.channel_id, alice, "in one")
            fake.post_user_message(zero.channel_id, alice, "in zero")
            fake.post_user_message(fake.dm_channel_for(alice), alice, "in a DM")
            await eventually(lambda: len(bot0.seen_messages) == 2 and bot1.seen_messages)
            assert [m.channel.id for m in bot1.seen_messages] == [one.channel_id]
            assert [m.guild and m.guild.id for m in bot0.seen_messages] == [zero.id, None]
            # Interactions: a guild's to its shard, outside guilds to shard 0.
            in_one = await fake.send_slash("think", user=alice, guild_id=one.id)
            in_zero = await fake.send_slash("think", user=alice, guild_id=zero.id)
            in_dm = await fake.send_slash("think", user=alice)
            for interaction in (in_one, in_zero, in_dm):
                assert (await interaction.wait_callback(timeout=5))["type"] == 5
            assert [i.id for i in bot1.seen_interactions] == [in_one.id]
            assert [i.id for i in bot0.seen_interactions] == [in_zero.id, in_dm.id]
            # A guild joined later: GUILD_CREATE to its shard only.
            joined = asyncio.create_task(bot1.wait_for("guild_join", timeout=5))
            later = fake.add_guild("Later", shard=(1, 2))
            assert (await joined).id == later.id
            await asyncio.sleep(0.05)
            assert bot0.get_guild(later.id) is None
        assert fake.internal_errors == []


async def test_bad_shards_are_refused_as_on_discord() -> None:
    async with FakeDiscord(required_shards=2) as fake:
        fake.add_guild()
        with pytest.raises(discord.ConnectionClosed) as out_of_range:
            async with run_bot(fake, Bot(shard_id=2, shard_count=2)):
                pass
        assert out_of_range.value.code == 4010
        with pytest.raises(discord.ConnectionClosed) as unsharded:
            async with run_bot(fake, Bot()):
                pass
        assert unsharded.value.code == 4011
        async with run_bot(fake, Bot(shard_id=1, shard_count=2)):
            assert [s.shard for s in fake.sessions] == [[1, 2]]
