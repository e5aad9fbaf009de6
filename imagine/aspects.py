"""Aspect ratios: which ``W:H`` a user may ask for, and the image size each one means.

People think in shapes (``16:9``), backends in pixels. A shape becomes a size of about one
megapixel (1024x1024's worth, as SDXL and FLUX count it), each side a multiple of ``step``:
64 suits every backend here (FLUX wants multiples of 8 or 32, SD 3.5 of 32). The rule is
SDXL's bucket rule, so the fixed choices come out as the sizes those models were trained on:

===== ========= =====================
ratio size      off by
===== ========= =====================
1:1   1024x1024 0
16:9  1344x768  1.6%
9:16  768x1344  1.6%
4:3   1152x896  3.6%
3:4   896x1152  3.6%
3:2   1216x832  2.6%
2:3   832x1216  2.6%
21:9  1536x640  2.9%
===== ========= =====================
"""

from __future__ import annotations

import math
from functools import lru_cache

from .errors import BadInput
from .i18n import _

ASPECT_CHOICES = ("1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3", "21:9")
"""The ``/imagine`` option's choices (names fixed in DESIGN.md)."""


def _reduced(aspect: str) -> tuple[int, int]:
    width, height = (int(term) for term in aspect.split(":"))
    divisor = math.gcd(width, height)
    return width // divisor, height // divisor


_CHOICE_BY_SHAPE = {_reduced(choice): choice for choice in ASPECT_CHOICES}

MAX_TERM = 21
"""The largest W or H of a typed ``W:H`` (after reducing it): enough for 21:9."""
MAX_RATIO = 4.0
"""Wider or taller than 4:1 is a strip, not a picture; no backend here draws it well."""
MIN_SIDE = 256
MAX_SIDE = 2048
RATIO_TOLERANCE = 0.04
"""A size counts as that shape when its ratio is within 4% of it (every fixed choice is)."""

ASPECT_RULES = _(
    "W:H with whole numbers from 1 to {most} and a shape between 1:4 and 4:1 (e.g. {examples})",
    most=MAX_TERM,
    examples=", ".join(ASPECT_CHOICES[:4]),
)


def not_a_ratio(value: str) -> str:
    return _(
        "The aspect ratio must be {rules}, not {value}.", rules=ASPECT_RULES, value=_shown(value)
    )


def check_aspect(text: str) -> str:
    """``text`` in its usual spelling: the fixed choice with the same shape (``32:18`` and
    ``1920:1080`` are ``16:9``, ``7:3`` is ``21:9``), else reduced (``10:4`` is ``5:2``).
    ``BadInput`` when it is not one of ``ASPECT_RULES``."""
    value = text.strip()
    width_text, colon, height_text = value.partition(":")
    if not (colon and width_text.isdecimal() and height_text.isdecimal()):
        raise BadInput(not_a_ratio(value))
    width, height = int(width_text), int(height_text)
    if width == 0 or height == 0:
        raise BadInput(not_a_ratio(value))
    divisor = math.gcd(width, height)
    width, height = width // divisor, height // divisor
    if width > MAX_TERM or height > MAX_TERM:
        raise BadInput(not_a_ratio(value))
    if not 1 / MAX_RATIO <= width / height <= MAX_RATIO:
        raise BadInput(
            _(
                "The aspect ratio {ratio} is too extreme; it must be between 1:4 and 4:1.",
                ratio=f"{width}:{height}",
            )
        )
    return _CHOICE_BY_SHAPE.get((width, height), f"{width}:{height}")


def size_for_aspect(aspect: str, *, step: int = 64, megapixels: float = 1.0) -> tuple[int, int]:
    """``(width, height)`` for ``aspect`` (checked with ``check_aspect``): sides multiples of
    ``step`` within 256..2048, area at most ``megapixels`` (of 2**20 pixels).

    SDXL's rule: of the sizes within 4% of the ratio, the largest that fits the area; the
    nearest ratio only when a coarse ``step`` leaves none that close.
    """
    width, height = _reduced(check_aspect(aspect))
    if step < 1 or megapixels <= 0:
        raise ValueError("step must be at least 1 and megapixels above 0")
    return _size(width, height, step, megapixels)


@lru_cache(maxsize=256)
def _size(width: int, height: int, step: int, megapixels: float) -> tuple[int, int]:
    target = megapixels * 2**20
    wanted = math.log(width / height)
    first = -(-MIN_SIDE // step) * step
    sides = range(first, MAX_SIDE + 1, step)
    sizes = [(w, h) for w in sides for h in sides if w * h <= target]
    if not sizes:
        raise ValueError(f"no {step}-pixel multiple from {MIN_SIDE} to {MAX_SIDE} fits")

    def error(size: tuple[int, int]) -> float:
        return abs(math.log(size[0] / size[1]) - wanted)

    close = [size for size in sizes if error(size) <= math.log1p(RATIO_TOLERANCE)]
    if close:
        return max(close, key=lambda size: (size[0] * size[1], -error(size)))
    return min(sizes, key=lambda size: (error(size), -size[0] * size[1]))


def _shown(value: str) -> str:
    """A user's text inside an error message: quoted, and short."""
    return f"“{value[:24]}…”" if len(value) > 24 else f"“{value}”"
