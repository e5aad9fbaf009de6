"""An earlier job's input image, read again: by Reroll and Retry of a job that started from an
image (the gateway), and by a worker running such a job (another process). Also an image of
ours known only by its URL and message (``read_input``: the one a Vary (Region) picker shows).

The job log keeps where the image is (its Discord attachment URL, and the message it was
posted in when there was one) and the SHA-256 of its bytes, never the bytes. Discord signs
attachment URLs for about a day (``ex`` in the query); past that its CDN answers 404. The
message is then fetched again (REST: ``GET /channels/{c}/messages/{m}``) for a fresh URL of
the same attachment, found by the id in the old URL's path. Whichever URL is read, the bytes
must hash to what the job recorded: what is read again is exactly what was accepted the first
time. That is also why it may be as large as any gateway could have accepted it
(``LARGEST_INPUT_BYTES``): the size was checked when the image was first read.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import aiohttp
import discord
from yarl import URL

from imagine.errors import BadInput, FetchError
from imagine.fetch import fetch_image
from imagine.i18n import _
from imagine.inputs import InputImage
from imagine.operations import lossless
from imagine.store import JobRecord

from .attachments import decode

log = logging.getLogger(__name__)

LARGEST_INPUT_BYTES = 100 * 2**20
"""The largest input any path accepts: one of the bot's own results on a server at boost
level 3, whose upload limit is 100 MiB (discord.py's ``Guild.filesize_limit``)."""
REFUSED = frozenset({401, 403, 404, 410})
"""Statuses with which Discord's CDN refuses an expired (or revoked) signed URL."""

UNAVAILABLE = _(
    "The image this started from is no longer available from Discord; start again from the image."
)
CHANGED = _("The image at that address has changed; start again from it.")
NO_MESSAGE = _(
    "The image this started from was attached to the command itself, and Discord's link to it "
    "has expired (after about a day); attach it again to start from it."
)
MESSAGE_GONE = _(
    "The message the image this started from was in is gone, or I cannot read it any more; "
    "start again from the image."
)


@dataclass(frozen=True, slots=True)
class EarlierInput:
    image: InputImage
    url: str
    """Where it was read: a fresh URL when the stored one had expired (a new job keeps it)."""


@dataclass(frozen=True, slots=True)
class InputSource:
    """Where an image is on Discord: its attachment URL, the message it is attached to (when
    there is one: fetched again for a fresh URL), and the SHA-256 of its bytes when known
    (None: the first read, nothing to compare with)."""

    url: str | None
    channel_id: int | None = None
    message_id: int | None = None
    sha256: str | None = None

    @classmethod
    def of(cls, job: JobRecord) -> InputSource:
        return cls(job.input_url, job.input_channel_id, job.input_message_id, job.input_sha256)


async def read_earlier_input(
    client: discord.Client,
    session: aiohttp.ClientSession,
    job: JobRecord,
    *,
    max_bytes: int = LARGEST_INPUT_BYTES,
) -> EarlierInput:
    """``job``'s input image, read again and checked against its hash; ``BadInput`` (worded
    for the member) when it cannot be, or is not the same image. ``client`` is any logged-in
    client (REST is enough): it fetches the message again when the URL has expired. An
    Upscale, Zoom Out, Pan or Vary (Region) keeps the image's very pixels (``lossless``)."""
    return await read_input(
        client,
        session,
        InputSource.of(job),
        max_bytes=max_bytes,
        lossless=lossless(job.kind),
        what=f"job {job.id}",
    )


async def read_input(
    client: discord.Client,
    session: aiohttp.ClientSession,
    source: InputSource,
    *,
    max_bytes: int = LARGEST_INPUT_BYTES,
    lossless: bool = False,
    what: str = "an input",
) -> EarlierInput:
    """The image at ``source``, read (from its message fetched again once the URL has
    expired) and checked against its hash when one is known; ``BadInput`` as above."""
    if not source.url:
        raise BadInput(UNAVAILABLE)
    url = source.url
    try:
        data, filename = await _download(session, url, max_bytes)
    except FetchError as exc:
        if exc.status not in REFUSED:
            log.info("%s: its image could not be read again: %s", what, exc)
            raise BadInput(UNAVAILABLE) from None
        url = await fresh_url(client, source, what)
        try:
            data, filename = await _download(session, url, max_bytes)
        except FetchError as again:
            log.info("%s: its image's fresh URL failed too: %s", what, again)
            raise BadInput(UNAVAILABLE) from None
    image = await decode(data, filename=filename, max_bytes=max_bytes, lossless=lossless)
    if source.sha256 and image.sha256 != source.sha256:
        raise BadInput(CHANGED)
    return EarlierInput(image, url)


async def fresh_url(client: discord.Client, source: InputSource, what: str = "an input") -> str:
    """A fresh URL of the source's attachment, from its message fetched again."""
    channel_id, message_id = source.channel_id, source.message_id
    if channel_id is None or message_id is None:
        raise BadInput(NO_MESSAGE)  # an ephemeral upload (an option): nothing to fetch again
    try:
        message = await client.get_partial_messageable(channel_id).fetch_message(message_id)
    except discord.HTTPException as exc:
        log.info("%s: the message of its image could not be fetched: %r", what, exc)
        raise BadInput(MESSAGE_GONE) from None
    wanted = attachment_id(source.url or "")
    for attachment in message.attachments:
        if attachment.id == wanted:
            return attachment.url
    raise BadInput(MESSAGE_GONE)


def attachment_id(url: str) -> int | None:
    """The attachment id in a Discord attachment URL
    (``…/attachments/{channel}/{attachment}/{filename}``)."""
    parts = URL(url).path.split("/")
    return int(parts[-2]) if len(parts) >= 3 and parts[-2].isdigit() else None


async def _download(session: aiohttp.ClientSession, url: str, max_bytes: int) -> tuple[bytes, str]:
    fetched = await fetch_image(session, url, origin=url, max_bytes=max_bytes)
    try:
        return fetched.data, fetched.filename
    finally:
        fetched.close()
