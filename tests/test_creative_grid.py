"""The creative loop, part one: grids (count), U and V buttons, inline flags, aspect ratios,
negative prompts, server image settings. The real bot between the fake Discord and the fake
Spaces."""

from __future__ import annotations

import asyncio
import io

import pytest
from PIL import Image

from tests.fakes.space import JsonError
from tests.harness import MANAGE_GUILD, running_bot

pytestmark = pytest.mark.timeout(90)


def field(embed: dict, name: str) -> str:
    return next(f["value"] for f in embed["fields"] if f["name"] == name)


def buttons(message) -> list[str]:
    return [c["custom_id"] for row in message.components for c in row["components"]]


def labels(message) -> list[list[str]]:
    return [[c["label"] for c in row["components"]] for row in message.components]


def pixels(data: bytes) -> tuple[int, int, int]:
    """The colour of an image's centre (the fake Space's images are solid colours)."""
    image = Image.open(io.BytesIO(data)).convert("RGB")
    return image.getpixel((image.width // 2, image.height // 2))


async def admin_says(h, sub: str, options: dict) -> str:
    return await h.ephemeral(
        await h.discord.send_slash(
            "imagine-config", options, subcommand=sub, user=h.admin, guild_id=h.guild.id,
            permissions=MANAGE_GUILD,
        )
    )  # fmt: skip


async def test_a_grid_of_four_is_one_reply_with_u_and_v_buttons(tmp_path):
    async with running_bot(tmp_path) as h:
        h.space.generation_delay = 1.2
        interaction = await h.slash({"prompt": "a red fox", "count": 4, "seed": 10})
        grid = await h.final(interaction, within=30)
        assert len(grid.attachments) == 4
        seeds = [j.json["data"][1] for j in h.space.joins("g4f-flux")]
        assert sorted(seeds) == [10, 11, 12, 13]  # new seeds, counted up from the asked one
        served = {r.bytes for r in h.space.served}
        assert {grid.attachment_bytes(i) for i in range(4)} <= served
        job_id = buttons(grid)[0].rsplit(":", 1)[1]
        assert labels(grid) == [
            ["U1", "U2", "U3", "U4"],
            ["V1", "V2", "V3", "V4"],
            ["Reroll", "Delete"],
        ]
        assert buttons(grid)[:2] == [f"imagine:u1:{job_id}", f"imagine:u2:{job_id}"]
        (embed,) = grid.embeds
        assert field(embed, "Seeds") == "1: 10 · 2: 11 · 3: 12 · 4: 13"
        statuses = [v.get("content") or "" for v in grid.versions]
        assert any("/4 done" in s for s in statuses), statuses
        assert h.discord.count_429 == 0


async def test_u2_posts_image_two_alone_with_its_own_buttons(tmp_path):
    async with running_bot(tmp_path) as h:
        grid = await h.final(await h.slash({"prompt": "a red fox", "count": 4, "seed": 20}))
        u2 = next(b for b in buttons(grid) if b.startswith("imagine:u2:"))
        pressed = await h.discord.press_button(grid, u2, user=h.bob)
        single = await h.final(pressed)
        assert single.id != grid.id
        assert single.attachment_bytes(0) == grid.attachment_bytes(1)
        assert field(single.embeds[0], "Seed") == "21"
        assert labels(single) == [
            ["Upscale", "Vary", "Vary (Region)", "Edit"],
            ["Zoom Out 2x", "Zoom Out 1.5x", "Custom Zoom"],
            ["⬅️", "➡️", "⬆️", "⬇️"],
            ["Reroll", "Delete"],
        ]
        assert len(h.space.joins("g4f-flux")) == 4  # nothing was drawn again


async def test_one_failed_image_does_not_sink_the_grid(tmp_path):
    async with running_bot(tmp_path) as h:
        h.space.set_fault("g4f-flux", JsonError(400, "this one is refused"), times=1)
        grid = await h.final(await h.slash({"prompt": "four owls", "count": 4}), within=30)
        assert len(grid.attachments) == 3
        footer = grid.embeds[0]["footer"]["text"]
        assert "this one is refused" in footer and "image" in footer
        assert labels(grid)[0] == ["U1", "U2", "U3"]


async def test_inline_flags_set_the_request_and_an_option_wins(tmp_path):
    async with running_bot(tmp_path) as h:
        message = await h.final(
            await h.slash({"prompt": "a castle --ar 16:9 --seed 5 --count 1", "seed": 8})
        )
        (join,) = h.space.joins("g4f-flux")
        prompt, seed, width, height = join.json["data"][:4]
        assert prompt == "a castle"
        assert seed == 8  # the explicit option wins over --seed
        assert (width, height) == (1344, 768)
        assert message.embeds[0]["title"] == "a castle"


async def test_a_malformed_flag_is_a_clear_ephemeral_error(tmp_path):
    async with running_bot(tmp_path) as h:
        refused = await h.slash({"prompt": "a castle --ar 16x"})
        text = await h.ephemeral(refused)
        assert "--ar" in text
        assert h.space.requests == []


async def test_flags_work_in_dms_and_imagine_this(tmp_path):
    async with running_bot(tmp_path) as h:
        target = h.discord.post_user_message(h.channel_id, h.bob, "a whale --ar 9:16")
        menu = await h.discord.send_message_command("Imagine this", target, user=h.alice)
        await h.final(menu)
        (join,) = h.space.joins("g4f-flux")
        assert join.json["data"][0] == "a whale"
        assert join.json["data"][2:4] == [768, 1344]


async def test_aspect_option_gives_about_a_megapixel(tmp_path):
    async with running_bot(tmp_path) as h:
        message = await h.final(await h.slash({"prompt": "a river", "aspect": "21:9"}))
        width, height = (int(v) for v in field(message.embeds[0], "Size").split("×"))
        assert abs(width / height - 21 / 9) < 0.1
        assert 0.8e6 <= width * height <= 1.25e6


async def test_flux_says_it_did_not_use_the_negative_prompt(tmp_path):
    async with running_bot(tmp_path) as h:
        message = await h.final(await h.slash({"prompt": "a beach", "negative": "people"}))
        footer = message.embeds[0]["footer"]["text"]
        assert "negative prompt not used" in footer
        assert field(message.embeds[0], "Negative") == "people"


async def test_sd35_gets_the_negative_prompt(tmp_path):
    async with running_bot(tmp_path, all_backends=True) as h:
        message = await h.final(
            await h.slash({"prompt": "a beach --no people, boats", "model": "sd-3.5-large"})
        )
        (join,) = h.space.joins("sd35")
        assert join.json["data"][:2] == ["a beach", "people, boats"]
        assert "negative prompt not used" not in message.embeds[0]["footer"]["text"]


async def test_server_image_count_and_its_limit(tmp_path):
    async with running_bot(tmp_path) as h:
        assert "at most **2**" in await admin_says(h, "max-count", {"count": 2})
        refused = await admin_says(h, "images", {"count": 3})
        assert "limit here is 2" in refused
        assert "**2**" in await admin_says(h, "images", {"count": 2})
        grid = await h.final(await h.slash({"prompt": "two cats"}), within=30)
        assert len(grid.attachments) == 2
        too_many = await h.ephemeral(await h.slash({"prompt": "cats", "count": 4}, user=h.bob))
        assert "at most 2" in too_many


async def test_grid_buttons_work_after_a_restart(tmp_path):
    async with running_bot(tmp_path) as h:
        grid = await h.final(await h.slash({"prompt": "a red fox", "count": 2, "seed": 3}))
        await h.stop_bot()
        await h.start_bot()
        u1 = next(b for b in buttons(grid) if b.startswith("imagine:u1:"))
        single = await h.final(await h.discord.press_button(grid, u1, user=h.alice))
        assert single.attachment_bytes(0) == grid.attachment_bytes(0)
        await asyncio.sleep(0)
