"""Reading a Discord attachment as an input image, without trusting the file.

Discord's own description of the attachment is checked first (its size, type and
dimensions), so an oversized or non-image upload costs no download at all. The bytes then
come from the attachment's ``url`` exactly as Discord gave it, never from a link in a prompt,
under ``imagine.fetch``'s discipline: a hard size cap while reading (the declared size could
lie), a time limit, and no redirect off that URL's origin. ``Attachment.read()`` is not used:
it reads the whole body, however large. Then ``imagine.inputs`` checks, decodes and
re-encodes the image in a small thread pool, off the event loop, within a time limit of its
own (waiting for a free decoder included), so a flood of images cannot hold requests for ever.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from concurrent.futures import ThreadPoolExecutor

import aiohttp
import discord

from imagine.errors import BadInput, FetchError, size_text
from imagine.fetch import fetch_image
from imagine.i18n import _
from imagine.inputs import (
    MAX_BYTES,
    MAX_INPUT_PIXELS,
    MAX_SIDE,
    NOT_AN_IMAGE,
    InputImage,
    check_dimensions,
    check_file_size,
    prepare_input_image,
)

log = logging.getLogger(__name__)

TIME_LIMIT = 30.0
DECODERS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="input-image")
"""At most two images decode at once: a 16-megapixel image takes about 64 MB while it does,
and the bot shares two cores with everything else."""
DECODE_TIME_LIMIT = 20.0
"""Seconds an image may take to be decoded, waiting for a free decoder included (one within
the pixel cap takes about a second)."""


async def read_attachment(
    session: aiohttp.ClientSession,
    attachment: discord.Attachment,
    *,
    max_bytes: int = MAX_BYTES,
    max_side: int = MAX_SIDE,
    max_pixels: int = MAX_INPUT_PIXELS,
    time_limit: float = TIME_LIMIT,
    proxy: str | None = None,
    lossless: bool = False,
) -> InputImage:
    """The attachment as a safe input image (``lossless``: as PNG, see ``imagine.inputs``);
    ``BadInput`` (worded for its sender) when it is too large, not an image, or cannot be
    downloaded."""
    check_declared(attachment, max_bytes=max_bytes, max_side=max_side, max_pixels=max_pixels)
    url = attachment.url
    try:
        fetched = await fetch_image(
            session, url, origin=url, max_bytes=max_bytes, time_limit=time_limit, proxy=proxy
        )
    except FetchError as exc:
        raise BadInput(_reworded(exc, max_bytes=max_bytes, time_limit=time_limit)) from None
    try:
        data = fetched.data  # bytes, so a cancelled caller cannot close the file under a thread
    finally:
        fetched.close()
    return await decode(
        data,
        filename=attachment.filename,
        max_bytes=max_bytes,
        max_side=max_side,
        max_pixels=max_pixels,
        lossless=lossless,
    )


async def decode(
    data: bytes,
    *,
    filename: str,
    max_bytes: int = MAX_BYTES,
    max_side: int = MAX_SIDE,
    max_pixels: int = MAX_INPUT_PIXELS,
    lossless: bool = False,
) -> InputImage:
    """``prepare_input_image`` in the decoders' pool, within ``DECODE_TIME_LIMIT``: past it
    the member is told (``BadInput``) and a decode still waiting for the pool never starts
    (one already running finishes in its thread, bounded by the pixel cap)."""
    prepare = functools.partial(
        prepare_input_image,
        data,
        filename=filename,
        max_bytes=max_bytes,
        max_side=max_side,
        max_pixels=max_pixels,
        lossless=lossless,
    )
    try:
        async with asyncio.timeout(DECODE_TIME_LIMIT):
            return await asyncio.get_running_loop().run_in_executor(DECODERS, prepare)
    except TimeoutError:
        log.info("decoding %s took longer than %gs", filename, DECODE_TIME_LIMIT)
        raise BadInput(
            _(
                "Reading that image took longer than {seconds}s; try a smaller one, "
                "or again in a minute.",
                seconds=f"{DECODE_TIME_LIMIT:g}",
            )
        ) from None


def check_declared(
    attachment: discord.Attachment,
    *,
    max_bytes: int = MAX_BYTES,
    max_side: int = MAX_SIDE,
    max_pixels: int = MAX_INPUT_PIXELS,
) -> None:
    """``BadInput`` when what Discord says of the attachment already rules it out: its
    size, a content type that is not an image, or its width and height (when Discord
    reports them). Nothing is downloaded."""
    check_file_size(attachment.size, max_bytes=max_bytes)
    declared = (attachment.content_type or "").partition(";")[0].strip().lower()
    if declared and not declared.startswith("image/"):
        raise BadInput(NOT_AN_IMAGE)
    if attachment.width and attachment.height:
        check_dimensions(
            attachment.width, attachment.height, max_side=max_side, max_pixels=max_pixels
        )


def _reworded(error: FetchError, *, max_bytes: int, time_limit: float) -> str:
    """``fetch_image``'s words are about a backend's result; these are about your file."""
    text = str(error)
    if "not an image" in text:
        return NOT_AN_IMAGE
    if "larger than" in text:
        return _("That image is over the {limit} limit.", limit=size_text(max_bytes))
    if "took longer" in text:
        return _(
            "Downloading that image from Discord took longer than {seconds}s; try again.",
            seconds=f"{time_limit:g}",
        )
    log.info("attachment download failed: %s", text)
    return _("That image could not be downloaded from Discord; try sending it again.")
