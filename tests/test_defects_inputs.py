"""Issue 16, items 7, 9 and 11: reading input images on a member's behalf (counted before any
download, decoded within a time limit), input images read again after Discord's signed URLs
expired, inputs as large as the bot's own results, and /settings pages that leave nothing in
memory. The real bot between the fake Discord (its CDN signs URLs as Discord does) and the
fake Spaces."""

from __future__ import annotations

import asyncio
import io
import sqlite3

import pytest
from PIL import Image

from discord_jobs import attachments
from tests.fakes.space import noise_png
from tests.harness import running_bot
from tests.processes import ended, start, stop
from tests.test_creative_images import modal_input, photo_with_gps
from tests.test_member_languages import choose, open_settings

pytestmark = pytest.mark.timeout(120)


# -- item 11: /settings pages leave nothing in discord.py's view store -----------------------


def view_store_size(bot) -> tuple[int, int, int]:
    """Message entries, dispatchable items and message-synced views in discord.py's store."""
    store = bot._connection._view_store
    items = sum(len(entry) for entry in store._views.values())
    return len(store._views), items, len(store._synced_message_views)


async def test_item11_settings_pages_changed_many_times_store_no_views(tmp_path):
    async with running_bot(tmp_path) as h:
        members = [h.alice, h.bob, h.admin]
        for name in ("carol", "dave"):
            user = h.discord.add_user(name)
            h.discord.add_member(h.guild.id, user)
            members.append(user)
        before = view_store_size(h.bot)
        pages = [(user, (await open_settings(h, user, guild_id=h.guild.id))[1]) for user in members]
        for user, page in pages:
            for aspect in ("16:9", "4:3", "3:2", "9:16"):
                await choose(h, page, "aspect", aspect, user)
            await choose(h, page, "count", "2", user)
        assert view_store_size(h.bot) == before
        for user, page in pages:  # every page still answers, and shows the last choices
            assert h.bot.store.user(int(user["id"])).aspect == "9:16"
            fields = {f["name"]: f["value"] for f in page.embeds[0]["fields"]}
            assert fields["Aspect"].startswith("9:16") and fields["Images"].startswith("2")
        await h.stop_bot()
        await h.start_bot()
        user, page = pages[0]
        await choose(h, page, "aspect", "1:1", user)
        assert h.bot.store.user(int(user["id"])).aspect == "1:1"
        assert view_store_size(h.bot) == before


# -- item 7: a burst is counted before any download; decoding has a time limit ---------------


def buttons(message) -> list[str]:
    return [c["custom_id"] for row in message.components for c in row["components"]]


async def answers(h, interactions) -> tuple[list[str], int]:
    """The private refusals among ``interactions`` and how many were acknowledged instead."""
    refused, accepted = [], 0
    for interaction in interactions:
        callback = await interaction.wait_callback(5)
        if callback["type"] == 4:
            assert callback["data"].get("flags", 0) & 64, callback  # private
            refused.append(callback["data"]["content"])
        else:
            accepted += 1
    return refused, accepted


async def test_item07_eight_quick_vary_presses_download_the_image_five_times(tmp_path):
    async with running_bot(tmp_path, MAX_JOBS_PER_USER="10", MAX_CONCURRENT_JOBS="10") as h:
        result = await h.final(await h.slash({"prompt": "a lighthouse", "seed": 3}))
        vary = next(b for b in buttons(result) if b.startswith("imagine:vary:"))
        presses = [await h.discord.press_button(result, vary, user=h.bob) for _ in range(8)]
        refused, accepted = await answers(h, presses)
        assert accepted == 5 and len(refused) == 3
        assert all(text.startswith("Slow down: you can ask again") for text in refused)
        # Each accepted press was admitted once (not counted again after its download,
        # which would have refused some of the five), and only those read the image.
        for press in presses:
            if press.callback["type"] == 5:
                assert (await h.final(press, within=30)).attachments
        assert len(h.space.joins("kontext")) == 5
        assert h.discord.attachment_downloads(result.attachments[0]) == 5


async def test_item07_eight_quick_describes_download_five_images(tmp_path):
    async with running_bot(tmp_path, MAX_JOBS_PER_USER="10", MAX_CONCURRENT_JOBS="10") as h:
        calls = [
            await h.discord.send_slash(
                "describe",
                {"image": (f"photo{n}.jpg", photo_with_gps((n * 20, 90, 200)))},
                user=h.alice,
                guild_id=h.guild.id,
            )
            for n in range(8)
        ]
        refused, accepted = await answers(h, calls)
        assert accepted == 5 and len(refused) == 3
        assert all(text.startswith("Slow down: you can ask again") for text in refused)
        for call in calls:
            if call.callback["type"] == 5:
                assert (await h.final(call, within=30)).embeds
        assert len(h.space.joins("janus")) == 5
        assert sum(h.discord.cdn.downloads.values()) == 5


async def test_item07_an_image_that_takes_too_long_to_decode_is_refused(tmp_path, monkeypatch):
    big = io.BytesIO()  # 16 megapixels, a small file: decoding and shrinking it takes time
    Image.new("RGB", (4096, 4096), (40, 120, 200)).save(big, "PNG")
    monkeypatch.setattr(attachments, "DECODE_TIME_LIMIT", 0.02)
    async with running_bot(tmp_path) as h:
        described = await h.discord.send_slash(
            "describe", {"image": ("big.png", big.getvalue())}, user=h.alice, guild_id=h.guild.id
        )
        text = await h.refusal(described)
        assert text.startswith("Reading that image took longer than 0.02s"), text
        assert h.space.joins("janus") == []


# -- item 9: an input read again after Discord's signed URL expired --------------------------

DAY = 24 * 3600
MiB = 2**20
BOOSTED = 50 * MiB  # what an interaction may upload on a server at boost level 2


def job_rows(h, *columns: str) -> list[tuple]:
    with sqlite3.connect(h.database) as db:
        return db.execute(f"SELECT {', '.join(columns)} FROM jobs ORDER BY id").fetchall()


async def test_item09_reroll_of_an_edit_a_day_later_reads_its_message_again(tmp_path):
    async with running_bot(tmp_path) as h:
        photo = h.discord.post_user_message(
            h.channel_id, h.bob, "my cat", attachments=[("cat.jpg", photo_with_gps())]
        )
        menu = await h.discord.send_message_command("Edit this image", photo, user=h.alice)
        modal = await menu.wait_modal()
        submitted = await h.discord.submit_modal(menu, {modal_input(modal): "give it a hat"})
        edited = await h.final(submitted, within=30)
        ((kind, url, channel_id, message_id),) = job_rows(
            h, "kind", "input_url", "input_channel_id", "input_message_id"
        )
        assert (kind, channel_id, message_id) == ("edit", h.channel_id, photo.id)
        cat = photo.attachments[0]
        assert url.split("?")[0] == cat["url"].split("?")[0]

        h.discord.age_attachment_urls(DAY + 60)  # the link the job log kept has expired
        reroll = next(b for b in buttons(edited) if b.startswith("imagine:reroll:"))
        again = await h.final(await h.discord.press_button(edited, reroll, user=h.alice), 30)
        assert again.attachments
        assert h.discord.cdn.expired[int(cat["id"])] == 1  # the kept URL was tried first,
        fetches = [
            r.url
            for r in h.discord.requests_for("GET", "/channels/{channel_id}/messages/{message_id}")
        ]
        assert [u.split("/api/v10")[-1] for u in fetches] == [
            f"/channels/{h.channel_id}/messages/{photo.id}"
        ]  # then the message was fetched again for a fresh one
        first, second = h.space.uploads
        assert first.data == second.data  # the same image, checked by its hash
        rerolled = job_rows(h, "input_url", "input_channel_id", "input_message_id")[-1]
        assert rerolled == (cat["url"], h.channel_id, photo.id)  # the fresh URL, kept

        # The hash still decides: other bytes at that attachment are refused.
        h.discord.attachment(cat["id"])["data"] = photo_with_gps((0, 0, 0))
        h.discord.age_attachment_urls(DAY + 60)
        changed = await h.discord.press_button(edited, reroll, user=h.alice)
        assert "has changed" in await h.refusal(changed)
        assert len(h.space.uploads) == 2


async def test_item09_an_image_given_as_an_option_is_told_clearly_once_its_link_expired(
    tmp_path,
):
    async with running_bot(tmp_path) as h:
        edited = await h.final(
            await h.slash({"prompt": "add snow", "image": ("field.jpg", photo_with_gps())}), 30
        )
        assert job_rows(h, "input_channel_id", "input_message_id") == [(None, None)]
        h.discord.age_attachment_urls(DAY + 60)
        reroll = next(b for b in buttons(edited) if b.startswith("imagine:reroll:"))
        text = await h.refusal(await h.discord.press_button(edited, reroll, user=h.alice))
        assert text.startswith("The image this started from was attached to the command itself")
        assert len(h.space.uploads) == 1


async def test_item09_a_worker_reads_an_expired_input_from_its_message_again(
    tmp_path, postgres_url
):
    """The worker reads a job's input with the same function as Reroll: a day after the
    gateway queued the job, from its message fetched again; and as large as the gateway
    accepted it (one of the bot's own results, on a boosted server)."""
    env = {"DATABASE_URL": postgres_url, "JOB_LEASE_SECONDS": "3", "SHUTDOWN_GRACE_SECONDS": "2"}
    async with running_bot(tmp_path, **env) as h:
        assert h.bot.shared_queue is not None  # gateway mode: a worker runs the jobs
        photo = h.discord.post_user_message(
            h.channel_id, h.bob, "my cat", attachments=[("cat.jpg", photo_with_gps())]
        )
        ours = h.discord.post_user_message(  # an earlier result of the bot's, about 12 MiB
            h.channel_id,
            h.discord.bot_user,
            "",
            attachments=[("static.png", noise_png(2048, 2048))],
        )
        assert ours.attachments[0]["size"] > 10 * MiB
        submitted = []
        for message, user in ((photo, h.alice), (ours, h.bob)):
            menu = await h.discord.send_message_command(
                "Edit this image", message, user=user, attachment_size_limit=BOOSTED
            )
            modal = await menu.wait_modal()
            submitted.append(await h.discord.submit_modal(menu, {modal_input(modal): "a hat"}))
        for interaction in submitted:
            assert (await interaction.wait_callback(10))["type"] == 5
        deadline = asyncio.get_running_loop().time() + 20
        while await h.bot.shared_queue.counts() != (2, 0):  # read by the gateway, queued
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.02)
        h.discord.age_attachment_urls(DAY + 60)  # no worker took them for a day
        log = tmp_path / "worker.log"
        worker = start(["worker.py"], h.env, log)
        try:
            for interaction in submitted:
                await h.discord.wait_until(lambda i=interaction: ended(i.original), 60)
                assert interaction.original.attachments, interaction.original.embeds
            for message in (photo, ours):
                attachment = message.attachments[0]
                assert h.discord.cdn.expired[int(attachment["id"])] == 1
                assert h.discord.attachment_downloads(attachment) == 2  # gateway, worker
            assert len(h.space.uploads) == 2
        finally:
            stop(worker)
            print(log.read_text()[-3000:])


# -- item 9: an input that is one of the bot's own results may be as large as its upload limit


async def test_item09_vary_and_edit_of_a_large_result_on_a_boosted_server(tmp_path):
    async with running_bot(tmp_path, MAX_JOBS_PER_USER="10") as h:
        h.space.noise = True  # incompressible pixels: a 2048x2048 PNG of about 12 MiB
        made = await h.slash(
            {"prompt": "static", "width": 2048, "height": 2048}, attachment_size_limit=BOOSTED
        )
        result = await h.final(made, within=60)
        (big,) = result.attachments
        assert big["size"] > 10 * MiB and big["content_type"] == "image/png"
        h.space.noise = False
        vary = next(b for b in buttons(result) if b.startswith("imagine:vary:"))

        # Where the interaction allows only 10 MiB, the old refusal stands (told at once).
        small = await h.discord.press_button(result, vary, user=h.bob)
        assert "the limit is 10 MiB" in await h.ephemeral(small)
        assert h.discord.attachment_downloads(big) == 0

        varied = await h.discord.press_button(
            result, vary, user=h.bob, attachment_size_limit=BOOSTED
        )
        assert (await h.final(varied, within=60)).attachments
        menu = await h.discord.send_message_command(
            "Edit this image", result, user=h.alice, attachment_size_limit=BOOSTED
        )
        modal = await menu.wait_modal()
        submitted = await h.discord.submit_modal(menu, {modal_input(modal): "calmer"})
        assert (await h.final(submitted, within=60)).attachments
        assert h.discord.attachment_downloads(big) == 2
        assert [u.space for u in h.space.uploads] == ["kontext", "kontext"]
        rows = job_rows(h, "kind", "input_channel_id", "input_message_id")
        assert rows[1:] == [("vary", h.channel_id, result.id), ("edit", h.channel_id, result.id)]

        # A member's own upload stays capped at 10 MiB, whatever the interaction allows.
        theirs = h.discord.post_user_message(
            h.channel_id, h.bob, "mine", attachments=[("mine.png", big["data"])]
        )
        menu = await h.discord.send_message_command(
            "Describe this image", theirs, user=h.bob, attachment_size_limit=BOOSTED
        )
        assert "the limit is 10 MiB" in await h.ephemeral(menu)
