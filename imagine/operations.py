"""Upscale, Zoom Out, Pan and Vary (Region) as jobs: each operation a type of its own.

A job of one of these kinds starts from an image (its input, as an edit does) and keeps what
was asked on its row: Upscale's and Zoom Out's ``factor``, Pan's ``direction``, Vary
(Region)'s ``cells``. ``operation_of`` reads that back, so Retry, Reroll and a worker in
another process run exactly the operation that was asked; ``Operation.run`` is the one place
that picks the engine's method for it. Each also says what it makes (``size``: the job's
width and height; ``BadInput`` for a shape the model cannot take) and what it is called
(``title``: "Zoomed out 1.5×").
"""

from __future__ import annotations

import math
from collections.abc import AsyncGenerator, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .canvas import (
    MAX_ZOOM,
    Cell,
    Direction,
    Size,
    check_cells,
    check_factor,
    fill_size,
    outpaint_size,
    parse_cells,
)
from .engine import Engine
from .errors import BadInput
from .i18n import Number, Text, _, joined
from .providers.base import clean_prompt
from .providers.upscale import UPSCALE_FACTOR
from .responses import Response
from .store import JobKind, JobRecord

ImageInput = tuple[bytes, str]
Stream = AsyncGenerator[Response, None]
"""Statuses, failover notices, maybe previews, then one ``ImageResponse`` (as ``generate``)."""
NO_UPSCALER = _("Upscaling is not set up on this bot.")
NO_FILL = _("Zoom Out, Pan and Vary (Region) are not set up on this bot.")
PAN_TITLES = {
    Direction.LEFT: _("Panned left"),
    Direction.RIGHT: _("Panned right"),
    Direction.UP: _("Panned up"),
    Direction.DOWN: _("Panned down"),
}


def factor_number(factor: float) -> Number:
    """A factor as people read it: ``2``, ``1.5``, ``1.25`` (no trailing zeros)."""
    digits = next((d for d in range(3) if math.isclose(round(factor, d), factor)), 2)
    return Number(factor, digits)


def parse_factor(text: str) -> float:
    """A zoom factor as typed: ``1.5``, ``1,5``, ``1.5x``; ``BadInput`` unless it is a number
    from 1.1 to 2 (kept to two decimals)."""
    cleaned = text.strip().lower().rstrip("x×").strip().replace(",", ".")
    try:
        value = float(cleaned)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise BadInput(_("The zoom factor must be a number from 1.1 to 2."))
    return check_factor(round(value, 2))


@dataclass(frozen=True, slots=True)
class Route:
    """How one job's operation goes through the engine: the model (and so its backends), the
    seed asked (None: random), backends it must not use, and whose quota it spends."""

    model: str
    seed: int | None = None
    avoid: set[str] = field(default_factory=set)
    hf_token: str | None = field(default=None, repr=False)

    def fill(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "seed": self.seed,
            "avoid": self.avoid,
            "hf_token": self.hf_token,
        }


def fill_prompt(text: str) -> str:
    """What Fill is told: the prompt cleaned as every prompt is, or nothing (Fill continues
    the picture from itself)."""
    return clean_prompt(text) if text.strip() else ""


@dataclass(frozen=True, slots=True)
class Upscale:
    """The same picture, ``factor`` times larger (the upscaler's own rule may make it less:
    it first brings a shorter side above 768 down to 768)."""

    factor: float = UPSCALE_FACTOR
    kind: ClassVar[JobKind] = JobKind.UPSCALE
    paints: ClassVar[bool] = False
    """Whether it paints from a prompt: an upscale does not (its prompt is the original's,
    kept to be shown)."""

    def columns(self) -> dict[str, Any]:
        return {"factor": self.factor}

    def title(self) -> Text:
        return _("Upscaled {factor}×", factor=factor_number(self.factor))

    def models(self, engine: Engine) -> list[str]:
        return engine.upscale_models()

    def unavailable(self) -> Text:
        return NO_UPSCALER

    def size(self, of: Size) -> Size:
        width, height = of
        return max(1, round(width * self.factor)), max(1, round(height * self.factor))

    def run(self, engine: Engine, image: ImageInput, prompt: str, route: Route) -> Stream:
        # No seed: the upscaler's own, so the same image upscales the same way.
        return engine.upscale(
            image, self.factor, model=route.model, avoid=route.avoid, hf_token=route.hf_token
        )


@dataclass(frozen=True, slots=True)
class ZoomOut:
    """Zoom Out 2x, 1.5x or a Custom Zoom: the image centred on a canvas ``factor`` times its
    size, the new border painted in."""

    factor: float
    kind: ClassVar[JobKind] = JobKind.ZOOM_OUT
    paints: ClassVar[bool] = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "factor", check_factor(self.factor))

    def columns(self) -> dict[str, Any]:
        return {"factor": self.factor}

    def title(self) -> Text:
        return _("Zoomed out {factor}×", factor=factor_number(self.factor))

    def models(self, engine: Engine) -> list[str]:
        return engine.fill_models()

    def unavailable(self) -> Text:
        return NO_FILL

    def size(self, of: Size) -> Size:
        return outpaint_size(of, self.factor)

    def run(self, engine: Engine, image: ImageInput, prompt: str, route: Route) -> Stream:
        return engine.zoom_out(image, prompt, factor=self.factor, **route.fill())


@dataclass(frozen=True, slots=True)
class Pan:
    """⬅️ ➡️ ⬆️ ⬇️: the canvas grown by half of the image towards ``direction``, painted in."""

    direction: Direction
    kind: ClassVar[JobKind] = JobKind.PAN
    paints: ClassVar[bool] = True

    def columns(self) -> dict[str, Any]:
        return {"direction": self.direction.value}

    def title(self) -> Text:
        return PAN_TITLES[self.direction]

    def models(self, engine: Engine) -> list[str]:
        return engine.fill_models()

    def unavailable(self) -> Text:
        return NO_FILL

    def size(self, of: Size) -> Size:
        return outpaint_size(of, direction=self.direction)

    def run(self, engine: Engine, image: ImageInput, prompt: str, route: Route) -> Stream:
        return engine.pan(image, self.direction, prompt, **route.fill())


@dataclass(frozen=True, slots=True)
class Region:
    """Vary (Region): the chosen cells of the image's 3×3 grid repainted."""

    cells: frozenset[Cell]
    kind: ClassVar[JobKind] = JobKind.REGION
    paints: ClassVar[bool] = True

    @classmethod
    def of(cls, cells: Iterable[Cell | str]) -> Region:
        """``BadInput`` for no cell, or a name that is not a cell's."""
        return cls(check_cells(cells))

    def ordered(self) -> list[Cell]:
        """The cells in reading order (top left first)."""
        return [cell for cell in Cell if cell in self.cells]

    def columns(self) -> dict[str, Any]:
        return {"cells": ",".join(self.ordered())}

    def title(self) -> Text:
        return _("Region: {cells}", cells=joined(", ", (c.label for c in self.ordered())))

    def models(self, engine: Engine) -> list[str]:
        return engine.fill_models()

    def unavailable(self) -> Text:
        return NO_FILL

    def size(self, of: Size) -> Size:
        return fill_size(*of)

    def run(self, engine: Engine, image: ImageInput, prompt: str, route: Route) -> Stream:
        return engine.vary_region(image, self.cells, prompt, **route.fill())


Operation = Upscale | ZoomOut | Pan | Region
KINDS = frozenset({JobKind.UPSCALE, JobKind.ZOOM_OUT, JobKind.PAN, JobKind.REGION})
"""The job kinds that are operations on an image (``operation_of`` gives theirs)."""


def operation_of(job: JobRecord) -> Operation | None:
    """The operation a job of one of these kinds was asked (None for any other job)."""
    if job.kind == JobKind.UPSCALE:
        return Upscale(job.factor or UPSCALE_FACTOR)
    if job.kind == JobKind.ZOOM_OUT:
        return ZoomOut(job.factor if job.factor is not None else MAX_ZOOM)
    if job.kind == JobKind.PAN:
        return Pan(Direction(job.direction or ""))
    if job.kind == JobKind.REGION:
        return Region(parse_cells(job.cells or ""))
    return None


def lossless(kind: JobKind | str) -> bool:
    """Whether a job of this kind keeps its input image's very pixels (PNG) rather than a
    JPEG of them: Upscale is to sharpen exactly the picture shown, and Fill keeps what is not
    masked as it was sent."""
    return kind in KINDS
