"""Issue 16: a Russian member reads no English words of ours — in a status built from a
Space's progress, in a /describe job's header, in a failover notice, in the health list and
the "none" of ``/imagine-config show``. The real bot between the fake Discord and the fake
Spaces; every expected text is read off the Russian catalog, never written here.
"""

from __future__ import annotations

import re

import pytest

from imagine.i18n import Language, _, texts
from tests.fakes.space import ServerError
from tests.harness import MANAGE_GUILD, running_bot
from tests.test_creative_images import photo_with_gps

pytestmark = pytest.mark.timeout(90)

RU = texts(Language.RU)


def contents(message) -> list[str]:
    """Every text the message showed, oldest first."""
    return [v.get("content") or "" for v in message.versions] + [message.content or ""]


def russian_pattern(msgid: str, **numbers: str) -> re.Pattern[str]:
    """The Russian catalog's wording of ``msgid``, each ``{name}`` matched by ``numbers``."""
    template = RU.catalog.gettext(msgid)
    assert template != msgid, f"{msgid!r} has no Russian translation"
    pattern = re.escape(template)
    for name, value in numbers.items():
        pattern = pattern.replace(re.escape("{" + name + "}"), value)
    return re.compile(pattern)


async def test_a_spaces_own_progress_reads_russian_when_the_space_gives_no_words(tmp_path):
    """FLUX.1-dev's progress comes without words of its own (``desc`` None): the status is
    ours, ``Generating 3/28``, and so in the member's language; English stays English."""
    async with running_bot(tmp_path, MAX_CONCURRENT_JOBS="2") as h:
        h.space.set_knobs("flux-dev", progress_desc=None, progress_steps=28, generation_delay=3.5)
        ivan = h.discord.add_user("ivan", locale="ru")
        h.discord.add_member(h.guild.id, ivan)
        russian = await h.slash({"prompt": "маяк", "model": "flux-dev"}, user=ivan)
        english = await h.slash({"prompt": "a lighthouse", "model": "flux-dev"}, user=h.alice)
        ru_reply = await h.final(russian, 30)
        en_reply = await h.final(english, 30)

        steps = russian_pattern("Generating {index}/{length}", index=r"\d+", length="28")
        ru_statuses = [text for text in contents(ru_reply) if steps.search(text)]
        assert ru_statuses, contents(ru_reply)
        assert not any("Generating" in text for text in contents(ru_reply)), contents(ru_reply)
        assert any(re.search(r"Generating \d+/28", text) for text in contents(en_reply))
        assert ru_reply.embeds and en_reply.embeds  # both drawn


async def test_a_describe_jobs_header_is_in_russian(tmp_path):
    """Its header was the job's prompt, made ``Describe <file>`` in English at launch."""
    async with running_bot(tmp_path) as h:
        h.space.set_knobs("janus", generation_delay=1.5)
        ivan = h.discord.add_user("ivan", locale="ru")
        h.discord.add_member(h.guild.id, ivan)
        described = await h.final(
            await h.discord.send_slash(
                "describe", {"image": ("barn.png", photo_with_gps())}, user=ivan,
                guild_id=h.guild.id,
            ),
            within=30,
        )  # fmt: skip
        headers = [text.split("\n")[0] for text in contents(described) if text]
        assert headers, contents(described)
        # The file is re-encoded (any extension), its name escaped as a prompt is.
        header = russian_pattern("Describe {file}", file=r"barn\\?\.\w+")
        assert all(header.search(line) for line in headers), headers
        assert not any("Describe" in line for line in headers), headers

        h.space.set_fault("janus", ServerError(400))  # a failed /describe names it the same way
        failed = await h.final(
            await h.discord.send_slash(
                "describe", {"image": ("barn.png", photo_with_gps())}, user=ivan,
                guild_id=h.guild.id,
            ),
            within=30,
        )  # fmt: skip
        (embed,) = failed.embeds
        named = next(f["value"] for f in embed["fields"] if f["name"] == RU(_("Prompt")))
        assert header.fullmatch(named), named


async def test_a_failover_notice_is_in_russian(tmp_path):
    """Its words were made into a message without being marked, so no catalog had them."""
    async with running_bot(tmp_path, all_backends=True) as h:
        ivan = h.discord.add_user("ivan", locale="ru")
        h.discord.add_member(h.guild.id, ivan)
        h.space.set_fault("g4f-flux", ServerError(503))
        h.space.set_knobs("flux-schnell", generation_delay=2.5)
        drawn = await h.final(await h.slash({"prompt": "лиса", "model": "flux"}, user=ivan), 30)
        notice = russian_pattern(
            "{failed} is unavailable ({error}); trying {other}",
            failed=".+",
            error=".+",
            other=r"FLUX\.1-schnell.*",
        )
        assert any(notice.search(text) for text in contents(drawn)), contents(drawn)
        assert not any("is unavailable" in text for text in contents(drawn))


async def test_config_show_speaks_russian_health_words_and_none(tmp_path):
    async with running_bot(tmp_path, all_backends=True) as h:
        h.space.set_fault("g4f-flux", ServerError(503))
        await h.final(await h.slash({"prompt": "a fox", "model": "flux"}))  # g4f-flux rests
        olga = h.discord.add_user("olga", locale="ru")
        h.discord.add_member(h.guild.id, olga, permissions=MANAGE_GUILD)

        async def show(user) -> dict:
            shown = await h.discord.send_slash(
                "imagine-config", {}, subcommand="show", user=user, guild_id=h.guild.id,
                permissions=MANAGE_GUILD,
            )  # fmt: skip
            return (await shown.wait_callback(3))["data"]["embeds"][0]

        embed = await show(olga)
        backends = next(f["value"] for f in embed["fields"] if f["name"] == RU(_("Backends")))
        healthy, none = RU(_("healthy")), RU(_("none"))
        assert healthy != "healthy" and none != "none"
        assert f"`flux-schnell` (flux): {healthy}" in backends
        resting = russian_pattern("resting {seconds}s after: {error}", seconds=r"\d+", error=".+")
        assert re.search(r"`g4f-flux` \(flux\): " + resting.pattern, backends), backends
        assert not re.search(r"\b(healthy|resting|on trial)\b", backends), backends
        # No fallback and no translation model: said in Russian, not as the typed value.
        lines = embed["description"].splitlines()
        fallback = RU(_("**Fallback model:** {model}", model=none))
        translate = RU(_("**Translate prompts with:** {model}", model=none))
        assert fallback in lines and translate in lines, lines
        assert not any(line.endswith(" none") for line in lines), lines

        english = await show(h.admin)  # English as it was
        backends = next(f["value"] for f in english["fields"] if f["name"] == "Backends")
        assert "`flux-schnell` (flux): healthy" in backends
        assert "`g4f-flux` (flux): resting" in backends
        assert "**Fallback model:** none" in english["description"].splitlines()
