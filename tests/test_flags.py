"""Inline flags (``--ar 16:9 --no text``) and what an aspect ratio means in pixels."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imagine.aspects import ASPECT_CHOICES, check_aspect, size_for_aspect
from imagine.errors import BadInput
from imagine.flags import Flags, merge, parse_flags

# -- parsing ---------------------------------------------------------------------------------


def test_every_flag_is_read_and_taken_out_of_the_prompt():
    flags = parse_flags(
        "a fox in snow --ar 16:9 --seed 42 --model flux-dev --count 4 --no text, watermark"
    )
    assert flags == Flags(
        prompt="a fox in snow",
        aspect="16:9",
        negative="text, watermark",
        seed=42,
        model="flux-dev",
        count=4,
    )


def test_a_prompt_without_flags_is_only_tidied():
    assert parse_flags("  a fox\t in   snow ") == Flags(prompt="a fox in snow")
    assert parse_flags("line one\n\n\n\nline two") == Flags(prompt="line one\n\nline two")


def test_flags_in_the_middle_leave_tidy_text_behind():
    flags = parse_flags("a fox --seed 7   in snow\n--ar 3:2\nat dawn")
    assert flags.prompt == "a fox in snow\nat dawn"
    assert (flags.seed, flags.aspect) == (7, "3:2")


def test_no_takes_the_text_up_to_the_next_flag():
    flags = parse_flags("a castle --no people,  cars --seed 3 at night")
    assert flags.negative == "people, cars"
    assert flags.prompt == "a castle at night"
    assert parse_flags("a castle --no blur").negative == "blur"


def test_em_and_en_dashes_from_phones_count_as_two_hyphens():
    flags = parse_flags("a fox —ar 9:16 —no snow –seed 5")
    assert (flags.aspect, flags.negative, flags.seed, flags.prompt) == ("9:16", "snow", 5, "a fox")


@pytest.mark.parametrize(
    "text",
    [
        "a--b and c--d",
        "a fox — in snow",
        "pages 10–20, a cat—dog",
        "a - b --- c -->",
        "--5 and --> arrows",
        "—running fox —majestic",  # an em dash before an unknown word is prose
        "a-ar 16:9",
    ],
)
def test_dashes_that_are_not_flags_stay_text(text):
    flags = parse_flags(text)
    assert flags == Flags(prompt=" ".join(text.split()))


def test_flag_names_ignore_case_and_aspect_is_an_alias():
    flags = parse_flags("a fox --AR 4:3 --Seed 1")
    assert (flags.aspect, flags.seed) == ("4:3", 1)
    assert parse_flags("a fox --aspect 2:3").aspect == "2:3"


def test_values_are_reduced_and_normalised():
    assert parse_flags("x --ar 32:18").aspect == "16:9"
    assert parse_flags("x --ar 1920:1080").aspect == "16:9"
    assert parse_flags("x --ar 7:3").aspect == "21:9"  # the fixed choice's spelling
    assert parse_flags("x --ar 10:4").aspect == "5:2"
    # Fullwidth digits and colon, as a Japanese or Chinese keyboard types them.
    flags = parse_flags("x --ar １６：９ --seed ４２")
    assert (flags.aspect, flags.seed) == ("16:9", 42)


def test_sentence_punctuation_after_a_value_is_not_part_of_it():
    flags = parse_flags("a fox --ar 16:9, in snow --seed 7.")
    assert (flags.aspect, flags.seed, flags.prompt) == ("16:9", 7, "a fox in snow")


def test_the_seed_limit_is_the_providers():
    from imagine.flags import MAX_SEED
    from imagine.providers.base import MAX_SEED as PROVIDERS_MAX_SEED

    assert MAX_SEED == PROVIDERS_MAX_SEED


def test_limits_are_inclusive():
    assert parse_flags("x --seed 0").seed == 0
    assert parse_flags("x --seed 4294967295").seed == 4294967295
    assert parse_flags("x --count 1").count == 1
    assert parse_flags("x --ar 1:4").aspect == "1:4"
    assert parse_flags("x --ar 21:9").aspect == "21:9"


def test_a_prompt_of_only_flags_is_empty_and_left_for_the_prompt_check():
    assert parse_flags("--ar 1:1 --seed 2") == Flags(prompt="", aspect="1:1", seed=2)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x --ar 16x", r"--ar takes W:H with whole numbers from 1 to 21.*not “16x”"),
        ("x --ar 16:0", r"--ar takes W:H.*not “16:0”"),
        ("x --ar 22:1", r"--ar takes W:H.*between 1:4 and 4:1"),
        ("x --ar 1:5", r"--ar takes W:H.*not “1:5”"),
        ("x --ar 23:22", r"--ar takes W:H.*not “23:22”"),
        ("x --seed abc", r"--seed takes a whole number from 0 to 4294967295; not “abc”"),
        ("x --seed -1", r"--seed takes a whole number.*not “-1”"),
        ("x --seed 4294967296", r"--seed takes a whole number.*not “4294967296”"),
        ("x --seed " + "9" * 5000, r"--seed takes a whole number.*not “9{24}…”"),
        ("x --count 9", r"--count takes a whole number from 1 to 4; not “9”"),
        ("x --count 0", r"--count takes a whole number from 1 to 4; not “0”"),
        ("x --count two", r"--count takes a whole number from 1 to 4; not “two”"),
        ("x --stylize 100", r"Unknown flag “--stylize”\. The flags are --ar W:H, --no TEXT"),
        ("x --ar=16:9", r"Unknown flag “--ar=16:9”"),
        ("x --seed 1 --seed 2", r"--seed is given twice"),
        ("x --ar 1:1 —aspect 2:3", r"--ar is given twice \(again as “—aspect”\)"),
        ("x --seed", r"--seed takes a whole number from 0 to 4294967295; it has none"),
        ("x --seed --ar 1:1", r"--seed takes a whole number.*it has none"),
        ("x --ar", r"--ar needs a ratio"),
        ("x --model", r"--model needs a model name"),
        ("x --no", r"--no needs the things to leave out"),
        ("x --no   --seed 1", r"--no needs the things to leave out"),
    ],
)
def test_malformed_flags_are_refused_naming_the_flag(text, message):
    with pytest.raises(BadInput, match=message):
        parse_flags(text)


# -- explicit options win ---------------------------------------------------------------------


def test_an_explicit_option_wins_over_its_flag():
    flags = parse_flags("a fox --seed 3 --ar 1:1 --no snow --count 2 --model flux")
    merged = merge(flags, seed=9, aspect="16:9", negative="rain", count=4, model="flux-dev")
    assert merged == Flags(
        prompt="a fox", aspect="16:9", negative="rain", seed=9, model="flux-dev", count=4
    )


def test_options_not_given_leave_the_flags_alone():
    flags = parse_flags("a fox --seed 3 --no snow --model flux")
    assert merge(flags) == flags
    assert merge(flags, seed=None, negative="  ", model="") == flags
    assert merge(Flags(prompt="a"), seed=0).seed == 0  # 0 is a value, not "not given"


def test_explicit_options_are_checked_too():
    with pytest.raises(BadInput, match="--count takes a whole number from 1 to 4"):
        merge(Flags(prompt="a"), count=5)
    with pytest.raises(BadInput, match="--seed takes a whole number"):
        merge(Flags(prompt="a"), seed=-1)
    with pytest.raises(BadInput, match="aspect ratio"):
        merge(Flags(prompt="a"), aspect="5:1")
    assert merge(Flags(prompt="a"), aspect="64:36").aspect == "16:9"


# -- properties -------------------------------------------------------------------------------

DASHES = st.sampled_from(["--", "—", "–"])
PLAIN = st.text(
    st.characters(exclude_categories=["Z", "Cc", "Cs"], exclude_characters="-—–"), min_size=1
)
"""A word that is no flag: no whitespace, no dash of any kind."""
VALID = st.one_of(
    st.tuples(DASHES, st.sampled_from(["ar", "aspect", "AR"]), st.sampled_from(["16:9", "7:3"])),
    st.tuples(DASHES, st.just("seed"), st.integers(0, 2**32 - 1).map(str)),
    st.tuples(DASHES, st.just("count"), st.integers(1, 4).map(str)),
    st.tuples(DASHES, st.just("model"), st.sampled_from(["flux", "flux-dev"])),
    st.tuples(DASHES, st.just("no"), PLAIN),
).map(lambda flag: f"{flag[0]}{flag[1]} {flag[2]}")
NOISE = st.sampled_from(
    [
        "--ar", "—ar", "--no", "--seed", "--count", "--model", "--x", "—x", "--", "—",
        "–", "-", "---", "a--b", "16:9", "7", "0", "5", "abc", "１６：９", "\n", "\t", " ",
    ]
)  # fmt: skip
TEXTS = st.one_of(
    st.text(),
    st.lists(st.one_of(VALID, VALID, NOISE, PLAIN, st.text(max_size=3)), max_size=10).map(" ".join),
    st.lists(st.one_of(VALID, NOISE, st.text(max_size=3)), max_size=10).map("".join),
)


@settings(max_examples=500, deadline=None)
@given(TEXTS)
def test_parsing_raises_nothing_but_bad_input_and_leaves_no_flag(text):
    try:
        flags = parse_flags(text)
    except BadInput:
        return
    # What is left has no flag in it: reading it again finds nothing and changes nothing.
    assert parse_flags(flags.prompt) == Flags(prompt=flags.prompt)
    if flags.count is not None:
        assert 1 <= flags.count <= 4
    if flags.seed is not None:
        assert 0 <= flags.seed <= 2**32 - 1
    if flags.aspect is not None:
        assert check_aspect(flags.aspect) == flags.aspect


@settings(max_examples=300, deadline=None)
@given(
    before=st.lists(PLAIN, max_size=4),
    after=st.lists(PLAIN, max_size=4),
    dash=DASHES,
    seed=st.integers(0, 2**32 - 1),
    count=st.integers(1, 4),
    negative=st.lists(PLAIN, min_size=1, max_size=3),
    order=st.permutations(["seed", "count", "ar"]),
)
def test_flags_round_trip_through_a_prompt(before, after, dash, seed, count, negative, order):
    given_flags = {"seed": f"{dash}seed {seed}", "count": f"{dash}count {count}"}
    given_flags["ar"] = f"{dash}ar 3:2"
    words = [*before, given_flags[order[0]], *after, given_flags[order[1]], given_flags[order[2]]]
    text = " ".join([*words, f"{dash}no", *negative])
    flags = parse_flags(text)
    assert flags == Flags(
        prompt=" ".join([*before, *after]),
        aspect="3:2",
        negative=" ".join(negative),
        seed=seed,
        count=count,
    )


# -- aspect ratios ----------------------------------------------------------------------------

BUCKETS = {
    "1:1": (1024, 1024),
    "16:9": (1344, 768),
    "9:16": (768, 1344),
    "4:3": (1152, 896),
    "3:4": (896, 1152),
    "3:2": (1216, 832),
    "2:3": (832, 1216),
    "21:9": (1536, 640),
}


def test_the_fixed_choices_are_the_design_s_list():
    assert ASPECT_CHOICES == ("1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3", "21:9")


@pytest.mark.parametrize(("aspect", "size"), BUCKETS.items())
def test_each_fixed_choice_is_its_sdxl_bucket(aspect, size):
    assert size_for_aspect(aspect) == size


def _every_valid_ratio():
    for w in range(1, 22):
        for h in range(1, 22):
            if 1 / 4 <= w / h <= 4:
                yield w, h


@pytest.mark.parametrize("step", [64, 32, 8])
def test_any_valid_ratio_is_within_5_percent_and_about_one_megapixel(step):
    checked = 0
    for w, h in _every_valid_ratio():
        width, height = size_for_aspect(f"{w}:{h}", step=step)
        assert width % step == 0 and height % step == 0, (w, h, width, height)
        assert 256 <= width <= 2048 and 256 <= height <= 2048
        assert abs((width / height) / (w / h) - 1) <= 0.05, (w, h, width, height)
        assert 0.8 <= width * height / 2**20 <= 1.25, (w, h, width, height)
        checked += 1
    assert checked > 300


def test_megapixels_scales_the_area():
    width, height = size_for_aspect("16:9", megapixels=0.5)
    assert 0.4 <= width * height / 2**20 <= 0.5
    assert math.isclose(width / height, 16 / 9, rel_tol=0.05)
    assert size_for_aspect("1:1", megapixels=4) == (2048, 2048)


def test_the_same_shape_gives_the_same_size():
    assert size_for_aspect("7:3") == size_for_aspect("21:9") == (1536, 640)
    assert size_for_aspect("32:18") == size_for_aspect("16:9")


@pytest.mark.parametrize("bad", ["16x9", "0:1", "1:0", "5:1", "1:5", "22:1", "-1:1", "a:b", ""])
def test_a_bad_aspect_is_bad_input(bad):
    with pytest.raises(BadInput, match="aspect ratio"):
        size_for_aspect(bad)
