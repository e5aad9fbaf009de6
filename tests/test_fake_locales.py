"""Locales in the fake Discord: a user's client language on every interaction, a guild's
preferred locale, Discord's checks on command localizations, what a client in one locale
shows, and invoking a command by its localized names (Discord sends the canonical ones)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import discord
import pytest
from discord import app_commands
from discord.app_commands import locale_str

from tests.fakes.discord_server import FakeDiscord
from tests.test_fake_discord import run_bot

pytestmark = pytest.mark.timeout(30)

RUSSIAN = {
    "imagine": "нарисовать",
    "Draw a picture": "Нарисовать картинку",
    "prompt": "запрос",
    "What to draw": "Что нарисовать",
    "style": "стиль",
    "The look": "Стиль картинки",
    "Anime": "Аниме",
    "Photo": "Фото",
    "Upscale": "Увеличить",
    "edit": "правка",
    "Edit an image": "Изменить картинку",
    "colour": "цвет",
    "Change the colours": "Изменить цвета",
}


class Russian(app_commands.Translator):
    """English strings as written, Russian from the table; other locales fall back."""

    async def translate(
        self,
        string: locale_str,
        locale: discord.Locale,
        context: app_commands.TranslationContextTypes,
    ) -> str | None:
        return RUSSIAN.get(string.message) if locale is discord.Locale.russian else None


class LocalizedBot(discord.Client):
    """/imagine (an option with choices), /edit colour (a subcommand), and "Upscale"."""

    def __init__(self) -> None:
        super().__init__(intents=discord.Intents.default(), guild_ready_timeout=0.05)
        self.tree = app_commands.CommandTree(self)
        self.ready_event = asyncio.Event()
        self.seen: list[discord.Interaction] = []

        @self.tree.command(name=locale_str("imagine"), description=locale_str("Draw a picture"))
        @app_commands.rename(prompt=locale_str("prompt"), style=locale_str("style"))
        @app_commands.describe(prompt=locale_str("What to draw"), style=locale_str("The look"))
        @app_commands.choices(
            style=[
                app_commands.Choice(name=locale_str("Anime"), value="anime"),
                app_commands.Choice(name=locale_str("Photo"), value="photo"),
            ]
        )
        async def imagine(
            interaction: discord.Interaction, prompt: str, style: str = "photo"
        ) -> None:
            self.seen.append(interaction)
            await interaction.response.send_message(f"{interaction.locale}|{prompt}|{style}")

        edit = app_commands.Group(name=locale_str("edit"), description=locale_str("Edit an image"))

        @edit.command(name=locale_str("colour"), description=locale_str("Change the colours"))
        async def colour(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("recoloured")

        self.tree.add_command(edit)

        @app_commands.context_menu(name=locale_str("Upscale"))
        async def upscale(interaction: discord.Interaction, message: discord.Message) -> None:
            await interaction.response.send_message(f"upscaling {message.id}")

        self.tree.add_command(upscale)

    async def setup_hook(self) -> None:
        await self.tree.set_translator(Russian())

    async def on_ready(self) -> None:
        self.ready_event.set()


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as server:
        yield server
        assert server.internal_errors == []


async def _put_commands(fake: FakeDiscord, body: list[dict[str, Any]]) -> tuple[int, Any]:
    """PUT the global commands as a client would; (status, JSON body)."""
    url = f"{fake.rest_base}/applications/{fake.application_id}/commands"
    auth = {"Authorization": f"Bot {fake.token}"}
    async with aiohttp.ClientSession() as http, http.put(url, json=body, headers=auth) as resp:
        return resp.status, await resp.json()


def _command(**extra: Any) -> dict[str, Any]:
    return {"name": "imagine", "description": "Draw a picture", **extra}


async def test_a_translated_tree_syncs_and_ru_clients_show_russian(fake: FakeDiscord) -> None:
    fake.add_guild()
    async with run_bot(fake, LocalizedBot()) as bot:
        await bot.tree.sync()
        imagine = next(c for c in fake.commands if c["name"] == "imagine")
        assert imagine["name_localizations"] == {"ru": "нарисовать"}
        assert imagine["description_localizations"] == {"ru": "Нарисовать картинку"}
        style = imagine["options"][1]
        assert style["choices"][0]["name_localizations"] == {"ru": "Аниме"}

        assert fake.command_names("ru") == ["нарисовать", "правка"]
        # No localization for that locale: the canonical name, as Discord shows it.
        assert fake.command_names("en-US") == ["imagine", "edit"]
        assert fake.command_names("de") == ["imagine", "edit"]
        assert fake.command_names("ru", type=3) == ["Увеличить"]
        assert fake.option_names("imagine", "ru") == ["запрос", "стиль"]
        assert fake.option_names("imagine", "en-GB") == ["prompt", "style"]
        with pytest.raises(ValueError, match="no chat-input command"):
            fake.option_names("нарисовать", "en-GB")  # not what an en-GB client shows
        assert fake.option_names("edit", "ru") == ["цвет"]
        assert fake.option_names("edit", "ru", "цвет") == []
        with pytest.raises(ValueError, match="not a Discord locale"):
            fake.command_names("ru-RU")


async def test_invoking_by_russian_names_sends_canonical_data(fake: FakeDiscord) -> None:
    guild = fake.add_guild()
    ivan = fake.add_user("ivan", locale="ru")
    async with run_bot(fake, LocalizedBot()) as bot:
        await bot.tree.sync()
        inter = await fake.send_slash(
            "нарисовать", {"запрос": "кот", "стиль": "anime"}, user=ivan, guild_id=guild.id
        )
        assert inter.payload["locale"] == "ru"
        data = inter.payload["data"]
        assert data["name"] == "imagine"
        assert [(o["name"], o["value"]) for o in data["options"]] == [
            ("prompt", "кот"),
            ("style", "anime"),
        ]
        callback = await inter.wait_callback()
        assert callback["data"]["content"] == "ru|кот|anime"
        assert bot.seen[-1].locale is discord.Locale.russian

        # A subcommand by its Russian name; the canonical path reaches the bot.
        sub = await fake.send_slash("правка", user=ivan, guild_id=guild.id, subcommand="цвет")
        assert sub.payload["data"]["options"][0]["name"] == "colour"
        assert (await sub.wait_callback())["data"]["content"] == "recoloured"

        # Canonical names work in any locale; the shown name only in its own.
        await fake.send_slash("imagine", {"prompt": "x"}, user=ivan, guild_id=guild.id)
        with pytest.raises(ValueError, match="no option"):
            await fake.send_slash(
                "imagine", {"запрос": "x"}, user=ivan, guild_id=guild.id, locale="en-US"
            )

        target = fake.post_user_message(guild.channel_id, ivan, "a castle")
        menu = await fake.send_message_command("Увеличить", target, user=ivan)
        assert menu.payload["data"]["name"] == "Upscale"
        assert menu.payload["data"]["id"] == next(
            c["id"] for c in fake.commands if c["name"] == "Upscale"
        )
        assert (await menu.wait_callback())["data"]["content"] == f"upscaling {target.id}"


async def test_interactions_carry_the_users_locale_and_the_guilds(fake: FakeDiscord) -> None:
    guild = fake.add_guild(preferred_locale="ru")
    alice = fake.add_user("alice")
    ivan = fake.add_user("ivan", locale="ru")
    hans = {**fake.add_user("hans"), "locale": "de"}  # a user dict that says its locale
    async with run_bot(fake, LocalizedBot()) as bot:
        [seen] = bot.guilds
        assert seen.preferred_locale is discord.Locale.russian
        await bot.tree.sync()

        first = await fake.send_slash("imagine", {"prompt": "a"}, user=alice, guild_id=guild.id)
        assert first.payload["locale"] == "en-US"
        assert first.payload["guild_locale"] == "ru"
        assert first.payload["guild"]["locale"] == "ru"
        second = await fake.send_slash("imagine", {"prompt": "b"}, user=ivan, guild_id=guild.id)
        assert second.payload["locale"] == "ru"
        third = await fake.send_slash("imagine", {"prompt": "c"}, user=hans, guild_id=guild.id)
        assert third.payload["locale"] == "de"
        # A client switched to another language for one interaction.
        fourth = await fake.send_slash(
            "imagine", {"prompt": "d"}, user=ivan, guild_id=guild.id, locale="uk"
        )
        assert fourth.payload["locale"] == "uk"
        # DMs carry the user's locale but no guild_locale.
        dm = await fake.send_slash("imagine", {"prompt": "e"}, user=ivan)
        assert dm.payload["locale"] == "ru" and "guild_locale" not in dm.payload
        with pytest.raises(ValueError, match="not a Discord locale"):
            await fake.send_slash("imagine", {"prompt": "f"}, user=ivan, locale="xx")

        fake.set_user_locale(alice, "fr")
        later = await fake.send_slash("imagine", {"prompt": "g"}, user=alice, guild_id=guild.id)
        assert later.payload["locale"] == "fr"

        # The server's primary language changes: GUILD_UPDATE, then new interactions say so.
        updated = asyncio.create_task(bot.wait_for("guild_update", timeout=5))
        await asyncio.sleep(0)
        fake.set_guild_locale(guild.id, "en-GB")
        _, after = await updated
        assert after.id == guild.id
        assert bot.get_guild(guild.id).preferred_locale is discord.Locale.british_english
        last = await fake.send_slash("imagine", {"prompt": "h"}, user=ivan, guild_id=guild.id)
        assert last.payload["guild_locale"] == "en-GB"


async def test_component_and_modal_interactions_carry_the_locale(fake: FakeDiscord) -> None:
    guild = fake.add_guild()
    ivan = fake.add_user("ivan", locale="ru")
    message = fake.post_user_message(guild.channel_id, fake.bot_user, "pick")
    message.components = [
        {"type": 1, "components": [{"type": 2, "style": 1, "label": "Go", "custom_id": "go"}]}
    ]
    press = await fake.press_button(message, "go", user=ivan)
    assert press.payload["locale"] == "ru"
    assert (await fake.press_button(message, "go", user=ivan, locale="pl")).payload[
        "locale"
    ] == "pl"
    # The modal submit comes from the client that opened it, in its language.
    url = f"{fake.rest_base}/interactions/{press.id}/{press.token}/callback"
    modal = {
        "custom_id": "m",
        "title": "Prompt",
        "components": [
            {
                "type": 1,
                "components": [{"type": 4, "custom_id": "p", "label": "Prompt", "style": 1}],
            }
        ],
    }
    async with aiohttp.ClientSession() as http, http.post(url, json={"type": 9, "data": modal}):
        pass
    assert press.modal is not None
    fake.set_user_locale(ivan, "en-US")
    submit = await fake.submit_modal(press, {"p": "кот"})
    assert submit.payload["locale"] == "ru"


@pytest.mark.parametrize(
    ("command", "path"),
    [
        (_command(name_localizations={"ru-RU": "нарисовать"}), ["0", "name_localizations"]),
        (_command(name_localizations={"ru": "Нарисовать"}), ["0", "name_localizations", "ru"]),
        (_command(name_localizations={"ru": "два слова"}), ["0", "name_localizations", "ru"]),
        (_command(name_localizations={"ru": "я" * 33}), ["0", "name_localizations", "ru"]),
        (_command(description_localizations={"ru": ""}), ["0", "description_localizations"]),
        (
            _command(description_localizations={"ru": "д" * 101}),
            ["0", "description_localizations", "ru"],
        ),
        (
            _command(
                options=[
                    {
                        "type": 3,
                        "name": "prompt",
                        "description": "What to draw",
                        "name_localizations": {"ru": "ЗАПРОС"},
                    }
                ]
            ),
            ["0", "options", "0", "name_localizations", "ru"],
        ),
        (
            _command(
                options=[
                    {
                        "type": 3,
                        "name": "style",
                        "description": "The look",
                        "choices": [
                            {"name": "Anime", "value": "a", "name_localizations": {"ru": ""}}
                        ],
                    }
                ]
            ),
            ["0", "options", "0", "choices", "0", "name_localizations", "ru"],
        ),
        (
            {"type": 3, "name": "Upscale", "name_localizations": {"ru": "У" * 33}},
            ["0", "name_localizations", "ru"],
        ),
    ],
)
async def test_bad_localizations_are_form_errors(
    fake: FakeDiscord, command: dict[str, Any], path: list[str]
) -> None:
    status, body = await _put_commands(fake, [command])
    assert (status, body["code"]) == (400, 50035), body
    errors = body["errors"]
    for part in path:
        errors = errors[part]
    assert fake.commands == []


async def test_good_localizations_and_duplicate_localized_names(fake: FakeDiscord) -> None:
    menu = {"type": 3, "name": "Upscale", "name_localizations": {"ru": "Увеличить Х2"}}
    good = [
        _command(
            name_localizations={"ru": "нарисовать", "uk": "намалювати", "en-GB": "draw"},
            description_localizations={"ru": "Нарисовать картинку"},
        ),
        {"name": "edit", "description": "Edit", "name_localizations": {"uk": "нарисовать"}},
        menu,
    ]
    status, body = await _put_commands(fake, good)
    assert status == 200, body
    assert fake.command_names("en-GB") == ["draw", "edit"]
    assert fake.command_names("uk") == ["намалювати", "нарисовать"]

    # Two chat commands called the same in one locale: Discord refuses the lot.
    clash = {"name": "edit", "description": "Edit", "name_localizations": {"ru": "нарисовать"}}
    status, body = await _put_commands(fake, [good[0], clash, menu])
    assert (status, body["code"]) == (400, 50035)
    assert body["errors"]["1"]["name_localizations"]["ru"]["_errors"][0]["code"] == (
        "APPLICATION_COMMANDS_DUPLICATE_NAME"
    )
    assert [c["name"] for c in fake.commands] == ["imagine", "edit", "Upscale"]
    # A message command may share a chat command's localized name (another type).
    same = {"type": 3, "name": "Draw", "name_localizations": {"ru": "нарисовать"}}
    status, _ = await _put_commands(fake, [good[0], same])
    assert status == 200


async def test_control_api_takes_locales(fake: FakeDiscord) -> None:
    async with aiohttp.ClientSession() as http:

        async def call(path: str, body: Any) -> tuple[int, Any]:
            async with http.post(f"{fake.control_url}{path}", json=body) as resp:
                return resp.status, await resp.json()

        _, guilds = await call("/guilds", {"names": ["Клуб"], "locale": "ru"})
        guild_id = int(guilds["guilds"][0]["id"])
        assert fake.guilds[guild_id].preferred_locale == "ru"
        _, users = await call("/users", {"users": [{"name": "ivan", "locale": "ru"}]})
        status, bad = await call("/users", {"users": [{"name": "x", "locale": "xx"}]})
        assert status == 400 and "not a Discord locale" in bad["error"]
        ivan = users["users"][0]
        _, sent = await call("/slash", {"name": "imagine", "user_id": ivan["id"]})
        _, other = await call("/slash", {"name": "imagine", "user_id": ivan["id"], "locale": "uk"})
    assert fake.interactions[int(sent["id"])].payload["locale"] == "ru"
    assert fake.interactions[int(other["id"])].payload["locale"] == "uk"
