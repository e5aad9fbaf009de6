"""Canvases and masks for FLUX.1 Fill as pure functions (``imagine.canvas``), by property: any
size and factor gives a canvas the Space keeps as it is, with the original on whole pixels and
the mask white exactly around it; Zoom Out centred, Pan grown by half on its side only;
Vary (Region) white on exactly the chosen thirds."""

from __future__ import annotations

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from imagine.canvas import (
    FILL_LONG_SIDE,
    FILL_MIN_SHORT,
    KEEP,
    NEW_AREA,
    PAINT,
    Cell,
    Direction,
    can_outpaint,
    cell_box,
    check_cells,
    compose,
    fill_size,
    fits,
    outpaint,
    outpaint_size,
    parse_cells,
    region,
    space_fill_size,
)
from imagine.errors import BadInput, message_of
from imagine.i18n import texts
from tests.fakes import retouch

sides = st.integers(min_value=1, max_value=4096)


@st.composite
def shapes(draw, low: float = 0.3, high: float = 3.4, most: int = 4096) -> tuple[int, int]:
    """A size whose shape (width / height) lies in ``low..high``, more or less evenly."""
    width = draw(st.integers(min_value=16, max_value=most))
    ratio = draw(st.floats(min_value=low, max_value=high, allow_nan=False))
    return width, max(1, round(width / ratio))


factors = st.floats(min_value=1.1, max_value=2.0, allow_nan=False)
directions = st.sampled_from(list(Direction))


def black_exactly_on(mask: Image.Image, box: tuple[int, int, int, int]) -> bool:
    """Every pixel of ``box`` is KEEP and every other pixel PAINT (the mask has no other)."""
    left, top, right, bottom = box
    area = (right - left) * (bottom - top)
    histogram = mask.histogram()
    inside = mask.crop(box).getextrema() == (KEEP, KEEP)
    only_two = histogram[KEEP] + histogram[PAINT] == mask.width * mask.height
    return inside and only_two and histogram[KEEP] == area


def white_exactly_on(mask: Image.Image, boxes: list[tuple[int, int, int, int]]) -> bool:
    """The mask is PAINT on the union of ``boxes`` (disjoint) and KEEP elsewhere."""
    histogram = mask.histogram()
    area = sum((r - left) * (b - t) for left, t, r, b in boxes)
    white = all(mask.crop(box).getextrema() == (PAINT, PAINT) for box in boxes)
    return white and histogram[PAINT] == area and histogram[KEEP] == mask.width * mask.height - area


# -- the size the Space keeps ---------------------------------------------------------------


@given(st.one_of(shapes(), st.tuples(sides, sides)))
@example((1344, 768))  # /imagine's 16:9
@example((1024, 1024))
@example((768, 1344))
@example((127, 128))  # near square, portrait: rounds to a square
def test_fill_size_is_a_size_the_space_draws_at_as_it_is(size):
    width, height = size
    ratio = max(width, height) / min(width, height)
    if not fits(width, height):
        assert ratio > 16 / 9  # only shapes past 16:9 are refused
        return
    size = fill_size(width, height)
    long, short = max(size), min(size)
    assert long == FILL_LONG_SIDE and short % 16 == 0 and FILL_MIN_SHORT <= short <= long
    # the orientation is kept (a near-square shape may round to a square)
    assert size[0] == size[1] or (size[0] > size[1]) == (width > height)
    # the shape within a rounding to 16 of the short side
    assert abs(short / long - min(width, height) / max(width, height)) <= 8 / FILL_LONG_SIDE
    # what the real app and FLUX's pipeline make of it (the fake's own reading of the app)
    background = Image.new("RGB", size)
    assert retouch.drawn_size(background) == size
    assert space_fill_size(*size) == size


def test_shapes_past_16_9_are_refused_with_the_reason_in_the_readers_language():
    assert fill_size(1820, 1024) == (1024, 576)  # 1.78: just inside
    with pytest.raises(BadInput) as caught:
        fill_size(1536, 640)
    assert texts("ru")(message_of(caught.value)) == (
        "Получилось бы 2,40:1 — слишком широко или слишком высоко для модели дорисовки: "
        "она рисует форматы от 9:16 до 16:9."
    )
    for size in ((1536, 640), (640, 1536), (2048, 1000)):  # 21:9, 9:21, 2.05:1
        assert not fits(*size)
        try:
            fill_size(*size)
        except BadInput as error:
            assert "from 9:16 to 16:9" in str(error)
        else:
            raise AssertionError(f"{size} was accepted")


# -- Zoom Out and Pan ----------------------------------------------------------------------


@settings(max_examples=200)
@given(shapes(9 / 16, 16 / 9), factors)
@example((1024, 1024), 2.0)
@example((1024, 1024), 1.5)
@example((1344, 768), 2.0)
def test_zoom_out_centres_the_image_and_masks_exactly_the_border(size, factor):
    width, height = size
    assume(fits(width, height))
    canvas, box, mask = outpaint((width, height), factor)
    assert canvas == fill_size(width, height) == outpaint_size((width, height), factor)
    assert mask.mode == "L" and mask.size == canvas
    left, top, right, bottom = box
    cw, ch = canvas
    assert left > 0 and top > 0 and right < cw and bottom < ch  # a border on every side
    assert abs(left - (cw - right)) <= 1 and abs(top - (ch - bottom)) <= 1  # centred
    assert abs((right - left) - cw / factor) <= 0.5  # the factor, to the pixel
    assert abs((bottom - top) - ch / factor) <= 0.5
    assert black_exactly_on(mask, box)


@settings(max_examples=200)
@given(shapes(), directions)
@example((1024, 1024), Direction.RIGHT)
@example((1344, 768), Direction.UP)
@example((768, 1344), Direction.LEFT)
def test_pan_grows_by_half_on_its_side_only(size, direction):
    width, height = size
    assume(can_outpaint((width, height), direction=direction))
    canvas, box, mask = outpaint((width, height), direction=direction)
    cw, ch = canvas
    left, top, right, bottom = box
    grown = {
        Direction.LEFT: left, Direction.RIGHT: cw - right,
        Direction.UP: top, Direction.DOWN: ch - bottom,
    }  # fmt: skip
    assert all(v == 0 for d, v in grown.items() if d is not direction)  # one side only
    along = (right - left) if direction in (Direction.LEFT, Direction.RIGHT) else (bottom - top)
    assert abs(grown[direction] - along / 2) <= 1  # half the image, to the pixel
    assert canvas == fill_size(
        width * (1.5 if direction in (Direction.LEFT, Direction.RIGHT) else 1),
        height * (1.5 if direction in (Direction.UP, Direction.DOWN) else 1),
    )
    assert black_exactly_on(mask, box)


@given(shapes(), directions, factors)
def test_outpaint_refuses_exactly_what_does_not_fit(size, direction, factor):
    width, height = size
    wide = direction in (Direction.LEFT, Direction.RIGHT)
    grown = (width * factor, height) if wide else (width, height * factor)
    assert can_outpaint((width, height), factor, direction) == fits(*grown)


def test_factors_outside_1_1_to_2_are_refused():
    for factor in (1.0, 1.05, 2.01, 3, True, "2"):
        try:
            outpaint((1024, 1024), factor)  # type: ignore[arg-type]
        except BadInput as error:
            assert "1.1 to 2" in str(error)
        else:
            raise AssertionError(f"factor {factor!r} was accepted")


@settings(max_examples=40, deadline=None)
@given(
    shapes(0.5, 2.0, most=400),
    st.one_of(st.none(), directions),
    st.integers(min_value=0, max_value=2**24 - 1),
)
def test_the_canvas_holds_the_resized_image_in_the_box_and_grey_around(size, direction, colour):
    width, height = size
    assume(can_outpaint((width, height), direction=direction))
    image = Image.new("RGB", (width, height), (colour >> 16, (colour >> 8) & 255, colour & 255))
    image.paste((255, 255, 255), (0, 0, max(1, width // 3), max(1, height // 3)))  # a corner mark
    plan = outpaint((width, height), direction=direction)
    canvas = compose(image, plan)
    left, top, right, bottom = plan.box
    assert canvas.size == plan.canvas and canvas.mode == "RGB"
    expected = image.resize((right - left, bottom - top), Image.Resampling.LANCZOS)
    assert canvas.crop(plan.box).tobytes() == expected.tobytes()
    around = canvas.copy()
    around.paste(NEW_AREA, plan.box)
    assert around.getextrema() == tuple((c, c) for c in NEW_AREA)


# -- Vary (Region) -----------------------------------------------------------------------------


@settings(max_examples=200)
@given(
    st.integers(min_value=3, max_value=2048),
    st.integers(min_value=3, max_value=2048),
    st.sets(st.sampled_from(list(Cell)), min_size=1),
)
def test_region_is_white_exactly_on_the_chosen_cells(width, height, cells):
    mask = region((width, height), cells)
    assert mask.mode == "L" and mask.size == (width, height)
    assert white_exactly_on(mask, [cell_box((width, height), c) for c in cells])


@given(st.integers(min_value=3, max_value=4096), st.integers(min_value=3, max_value=4096))
def test_the_nine_cells_tile_the_image_in_thirds(width, height):
    boxes = {cell: cell_box((width, height), cell) for cell in Cell}
    assert sum((r - left) * (b - t) for left, t, r, b in boxes.values()) == width * height
    left, top, right, bottom = boxes[Cell.MIDDLE_CENTER]
    assert abs(left - width / 3) <= 0.5 and abs(right - 2 * width / 3) <= 0.5
    assert abs(top - height / 3) <= 0.5 and abs(bottom - 2 * height / 3) <= 0.5
    assert boxes[Cell.TOP_LEFT][:2] == (0, 0) and boxes[Cell.BOTTOM_RIGHT][2:] == (width, height)


def test_the_centre_cell_is_the_centre_third_only():
    mask = region((1024, 1024), [Cell.MIDDLE_CENTER])
    assert white_exactly_on(mask, [(341, 341, 683, 683)])


def test_cells_are_named_and_checked():
    assert parse_cells(" middle-center , TOP-LEFT,") == {Cell.MIDDLE_CENTER, Cell.TOP_LEFT}
    assert check_cells(["bottom-right", Cell.TOP_CENTER]) == {Cell.BOTTOM_RIGHT, Cell.TOP_CENTER}
    assert (Cell.MIDDLE_CENTER.row, Cell.MIDDLE_CENTER.column) == (1, 1)
    assert (Cell.BOTTOM_LEFT.row, Cell.BOTTOM_LEFT.column) == (2, 0)
    assert Cell.TOP_RIGHT.label == "top right"
    for bad, words in (("", "at least one part"), ("middle", "named top-left, top-center")):
        try:
            parse_cells(bad)
        except BadInput as error:
            assert words in str(error)
        else:
            raise AssertionError(f"{bad!r} was accepted")
