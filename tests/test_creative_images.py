"""The creative loop, part two: starting from an image (the image option, V1..V4, Vary, Edit
and its modal, "Edit this image"), /describe and its buttons, live previews, and the job log
of these jobs across a restart. The real bot between the fake Discord and the fake Spaces."""

from __future__ import annotations

import io
import sqlite3

import pytest
from PIL import Image

from tests.harness import running_bot

pytestmark = pytest.mark.timeout(90)


def field(embed: dict, name: str) -> str:
    return next(f["value"] for f in embed["fields"] if f["name"] == name)


def buttons(message) -> list[str]:
    return [c["custom_id"] for row in message.components for c in row["components"]]


def labels(message) -> list[str]:
    return [c["label"] for row in message.components for c in row["components"]]


def centre(data: bytes) -> tuple[int, int, int]:
    image = Image.open(io.BytesIO(data)).convert("RGB")
    return image.getpixel((image.width // 2, image.height // 2))


def near(a: tuple[int, ...], b: tuple[int, ...], tolerance: int = 6) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a, b, strict=True))


def photo_with_gps(color=(200, 40, 40), size=(320, 240)) -> bytes:
    """A JPEG carrying EXIF with a GPS position (as a phone's photo does)."""
    image = Image.new("RGB", size, color)
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    gps = {1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0)}
    exif[0x8825] = gps
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif.tobytes(), quality=95)
    data = buffer.getvalue()
    assert Image.open(io.BytesIO(data)).getexif().get_ifd(0x8825), "the test photo has GPS"
    return data


async def test_v3_sends_image_three_to_the_image_to_image_backend(tmp_path):
    async with running_bot(tmp_path) as h:
        grid = await h.final(await h.slash({"prompt": "three hats", "count": 4, "seed": 30}))
        v3 = next(b for b in buttons(grid) if b.startswith("imagine:v3:"))
        varied = await h.final(await h.discord.press_button(grid, v3, user=h.alice), within=30)
        (upload,) = h.space.uploads
        assert upload.space == "kontext"
        # Image 3 of the grid, re-encoded on its way (a solid colour: compare the pixels).
        assert near(centre(upload.data), centre(grid.attachment_bytes(2)))
        assert not near(centre(upload.data), centre(grid.attachment_bytes(0)))
        (join,) = h.space.joins("kontext")
        assert join.json["data"][1] == "three hats"  # a variation keeps the prompt
        assert varied.id != grid.id and varied.attachments
        assert field(varied.embeds[0], "Model") == "flux-kontext-dev"


async def test_an_attached_photo_reaches_the_space_without_its_gps(tmp_path):
    async with running_bot(tmp_path) as h:
        photo = photo_with_gps()
        message = await h.final(
            await h.slash({"prompt": "make it night", "image": ("holiday.jpg", photo)}),
            within=30,
        )
        assert message.attachments
        (upload,) = h.space.uploads
        sent = Image.open(io.BytesIO(upload.data))
        assert not sent.getexif() and b"Exif" not in upload.data
        assert b"PhoneMaker" not in upload.data
        assert near(centre(upload.data), (200, 40, 40))
        (join,) = h.space.joins("kontext")
        assert join.json["data"][1] == "make it night"
        with sqlite3.connect(h.database) as db:
            kind, url, digest = db.execute(
                "SELECT kind, input_url, input_sha256 FROM jobs"
            ).fetchone()
        assert kind == "edit" and url.startswith(h.discord.http_base)
        import hashlib

        assert digest == hashlib.sha256(photo).hexdigest()


async def test_a_file_that_is_not_an_image_is_refused_before_anything_is_sent(tmp_path):
    async with running_bot(tmp_path) as h:
        refused = await h.slash(
            {"prompt": "make it night", "image": ("notes.png", b"just some text, honestly")}
        )
        assert "not an image" in await h.refusal(refused)
        assert h.space.requests == []


async def test_a_model_that_cannot_start_from_an_image_is_a_clear_refusal(tmp_path):
    async with running_bot(tmp_path) as h:
        refused = await h.slash(
            {"prompt": "x", "model": "flux-dev", "image": ("a.jpg", photo_with_gps())}
        )
        text = await h.ephemeral(refused)  # told before anything is read: no placeholder
        assert "cannot start from an image" in text and "flux-kontext-dev" in text
        assert h.space.uploads == []


async def test_describe_lists_prompts_and_a_number_draws_one(tmp_path):
    async with running_bot(tmp_path) as h:
        h.space.describe_answer = (
            "1. a red barn at dawn\n2. a crimson shed in fog\n3. a red house\n4. a farm"
        )
        described = await h.final(
            await h.discord.send_slash(
                "describe", {"image": ("barn.png", photo_with_gps())}, user=h.alice,
                guild_id=h.guild.id,
            ),
            within=30,
        )  # fmt: skip
        (embed,) = described.embeds
        assert embed["title"] == "Prompts from this image"
        assert "a crimson shed in fog" in embed["description"]
        assert labels(described) == ["1", "2", "3", "4"]
        two = next(b for b in buttons(described) if b.startswith("imagine:p2:"))
        drawn = await h.final(await h.discord.press_button(described, two, user=h.bob))
        assert drawn.embeds[0]["title"] == "a crimson shed in fog"
        assert h.space.joins("g4f-flux")[-1].json["data"][0] == "a crimson shed in fog"


async def test_a_preview_is_shown_before_the_final_image(tmp_path):
    async with running_bot(tmp_path) as h:
        h.space.generation_delay = 2.5
        message = await h.final(
            await h.slash({"prompt": "a slow sunrise", "model": "flux-dev"}), within=30
        )
        previews = [
            v for v in message.versions
            if any(a["filename"] == "preview.jpg" for a in v.get("attachments") or [])
        ]  # fmt: skip
        assert previews, [v.get("attachments") for v in message.versions]
        final = message.versions[-1]
        assert [a["filename"] for a in final["attachments"]] != ["preview.jpg"]
        assert not any(a["filename"] == "preview.jpg" for a in final["attachments"])
        assert message.versions.index(previews[0]) < len(message.versions) - 1
        assert h.discord.count_429 == 0


async def test_reroll_of_an_edit_starts_from_the_same_image_after_a_restart(tmp_path):
    async with running_bot(tmp_path) as h:
        photo = photo_with_gps((30, 200, 60))
        edited = await h.final(
            await h.slash({"prompt": "add snow", "image": ("field.jpg", photo)}), within=30
        )
        await h.stop_bot()
        await h.start_bot()
        reroll = next(b for b in buttons(edited) if b.startswith("imagine:reroll:"))
        again = await h.final(await h.discord.press_button(edited, reroll, user=h.alice))
        assert again.attachments
        first, second = h.space.uploads
        assert first.data == second.data  # the same safe bytes, read back from Discord
        assert h.space.joins("kontext")[-1].json["data"][1] == "add snow"


def downloads(h) -> list:
    """Requests the fake Discord's CDN answered (attachment downloads)."""
    return [r for r in h.discord.requests if "/attachments/" in r.url and r.method == "GET"]


async def test_a_declared_non_image_is_refused_before_any_download(tmp_path):
    async with running_bot(tmp_path) as h:
        refused = await h.slash({"prompt": "make it night", "image": ("notes.txt", b"hello")})
        assert "not an image" in await h.ephemeral(refused)  # no placeholder: told at once
        assert downloads(h) == [] and h.space.requests == []


async def test_attachment_downloads_are_counted(tmp_path):
    """The CDN count above can fail: an accepted image is downloaded exactly once."""
    async with running_bot(tmp_path) as h:
        await h.final(await h.slash({"prompt": "night", "image": ("a.jpg", photo_with_gps())}))
        assert len(downloads(h)) == 1


async def test_a_30_mib_attachment_is_refused_before_any_download(tmp_path):
    from tests.fakes.discord_server import FakeAttachment

    async with running_bot(tmp_path) as h:
        huge = FakeAttachment("huge.jpg", photo_with_gps(), size=30 * 2**20)
        refused = await h.slash({"prompt": "make it night", "image": huge})
        text = await h.ephemeral(refused)
        assert "30 MiB" in text and "10 MiB" in text
        assert downloads(h) == [] and h.space.requests == []


async def test_edit_button_opens_a_modal_and_edits_the_image(tmp_path):
    async with running_bot(tmp_path) as h:
        first = await h.final(await h.slash({"prompt": "a quiet street", "seed": 4}))
        edit = next(b for b in buttons(first) if b.startswith("imagine:edit:"))
        pressed = await h.discord.press_button(first, edit, user=h.alice)
        modal = await pressed.wait_modal()
        assert modal["title"] == "Edit this image"
        submitted = await h.discord.submit_modal(
            pressed, {modal_input(modal): "make it night"}, user=h.alice
        )
        edited = await h.final(submitted, within=30)
        (upload,) = h.space.uploads
        assert near(centre(upload.data), centre(first.attachment_bytes(0)))
        assert h.space.joins("kontext")[0].json["data"][1] == "make it night"
        assert edited.embeds[0]["title"] == "make it night"
        assert field(edited.embeds[0], "Model") == "flux-kontext-dev"


async def test_edit_this_image_on_a_members_photo(tmp_path):
    async with running_bot(tmp_path) as h:
        photo = photo_with_gps((10, 90, 220))
        message = h.discord.post_user_message(
            h.channel_id, h.bob, "my cat", attachments=[("cat.jpg", photo)]
        )
        menu = await h.discord.send_message_command("Edit this image", message, user=h.alice)
        modal = await menu.wait_modal()
        submitted = await h.discord.submit_modal(
            menu, {modal_input(modal): "give it a hat"}, user=h.alice
        )
        edited = await h.final(submitted, within=30)
        assert edited.attachments
        (upload,) = h.space.uploads
        assert near(centre(upload.data), (10, 90, 220)) and b"PhoneMaker" not in upload.data


async def test_edit_this_image_on_a_message_without_one_is_refused(tmp_path):
    async with running_bot(tmp_path) as h:
        message = h.discord.post_user_message(h.channel_id, h.bob, "just words")
        menu = await h.discord.send_message_command("Edit this image", message, user=h.alice)
        assert "no image" in await h.ephemeral(menu)


async def test_describe_this_image_menu_and_its_buttons_after_a_restart(tmp_path):
    async with running_bot(tmp_path) as h:
        h.space.describe_answer = "1. an orange boat\n2. a small orange ferry"
        message = h.discord.post_user_message(
            h.channel_id, h.bob, "look", attachments=[("boat.png", photo_with_gps())]
        )
        menu = await h.discord.send_message_command("Describe this image", message, user=h.alice)
        described = await h.final(menu, within=30)
        assert labels(described) == ["1", "2"]
        await h.stop_bot()
        await h.start_bot()
        one = next(b for b in buttons(described) if b.startswith("imagine:p1:"))
        drawn = await h.final(await h.discord.press_button(described, one, user=h.alice))
        assert drawn.embeds[0]["title"] == "an orange boat"


def modal_input(modal: dict) -> str:
    """The custom_id of the modal's one text input (whichever layout discord.py sent)."""
    found: list[str] = []

    def walk(items):
        for item in items:
            if item.get("type") == 4:
                found.append(item["custom_id"])
            walk(item.get("components") or [])
            if isinstance(item.get("component"), dict):
                walk([item["component"]])

    walk(modal["components"])
    (custom_id,) = found
    return custom_id


async def test_grid_and_edit_jobs_cut_off_by_a_crash_are_told_and_retried(tmp_path):
    async with running_bot(tmp_path) as h:
        h.space.generation_delay = 60
        grid = await h.slash({"prompt": "four moons", "count": 4})
        edit = await h.slash(
            {"prompt": "add a moon", "image": ("sky.jpg", photo_with_gps())}, user=h.bob
        )
        await h.discord.wait_until(
            lambda: all(
                i.original is not None and i.original.edit_count >= 1 for i in (grid, edit)
            ),
            10,
        )
        for active in list(h.bot.runner.active.values()):  # the process dies
            active.task.cancel()
        await h.stop_bot()
        h.space.generation_delay = 0
        await h.start_bot()
        told = [await h.final(i) for i in (grid, edit)]
        assert all(m.embeds[0]["title"] == "Interrupted" for m in told)
        retried_grid = await h.final(
            await h.discord.press_button(told[0], buttons(told[0])[0], user=h.alice), within=30
        )
        assert len(retried_grid.attachments) == 4
        retried_edit = await h.final(
            await h.discord.press_button(told[1], buttons(told[1])[0], user=h.bob), within=30
        )
        assert retried_edit.attachments
        assert h.space.joins("kontext")[-1].json["data"][1] == "add a moon"
