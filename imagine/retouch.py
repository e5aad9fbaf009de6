"""Images made ready for the upscaler and for FLUX.1 Fill.

An image is checked as soon as it is given (``received``: its bytes, type and pixel caps, from
the header, no decoding), then decoded as every input image is (``imagine.inputs``: upright,
sRGB, no metadata, the decompression guards on), and sent as PNG: lossless, so a Space gets
exactly these pixels and a mask stays black and white. For Fill, the canvas and its mask are
built at a size the Space draws at as it is (``imagine.canvas``), so the mask's edge falls on
the pixels it was drawn on.

Decoding and encoding are CPU work: the engine runs everything but ``received`` in a thread.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from PIL import Image

from .canvas import KEEP, PAINT, Box, Cell, Direction, Size, compose, fill_size, outpaint, region
from .errors import BadInput
from .i18n import _
from .inputs import check_dimensions, check_input_image, load_input_image, png_bytes
from .media import safe_name

ImageInput = tuple[bytes, str] | bytes
"""An input image as the engine takes one: ``(bytes, filename)`` (gpt4free's), or bare bytes."""
MaskInput = ImageInput | Image.Image
"""A mask: an image file, or a Pillow image such as ``canvas.region`` makes."""

NOT_GIVEN_AS_BYTES = "An input image must be given as its bytes and a file name."


@dataclass(frozen=True, slots=True)
class Received:
    """An input image that passed the checks that need no decoding."""

    data: bytes
    name: str
    size: Size
    """As its header says (before EXIF orientation)."""


@dataclass(frozen=True, slots=True)
class FillImages:
    """What Fill is sent: the canvas and its mask (PNG, one size), and where the original is
    on the canvas (Zoom Out and Pan; None for a mask given or Vary (Region))."""

    canvas: bytes
    mask: bytes
    size: Size
    box: Box | None
    name: str = "image"

    def media(self) -> list[tuple[bytes, str]]:
        return [
            (self.canvas, safe_name(self.name, "png")),
            (self.mask, safe_name(f"{self.name}-mask", "png")),
        ]


def received(image: object, *, max_bytes: int) -> Received:
    """``image`` checked at once: bytes (and a file name), a PNG, JPEG, WebP or GIF by its
    bytes, within the byte and pixel caps; ``BadInput`` otherwise."""
    if isinstance(image, bytes | bytearray | memoryview):
        data, name = bytes(image), "image"
    elif (
        isinstance(image, tuple | list)
        and len(image) == 2
        and isinstance(image[0], bytes | bytearray | memoryview)
    ):
        data, name = bytes(image[0]), str(image[1] or "image")
    else:
        raise BadInput(NOT_GIVEN_AS_BYTES)
    _mime, size = check_input_image(data, max_bytes=max_bytes)
    stem = safe_name(name, "png").removesuffix(".png")
    return Received(data, stem, size)


def received_mask(mask: object, *, max_bytes: int) -> Received | Image.Image:
    """A mask checked at once: an image file as ``received``, or a Pillow image within the
    pixel caps."""
    if isinstance(mask, Image.Image):
        check_dimensions(*mask.size)
        return mask
    return received(mask, max_bytes=max_bytes)


def _pixels(image: Received, max_bytes: int) -> Image.Image:
    return load_input_image(image.data, max_bytes=max_bytes)


def upscale_image(image: Received, *, max_bytes: int) -> tuple[bytes, str]:
    """The image as the upscaler gets it: its pixels (safe, upright), as PNG."""
    return png_bytes(_pixels(image, max_bytes)), safe_name(image.name, "png")


def black_and_white(mask: Image.Image) -> Image.Image:
    """A mask as ``L``, every pixel ``PAINT`` or ``KEEP`` (light = paint; a transparent pixel
    counts as black, as in the Space's brush layer)."""
    if "A" in mask.getbands():
        rgba = mask.convert("RGBA")
        flat = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        flat.alpha_composite(rgba)
        mask = flat
    return mask.convert("L").point(lambda value: PAINT if value >= 128 else KEEP)


def fill_images(image: Received, mask: Received | Image.Image, *, max_bytes: int) -> FillImages:
    """An image and a mask of its size, brought to the Space's size together (the mask by
    nearest neighbour, so it stays black and white)."""
    picture = _pixels(image, max_bytes).convert("RGB")
    painted = black_and_white(mask if isinstance(mask, Image.Image) else _pixels(mask, max_bytes))
    if painted.size != picture.size:
        raise BadInput(
            _(
                "The mask must be the size of the image ({width}×{height}), "
                "not {mask_width}×{mask_height}.",
                width=picture.width,
                height=picture.height,
                mask_width=painted.width,
                mask_height=painted.height,
            )
        )
    size = fill_size(*picture.size)
    if picture.size != size:
        picture = picture.resize(size, Image.Resampling.LANCZOS)
        painted = painted.resize(size, Image.Resampling.NEAREST)
    if painted.getextrema() == (KEEP, KEEP):
        raise BadInput(_("The mask marks nothing to paint: white is where the image changes."))
    return FillImages(png_bytes(picture), png_bytes(painted), size, None, image.name)


def outpaint_images(
    image: Received, *, factor: float | None, direction: Direction | None, max_bytes: int
) -> FillImages:
    """Zoom Out or Pan: the canvas with the image in its box, and the mask (``canvas.outpaint``)."""
    picture = _pixels(image, max_bytes)
    plan = outpaint(picture.size, factor, direction)
    canvas = compose(picture, plan)
    return FillImages(png_bytes(canvas), png_bytes(plan.mask), plan.canvas, plan.box, image.name)


def region_images(image: Received, cells: Iterable[Cell], *, max_bytes: int) -> FillImages:
    """Vary (Region): the image at the Space's size, white on the chosen cells."""
    picture = _pixels(image, max_bytes).convert("RGB")
    size = fill_size(*picture.size)
    if picture.size != size:
        picture = picture.resize(size, Image.Resampling.LANCZOS)
    mask = region(size, cells)
    return FillImages(png_bytes(picture), png_bytes(mask), size, None, image.name)
