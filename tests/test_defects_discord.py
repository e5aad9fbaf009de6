"""Issue 8, "Discord surface" (and the engine items as a member sees them): each defect has a
test here, named after its item. The real bot between the fake Discord and the fake Spaces.
"""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from tests.fakes.space import GoSilent, JsonError, ServerError
from tests.harness import MANAGE_GUILD, running_bot

pytestmark = pytest.mark.timeout(60)


def field(embed: dict, name: str) -> str:
    return next(f["value"] for f in embed["fields"] if f["name"] == name)


def buttons(message) -> list[str]:
    return [c["custom_id"] for row in message.components for c in row["components"]]


def contents(message) -> list[str]:
    return [v.get("content") or "" for v in message.versions]


async def running(h, interaction):
    """The reply once it shows its Cancel button (the job is under way)."""
    return await h.discord.wait_until(
        lambda: interaction.original and interaction.original.components and interaction.original,
        10,
    )


# -- item 1 ---------------------------------------------------------------------------------


async def test_item01_imagine_and_menu_declare_contexts_and_installs(tmp_path):
    async with running_bot(tmp_path) as h:
        synced = {c["name"]: c for c in h.discord.commands}
        for name in ("imagine", "Imagine this"):
            assert synced[name]["contexts"] == [0, 1, 2], synced[name]
            assert synced[name]["integration_types"] == [0, 1], synced[name]
        assert synced["imagine-config"]["contexts"] == [0]


# -- item 2 ---------------------------------------------------------------------------------


async def test_item02_queue_status_counts_the_jobs_ahead(tmp_path):
    async with running_bot(tmp_path, MAX_CONCURRENT_JOBS="1") as h:
        h.space.generation_delay = 2.5
        carol = h.discord.add_user("carol")
        h.discord.add_member(h.guild.id, carol)
        first = await h.slash({"prompt": "one"}, user=h.alice)
        await running(h, first)
        second = await h.slash({"prompt": "two"}, user=h.bob)
        third = await h.slash({"prompt": "three"}, user=carol)
        await running(h, third)
        await h.discord.wait_until(lambda: "in line" in (third.original.content or ""), 5)
        assert "Next in line" in second.original.content
        shown = third.original.content
        assert "1 job ahead of you" in shown, shown
        assert not any("2 ahead" in text for text in contents(third.original))
        for interaction in (first, second, third):
            await h.final(interaction, within=30)


# -- item 3 ---------------------------------------------------------------------------------


async def test_item03_a_member_named_shutdown_cancels_like_anyone_else(tmp_path):
    async with running_bot(tmp_path) as h:
        h.space.generation_delay = 30
        shutdown = h.discord.add_user("shutdown")
        h.discord.add_member(h.guild.id, shutdown)
        interaction = await h.slash({"prompt": "a slow painting"}, user=shutdown)
        reply = await running(h, interaction)
        cancel = buttons(reply)[0]
        await h.discord.press_button(reply, cancel, user=shutdown)
        ended = await h.final(interaction)
        assert ended.content.startswith("Cancelled by shutdown"), ended.content
        assert not ended.embeds  # not the "Interrupted: the bot restarted" failure
        job_id = int(cancel.rsplit(":", 1)[1])
        assert await h.job_state(job_id, "cancelled") == "cancelled"


# -- item 4 ---------------------------------------------------------------------------------


async def test_item04_cancel_racing_the_result_keeps_its_buttons(tmp_path):
    async with running_bot(tmp_path) as h:
        h.space.generation_delay = 1.2
        interaction = await h.slash({"prompt": "a quick sketch"})
        reply = await running(h, interaction)
        cancel = buttons(reply)[0]
        done = await h.final(interaction)
        job_id = cancel.rsplit(":", 1)[1]
        result_buttons = buttons(done)
        assert result_buttons[-2:] == [f"imagine:reroll:{job_id}", f"imagine:delete:{job_id}"]
        assert f"imagine:vary:{job_id}" in result_buttons
        # The click left alice's client just before the result replaced the Cancel button.
        late = await h.discord.press_button(done, cancel, user=h.alice, stale=True)
        assert "already finished" in await h.ephemeral(late)
        await asyncio.sleep(0.3)
        assert buttons(done) == result_buttons
        assert done.attachments and done.embeds


# -- item 5 ---------------------------------------------------------------------------------

PHISH = "[Claim Nitro](https://discord.gift.example/free) **now**"


async def test_item05_a_prompt_cannot_make_a_link_in_the_bots_embeds(tmp_path):
    async with running_bot(tmp_path) as h:
        long_prompt = PHISH + " a castle" * 40  # over 256 characters: shown in the description
        done = await h.final(await h.slash({"prompt": long_prompt}))
        description = done.embeds[0]["description"]
        assert "[Claim Nitro](" not in description and "\\[Claim Nitro" in description
        assert "\\*\\*now\\*\\*" in description
        h.space.set_fault("g4f-flux", JsonError(400, "refused"))
        failed = await h.final(await h.slash({"prompt": PHISH}, user=h.bob))
        shown = field(failed.embeds[0], "Prompt")
        assert "[Claim Nitro](" not in shown and "\\[Claim Nitro" in shown
        assert "[Claim Nitro](" not in failed.embeds[0]["title"]


# -- item 9 ---------------------------------------------------------------------------------


async def test_item09_an_unknown_bot_fallback_is_ignored(tmp_path, caplog):
    async with running_bot(tmp_path, FALLBACK_MODEL="flux-typo") as h:
        assert "flux-typo" in caplog.text  # warned at start
        done = await h.final(await h.slash({"prompt": "a boat", "model": "flux-dev"}))
        assert done.attachments, done.embeds
        assert field(done.embeds[0], "Model") == "flux-dev"


async def test_item09_a_servers_vanished_fallback_is_ignored_at_use(tmp_path):
    async with running_bot(tmp_path) as h:
        await h.bot.store.update_guild(h.guild.id, fallback_model="model-that-went-away")
        done = await h.final(await h.slash({"prompt": "a boat"}))
        assert done.attachments, done.embeds


async def test_item09_fallback_must_be_a_model_the_server_allows(tmp_path):
    async with running_bot(tmp_path, FALLBACK_MODEL="janus-pro-7b-image") as h:
        h.bot.engine.retry_backoff = 0.05
        admin = {"user": h.admin, "guild_id": h.guild.id, "permissions": MANAGE_GUILD}
        send = h.discord.send_slash
        await h.ephemeral(await send("imagine-config", {"models": "flux, flux-dev"},
                                     subcommand="models", **admin))  # fmt: skip
        refused = await h.ephemeral(
            await send("imagine-config", {"model": "janus-pro-7b-image"}, subcommand="fallback",
                       **admin)
        )  # fmt: skip
        assert "not among the models" in refused
        # The bot-wide fallback is not allowed here either: the job ends with its own error.
        h.space.set_fault("flux-dev", ServerError(503))
        failed = await h.final(await h.slash({"prompt": "x", "model": "flux-dev"}))
        assert failed.embeds[0]["title"] == "Couldn't make this image"
        assert h.space.joins("janus") == []


# -- items 10 and 12, as a member sees them -------------------------------------------------


async def test_item10_a_failover_is_shown_in_the_reply(tmp_path):
    async with running_bot(tmp_path, all_backends=True) as h:
        h.space.set_fault("g4f-flux", ServerError(503))
        h.space.generation_delay = 2.5
        done = await h.final(await h.slash({"prompt": "a fox", "model": "flux"}))
        assert done.attachments
        shown = [t for t in contents(done) if "G4F flux is unavailable" in t]
        assert shown and "trying FLUX.1-schnell (official Space)" in shown[0], contents(done)


async def test_item11_status_says_which_backend_is_not_answering(tmp_path):
    async with running_bot(tmp_path, all_backends=True, JOB_WATCHDOG_SECONDS="1") as h:
        h.space.set_fault("g4f-flux", GoSilent(after_events=1))
        h.space.generation_delay = 2.5
        done = await h.final(await h.slash({"prompt": "a fox", "model": "flux"}), within=30)
        assert done.attachments
        assert any("G4F flux is not answering" in t for t in contents(done)), contents(done)
        assert len(h.space.joins("g4f-flux")) == 1


async def test_item12_secrets_and_addresses_never_reach_discord(tmp_path):
    secret = "hf_SeCrEtToKeN0123456789"
    leak = f"auth {secret} refused by http://10.9.8.7:5000/internal/api"
    async with running_bot(
        tmp_path, all_backends=True, HF_TOKEN=secret, FALLBACK_MODEL="flux"
    ) as h:
        h.bot.engine.retry_backoff = 0.05
        h.space.generation_delay = 1.5
        h.space.set_fault("flux-dev", JsonError(503, leak))
        h.space.set_fault("flux-dev-official", JsonError(503, leak))
        h.space.set_fault("g4f-flux", JsonError(503, leak))
        done = await h.final(await h.slash({"prompt": "a kite", "model": "flux-dev"}), within=30)
        assert done.attachments
        footer = done.embeds[0]["footer"]["text"]
        shown = await h.discord.send_slash(
            "imagine-config", {}, subcommand="show", user=h.admin, guild_id=h.guild.id,
            permissions=MANAGE_GUILD,
        )  # fmt: skip
        embed = (await shown.wait_callback(3))["data"]["embeds"][0]
        health = next(f["value"] for f in embed["fields"] if f["name"] == "Backends")
        seen = "\n".join([*contents(done), footer, health])
        assert secret not in seen and "10.9.8.7" not in seen, seen
        assert "FLUX.1-dev" in footer  # the fallback note names the backend that failed


# -- item 19: the token is cleared when the job ends ----------------------------------------


async def test_item19_interaction_token_is_cleared_when_a_job_ends(tmp_path):
    async with running_bot(tmp_path) as h:
        done = await h.final(await h.slash({"prompt": "a boat"}))
        job_id = int(buttons(done)[0].rsplit(":", 1)[1])
        await h.job_state(job_id, "done")
        await h.bot.store.flush()
        with sqlite3.connect(h.database) as db:
            (token,) = db.execute("SELECT interaction_token FROM jobs WHERE id = ?", (job_id,))
        assert token == (None,)


# -- item 16: the pixel cap follows what the job asked for ----------------------------------


async def test_item16_an_image_far_larger_than_asked_is_refused(tmp_path):
    from tests.fakes.space import ClaimsSize

    async with running_bot(tmp_path) as h:
        h.space.file_fault = ClaimsSize(6000, 6000)  # 36 Mpx, under the old 64 Mpx cap
        failed = await h.final(await h.slash({"prompt": "a pebble", "width": 512, "height": 512}))
        assert not failed.attachments
        assert "decompression bomb" in failed.embeds[0]["description"]
