"""Issue 16, items 7, 9 and 11: reading input images on a member's behalf (counted before any
download, decoded within a time limit), input images read again after Discord's signed URLs
expired, inputs as large as the bot's own results, and /settings pages that leave nothing in
memory. The real bot between the fake Discord (its CDN signs URLs as Discord does) and the
fake Spaces."""

from __future__ import annotations

import pytest

from tests.harness import running_bot
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
