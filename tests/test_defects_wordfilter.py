"""Item 6: blocked words survive invisible characters, fullwidth letters, marks and look-alikes.

The engine's ``imagine.wordfilter`` is imported inside each test (not at the top) so that,
before it existed, every test failed on its own instead of the whole file failing to collect.
"""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from discord_jobs.launch import find_blocked_word as bot_find_blocked_word
from imagine.providers.base import clean_prompt
from tests.harness import MANAGE_GUILD, running_bot


def wordfilter() -> ModuleType:
    return importlib.import_module("imagine.wordfilter")


OBFUSCATED_NUDE = [
    pytest.param("nu\u2060de", id="word-joiner"),
    pytest.param("nu\u00adde", id="soft-hyphen"),
    pytest.param("\ufeffnude", id="bom"),
    pytest.param("nu\ufeffde", id="bom-inside"),
    pytest.param("nu\u200bde", id="zero-width-space"),
    pytest.param("nu\u200dde", id="zero-width-joiner"),
    pytest.param("ｎｕｄｅ", id="fullwidth"),
    pytest.param("𝐧𝐮𝐝𝐞", id="math-bold"),
    pytest.param("nu\u0301de", id="combining-acute"),
    pytest.param("n\u0336u\u0336d\u0336e\u0336", id="strike-through"),
    pytest.param("nуde", id="cyrillic-u"),
    pytest.param("nudе", id="cyrillic-e"),
    pytest.param("NUDE", id="upper-case"),
    pytest.param("ＮＵ\u2060Ｄе", id="everything-at-once"),
]


@pytest.mark.parametrize("word", OBFUSCATED_NUDE)
def test_item06_bot_catches_obfuscated_blocked_word(word):
    """The function the bot calls (discord_jobs.launch) sees through each disguise."""
    prompt = f"a {word} statue in a park"
    assert bot_find_blocked_word(clean_prompt(prompt), ("nude",)) == "nude"


@pytest.mark.parametrize("word", OBFUSCATED_NUDE)
def test_item06_engine_catches_obfuscated_blocked_word(word):
    assert wordfilter().find_blocked_word(f"a {word} statue", ("gore", "nude")) == "nude"


@pytest.mark.parametrize(
    ("prompt", "blocked"),
    [
        pytest.param("a d\u03bfg in the rain", "dog", id="greek-omicron"),
        pytest.param("a scene full of g\u043er\u0435", "gore", id="cyrillic-o-e"),
        pytest.param("\u0430 c\u0430t", "a cat", id="cyrillic-a"),
        pytest.param("a nude statue", "n\u0443de", id="word-written-in-cyrillic"),
        pytest.param("a nude statue", "ＮＵＤＥ", id="word-written-fullwidth"),
        pytest.param("a NU\u0336DE statue", "nu\u2060de", id="both-sides-disguised"),
        pytest.param("a \u03bdude statue", "nude", id="greek-nu-read-as-n"),
        pytest.param("\u0455\u0435\u0445 appeal", "sex", id="all-cyrillic-lookalike"),
        pytest.param("a nude statue", "nude", id="plain"),
        pytest.param("a café crème", "cafe", id="accent-folded"),
    ],
)
def test_item06_lookalikes_fold_on_both_sides(prompt, blocked):
    assert bot_find_blocked_word(clean_prompt(prompt), ("zzz", blocked)) == blocked


def test_item06_lookalikes_fold_to_their_unicode_prototype():
    """By shape, as confusables.txt says: Cyrillic у is a y (``nуde`` reads as nude only
    phonetically, which find_blocked_word covers for mixed-script words)."""
    filt = wordfilter()
    pairs = {"у": "y", "а": "a", "е": "e", "о": "o", "ο": "o", "Ѕ": "s", "ｎ": "n", "𝐍": "n"}
    assert {k: filt.matching_form(k) for k in pairs} == pairs
    assert filt.matching_form("n\u0443de") == "nyde"


ORDINARY = [
    "a red fox in the snow, oil painting",
    "modern architecture at sunset, wide angle",
    "a corn field under a thunderstorm",
    "two cats sleeping on a sofa",
    "portrait of an old fisherman, dramatic lighting",
    "a lighthouse on a rocky coast at dawn",
    "cinematic shot of a rainy Tokyo street at night",
    "an astronaut riding a horse on the moon",
    "a bowl of ramen with an egg, studio photo",
    "watercolor map of a fantasy kingdom",
    "Café on the corner, Île de la Cité, 1920s poster",
    "compose a poem about a warm room",
]
# The last three would match "modern", "compose" and "a warm room" if m folded to rn.
WORDS = ("nude", "naked", "gore", "blood", "kill", "porn", "sex", "rnodern", "cornp", "rrn")


@pytest.mark.parametrize("sentence", ORDINARY)
def test_item06_ordinary_sentences_have_no_false_positives(sentence):
    """Ordinary text maps to itself (ASCII is never folded: 'm' stays 'm', not 'rn')."""
    filt = wordfilter()
    assert filt.find_blocked_word(sentence, WORDS) is None
    if sentence.isascii():
        assert filt.matching_form(sentence) == sentence.casefold()


def test_item06_plain_latin_is_never_refolded():
    filt = wordfilter()
    assert filt.matching_form("m") == "m"
    assert filt.matching_form("rn") == "rn"
    assert filt.matching_form("I l 1 0 O") == "i l 1 0 o"
    assert filt.find_blocked_word("a modern room", ("rn",)) == "rn"  # plain substring, as before
    assert filt.find_blocked_word("a modem", ("modern",)) is None
    assert filt.find_blocked_word("compose a poem", ("corn",)) is None


def test_item06_cyrillic_text_is_not_transliterated():
    """Only words mixing scripts are read phonetically: Russian горе (grief) is not "gore"."""
    filt = wordfilter()
    assert filt.find_blocked_word("картина: горе и радость", ("gore",)) is None
    assert filt.find_blocked_word("a g\u043ere scene", ("gore",)) == "gore"


def test_item06_word_that_cleans_to_nothing_blocks_nothing():
    """A blocked word of only invisible characters or marks must not match every prompt."""
    filt = wordfilter()
    assert filt.find_blocked_word("a red fox", ("\u2060", "\u0301", "\ufeff\u00ad")) is None


def test_item06_invisible_characters_are_removed_from_the_prompt():
    text = "a\u2060 red\u00ad fox\ufeff in\u200b the\u2066 snow\u061c"
    assert clean_prompt(text) == "a red fox in the snow"


def test_item06_zalgo_on_latin_greek_cyrillic_is_dropped_accents_kept():
    assert clean_prompt("n\u0336u\u0336d\u0336e\u0336 statue") == "nude statue"
    assert clean_prompt("Z\u0351\u0308a\u036bl\u0347g\u0359o") == "Zalgo"
    assert clean_prompt("\u03b1\u0336\u0431\u0336") == "\u03b1\u0431"
    # A legitimate accent composes under NFKC and stays; fullwidth becomes ASCII.
    assert clean_prompt("cafe\u0301 ｃｒèｍｅ") == "café crème"


@pytest.mark.parametrize(
    "prompt",
    [
        pytest.param("एक बिल्ली चाँद पर बैठी है, जलरंग चित्र", id="hindi"),
        pytest.param("แมวสีส้มนอนอยู่บนหลังคา", id="thai"),
        pytest.param("قطة برتقالية تنام على السطح", id="arabic"),
        pytest.param("قِطَّةٌ بُرْتُقَالِيَّةٌ تَنَامُ", id="arabic-with-harakat"),
        pytest.param("חָתוּל כָּתֹם יָשֵׁן עַל הַגַּג", id="hebrew-with-niqqud"),
        pytest.param("Một con mèo cam ngủ trên mái nhà", id="vietnamese"),
        pytest.param("Ἀθῆναι, ὁ Παρθενών", id="polytonic-greek"),
        pytest.param("line one\nline two", id="newline"),
    ],
)
def test_item06_scripts_that_need_marks_come_through_unchanged(prompt):
    assert wordfilter().clean_text(prompt) == prompt


def test_item06_tabs_become_spaces():
    assert wordfilter().clean_text("a\tfox\r\nin snow") == "a fox\nin snow"


@given(st.text(max_size=40))
def test_item06_cleaning_is_idempotent(text):
    filt = wordfilter()
    once = filt.clean_text(text)
    assert filt.clean_text(once) == once
    assert filt.matching_form(filt.matching_form(text)) == filt.matching_form(text)


async def test_item06_disguised_blocked_word_refused_end_to_end(tmp_path):
    async with running_bot(tmp_path) as h:
        await h.ephemeral(
            await h.discord.send_slash(
                "imagine-config", {"action": "add", "words": "nude"},
                subcommand="blocked-words", user=h.admin, guild_id=h.guild.id,
                permissions=MANAGE_GUILD,
            )
        )  # fmt: skip
        for prompt in ("a n\u0443\u2060de statue", "a ｎｕｄｅ statue", "a nu\u00adde statue"):
            refusal = await h.ephemeral(await h.slash({"prompt": prompt}))
            assert "blocked word" in refusal, prompt
        assert h.space.requests == []


async def test_item06_prompt_sent_to_model_has_no_invisible_characters(tmp_path):
    async with running_bot(tmp_path) as h:
        interaction = await h.slash({"prompt": "a\u2060 red\u00ad fox\ufeff in ｓｎｏｗ"})
        message = await h.final(interaction)
        assert message.attachments
        sent = h.space.joins("g4f-flux")[-1].json["data"][0]
        assert sent == "a red fox in snow"
        assert not {"\u2060", "\u00ad", "\ufeff"} & set(sent)
