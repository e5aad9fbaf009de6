"""Starting a job from any interaction (a command, a menu, a button, a modal): check, admit,
launch, or refuse ephemerally. Shared by the cogs so each stays a thin parser of its own
interactions.
"""

from __future__ import annotations

import asyncio
import functools
import logging

import aiohttp
import discord

from imagine.errors import BadInput, FetchError, message_of
from imagine.fetch import fetch_image
from imagine.i18n import Shown, _
from imagine.inputs import InputImage, prepare_input_image

from .attachments import DECODERS, check_declared, read_attachment
from .language import language_of_interaction, member_of, texts_of
from .launch import Launcher, Refusal, Request
from .render import NO_PINGS

log = logging.getLogger(__name__)

MAX_INPUT_BYTES = 10 * 1024 * 1024
"""The largest image a job may start from (Discord's own default upload limit)."""

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
        )
        ticket = await launcher.admit(plan)
    except Refusal as refusal:
        await refuse(interaction, refusal)
        return
    await launcher.launch(interaction, plan, ticket)


async def image_from(
    session: aiohttp.ClientSession, interaction: discord.Interaction, attachment: discord.Attachment
) -> InputImage | None:
    """An attachment made safe to send to a backend, after acknowledging the interaction
    ("thinking…", since reading it may take longer than Discord's 3 s); None when it was
    refused (the member has been told why, privately). What Discord declares of the file
    (its size, type, dimensions) is checked first, so such a refusal needs no download and
    no public placeholder."""
    try:
        check_declared(attachment)
    except BadInput as exc:
        await refuse(interaction, exc)
        return None
    if not interaction.response.is_done():
        await interaction.response.defer(thinking=True, ephemeral=member_of(interaction).private)
    try:
        return await read_attachment(session, attachment)
    except BadInput as exc:
        await refuse(interaction, exc)
        return None


async def checked_image(
    launcher: Launcher,
    session: aiohttp.ClientSession,
    interaction: discord.Interaction,
    attachment: discord.Attachment,
) -> InputImage | None:
    """The limits first (reading an image is work on the asker's behalf), then the
    attachment made safe; None when either refused (the member has been told, privately)."""
    try:
        await launcher.precheck(interaction.user.id, interaction.guild_id)
    except Refusal as refusal:
        await refuse(interaction, refusal)
        return None
    return await image_from(session, interaction, attachment)


def first_image(message: discord.Message) -> tuple[int, discord.Attachment] | None:
    """The first image attached to ``message``, with its place among the attachments."""
    for index, attachment in enumerate(message.attachments):
        if (attachment.content_type or "").startswith("image/") or attachment.width:
            return index, attachment
    return None


async def image_from_url(
    session: aiohttp.ClientSession,
    interaction: discord.Interaction,
    url: str,
    *,
    sha256: str | None,
) -> InputImage | None:
    """The input image of an earlier job, read back from the Discord attachment URL it came
    from and checked against the hash the job log kept; None when it cannot be (the member
    has been told why, privately)."""
    if not interaction.response.is_done():
        await interaction.response.defer(thinking=True, ephemeral=member_of(interaction).private)
    try:
        fetched = await fetch_image(session, url, origin=url, max_bytes=MAX_INPUT_BYTES)
        try:
            data = fetched.data
        finally:
            fetched.close()
        prepare = functools.partial(prepare_input_image, data, filename=fetched.filename)
        image = await asyncio.get_running_loop().run_in_executor(DECODERS, prepare)
    except (FetchError, BadInput) as exc:
        log.info("an earlier input image could not be read again: %s", exc)
        await refuse(
            interaction,
            _(
                "The image this started from is no longer available from Discord; "
                "start again from the image."
            ),
        )
        return None
    if sha256 and image.sha256 != sha256:
        await refuse(interaction, _("The image at that address has changed; start again from it."))
        return None
    return image
