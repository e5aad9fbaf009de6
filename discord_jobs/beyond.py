"""Upscale, Zoom Out, Pan and Vary (Region) started from a result: the operation each button
means, the result's image read (its very pixels, losslessly) as the job's input, and the job
started in a new reply of its own, public or private as the presser's results are. Anyone
may press them, as anyone may press Vary; each makes one image and is charged as one.
"""

from __future__ import annotations

import aiohttp
import discord

from imagine.canvas import Direction
from imagine.inputs import InputImage
from imagine.operations import NO_FILL, Operation, Pan, Region, Upscale, ZoomOut
from imagine.store import JobRecord

from .earlier_input import InputSource
from .language import texts_of
from .launch import Launcher, Request
from .region import picker_embed, picker_view
from .render import NO_PINGS, PANS, Action
from .starting import (
    GONE,
    checked_image,
    counted,
    image_at,
    input_limit,
    nth_attachment,
    own_result_limit,
    refuse,
    start_job,
)

OPERATIONS: dict[Action, Operation] = {
    Action.UPSCALE: Upscale(),
    Action.ZOOM_OUT_2: ZoomOut(2.0),
    Action.ZOOM_OUT_1_5: ZoomOut(1.5),
    **{action: Pan(Direction(direction)) for direction, action in PANS.items()},
}
"""What each button without a question does (Custom Zoom and Vary (Region) ask first)."""


def operation_request(
    job: JobRecord,
    operation: Operation,
    image: InputImage,
    *,
    url: str,
    channel_id: int | None,
    message_id: int | None,
    prompt: str | None = None,
) -> Request:
    """The request for ``operation`` on ``job``'s image: its prompt unless another is given
    (Custom Zoom's and Vary (Region)'s modals), the image and where it is on Discord (for
    Retry and Reroll, and a worker, to read it again)."""
    return Request(
        prompt=job.prompt if prompt is None else prompt,
        source=operation.kind.value,
        kind=operation.kind,
        input=image,
        input_url=url,
        input_channel_id=channel_id,
        input_message_id=message_id,
        parent_id=job.id,
        image_index=0,  # a single result's one image
        flags=False,
        counted=True,
        operation=operation,
    )


async def start_operation(
    launcher: Launcher,
    session: aiohttp.ClientSession,
    interaction: discord.Interaction,
    job: JobRecord,
    operation: Operation,
    *,
    prompt: str | None = None,
    attachment: discord.Attachment | None = None,
    message: discord.Message | None = None,
) -> None:
    """``operation`` on the image of the result pressed (or of ``message``, whose
    ``attachment`` a modal kept), in a new reply; a refusal is private. Nothing is read when
    the bot has no backend for it."""
    message = message if message is not None else interaction.message
    attachment = attachment if attachment is not None else nth_attachment(interaction, 0)
    if attachment is None or message is None:
        await refuse(interaction, GONE)
        return
    if not operation.models(launcher.engine):
        await refuse(interaction, operation.unavailable())
        return
    safe = await checked_image(
        launcher,
        session,
        interaction,
        attachment,
        max_bytes=input_limit(interaction, message),
        lossless=True,
    )
    if safe is None:
        return
    request = operation_request(
        job,
        operation,
        safe,
        url=attachment.url,
        channel_id=message.channel.id,
        message_id=message.id,
        prompt=prompt,
    )
    await start_job(launcher, interaction, request)


async def start_region(
    launcher: Launcher,
    client: discord.Client,
    session: aiohttp.ClientSession,
    interaction: discord.Interaction,
    job: JobRecord,
    region: Region,
    prompt: str,
    source: InputSource,
) -> None:
    """Vary (Region) of the image a picker shows (``source``: one of our results, by its URL
    and message), in a new reply."""
    if not region.models(launcher.engine):
        await refuse(interaction, region.unavailable())
        return
    if not await counted(launcher, interaction):  # before reading the image
        return
    read = await image_at(
        client,
        session,
        interaction,
        source,
        max_bytes=own_result_limit(interaction),
        lossless=True,
    )
    if read is None:
        return
    request = operation_request(
        job,
        region,
        read.image,
        url=read.url,
        channel_id=source.channel_id,
        message_id=source.message_id,
        prompt=prompt,
    )
    await start_job(launcher, interaction, request)


async def open_picker(launcher: Launcher, interaction: discord.Interaction, job: JobRecord) -> None:
    """Vary (Region): the picker, privately, for the image of the result pressed."""
    attachment = nth_attachment(interaction, 0)
    message = interaction.message
    if attachment is None or message is None:
        await refuse(interaction, GONE)
        return
    if not launcher.engine.fill_models():
        await refuse(interaction, NO_FILL)
        return
    tr = texts_of(interaction)
    await interaction.response.send_message(
        embed=picker_embed(attachment.url, tr),
        view=picker_view(job.id, message.id, frozenset(), tr),
        ephemeral=True,
        allowed_mentions=NO_PINGS,
    )
