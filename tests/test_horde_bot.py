"""The AI Horde through the real bot: the real discord.py client against the fake Discord, the
real engine against the fake Spaces and the fake AI Horde (``running_bot(..., horde=True)``)."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from tests.fakes.horde import FLUX_MODEL
from tests.fakes.space import ServerError
from tests.harness import MANAGE_GUILD, running_bot

pytestmark = pytest.mark.timeout(90)


def field(embed: dict, name: str) -> str:
    return next(f["value"] for f in embed["fields"] if f["name"] == name)


def job_id_of(message) -> int:
    first = message.components[0]["components"][0]["custom_id"]
    return int(first.rsplit(":", 1)[1])


async def test_a_horde_model_is_drawn_with_its_place_in_the_queue(tmp_path):
    async with running_bot(tmp_path, horde=True) as h:
        assert h.horde is not None
        h.horde.queue_places, h.horde.seconds_per_place, h.horde.generation_seconds = 3, 1.0, 0.5
        auto = await h.discord.send_autocomplete(
            "imagine", {"model": "deli"}, "model", user=h.alice, guild_id=h.guild.id
        )
        choices = (await auto.wait_callback(3))["data"]["choices"]
        assert [c["value"] for c in choices] == ["horde:Deliberate"]
        interaction = await h.slash(
            {"prompt": "a lighthouse at dusk", "model": "horde:Deliberate", "width": 768,
             "height": 500, "seed": 9}
        )  # fmt: skip
        message = await h.final(interaction, within=30)
        statuses = [v["content"] for v in message.versions if v.get("content")]
        assert any("in the AI Horde's queue" in s for s in statuses), statuses
        (embed,) = message.embeds
        assert field(embed, "Model") == "horde:Deliberate"
        assert field(embed, "Size") == "768×512"  # the size drawn: multiples of 64
        assert field(embed, "Seed") == "9"
        assert "drawn by AI Horde" in embed["footer"]["text"]
        data = message.attachment_bytes(0)
        assert Image.open(io.BytesIO(data)).size == (768, 512)
        (horde_job,) = h.horde.jobs.values()
        assert h.horde.too_fast == [] and horde_job.statuses == 1
        assert h.bot is not None
        job = await h.bot.store.job(job_id_of(message))
        assert job is not None and job.kudos == horde_job.kudos and not job.nsfw
        assert h.discord.count_429 == 0


async def test_flux_with_its_spaces_down_falls_back_to_the_horde(tmp_path):
    async with running_bot(tmp_path, horde=True) as h:
        assert h.horde is not None
        h.horde.queue_places = 1
        h.space.set_fault("g4f-flux", ServerError(503))
        message = await h.final(await h.slash({"prompt": "a fox", "model": "flux"}), within=30)
        assert message.attachments
        (embed,) = message.embeds
        assert field(embed, "Model") == "flux"
        assert "drawn by AI Horde" in embed["footer"]["text"]
        (submit,) = h.horde.submits()
        assert submit.json["models"] == [FLUX_MODEL]
        shown = await h.discord.send_slash(
            "imagine-config", {}, subcommand="show", user=h.admin, guild_id=h.guild.id,
            permissions=MANAGE_GUILD,
        )  # fmt: skip
        config = (await shown.wait_callback(3))["data"]["embeds"][0]
        backends = field(config, "Backends")
        assert "`horde` (horde:Deliberate, flux, flux-dev): healthy" in backends


async def test_a_censored_image_ends_in_a_clear_failure(tmp_path):
    async with running_bot(tmp_path, horde=True) as h:
        assert h.horde is not None
        h.horde.queue_places = 1
        h.horde.set_fault("censored")
        interaction = await h.slash({"prompt": "a cat", "model": "horde:Deliberate"})
        message = await h.final(interaction, within=30)
        assert not message.attachments
        (embed,) = message.embeds
        assert embed["title"] == "Couldn't make this image"
        assert "censored the image" in embed["description"]
        assert "image" not in embed  # nothing of it is shown
        (horde_job,) = h.horde.jobs.values()
        assert h.bot is not None
        assert await h.job_state(job_id_of(message), "failed") == "failed"  # the log follows
        job = await h.bot.store.job(job_id_of(message))
        assert job is not None
        assert job.kudos == horde_job.kudos  # a censored image is paid for all the same


async def test_an_age_restricted_channel_asks_for_nsfw(tmp_path):
    async with running_bot(tmp_path, horde=True) as h:
        assert h.horde is not None
        h.horde.queue_places = 0
        after_dark = h.discord.add_channel(h.guild.id, "after-dark", nsfw=True)
        await h.discord.wait_until(lambda: h.bot.get_channel(after_dark) is not None, 5)
        adult = await h.final(
            await h.slash({"prompt": "a figure study", "model": "horde:Deliberate"},
                          channel_id=after_dark),
            within=30,
        )  # fmt: skip
        plain = await h.final(
            await h.slash({"prompt": "a figure study", "model": "horde:Deliberate"}), within=30
        )
        first, second = h.horde.submits()
        assert (first.json["nsfw"], first.json["censor_nsfw"]) == (True, False)
        assert (second.json["nsfw"], second.json["censor_nsfw"]) == (False, True)
        assert h.bot is not None
        jobs = [await h.bot.store.job(job_id_of(m)) for m in (adult, plain)]
        assert [j.nsfw for j in jobs if j is not None] == [True, False]
