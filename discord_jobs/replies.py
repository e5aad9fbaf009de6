"""Where a job shows itself on Discord: an interaction's response, or a plain message.

Both implement ``imagine.outcomes.Reply``. An interaction response is edited through its
webhook token, which Discord honours for 15 minutes; a job that outlives its token is
delivered as a normal channel message replying to the user (or, where the bot may not post,
by DM), never lost.
"""

from __future__ import annotations

import io
import logging
import time
from typing import Any, cast

import discord

from imagine.i18n import Shown, Text, Texts, _, texts
from imagine.outcomes import Delivery, Described, Failure, StatusLine
from imagine.store import JobRecord

from .render import (
    NO_OFFERS,
    NO_PINGS,
    Action,
    Offers,
    describe_view,
    described_embed,
    failure_embed,
    job_view,
    result_embed,
    result_view,
    status_content,
)

log = logging.getLogger(__name__)

CANCELLED_BY = _("Cancelled by {name}.")
STARTING = _("Starting")

TOKEN_LIFETIME = 15 * 60.0
TOKEN_MARGIN = 20.0
"""Stop using a token this long before Discord would refuse it."""
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024


PREVIEW_NAME = "preview.jpg"


def image_files(delivery: Delivery) -> list[discord.File]:
    """Every picture as its own attachment (a grid shows as Discord's mosaic), in order."""
    files = []
    for picture in delivery.pictures:
        if picture.image is not None:
            data = cast(io.BufferedIOBase, picture.image.open())  # a spooled file: read like one
            files.append(discord.File(data, filename=picture.image.filename))
    return files


def status_fields(job: JobRecord, line: StatusLine) -> dict[str, Any]:
    """A status edit; with a new preview, the preview replaces the attachments shown."""
    content = status_content(job, line.text, texts(job.language))
    fields: dict[str, Any] = {"content": content}
    if line.preview is not None:
        fields["attachments"] = [discord.File(io.BytesIO(line.preview), filename=PREVIEW_NAME)]
    return fields


def replying_to(
    reference: discord.Message | discord.MessageReference | None,
) -> dict[str, Any]:
    """``send`` arguments that reply to ``reference``, when there is one."""
    return {} if reference is None else {"reference": reference}


def as_new_message(fields: dict) -> dict:
    """Edit fields turned into ``send`` arguments (``attachments`` → ``files``, no Nones)."""
    fields = dict(fields)
    files = fields.pop("attachments", None)
    if files:
        for file in files:
            file.reset()
        fields["files"] = files
    return {k: v for k, v in fields.items() if v is not None}


class JobReply:
    """The endings of a job, as message fields; subclasses say where they go (``_end``).
    Every ending sets the attachments, so a preview shown while the job ran never stays."""

    job: JobRecord
    requester: str | None
    offers: Offers  # what the bot can do with a result: which buttons it gets

    async def _end(self, **fields: Any) -> None:
        raise NotImplementedError

    @property
    def tr(self) -> Texts:
        """The requester's language: a result seen by a whole channel is in theirs."""
        return texts(self.job.language)

    async def deliver(self, delivery: Delivery) -> None:
        await self._end(
            content=None,
            embed=result_embed(delivery, self.requester, self.tr),
            attachments=image_files(delivery),
            view=result_view(delivery, self.offers, tr=self.tr),
        )

    async def described(self, described: Described) -> None:
        await self._end(
            content=None,
            embed=described_embed(described, self.requester, self.tr),
            attachments=[],
            view=describe_view(self.job.id, len(described.prompts)),
        )

    async def fail(self, failure: Failure) -> None:
        await self._end(
            content=None,
            embed=failure_embed(failure, self.tr),
            attachments=[],
            view=job_view(self.job.id, Action.RETRY, tr=self.tr),
        )

    async def cancelled(self, job: JobRecord, by: str | None) -> None:
        text = Text(CANCELLED_BY, {"name": by}) if by else _("Cancelled.")
        await self._end(
            content=self.tr(text),
            embed=None,
            attachments=[],
            view=job_view(job.id, Action.RETRY, tr=self.tr),
        )

    def late_note(self, mention: str, fields: dict[str, Any]) -> str:
        """What a result posted as a new message (the token is gone) starts with."""
        note = self.tr(_("{mention}, here is your image.", mention=mention))
        if not fields.get("embed"):
            note = mention
        if fields.get("content"):
            note = f"{note} {fields['content']}"
        return note


class MessageReply(JobReply):
    """A job shown in a message the bot sends itself (DMs)."""

    def __init__(
        self,
        channel: discord.abc.Messageable,
        job: JobRecord,
        *,
        requester: str | None = None,
        reference: discord.Message | None = None,
        upload_limit: int = DEFAULT_UPLOAD_LIMIT,
        offers: Offers = NO_OFFERS,
    ) -> None:
        self.channel = channel
        self.job = job
        self.requester = requester
        self.offers = offers
        self.reference = reference
        self.upload_limit = upload_limit
        self.message: discord.Message | None = None

    async def open(self, text: Shown = STARTING) -> discord.Message:
        """Send the one reply that will be edited from now on."""
        self.message = await self.channel.send(
            status_content(self.job, text, self.tr),
            view=job_view(self.job.id, Action.CANCEL, tr=self.tr),
            mention_author=False,
            allowed_mentions=NO_PINGS,
            **replying_to(self.reference),
        )
        return self.message

    async def _end(self, **fields) -> None:
        if self.message is None:
            self.message = await self.channel.send(
                mention_author=False,
                allowed_mentions=NO_PINGS,
                **replying_to(self.reference),
                **as_new_message(fields),
            )
        else:
            await self.message.edit(allowed_mentions=NO_PINGS, **fields)

    async def status(self, line: StatusLine) -> None:
        await self._end(**status_fields(self.job, line))


class InteractionReply(JobReply):
    """A job shown in the response to a slash command, menu or button press."""

    def __init__(
        self,
        interaction: discord.Interaction,
        job: JobRecord,
        *,
        requester: str | None = None,
        message_id: int | None = None,
        offers: Offers = NO_OFFERS,
    ) -> None:
        self.interaction = interaction
        self.job = job
        self.requester = requester
        self.offers = offers
        self.message_id = message_id
        self.upload_limit = interaction.filesize_limit or DEFAULT_UPLOAD_LIMIT
        self.expires_at = interaction.created_at.timestamp() + TOKEN_LIFETIME - TOKEN_MARGIN
        self._cancel_shown = False

    def token_valid(self) -> bool:
        return time.time() < self.expires_at

    async def status(self, line: StatusLine) -> None:
        if not self.token_valid():
            return  # statuses are not worth a new message; the ending will find its way
        fields = status_fields(self.job, line)
        if not self._cancel_shown:
            fields["view"] = job_view(self.job.id, Action.CANCEL, tr=self.tr)
        await self.interaction.edit_original_response(allowed_mentions=NO_PINGS, **fields)
        self._cancel_shown = True

    async def _end(self, **fields) -> None:
        if self.token_valid():
            try:
                await self.interaction.edit_original_response(allowed_mentions=NO_PINGS, **fields)
                return
            except discord.HTTPException as exc:
                if exc.status >= 500 or exc.code not in (10008, 10015, 50027):
                    raise
                log.info("job %s: the response can no longer be edited (%s)", self.job.id, exc.code)
        await self._deliver_late(**fields)

    async def _deliver_late(self, **fields) -> None:
        """The token is gone: post in the channel, replying to the user, or else DM them."""
        user = self.interaction.user
        fields["content"] = self.late_note(user.mention, fields)
        channel_id = self.interaction.channel_id
        public = not self.job.private  # a private result never lands in the channel
        if public and channel_id is not None and self.interaction.guild_id is not None:
            reference = None
            if self.message_id is not None:
                reference = discord.MessageReference(
                    message_id=self.message_id, channel_id=channel_id, fail_if_not_exists=False
                )
            channel = self.interaction.client.get_partial_messageable(
                channel_id, guild_id=self.interaction.guild_id
            )
            try:
                await channel.send(
                    mention_author=False,
                    allowed_mentions=NO_PINGS,
                    **replying_to(reference),
                    **as_new_message(fields),
                )
                return
            except discord.HTTPException as exc:
                log.info("job %s: cannot post in the channel (%s); sending a DM", self.job.id, exc)
        await user.send(allowed_mentions=NO_PINGS, **as_new_message(fields))


class WebhookReply(JobReply):
    """A job's reply edited from a process without the gateway (``python worker.py``).

    An interaction's reply is edited through its token, a webhook token that any process may
    use for 15 minutes; past it, or for a message the bot sent itself (DMs), through the bot's
    REST API (``client`` is logged in, never connected to the gateway). What is shown is the
    same as from the gateway: the same ``JobReply`` endings and the same status fields.
    """

    def __init__(
        self,
        client: discord.Client,
        job: JobRecord,
        *,
        requester: str | None = None,
        offers: Offers = NO_OFFERS,
        upload_limit: int = DEFAULT_UPLOAD_LIMIT,
    ) -> None:
        self.client = client
        self.job = job
        self.requester = requester
        self.offers = offers
        self.upload_limit = upload_limit
        self.expires_at = (job.token_expires_at or 0.0) - TOKEN_MARGIN
        self._cancel_shown = False

    @property
    def own_message(self) -> bool:
        """A message the bot sent (a DM job), not an interaction's response."""
        return self.job.application_id is None

    def token_valid(self) -> bool:
        job = self.job
        return bool(job.interaction_token and job.application_id) and time.time() < self.expires_at

    def _webhook(self) -> discord.Webhook:
        assert self.job.application_id is not None and self.job.interaction_token is not None
        return discord.Webhook.partial(
            self.job.application_id, self.job.interaction_token, client=self.client
        )

    def _target(self) -> int:
        # The response's own id when known; else Discord's name for it.
        return self.job.message_id or cast(int, "@original")

    def _message(self) -> discord.PartialMessage | None:
        job = self.job
        if not (job.channel_id and job.message_id):
            return None
        channel = self.client.get_partial_messageable(job.channel_id, guild_id=job.guild_id)
        return channel.get_partial_message(job.message_id)

    async def fetch(self) -> discord.Message | None:
        """The reply as it is now (None when it cannot be reached)."""
        if self.token_valid():
            return await self._webhook().fetch_message(self._target())
        message = self._message()
        return None if message is None else await message.fetch()

    async def status(self, line: StatusLine) -> None:
        fields = status_fields(self.job, line)
        if not self._cancel_shown:
            fields["view"] = job_view(self.job.id, Action.CANCEL, tr=self.tr)
        message = self._message() if self.own_message else None
        if self.token_valid():
            await self._webhook().edit_message(self._target(), allowed_mentions=NO_PINGS, **fields)
        elif message is not None:
            await message.edit(allowed_mentions=NO_PINGS, **fields)
        else:
            return  # an expired token: statuses are not worth a new message
        self._cancel_shown = True

    async def _end(self, **fields) -> None:
        if self.own_message:
            message = self._message()
            if message is not None:
                await message.edit(allowed_mentions=NO_PINGS, **fields)
                return
        elif self.token_valid():
            try:
                await self._webhook().edit_message(
                    self._target(), allowed_mentions=NO_PINGS, **fields
                )
                return
            except discord.HTTPException as exc:
                if exc.status >= 500 or exc.code not in (10008, 10015, 50027):
                    raise
                log.info("job %s: the response can no longer be edited (%s)", self.job.id, exc.code)
        await self._deliver_late(**fields)

    async def _deliver_late(self, **fields) -> None:
        """As ``InteractionReply._deliver_late``: in the channel replying to the user, else
        by DM."""
        job = self.job
        fields["content"] = self.late_note(f"<@{job.user_id}>", fields)
        if not job.private and job.channel_id is not None and job.guild_id is not None:
            reference = None
            if job.message_id is not None:
                reference = discord.MessageReference(
                    message_id=job.message_id, channel_id=job.channel_id, fail_if_not_exists=False
                )
            channel = self.client.get_partial_messageable(job.channel_id, guild_id=job.guild_id)
            try:
                await channel.send(
                    mention_author=False,
                    allowed_mentions=NO_PINGS,
                    **replying_to(reference),
                    **as_new_message(fields),
                )
                return
            except discord.HTTPException as exc:
                log.info("job %s: cannot post in the channel (%s); sending a DM", job.id, exc)
        dm = await self.client.create_dm(discord.Object(job.user_id))
        await dm.send(allowed_mentions=NO_PINGS, **as_new_message(fields))
