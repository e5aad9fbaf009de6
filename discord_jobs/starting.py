"""Starting a job from any interaction (a command, a menu, a button, a modal): check, admit,
launch, or refuse ephemerally. Shared by the cogs so each stays a thin parser of its own
interactions.
"""

from __future__ import annotations

import logging

import aiohttp
import discord

from imagine.errors import BadInput, message_of
from imagine.i18n import Shown, _
from imagine.inputs import MAX_BYTES, InputImage
from imagine.store import JobRecord

from .attachments import check_declared, read_attachment
from .earlier_input import (
    LARGEST_INPUT_BYTES,
    EarlierInput,
    InputSource,
    read_earlier_input,
    read_input,
)
from .language import language_of_interaction, member_of, texts_of
from .launch import Launcher, Refusal, Request
from .render import NO_PINGS

log = logging.getLogger(__name__)

GONE = _("That image is no longer in this message.")
EVERYWHERE = discord.app_commands.AppCommandContext(
    guild=True, dm_channel=True, private_channel=True
)
ANY_INSTALL = discord.app_commands.AppInstallationType(guild=True, user=True)
"""Servers, the bot's DM and private channels; installed to a server or to a user. Set on each
command: discord.py applies class-level ``allowed_contexts`` only to a ``GroupCog``."""


async def refuse(interaction: discord.Interaction, why: Shown | BaseException) -> None:
    """Say no, privately, in the member's language. After a public "thinking…"
    acknowledgement, that placeholder is removed first, so no reply is left stuck on it."""
    message = texts_of(interaction)(message_of(why) if isinstance(why, BaseException) else why)
    if not interaction.response.is_done():
        await interaction.response.send_message(message, ephemeral=True, allowed_mentions=NO_PINGS)
        return
    if interaction.response.type is discord.InteractionResponseType.deferred_channel_message:
        try:
            await interaction.delete_original_response()
        except discord.HTTPException:
            log.debug("could not remove the thinking placeholder", exc_info=True)
    await interaction.followup.send(message, ephemeral=True, allowed_mentions=NO_PINGS)


def may_manage(interaction: discord.Interaction, owner_id: int) -> bool:
    """The requester, or a member who may manage messages here."""
    if interaction.user.id == owner_id:
        return True
    return interaction.guild_id is not None and interaction.permissions.manage_messages


def age_restricted(channel: object) -> bool:
    """Whether ``channel`` is age-restricted (a server's channel marked so, or a thread in
    one); never a DM or group DM, nor a channel discord.py could not resolve."""
    is_nsfw = getattr(channel, "is_nsfw", None)
    return bool(is_nsfw()) if callable(is_nsfw) else False


async def start_job(launcher: Launcher, interaction: discord.Interaction, request: Request) -> None:
    """Check, admit and launch a job in this interaction's reply (or refuse, ephemerally)."""
    try:
        plan = await launcher.plan(
            user=interaction.user,
            guild_id=interaction.guild_id,
            channel_id=interaction.channel_id,
            request=request,
            member=member_of(interaction),
            language=language_of_interaction(interaction),
            nsfw=age_restricted(interaction.channel),
        )
        admitted = await launcher.admit(plan)
    except Refusal as refusal:
        await refuse(interaction, refusal)
        return
    await launcher.launch(interaction, plan, admitted)


def input_limit(interaction: discord.Interaction, message: discord.Message | None) -> int:
    """The largest image this request may start from: Discord's default upload limit
    (10 MiB), or, for one of the bot's own results, as much as this interaction may upload:
    a result on a boosted server may be up to its upload limit (50 or 100 MiB), and Vary or
    Edit of it must not be refused. Decoding stays bounded by the pixel cap."""
    me = interaction.client.user
    if message is None or me is None or message.author.id != me.id:
        return MAX_BYTES
    return own_result_limit(interaction)


def own_result_limit(interaction: discord.Interaction) -> int:
    """The largest of the bot's own results this interaction may start from (``input_limit``)."""
    return max(MAX_BYTES, min(interaction.filesize_limit or 0, LARGEST_INPUT_BYTES))


def nth_attachment(interaction: discord.Interaction, index: int) -> discord.Attachment | None:
    """The ``index``-th image of the message the button is on (a grid's images, in order)."""
    message = interaction.message
    if message is None:
        return None
    images = [a for a in message.attachments if a.filename != "preview.jpg"]
    return images[index] if 0 <= index < len(images) else None


async def image_from(
    session: aiohttp.ClientSession,
    interaction: discord.Interaction,
    attachment: discord.Attachment,
    *,
    max_bytes: int = MAX_BYTES,
    lossless: bool = False,
) -> InputImage | None:
    """An attachment made safe to send to a backend, after acknowledging the interaction
    ("thinking…", since reading it may take longer than Discord's 3 s); None when it was
    refused (the member has been told why, privately). What Discord declares of the file
    (its size, type, dimensions) is checked first, so such a refusal needs no download and
    no public placeholder. ``max_bytes``: see ``input_limit``; ``lossless``: kept as PNG
    (see ``imagine.inputs``)."""
    try:
        check_declared(attachment, max_bytes=max_bytes)
    except BadInput as exc:
        await refuse(interaction, exc)
        return None
    if not interaction.response.is_done():
        await interaction.response.defer(thinking=True, ephemeral=member_of(interaction).private)
    try:
        return await read_attachment(session, attachment, max_bytes=max_bytes, lossless=lossless)
    except BadInput as exc:
        await refuse(interaction, exc)
        return None


async def counted(launcher: Launcher, interaction: discord.Interaction) -> bool:
    """The request counted against the member's and the server's bursts before anything is
    read on its behalf (a download, a decode); False when a limit refused it (the member has
    been told, privately). The ``Request`` that follows says ``counted=True``."""
    try:
        await launcher.count(interaction.user.id, interaction.guild_id)
    except Refusal as refusal:
        await refuse(interaction, refusal)
        return False
    return True


async def checked_image(
    launcher: Launcher,
    session: aiohttp.ClientSession,
    interaction: discord.Interaction,
    attachment: discord.Attachment,
    *,
    max_bytes: int = MAX_BYTES,
    lossless: bool = False,
) -> InputImage | None:
    """The request counted first (reading an image is work on the asker's behalf: a burst of
    presses is refused before each costs a download), then the attachment made safe; None
    when either refused (the member has been told, privately). The ``Request`` made from the
    image says ``counted=True``."""
    if not await counted(launcher, interaction):
        return None
    return await image_from(
        session, interaction, attachment, max_bytes=max_bytes, lossless=lossless
    )


def first_image(message: discord.Message) -> tuple[int, discord.Attachment] | None:
    """The first image attached to ``message``, with its place among the attachments."""
    for index, attachment in enumerate(message.attachments):
        if (attachment.content_type or "").startswith("image/") or attachment.width:
            return index, attachment
    return None


async def earlier_image(
    client: discord.Client,
    session: aiohttp.ClientSession,
    interaction: discord.Interaction,
    job: JobRecord,
) -> EarlierInput | None:
    """The input image of an earlier job, read again from Discord (a fresh URL when the one
    kept has expired) and checked against the hash the job log kept, after acknowledging the
    interaction; None when it cannot be (the member has been told why, privately)."""
    if not interaction.response.is_done():
        await interaction.response.defer(thinking=True, ephemeral=member_of(interaction).private)
    try:
        return await read_earlier_input(client, session, job)
    except BadInput as exc:
        await refuse(interaction, exc)
        return None


async def image_at(
    client: discord.Client,
    session: aiohttp.ClientSession,
    interaction: discord.Interaction,
    source: InputSource,
    *,
    max_bytes: int,
    lossless: bool = False,
) -> EarlierInput | None:
    """An image of ours known by its URL and message (a Vary (Region) picker's), read after
    acknowledging the interaction; None when it cannot be (the member has been told why,
    privately)."""
    if not interaction.response.is_done():
        await interaction.response.defer(thinking=True, ephemeral=member_of(interaction).private)
    try:
        return await read_input(client, session, source, max_bytes=max_bytes, lossless=lossless)
    except BadInput as exc:
        await refuse(interaction, exc)
        return None
