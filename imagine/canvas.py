"""Canvases and masks for FLUX.1 Fill (Zoom Out, Pan, Vary (Region)), as pure functions.

The Fill Space does not draw at the size it is sent: it works one out from the background
(the long side 1024, the short side in proportion, floored to a multiple of 8, the shape held
between 9:16 and 16:9) and FLUX's pipeline floors that again to a multiple of 16. Anything
else is resized on the way in, and a mask's edge would land between pixels. So every canvas
here is built at a size the Space keeps as it is (``fill_size``: long side 1024, short side
the nearest multiple of 16, at least 576), and the original's box is placed on whole pixels of
that canvas: the mask (``L`` mode, white = paint) is white exactly outside the box, and the
result comes back at the canvas's size. The original is resized to its box, so its shape may
change by under 1.5% (the short side's rounding to 16).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from enum import StrEnum
from typing import NamedTuple

from PIL import Image

from .errors import BadInput
from .i18n import Number, Text, _

FILL_LONG_SIDE = 1024
"""The Space's fixed long side."""
FILL_STEP = 16
"""FLUX works on 16-pixel multiples (its pipeline floors the Space's multiples of 8 to 16)."""
FILL_MIN_SHORT = 576
"""1024 × 9/16: the Space squeezes anything wider than 16:9 (or taller than 9:16)."""
MIN_ZOOM, MAX_ZOOM = 1.1, 2.0
"""Zoom Out and Pan factors allowed (Custom Zoom's range; the buttons use 1.5 and 2)."""
ZOOM_FACTOR = 2.0
PAN_FACTOR = 1.5
"""Pan grows the canvas by half of the image on the chosen side."""
NEW_AREA = (128, 128, 128)
"""What a canvas holds where the image is not: a neutral grey (FLUX Fill zeroes the masked
pixels anyway; grey is what that zero is)."""
PAINT, KEEP = 255, 0

Size = tuple[int, int]
Box = tuple[int, int, int, int]
"""``(left, top, right, bottom)``, right and bottom exclusive (Pillow's boxes)."""


class Direction(StrEnum):
    """Where Pan adds the new area."""

    LEFT = "left"
    RIGHT = "right"
    UP = "up"
    DOWN = "down"


class Cell(StrEnum):
    """One of the 3×3 cells Vary (Region) repaints; the value is its name (``middle-center``)."""

    TOP_LEFT = "top-left"
    TOP_CENTER = "top-center"
    TOP_RIGHT = "top-right"
    MIDDLE_LEFT = "middle-left"
    MIDDLE_CENTER = "middle-center"
    MIDDLE_RIGHT = "middle-right"
    BOTTOM_LEFT = "bottom-left"
    BOTTOM_CENTER = "bottom-center"
    BOTTOM_RIGHT = "bottom-right"

    @property
    def row(self) -> int:
        return list(Cell).index(self) // 3

    @property
    def column(self) -> int:
        return list(Cell).index(self) % 3

    @property
    def label(self) -> Text:
        """The cell's name for people (a select's option)."""
        return _CELL_LABELS[self]


_CELL_LABELS = {
    Cell.TOP_LEFT: _("top left"),
    Cell.TOP_CENTER: _("top centre"),
    Cell.TOP_RIGHT: _("top right"),
    Cell.MIDDLE_LEFT: _("middle left"),
    Cell.MIDDLE_CENTER: _("centre"),
    Cell.MIDDLE_RIGHT: _("middle right"),
    Cell.BOTTOM_LEFT: _("bottom left"),
    Cell.BOTTOM_CENTER: _("bottom centre"),
    Cell.BOTTOM_RIGHT: _("bottom right"),
}


def check_cells(cells: Iterable[Cell | str]) -> frozenset[Cell]:
    """The cells chosen (by ``Cell`` or name); ``BadInput`` for none, or for a name that is
    not a cell's (naming those that are)."""
    chosen: set[Cell] = set()
    for cell in cells:
        try:
            chosen.add(Cell(cell.strip().lower() if isinstance(cell, str) else cell))
        except ValueError:
            raise BadInput(
                _(
                    "The parts of the image are named {names}; not {cell}.",
                    names=", ".join(Cell),
                    cell=repr(cell),
                )
            ) from None
    if not chosen:
        raise BadInput(_("Choose at least one part of the image to repaint."))
    return frozenset(chosen)


def parse_cells(text: str) -> frozenset[Cell]:
    """``"middle-center,top-left"`` as cells (``check_cells``)."""
    return check_cells(part for part in text.split(",") if part.strip())


def _round(value: float) -> int:
    """Half up (Python's ``round`` goes to even)."""
    return math.floor(value + 0.5)


def fill_size(width: float, height: float) -> Size:
    """The size to build a canvas of this shape at: one the Fill Space draws at as it is (long
    side 1024, short side the nearest multiple of 16). ``BadInput`` for a shape wider than
    16:9 or taller than 9:16, which the Space would squeeze."""
    if not (width > 0 and height > 0):
        raise BadInput(_("An image needs a width and a height."))
    long, short = max(width, height), min(width, height)
    side = _round(FILL_LONG_SIDE * short / long / FILL_STEP) * FILL_STEP
    if side < FILL_MIN_SHORT:
        raise BadInput(
            _(
                "That would be {ratio}:1, too wide or too tall for the fill model, which draws "
                "shapes from 9:16 to 16:9.",
                ratio=Number(long / short, 2),
            )
        )
    return (FILL_LONG_SIDE, side) if width >= height else (side, FILL_LONG_SIDE)


def fits(width: float, height: float) -> bool:
    """Whether the fill model can take a canvas of this shape (see ``fill_size``)."""
    try:
        fill_size(width, height)
    except BadInput:
        return False
    return True


def can_outpaint(
    size: Size, factor: float | None = None, direction: Direction | None = None
) -> bool:
    """Whether ``outpaint`` takes this image: Zoom Out keeps the shape (so any shape the
    model takes); Pan makes it wider or taller, so a landscape image may not pan sideways."""
    try:
        outpaint_size(size, factor, direction)
    except BadInput:
        return False
    return True


def space_fill_size(width: int, height: int) -> Size:
    """The size FLUX.1-Fill-dev draws at for a background of ``width`` x ``height``: its app's
    ``calculate_optimal_dimensions``, then the pipeline's floor to 16. ``fill_size`` is chosen
    so that this leaves it unchanged."""
    ratio = width / height
    if ratio > 1:
        w, h = FILL_LONG_SIDE, round(FILL_LONG_SIDE / ratio)
    else:
        w, h = round(FILL_LONG_SIDE * ratio), FILL_LONG_SIDE
    w, h = w // 8 * 8, h // 8 * 8
    if w / h > 16 / 9:
        w = int(h * 16 / 9 // 8 * 8)
    elif w / h < 9 / 16:
        h = int(w / (9 / 16) // 8 * 8)
    return w // FILL_STEP * FILL_STEP, h // FILL_STEP * FILL_STEP


class Outpaint(NamedTuple):
    """A Zoom Out or Pan: the canvas's size, where the original goes (its box), and the mask
    (white exactly outside the box)."""

    canvas: Size
    box: Box
    mask: Image.Image


def check_factor(factor: object) -> float:
    """A Zoom Out (or Pan) factor: a number from 1.1 to 2."""
    if isinstance(factor, bool) or not isinstance(factor, int | float):
        raise BadInput(_("The zoom factor must be a number from 1.1 to 2."))
    value = float(factor)
    if not (MIN_ZOOM - 1e-9 <= value <= MAX_ZOOM + 1e-9):
        raise BadInput(
            _("The zoom factor must be a number from 1.1 to 2, not {factor}.", factor=f"{value:g}")
        )
    return value


def _plan(
    size: Size, factor: float | None, direction: Direction | None
) -> tuple[float, Direction | None, Size]:
    width, height = size
    if width < 1 or height < 1:
        raise BadInput(_("An image needs a width and a height."))
    if direction is not None:
        direction = Direction(direction)
    default = ZOOM_FACTOR if direction is None else PAN_FACTOR
    grow = check_factor(default if factor is None else factor)
    wide = direction in (None, Direction.LEFT, Direction.RIGHT)
    tall = direction in (None, Direction.UP, Direction.DOWN)
    canvas = fill_size(width * (grow if wide else 1), height * (grow if tall else 1))
    return grow, direction, canvas


def outpaint_size(
    size: Size, factor: float | None = None, direction: Direction | None = None
) -> Size:
    """The canvas ``outpaint`` would build (the size of the result); ``BadInput`` likewise."""
    return _plan(size, factor, direction)[2]


def outpaint(
    size: Size, factor: float | None = None, direction: Direction | None = None
) -> Outpaint:
    """Zoom Out (``direction`` None: the image centred on a canvas ``factor`` times its size,
    2 by default) or Pan (the canvas ``factor`` times longer towards ``direction``, 1.5 by
    default, the image at the far side), at ``fill_size``. ``BadInput`` for a factor outside
    1.1..2, or a canvas wider than 16:9 or taller than 9:16."""
    grow, direction, (cw, ch) = _plan(size, factor, direction)
    wide = direction in (None, Direction.LEFT, Direction.RIGHT)
    tall = direction in (None, Direction.UP, Direction.DOWN)
    bw = _round(cw / grow) if wide else cw
    bh = _round(ch / grow) if tall else ch
    if direction is None:
        left, top = (cw - bw) // 2, (ch - bh) // 2
    else:
        left = cw - bw if direction is Direction.LEFT else 0
        top = ch - bh if direction is Direction.UP else 0
    box = (left, top, left + bw, top + bh)
    mask = Image.new("L", (cw, ch), PAINT)
    mask.paste(KEEP, box)
    return Outpaint((cw, ch), box, mask)


def cell_box(size: Size, cell: Cell) -> Box:
    """The pixels of one cell: the thirds' edges rounded to the nearest pixel."""
    width, height = size
    x = [(2 * i * width + 3) // 6 for i in range(4)]
    y = [(2 * i * height + 3) // 6 for i in range(4)]
    return x[cell.column], y[cell.row], x[cell.column + 1], y[cell.row + 1]


def region(size: Size, cells: Iterable[Cell | str]) -> Image.Image:
    """Vary (Region)'s mask: white on the chosen cells of a 3×3 grid, black elsewhere."""
    chosen = check_cells(cells)
    width, height = size
    if width < 3 or height < 3:
        raise BadInput(_("The image is too small to split into 3×3 parts."))
    mask = Image.new("L", size, KEEP)
    for cell in chosen:
        mask.paste(PAINT, cell_box(size, cell))
    return mask


def compose(image: Image.Image, plan: Outpaint) -> Image.Image:
    """The canvas: the image resized into the plan's box, ``NEW_AREA`` around it."""
    canvas = Image.new("RGB", plan.canvas, NEW_AREA)
    left, top, right, bottom = plan.box
    placed = image.convert("RGB")
    if placed.size != (right - left, bottom - top):
        placed = placed.resize((right - left, bottom - top), Image.Resampling.LANCZOS)
    canvas.paste(placed, (left, top))
    return canvas
