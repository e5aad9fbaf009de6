"""Messages in the reader's language: the Text/Texts mechanics, and the catalogs as shipped."""

from __future__ import annotations

import gettext
import pickle
import re
import sys
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from imagine.engine import short
from imagine.errors import BackendError, message_of, naming
from imagine.i18n import (
    LOCALE_DIR,
    Language,
    Number,
    Text,
    Verbatim,
    _,
    joined,
    language_for,
    language_of,
    n_,
    texts,
)
from imagine.logsafe import Redactor

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import catalog  # noqa: E402  (scripts/catalog.py)

RU = texts(Language.RU)
EN = texts(Language.EN)


def test_a_marked_message_reads_english_until_translated():
    text = _("Slow down: you can ask again {when}.", when="<t:1:R>")
    assert text == "Slow down: you can ask again <t:1:R>."
    assert isinstance(text, str) and isinstance(text, Text)
    assert EN(text) == text
    assert RU(text) != text and "<t:1:R>" in RU(text)


def test_plain_strings_pass_as_they_are():
    """A backend's own words (not a Text) are shown as they are, in any language."""
    assert RU("Sampling 3/28") == "Sampling 3/28"


def test_a_message_missing_from_a_catalog_falls_back_to_english_never_to_an_id():
    text = _("A message nobody translated, about {thing}", thing="cats")
    assert RU(text) == "A message nobody translated, about cats"


def test_russian_has_three_plural_forms():
    def ahead(n: int) -> str:
        return RU(
            n_(
                "#{position} in line ({n} job ahead of you)",
                "#{position} in line ({n} jobs ahead of you)",
                n,
                position=n + 1,
            )
        )

    forms = {n: ahead(n).split("(")[1] for n in (1, 2, 5, 21, 22, 25, 11)}
    assert len({forms[1], forms[2], forms[5]}) == 3, forms
    assert forms[21].replace("21", "1") == forms[1]
    assert forms[22].replace("22", "2") == forms[2]
    assert forms[11].replace("11", "5") == forms[5]  # 11 is "many", not "one"
    english = n_("{n} image", "{n} images", 1), n_("{n} image", "{n} images", 3)
    assert english == ("1 image", "3 images")


def test_parameters_that_are_messages_are_translated_too():
    nested = _("{backend}: {error}", backend="FLUX.1-dev", error=_("Starting"))
    assert RU(nested) == f"FLUX.1-dev: {RU(_('Starting'))}"
    assert RU(_("Starting")) != "Starting"


def test_numbers_follow_the_language():
    text = _("{seconds}s", seconds=Number(1234.5, 1))
    assert EN(text) == "1,234.5s"
    assert RU(text).replace("\u00a0", " ") == "1 234,5 с"


def test_an_error_keeps_its_translatable_message():
    error = BackendError(_("The backend finished without an image."), backend="FLUX.1-dev")
    assert isinstance(message_of(error), Text)
    assert RU(naming(error)).startswith("FLUX.1-dev: ")
    assert RU(naming(error)) != naming(error)


def test_joined_parts_are_each_translated():
    """``str.join`` would make them English; ``joined`` keeps each part a message."""
    parts = [_("Starting"), Verbatim("Sampling {3}/28"), _("Next in line")]
    together = joined("; ", parts)
    assert together == "Starting; Sampling {3}/28; Next in line"  # English as str.join
    assert RU(together) == "; ".join(RU(part) for part in parts)
    assert RU(together) != together
    assert RU(joined(" {} ", parts[:2])) == f"{RU(parts[0])} {{}} Sampling {{3}}/28"


def test_redacting_a_message_keeps_it_translatable():
    redact = Redactor(["hunter2-secret"])
    said = _(
        "{backend} failed: {error}", backend="Space X", error=Verbatim("key hunter2-secret bad")
    )
    clean = redact.shown(said)
    assert isinstance(clean, Text) and "hunter2" not in clean
    assert "hunter2" not in RU(clean) and "[redacted]" in RU(clean)
    assert RU(clean) == RU(
        _("{backend} failed: {error}", backend="Space X", error="key [redacted] bad")
    )
    assert redact.shown(Verbatim("hunter2-secret")) == "[redacted]"


def test_a_long_backend_error_is_cut_but_a_message_is_kept_whole():
    """Cutting a message would make it English: only a backend's own words are cut."""
    long = "x" * 400
    kept = short(BackendError(_("{backend} failed: {error}", backend="Space X", error=long)))
    assert isinstance(kept, Text) and RU(kept) != kept and long in RU(kept)
    cut = short(BackendError(long))
    assert len(cut) == 160 and cut.endswith("…")


def test_text_survives_copies_and_pickles():
    text = n_("{n} image", "{n} images", 3)
    again = pickle.loads(pickle.dumps(text))
    assert isinstance(again, Text) and RU(again) == RU(text)


@pytest.mark.parametrize(
    ("chosen", "locale", "expected"),
    [
        (None, "ru", Language.RU),
        (None, "en-US", Language.EN),
        (None, "pt-BR", Language.EN),  # a language we do not speak: English
        ("en", "ru", Language.EN),  # the member's choice wins over the client
        ("ru", "en-GB", Language.RU),
        (None, None, Language.EN),
    ],
)
def test_a_members_language(chosen, locale, expected):
    assert language_for(chosen, locale) is expected
    assert language_of("ru") is Language.RU


# -- the catalogs ---------------------------------------------------------------------------


def test_every_message_of_the_code_and_commands_is_in_every_catalog():
    """Every ``_()``/``n_()`` in imagine/ and cogs/ and every command string, in both
    catalogs, none fuzzy or empty (``scripts/catalog.py check``)."""
    assert catalog.problems() == []


def test_the_compiled_catalogs_match_their_sources():
    for language in Language:
        po_path = LOCALE_DIR / language.value / "LC_MESSAGES" / "imagine.po"
        with po_path.open("rb") as file:
            source = read_po(file, locale=language.value)
        compiled = gettext.GNUTranslations(po_path.with_suffix(".mo").open("rb"))
        for message in source:
            if not message.id:
                continue
            if isinstance(message.id, tuple):
                assert compiled.ngettext(message.id[0], message.id[1], 5) == message.string[-1]
            else:
                assert compiled.gettext(message.id) == message.string, message.id


def test_placeholders_survive_translation():
    with (LOCALE_DIR / "ru" / "LC_MESSAGES" / "imagine.po").open("rb") as file:
        source = read_po(file, locale="ru")
    for message in source:
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        wanted = set(re.findall(r"\{(\w+)\}", ids[-1]))
        for string in strings:
            assert set(re.findall(r"\{(\w+)\}", string)) <= wanted | {"n"}, (ids, string)
            assert set(re.findall(r"\{(\w+)\}", string)) >= wanted - {"n"}, (ids, string)


def test_a_restart_reads_an_ending_in_any_language():
    """Recovery looks at a job's reply to see whether it already ended: a Russian reply is
    as much an ending as an English one."""
    from types import SimpleNamespace

    import discord

    from discord_jobs.recovery import ended_state
    from imagine.store import JobState

    def reply(content: str = "", title: str | None = None) -> SimpleNamespace:
        embeds = [discord.Embed(title=title)] if title else []
        return SimpleNamespace(attachments=[], embeds=embeds, content=content)

    assert ended_state(reply(RU(_("Cancelled.")))) is JobState.CANCELLED
    assert ended_state(reply(RU(_("Cancelled by {name}.", name="ivan")))) is JobState.CANCELLED
    assert ended_state(reply(title=RU(_("Interrupted")))) is JobState.INTERRUPTED
    assert ended_state(reply(title=RU(_("Couldn't make this image")))) is JobState.FAILED
    assert ended_state(reply(f"**маяк**\n`flux` · {RU(_('Starting'))}")) is None


QUOTES = re.compile(r"[\"“”‘’]|'[^'\s][^']*'")
"""Straight and English quotation marks (a lone apostrophe is no quotation)."""


def test_russian_quotes_are_guillemets():
    """Russian quotes with « » (and „ “ inside them); a literal in backticks (a command, a
    value to type) is left as it is."""
    with (LOCALE_DIR / "ru" / "LC_MESSAGES" / "imagine.po").open("rb") as file:
        source = read_po(file, locale="ru")
    checked = 0
    for message in source:
        if not message.id:
            continue
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        for string in strings:
            prose = re.sub(r"`[^`]*`", "", string)
            prose = re.sub(r"„[^“”]*“", "", prose)
            assert not QUOTES.search(prose), (message.id, string)
            checked += "«" in prose
    assert checked >= 3  # the catalog does quote: the test looks at the right strings
