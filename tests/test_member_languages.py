"""Issue 11: every member's own defaults (/settings) and the bot in their language.

The real bot between the fake Discord (which localizes commands and carries each client's
locale, as Discord does) and the fake Spaces.
"""

from __future__ import annotations

import pytest

from imagine.i18n import Language, _, n_, texts
from tests.fakes.openai_server import FakeOpenAI
from tests.harness import MANAGE_GUILD, running_bot

pytestmark = pytest.mark.timeout(90)

RU = texts(Language.RU)


def labels(message) -> list[str]:
    return [c.get("label") for row in message.components for c in row["components"]]


def field_names(message) -> list[str]:
    return [f["name"] for f in message.embeds[0]["fields"]]


def contents(message) -> list[str]:
    return [v.get("content") or "" for v in message.versions] + [message.content or ""]


def options_of(command: dict) -> list[dict]:
    found = []
    for option in command.get("options") or []:
        found.append(option)
        found += options_of(option)
    return found


async def test_every_command_option_and_menu_has_russian_names(tmp_path):
    async with running_bot(tmp_path) as h:
        commands = h.discord.commands
        assert {c["name"] for c in commands} >= {
            "imagine",
            "describe",
            "settings",
            "imagine-config",
            "Imagine this",
            "Edit this image",
            "Describe this image",
        }
        for command in commands:
            assert command["name_localizations"]["ru"], command["name"]
            assert command["name_localizations"]["ru"] != command["name"], command["name"]
            if command.get("type", 1) == 1:
                assert command["description_localizations"]["ru"], command["name"]
            for option in options_of(command):
                assert option["name_localizations"]["ru"], (command["name"], option["name"])
                assert option["description_localizations"]["ru"], option["name"]
        russian = h.discord.command_names("ru")
        assert "нарисовать" in russian and "imagine" not in russian
        assert "imagine" in h.discord.command_names("en-US")  # English stays canonical
        assert "Нарисовать это" in h.discord.command_names("ru", type=3)
        assert set(h.discord.option_names("imagine", "ru")) >= {"запрос", "модель"}


async def test_russian_and_english_members_side_by_side(tmp_path):
    async with running_bot(tmp_path, MAX_CONCURRENT_JOBS="1") as h:
        h.space.generation_delay = 1.5
        ivan = h.discord.add_user("ivan", locale="ru")
        h.discord.add_member(h.guild.id, ivan)
        first = await h.slash({"prompt": "a lighthouse"}, user=h.alice)
        await h.discord.wait_until(lambda: first.original and first.original.components, 10)
        # Ivan's client shows the Russian names; Discord sends the canonical ones.
        russian = await h.discord.send_slash(
            "нарисовать", {"запрос": "маяк"}, user=ivan, guild_id=h.guild.id
        )
        english = await h.slash({"prompt": "a harbour"}, user=h.bob)
        assert russian.payload["locale"] == "ru" and english.payload["locale"] == "en-US"

        ru_reply = await h.final(russian, 30)
        en_reply = await h.final(english, 30)

        # Statuses: each waiting job's place in line, in its requester's language.
        assert RU(_("Next in line")) != "Next in line"
        assert any(RU(_("Next in line")) in text for text in contents(ru_reply))
        ahead = n_(
            "#{position} in line ({n} job ahead of you)",
            "#{position} in line ({n} jobs ahead of you)",
            1,
            position=2,
        )
        assert any(str(ahead) in text for text in contents(en_reply))
        assert not any(RU(ahead) in text for text in contents(en_reply))

        # The result: embed fields and buttons.
        assert field_names(ru_reply)[:4] == [RU(_(n)) for n in ("Model", "Seed", "Size", "Time")]
        assert field_names(en_reply)[:4] == ["Model", "Seed", "Size", "Time"]
        assert "Модель" in field_names(ru_reply)
        assert RU(_("Delete")) in labels(ru_reply) and "Delete" not in labels(ru_reply)
        assert "Delete" in labels(en_reply) and RU(_("Delete")) not in labels(en_reply)
        assert RU(_("Requested by {name}", name="ivan")) in ru_reply.embeds[0]["footer"]["text"]
        # The backend's own words stay as they are: the prompt is not translated.
        assert ru_reply.embeds[0]["title"] == "маяк"


async def test_a_refusal_is_in_the_members_language(tmp_path):
    async with running_bot(tmp_path) as h:
        ivan = h.discord.add_user("ivan", locale="ru")
        h.discord.add_member(h.guild.id, ivan)
        refused = await h.slash({"prompt": "x", "model": "no-such-model"}, user=ivan)
        text = await h.ephemeral(refused)
        assert "no-such-model" in text
        english = await h.slash({"prompt": "x", "model": "no-such-model"}, user=h.alice)
        assert await h.ephemeral(english) != text


async def open_settings(h, user, **kwargs):
    interaction = await h.discord.send_slash("settings", {}, user=user, **kwargs)
    callback = await interaction.wait_callback(3)
    assert callback["type"] == 4 and callback["data"]["flags"] & 64, callback  # ephemeral
    page = await h.discord.wait_until(lambda: interaction.original, 5)
    return interaction, page


async def choose(h, page, key: str, value: str, user) -> dict:
    before = page.edit_count
    chosen = await h.discord.choose_select(page, f"settings:{key}", [value], user=user)
    callback = await chosen.wait_callback(3)
    assert callback["type"] == 7, callback  # the page itself is updated
    await h.discord.wait_until(lambda: page.edit_count > before, 5)
    return callback


async def test_settings_persist_across_a_restart_and_apply_everywhere(tmp_path):
    async with running_bot(tmp_path) as h:
        _interaction, page = await open_settings(h, h.alice, guild_id=h.guild.id)
        assert page.embeds[0]["title"] == "Your settings"
        await choose(h, page, "model", "flux-dev", h.alice)
        await choose(h, page, "aspect", "16:9", h.alice)
        await choose(h, page, "language", "ru", h.alice)
        assert page.embeds[0]["title"] == RU(_("Your settings"))  # answered in the new language

        await h.stop_bot()
        await h.start_bot()

        # /imagine: the member's model, shape and language (their client says en-US).
        job = await h.slash({"prompt": "a fox"}, user=h.alice)
        reply = await h.final(job, 30)
        assert "flux-dev" in reply.embeds[0]["fields"][0]["value"]
        assert next(f["value"] for f in reply.embeds[0]["fields"] if f["name"] == "Размер") == (
            "1344×768"
        )
        assert "Модель" in field_names(reply)
        # An option given still wins over the member's default.
        square = await h.slash({"prompt": "a fox", "model": "flux", "width": 512}, user=h.alice)
        assert "flux" in (await h.final(square, 30)).embeds[0]["fields"][0]["value"]

        # "Imagine this": the same defaults.
        target = h.discord.post_user_message(h.channel_id, h.bob, "a whale in the sky")
        menu = await h.discord.send_message_command("Imagine this", target, user=h.alice)
        menu_reply = await h.final(menu, 30)
        assert "flux-dev" in menu_reply.embeds[0]["fields"][0]["value"]
        assert "Модель" in field_names(menu_reply)

        # A DM (no locale in it): the member's settings too.
        channel = h.discord.dm_channel_for(h.alice)
        h.discord.post_user_message(channel, h.alice, "a tiny robot")

        def dm_done():
            replies = [m for m in h.discord.channel_history(channel) if m in h.bot_messages()]
            return replies and replies[-1].embeds and replies[-1]

        dm_reply = await h.discord.wait_until(dm_done, 30)
        assert "flux-dev" in dm_reply.embeds[0]["fields"][0]["value"]
        assert "Модель" in field_names(dm_reply)

        # Reset: back to the server's defaults, in the client's language.
        _interaction, page = await open_settings(h, h.alice, guild_id=h.guild.id)
        before = page.edit_count
        pressed = await h.discord.press_button(page, "settings:reset", user=h.alice)
        assert (await pressed.wait_callback(3))["type"] == 7
        await h.discord.wait_until(lambda: page.edit_count > before, 5)
        assert page.embeds[0]["title"] == "Your settings"
        plain = await h.final(await h.slash({"prompt": "a fox"}, user=h.alice), 30)
        assert plain.embeds[0]["fields"][0]["value"].startswith("flux")
        assert "flux-dev" not in plain.embeds[0]["fields"][0]["value"]
        assert "Model" in field_names(plain)


async def test_private_results_are_ephemeral_and_their_buttons_work(tmp_path):
    async with running_bot(tmp_path) as h:
        _interaction, page = await open_settings(h, h.alice, guild_id=h.guild.id)
        before = page.edit_count
        toggled = await h.discord.press_button(page, "settings:private", user=h.alice)
        assert (await toggled.wait_callback(3))["type"] == 7
        await h.discord.wait_until(lambda: page.edit_count > before, 5)

        job = await h.slash({"prompt": "a secret garden"}, user=h.alice)
        callback = await job.wait_callback(3)
        assert callback["type"] == 5 and callback["data"]["flags"] & 64, callback
        reply = await h.final(job, 30)
        assert reply.ephemeral
        rerolled = await h.discord.press_button(
            reply, f"imagine:reroll:{_job_id(reply)}", user=h.alice
        )
        again = await rerolled.wait_callback(5)
        assert again["type"] == 5 and again["data"]["flags"] & 64, again
        assert (await h.final(rerolled, 30)).ephemeral


async def test_a_members_model_applies_only_where_the_server_allows_it(tmp_path):
    async with running_bot(tmp_path) as h:
        _interaction, page = await open_settings(h, h.alice, guild_id=h.guild.id)
        await choose(h, page, "model", "flux-dev", h.alice)
        await h.bot.store.update_guild(h.guild.id, allowed_models=("flux",))
        reply = await h.final(await h.slash({"prompt": "a fox"}, user=h.alice), 30)
        assert reply.embeds[0]["fields"][0]["value"].startswith("flux")
        assert "flux-dev" not in reply.embeds[0]["fields"][0]["value"]
        assert h.bot.store.user(int(h.alice["id"])).model == "flux-dev"  # kept


def _job_id(message) -> int:
    for row in message.components:
        for component in row["components"]:
            if component.get("custom_id", "").startswith("imagine:reroll:"):
                return int(component["custom_id"].rsplit(":", 1)[1])
    raise AssertionError("no Reroll button")


# -- prompts in other languages ---------------------------------------------------------------


async def test_a_prompt_is_translated_only_where_the_server_asked_and_the_result_shows_both(
    tmp_path,
):
    async with FakeOpenAI() as api:
        env = api.env(OPENAI_VISION_MODEL="gpt-4o")
        async with running_bot(tmp_path, **env) as h:
            # Off by default: a Russian prompt is drawn as written, nothing asked of a model.
            plain = await h.final(await h.slash({"prompt": "рыжий кот"}, user=h.alice), 30)
            assert h.space.joins("g4f-flux")[-1].json["data"][0] == "рыжий кот"
            assert api.chats == []
            assert all("translated" not in f["name"] for f in plain.embeds[0]["fields"])

            admin = {"user": h.admin, "guild_id": h.guild.id, "permissions": MANAGE_GUILD}
            unknown = await h.discord.send_slash(
                "imagine-config", {"model": "no-such-chat"}, subcommand="translate", **admin
            )
            assert "gpt-4o" in await h.ephemeral(unknown)  # what may be chosen
            assert (await h.bot.store.guild(h.guild.id)).translate_model is None
            chosen = await h.discord.send_slash(
                "imagine-config", {"model": "gpt-4o"}, subcommand="translate", **admin
            )
            assert "gpt-4o" in await h.ephemeral(chosen)

            reply = await h.final(await h.slash({"prompt": "рыжий кот в шляпе"}, user=h.alice), 30)
            assert h.space.joins("g4f-flux")[-1].json["data"][0] == "ginger cat in a hat"
            assert reply.embeds[0]["title"] == "рыжий кот в шляпе"  # what was asked
            drawn = {f["name"]: f["value"] for f in reply.embeds[0]["fields"]}
            assert drawn["Drawn as (translated)"] == "ginger cat in a hat"
            job = await h.bot.store.job(_job_id(reply))
            assert job.prompt == "рыжий кот в шляпе"
            assert job.translated_prompt == "ginger cat in a hat"

            # An English prompt costs no request.
            asked = len(api.chats)
            await h.final(await h.slash({"prompt": "a ginger cat"}, user=h.alice), 30)
            assert len(api.chats) == asked

            # A translation that fails is said, and the prompt drawn as written.
            api.refuse = "unavailable"
            h.space.generation_delay = 1.5  # long enough for the notice to be shown
            failed = await h.slash({"prompt": "собака на луне"}, user=h.alice)
            reply = await h.final(failed, 30)
            assert h.space.joins("g4f-flux")[-1].json["data"][0] == "собака на луне"
            assert any("could not be translated" in c for c in contents(reply))


async def test_a_dm_is_answered_in_the_members_last_known_language(tmp_path):
    async with running_bot(tmp_path) as h:
        ivan = h.discord.add_user("ivan", locale="ru")
        h.discord.add_member(h.guild.id, ivan)
        channel = h.discord.dm_channel_for(ivan)

        def dm_reply():
            replies = [m for m in h.discord.channel_history(channel) if m in h.bot_messages()]
            return replies and replies[-1].embeds and replies[-1]

        # Never seen: a DM carries no locale, so English.
        h.discord.post_user_message(channel, ivan, "a red kite")
        assert "Model" in field_names(await h.discord.wait_until(dm_reply, 30))

        await h.final(await h.slash({"prompt": "маяк"}, user=ivan), 30)  # seen: locale ru
        h.discord.post_user_message(channel, ivan, "a blue kite")
        await h.discord.wait_until(
            lambda: (r := dm_reply()) and r.embeds[0]["title"] == "a blue kite", 30
        )
        assert "Модель" in field_names(dm_reply())

        # After a restart (nothing in memory): the language of the member's latest job.
        await h.stop_bot()
        await h.start_bot()
        h.discord.post_user_message(channel, ivan, "a green kite")
        await h.discord.wait_until(
            lambda: (r := dm_reply()) and r.embeds[0]["title"] == "a green kite", 30
        )
        assert "Модель" in field_names(dm_reply())


async def test_a_settings_page_shown_before_a_restart_still_answers(tmp_path):
    async with running_bot(tmp_path) as h:
        _interaction, page = await open_settings(h, h.bob, guild_id=h.guild.id)
        await h.stop_bot()
        await h.start_bot()
        await choose(h, page, "language", "ru", h.bob)
        assert page.embeds[0]["title"] == RU(_("Your settings"))
        assert h.bot.store.user(int(h.bob["id"])).language == "ru"


async def test_the_edit_modal_speaks_the_members_language_and_keeps_their_settings(tmp_path):
    from tests.test_creative_images import modal_input, photo_with_gps

    async with running_bot(tmp_path) as h:
        ivan = h.discord.add_user("ivan", locale="ru")
        h.discord.add_member(h.guild.id, ivan)
        _interaction, page = await open_settings(h, ivan, guild_id=h.guild.id)
        before = page.edit_count
        toggled = await h.discord.press_button(page, "settings:private", user=ivan)
        assert (await toggled.wait_callback(3))["type"] == 7
        await h.discord.wait_until(lambda: page.edit_count > before, 5)

        photo = h.discord.post_user_message(
            h.channel_id, h.bob, "my cat", attachments=[("cat.jpg", photo_with_gps())]
        )
        menu = await h.discord.send_message_command("Изменить картинку", photo, user=ivan)
        modal = await menu.wait_modal()
        assert modal["title"] == RU(_("Edit this image")) != "Edit this image"
        submitted = await h.discord.submit_modal(menu, {modal_input(modal): "шляпа"}, user=ivan)
        thinking = await submitted.wait_callback(5)
        assert thinking["type"] == 5 and thinking["data"]["flags"] & 64, thinking  # private
        edited = await h.final(submitted, within=30)
        assert edited.ephemeral
        assert "Модель" in field_names(edited)
