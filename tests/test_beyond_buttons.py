"""Issue 18, the Discord half: Upscale, Zoom Out (2x, 1.5x, Custom Zoom), Pan (⬅️ ➡️ ⬆️ ⬇️)
and Vary (Region) under a result. The real bot between the fake Discord and the fake Spaces;
what the fake upscaler and Fill were sent is checked pixel by pixel against the result the
button was pressed on (``space.upscales``, ``space.fills`` record the very bytes)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import sqlite3
from dataclasses import replace
from typing import Any

import pytest
from PIL import Image

from imagine.canvas import NEW_AREA
from tests.fakes import retouch
from tests.fakes.space import CompletedError
from tests.harness import Harness, running_bot
from tests.processes import start, stop

pytestmark = pytest.mark.timeout(120)

BEYOND_ROWS = [
    ["Upscale", "Vary", "Vary (Region)", "Edit"],
    ["Zoom Out 2x", "Zoom Out 1.5x", "Custom Zoom"],
    ["⬅️", "➡️", "⬆️", "⬇️"],
    ["Reroll", "Delete"],
]
PANS = {  # a square result: the canvas 1.5 times wider (or taller) at the Space's size
    "pan-right": ((1024, 688), (0, 0, 683, 688), "Panned right"),
    "pan-left": ((1024, 688), (341, 0, 1024, 688), "Panned left"),
    "pan-down": ((688, 1024), (0, 0, 688, 683), "Panned down"),
    "pan-up": ((688, 1024), (0, 341, 688, 1024), "Panned up"),
}
THIRDS = {"top-left": (0, 0, 341, 341), "middle-center": (341, 341, 683, 683)}
THIRDS["bottom-right"] = (683, 683, 1024, 1024)


def labels(message) -> list[list[str]]:
    return [[c.get("label") for c in row["components"]] for row in message.components]


def button(message, action: str) -> str:
    """The custom id of the ``action`` button on ``message`` (``imagine:<action>:...``)."""
    return next(
        c["custom_id"]
        for row in message.components
        for c in row["components"]
        if c.get("custom_id", "").startswith(f"imagine:{action}:")
    )


def component(message, prefix: str) -> dict[str, Any]:
    return next(
        c
        for row in message.components
        for c in row["components"]
        if c.get("custom_id", "").startswith(prefix)
    )


def field(embed: dict, name: str) -> str:
    return next(f["value"] for f in embed["fields"] if f["name"] == name)


def rgb(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image.convert("RGB")


def white_outside(size: tuple[int, int], box: tuple[int, int, int, int]) -> bytes:
    mask = Image.new("L", size, 255)
    mask.paste(0, box)
    return mask.tobytes()


def white_on(size: tuple[int, int], *boxes: tuple[int, int, int, int]) -> bytes:
    mask = Image.new("L", size, 0)
    for box in boxes:
        mask.paste(255, box)
    return mask.tobytes()


def check_canvas(call: retouch.FillCall, size, box, original: Image.Image) -> None:
    """The canvas Fill got holds ``original`` (the result's very pixels) resized into
    ``box``, the neutral grey around it, and the mask is white exactly outside ``box``."""
    background, mask = Image.open(io.BytesIO(call.background)), Image.open(io.BytesIO(call.mask))
    assert background.size == mask.size == size
    assert mask.mode == "L" and mask.tobytes() == white_outside(size, box)
    left, top, right, bottom = box
    placed = original.resize((right - left, bottom - top), Image.Resampling.LANCZOS)
    assert background.convert("RGB").crop(box).tobytes() == placed.tobytes()
    around = background.convert("RGB")
    around.paste(NEW_AREA, box)
    assert around.getextrema() == tuple((c, c) for c in NEW_AREA)


def job_row(h: Harness, job_id: int) -> sqlite3.Row:
    with sqlite3.connect(h.database) as db:
        db.row_factory = sqlite3.Row
        return db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()


def job_of(message) -> int:
    return int(message.components[0]["components"][0]["custom_id"].rsplit(":", 1)[1])


async def result(h: Harness, user=None, **options: Any):
    """A single result of ``/imagine`` (the fake flux draws a colour and a mark)."""
    asked = {"prompt": "a lighthouse", "seed": 3, **options}
    return await h.final(await h.slash(asked, user=user or h.alice), within=30)


async def press(h: Harness, message, action: str, user=None):
    """Press ``action`` on ``message``; the new reply it makes, once ended."""
    pressed = await h.discord.press_button(message, button(message, action), user=user or h.bob)
    return await h.final(pressed, within=30)


def text_inputs(modal: dict) -> list[dict[str, Any]]:
    """The modal's text inputs, each with the label it is shown under."""
    found: list[dict[str, Any]] = []

    def walk(items, label=None):
        for item in items:
            if item.get("type") == 4:
                found.append({**item, "label": item.get("label") or label})
            walk(item.get("components") or [], label)
            if isinstance(item.get("component"), dict):
                walk([item["component"]], item.get("label"))

    walk(modal["components"])
    return found


# -- the buttons ----------------------------------------------------------------------------


async def test_a_single_result_offers_them_in_four_rows_and_a_grid_none(tmp_path):
    async with running_bot(tmp_path) as h:
        single = await result(h)
        assert labels(single) == BEYOND_ROWS
        job_id = job_of(single)
        assert button(single, "zoom1.5") == f"imagine:zoom1.5:{job_id}"
        assert button(single, "pan-left") == f"imagine:pan-left:{job_id}"
        assert all(len(row) <= 5 for row in labels(single)) and len(labels(single)) <= 5
        grid = await h.final(await h.slash({"prompt": "two foxes", "count": 2}), within=30)
        assert labels(grid) == [["U1", "U2"], ["V1", "V2"], ["Reroll", "Delete"]]


async def test_without_an_upscaler_or_fill_they_are_not_offered(tmp_path):
    backends = tmp_path / "no-retouch.toml"
    backends.write_text(
        'disable = ["flux-schnell", "flux-dev-official", "sd-3.5-large", "horde", '
        '"upscaler", "fill"]\n'
    )
    async with running_bot(tmp_path, IMAGINE_BACKENDS=str(backends)) as h:
        single = await result(h)
        assert labels(single) == [["Vary", "Edit"], ["Reroll", "Delete"]]


# -- Upscale --------------------------------------------------------------------------------


async def test_upscale_sends_exactly_the_results_pixels_and_posts_the_2x_image(tmp_path):
    async with running_bot(tmp_path) as h:
        source = await result(h, width=512, height=512)
        before = source.attachment_bytes(0)
        upscaled = await press(h, source, "upscale", user=h.bob)  # anyone may, as with Vary
        (call,) = h.space.upscales
        original = rgb(before)
        assert original.size == (512, 512)
        assert rgb(call.image).tobytes() == original.tobytes()  # not a JPEG of it: the pixels
        assert upscaled.id != source.id and not upscaled.ephemeral
        posted = rgb(upscaled.attachment_bytes(0))
        assert posted.size == (1024, 1024)
        assert posted.tobytes() == retouch.upscale(original, 2).tobytes()
        (embed,) = upscaled.embeds
        assert embed["author"]["name"] == "Upscaled 2×"
        assert embed["title"] == "a lighthouse"
        assert field(embed, "Model") == "upscale" and field(embed, "Size") == "1024×1024"
        assert "Requested by bob" in embed["footer"]["text"]
        assert source.attachment_bytes(0) == before and source.embeds[0].get("author") is None
        # The job log: its parent and its input, by URL and hash, and what was asked.
        row = job_row(h, job_of(upscaled))
        assert (row["kind"], row["factor"], row["model"]) == ("upscale", 2.0, "upscale")
        assert row["parent_id"] == job_of(source) and row["user_id"] == int(h.bob["id"])
        assert row["input_url"] == source.attachments[0]["url"]
        assert row["input_sha256"] == hashlib.sha256(before).hexdigest()
        assert (row["input_channel_id"], row["input_message_id"]) == (h.channel_id, source.id)
        assert row["prompt"] == "a lighthouse"
        assert await h.job_state(job_of(upscaled), "done") == "done"  # the log follows the reply


async def test_an_upscale_of_2048_or_more_a_side_offers_no_second_upscale(tmp_path):
    async with running_bot(tmp_path) as h:
        tall = await result(h, aspect="9:16")  # 768×1344: the upscaler doubles it whole
        assert labels(tall)[0][0] == "Upscale"
        upscaled = await press(h, tall, "upscale")
        assert field(upscaled.embeds[0], "Size") == "1536×2688"
        assert labels(upscaled) == [
            ["Vary", "Vary (Region)", "Edit"],
            ["Zoom Out 2x", "Zoom Out 1.5x", "Custom Zoom"],
            ["⬅️", "➡️"],  # up or down would be taller than 9:16
            ["Delete"],  # a Reroll would upscale it the same way again
        ]
        square = await result(h, width=512, height=512)
        once = await press(h, square, "upscale")
        assert labels(once)[0][0] == "Upscale"  # 1024 a side: it may be upscaled again


# -- Zoom Out and Pan -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "box", "title"),
    [
        ("zoom2", (256, 256, 768, 768), "Zoomed out 2×"),
        ("zoom1.5", (170, 170, 853, 853), "Zoomed out 1.5×"),
    ],
)
async def test_zoom_out_sends_the_result_centred_and_masks_exactly_the_new_border(
    tmp_path, action, box, title
):
    async with running_bot(tmp_path) as h:
        source = await result(h)
        zoomed = await press(h, source, action)
        (call,) = h.space.fills
        check_canvas(call, (1024, 1024), box, rgb(source.attachment_bytes(0)))
        assert call.prompt == "a lighthouse"  # the original prompt
        (embed,) = zoomed.embeds
        assert embed["author"]["name"] == title and field(embed, "Model") == "flux-fill-dev"
        drawn = rgb(zoomed.attachment_bytes(0))
        assert drawn.size == (1024, 1024) and drawn.getpixel((5, 5)) == retouch.PAINTED
        assert labels(zoomed) == BEYOND_ROWS  # the usual buttons


@pytest.mark.parametrize("action", list(PANS))
async def test_each_pan_sends_the_result_at_the_far_side_and_masks_the_new_half(tmp_path, action):
    async with running_bot(tmp_path) as h:
        source = await result(h)
        panned = await press(h, source, action)
        size, box, title = PANS[action]
        (call,) = h.space.fills
        check_canvas(call, size, box, rgb(source.attachment_bytes(0)))
        assert panned.embeds[0]["author"]["name"] == title
        assert field(panned.embeds[0], "Size") == f"{size[0]}×{size[1]}"
        row = job_row(h, job_of(panned))
        assert (row["kind"], row["direction"]) == ("pan", action.removeprefix("pan-"))


async def test_custom_zoom_asks_for_the_prompt_and_a_factor(tmp_path):
    async with running_bot(tmp_path) as h:
        source = await result(h)
        pressed = await h.discord.press_button(source, button(source, "zoom"), user=h.bob)
        modal = await pressed.wait_modal()
        assert modal["title"] == "Custom Zoom"
        prompt, factor = text_inputs(modal)
        assert prompt["value"] == "a lighthouse"  # prefilled with the original
        assert "1.1 to 2" in factor["label"]
        wrong = await h.discord.submit_modal(
            pressed, {prompt["custom_id"]: "x", factor["custom_id"]: "3"}, user=h.bob
        )
        assert "from 1.1 to 2" in await h.refusal(wrong)
        assert h.space.fills == []
        again = await h.discord.press_button(source, button(source, "zoom"), user=h.bob)
        modal = await again.wait_modal()
        prompt, factor = text_inputs(modal)
        submitted = await h.discord.submit_modal(
            again,
            {prompt["custom_id"]: "a lighthouse in fog", factor["custom_id"]: "1,25"},
            user=h.bob,
        )
        zoomed = await h.final(submitted, within=30)
        (call,) = h.space.fills
        check_canvas(call, (1024, 1024), (102, 102, 921, 921), rgb(source.attachment_bytes(0)))
        assert call.prompt == "a lighthouse in fog"
        assert zoomed.embeds[0]["author"]["name"] == "Zoomed out 1.25×"
        assert zoomed.embeds[0]["title"] == "a lighthouse in fog"
        assert job_row(h, job_of(zoomed))["factor"] == 1.25


async def test_retry_of_a_failed_zoom_does_the_same_zoom_again(tmp_path):
    async with running_bot(tmp_path) as h:
        source = await result(h)
        h.space.set_fault("fill", CompletedError("CUDA out of memory"), times=2)  # and its retry
        failed = await press(h, source, "zoom1.5")
        (embed,) = failed.embeds
        assert embed["title"] == "Couldn't make this image"
        assert embed["author"]["name"] == "Zoomed out 1.5×"
        assert labels(failed) == [["Retry"]]
        retried = await press(h, failed, "retry", user=h.alice)
        call = h.space.fills[-1]
        check_canvas(call, (1024, 1024), (170, 170, 853, 853), rgb(source.attachment_bytes(0)))
        assert retried.embeds[0]["author"]["name"] == "Zoomed out 1.5×"
        first, second = job_row(h, job_of(failed)), job_row(h, job_of(retried))
        assert (second["kind"], second["factor"]) == ("zoom_out", 1.5)
        assert second["input_sha256"] == first["input_sha256"]
        assert second["parent_id"] == first["parent_id"] == job_of(source)


# -- Vary (Region) --------------------------------------------------------------------------


async def open_picker(h: Harness, source, user):
    pressed = await h.discord.press_button(source, button(source, "region"), user=user)
    callback = await pressed.wait_callback(3)
    assert callback["type"] == 4 and callback["data"]["flags"] & 64, callback  # private
    return pressed.original


async def repaint(h: Harness, picker, user, prompt: str | None = None):
    """Press Repaint, answer the modal; the new reply, once ended."""
    pressed = await h.discord.press_button(picker, button(picker, "paint"), user=user)
    modal = await pressed.wait_modal()
    (field_,) = text_inputs(modal)
    answer = {} if prompt is None else {field_["custom_id"]: prompt}
    return modal, await h.final(await h.discord.submit_modal(pressed, answer, user=user), 30)


@pytest.mark.parametrize(
    ("cells", "title"),
    [
        (["middle-center"], "Region: centre"),
        (["bottom-right", "top-left"], "Region: top left, bottom right"),
    ],
)
async def test_vary_region_masks_exactly_the_chosen_cells(tmp_path, cells, title):
    async with running_bot(tmp_path) as h:
        source = await result(h)
        picker = await open_picker(h, source, h.bob)
        (embed,) = picker.embeds
        assert embed["title"] == "Vary (Region)"
        assert embed["image"]["url"] == source.attachments[0]["url"]  # what is repainted
        menu = component(picker, "imagine:cells:")
        assert [o["label"] for o in menu["options"]][:5] == [
            "top left", "top centre", "top right", "middle left", "centre",
        ]  # fmt: skip
        assert menu["max_values"] == 9
        assert component(picker, "imagine:paint:").get("disabled")  # nothing chosen yet
        chose = await h.discord.choose_select(picker, menu["custom_id"], cells, user=h.bob)
        assert (await chose.wait_callback(3))["type"] == 7  # the picker, updated in place
        menu = component(picker, "imagine:cells:")
        assert {o["value"] for o in menu["options"] if o.get("default")} == set(cells)
        assert not component(picker, "imagine:paint:").get("disabled")
        modal, varied = await repaint(h, picker, h.bob, "a red door")
        assert modal["title"] == "Vary (Region)"
        assert text_inputs(modal)[0]["value"] == "a lighthouse"  # prefilled with the original
        (call,) = h.space.fills
        assert Image.open(io.BytesIO(call.mask)).tobytes() == white_on(
            (1024, 1024), *(THIRDS[c] for c in cells)
        )
        # The result at the Space's size already: the background is its very pixels.
        assert rgb(call.background).tobytes() == rgb(source.attachment_bytes(0)).tobytes()
        assert call.prompt == "a red door"
        assert varied.id != source.id and not varied.ephemeral
        assert varied.embeds[0]["author"]["name"] == title
        row = job_row(h, job_of(varied))
        assert (row["kind"], row["cells"]) == (
            "region",
            ",".join(sorted(cells, key=list(THIRDS).index)),
        )
        assert row["input_url"] == source.attachments[0]["url"]
        assert row["input_message_id"] == source.id and row["parent_id"] == job_of(source)


# -- across a restart, privately, in Russian, on the budget ---------------------------------


async def test_every_button_works_after_a_restart(tmp_path):
    async with running_bot(tmp_path) as h:
        source = await result(h)
        picker = await open_picker(h, source, h.alice)
        await h.stop_bot()
        await h.start_bot()
        titles = {
            "upscale": "Upscaled 2×",
            "zoom2": "Zoomed out 2×",
            "zoom1.5": "Zoomed out 1.5×",
            **{action: title for action, (_size, _box, title) in PANS.items()},
        }
        users = [h.bob, h.admin, h.alice]  # each within the per-member burst limit
        made = {}
        for number, (action, title) in enumerate(titles.items()):
            made[action] = await press(h, source, action, user=users[number % len(users)])
            assert made[action].embeds[0]["author"]["name"] == title
        custom = await h.discord.press_button(source, button(source, "zoom"), user=h.bob)
        assert (await custom.wait_modal())["title"] == "Custom Zoom"
        # A picker shown before the restart: its menu and its button still answer.
        menu = component(picker, "imagine:cells:")
        chose = await h.discord.choose_select(picker, menu["custom_id"], ["top-left"], user=h.alice)
        assert (await chose.wait_callback(3))["type"] == 7
        _modal, varied = await repaint(h, picker, h.alice)
        assert varied.embeds[0]["author"]["name"] == "Region: top left"
        mask = Image.open(io.BytesIO(h.space.fills[-1].mask))
        assert mask.tobytes() == white_on((1024, 1024), THIRDS["top-left"])
        await h.stop_bot()
        await h.start_bot()
        # And on a result of one of them: the result's own buttons.
        again = await press(h, made["zoom2"], "zoom1.5")
        assert again.embeds[0]["author"]["name"] == "Zoomed out 1.5×"


async def test_a_member_with_private_results_gets_a_private_result(tmp_path):
    async with running_bot(tmp_path) as h:
        await h.bot.store.change_user(int(h.alice["id"]), lambda m: replace(m, private=True))
        source = await result(h, user=h.bob)  # public: bob's
        pressed = await h.discord.press_button(source, button(source, "pan-right"), user=h.alice)
        thinking = await pressed.wait_callback(3)
        assert thinking["type"] == 5 and thinking["data"]["flags"] & 64, thinking
        panned = await h.final(pressed, within=30)
        assert panned.ephemeral and panned.attachments
        assert job_row(h, job_of(panned))["private"] == 1
        assert not source.ephemeral


async def test_a_russian_member_gets_russian_buttons_embeds_and_picker(tmp_path):
    async with running_bot(tmp_path) as h:
        ivan = h.discord.add_user("ivan", locale="ru")
        h.discord.add_member(h.guild.id, ivan)
        source = await result(h, user=ivan)
        assert labels(source) == [
            ["Увеличить", "Вариация", "Вариация (область)", "Изменить"],
            ["Отдалить 2x", "Отдалить 1,5x", "Своё отдаление"],
            ["⬅️", "➡️", "⬆️", "⬇️"],
            ["Ещё вариант", "Удалить"],
        ]
        panned = await press(h, source, "pan-left", user=ivan)
        (embed,) = panned.embeds
        assert embed["author"]["name"] == "Сдвинуто влево"
        assert [f["name"] for f in embed["fields"]][:2] == ["Модель", "Сид"]
        zoomed = await press(h, source, "zoom1.5", user=ivan)
        assert zoomed.embeds[0]["author"]["name"] == "Отдалено ×1,5"
        picker = await open_picker(h, source, ivan)
        assert picker.embeds[0]["title"] == "Вариация (область)"
        menu = component(picker, "imagine:cells:")
        assert "в центре" in [o["label"] for o in menu["options"]]
        assert component(picker, "imagine:paint:")["label"] == "Перерисовать"


async def test_each_image_counts_against_the_daily_budget(tmp_path):
    async with running_bot(tmp_path) as h:
        await h.bot.store.update_guild(h.guild.id, daily_limit=2)
        alice = int(h.alice["id"])
        source = await result(h)
        assert await h.bot.launcher.budget.used_today(h.guild.id, alice) == 1
        h.space.set_fault("fill", CompletedError("CUDA out of memory"), times=2)  # and its retry
        failed = await press(h, source, "zoom2", user=h.alice)
        assert failed.embeds[0]["title"] == "Couldn't make this image"
        await h.job_state(job_of(failed), "failed")
        assert await h.bot.launcher.budget.used_today(h.guild.id, alice) == 1  # given back
        await press(h, source, "upscale", user=h.alice)
        assert await h.bot.launcher.budget.used_today(h.guild.id, alice) == 2
        joined = len(h.space.joins("fill"))
        refused = await h.discord.press_button(source, button(source, "pan-up"), user=h.alice)
        assert "2 images this server allows" in await h.refusal(refused)
        assert len(h.space.joins("fill")) == joined and h.space.fills == []  # nothing sent


async def test_a_worker_reads_the_image_back_and_its_results_get_the_buttons(
    tmp_path, postgres_url
):
    """With workers (PostgreSQL), the gateway only keeps where the image is: a ``python
    worker.py`` reads it back from Discord, its very pixels, and its results get the same
    rows of buttons."""
    env = {"DATABASE_URL": postgres_url, "JOB_LEASE_SECONDS": "3", "SHUTDOWN_GRACE_SECONDS": "1"}
    async with running_bot(tmp_path, **env) as h:
        assert h.bot.shared_queue is not None  # gateway mode
        worker = start(["worker.py"], h.env, tmp_path / "worker.log")
        try:
            source = await result(h)
            assert labels(source) == BEYOND_ROWS
            zoomed = await press(h, source, "zoom1.5")
            (call,) = h.space.fills
            check_canvas(call, (1024, 1024), (170, 170, 853, 853), rgb(source.attachment_bytes(0)))
            assert zoomed.embeds[0]["author"]["name"] == "Zoomed out 1.5×"
            assert labels(zoomed) == BEYOND_ROWS
            picker = await open_picker(h, zoomed, h.alice)
            menu = component(picker, "imagine:cells:")
            centre = ["middle-center"]
            await h.discord.choose_select(picker, menu["custom_id"], centre, user=h.alice)
            await h.discord.wait_until(
                lambda: not component(picker, "imagine:paint:").get("disabled"), 5
            )
            _modal, varied = await repaint(h, picker, h.alice, "a lantern")
            call = h.space.fills[-1]
            assert rgb(call.background).tobytes() == rgb(zoomed.attachment_bytes(0)).tobytes()
            mask = Image.open(io.BytesIO(call.mask))
            assert mask.tobytes() == white_on((1024, 1024), THIRDS["middle-center"])
            assert varied.embeds[0]["author"]["name"] == "Region: centre"
        finally:
            await asyncio.to_thread(stop, worker)
            print((tmp_path / "worker.log").read_text()[-3000:])
