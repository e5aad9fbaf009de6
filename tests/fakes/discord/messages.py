"""Messages: where they are kept (every version), how they are announced to the gateway
(MESSAGE_CREATE/UPDATE/DELETE), channel history, and what users post.

Creating or editing a message from a request body is ``bodies.MessageBodies``' job; this
module only stores what it is handed, snapshots each version and tells the gateway.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any, Protocol

from .cdn import Cdn, Upload, as_attachment
from .errors import DiscordAPIError
from .models import Channel, MessageRecord, Snapshot, snowflake_time
from .protocol import MAX_ATTACHMENTS
from .state import DiscordState

__all__ = ["MessageEvents", "MessageStore", "reference_json"]


class MessageEvents(Protocol):
    """Where message events go (the gateway, to every session whose intents cover them)."""

    def message_event(self, event: str, record: MessageRecord) -> None: ...


def reference_json(target: MessageRecord) -> dict[str, Any]:
    """The ``message_reference`` of a reply to ``target``."""
    ref = {"type": 0, "message_id": str(target.id), "channel_id": str(target.channel_id)}
    if target.guild_id is not None:
        ref["guild_id"] = str(target.guild_id)
    return ref


class MessageStore:
    """Every message by id and per channel, oldest first."""

    def __init__(self, state: DiscordState, events: MessageEvents, cdn: Cdn) -> None:
        self.state = state
        self.events = events
        self.cdn = cdn
        self.messages: dict[int, MessageRecord] = {}
        self._by_channel: dict[int, list[MessageRecord]] = {}

    def message(self, channel_id: int, message_id: int | str) -> MessageRecord:
        """A visible message of that channel, else 404 Unknown Message."""
        try:
            record = self.messages[int(message_id)]
        except (KeyError, ValueError):
            raise DiscordAPIError(404, 10008, "Unknown Message") from None
        if record.channel_id != channel_id or record.deleted or record.ephemeral:
            raise DiscordAPIError(404, 10008, "Unknown Message")
        return record

    def channel_history(self, channel_id: int) -> list[MessageRecord]:
        """Visible messages of a channel, oldest first (no deleted, no ephemeral)."""
        return [
            m for m in self._by_channel.get(channel_id, []) if not m.deleted and not m.ephemeral
        ]

    def new_bot_message(self, channel: Channel, **extra: Any) -> MessageRecord:
        """A message authored by the bot (not stored yet)."""
        record = MessageRecord(
            id=self.state.snowflake(),
            channel_id=channel.id,
            guild_id=channel.guild_id,
            author=self.state.bot_user,
            **extra,
        )
        record.created_at = snowflake_time(record.id)
        return record

    def store_new(self, record: MessageRecord) -> None:
        self.messages[record.id] = record
        self._by_channel.setdefault(record.channel_id, []).append(record)
        if not record.ephemeral:
            channel = self.state.channels.get(record.channel_id)
            if channel is not None:
                channel.last_message_id = record.id
        self._snapshot(record)
        self.events.message_event("MESSAGE_CREATE", record)
        self.state.changed()

    def store_edit(self, record: MessageRecord) -> dict[str, Any]:
        """Keep the edited version; returns its JSON (what the edit route answers)."""
        data = self._snapshot(record)
        self.events.message_event("MESSAGE_UPDATE", record)
        self.state.changed()
        return data

    def store_delete(self, record: MessageRecord) -> None:
        record.deleted = True
        self.events.message_event("MESSAGE_DELETE", record)
        self.state.changed()

    def _snapshot(self, record: MessageRecord) -> dict[str, Any]:
        data = record.to_json()
        record.history.append(Snapshot(time.monotonic(), data))
        return data

    def post_user_message(
        self,
        channel_id: int,
        author: dict[str, Any],
        content: str,
        *,
        mentions_bot: bool = False,
        reply_to: MessageRecord | None = None,
        attachments: Iterable[Upload] = (),
    ) -> MessageRecord:
        """A user writes in a channel: stored, then dispatched as MESSAGE_CREATE.

        ``attachments``: files as the drivers take them (``(filename, bytes)``,
        ``(filename, bytes, {"size": ...})``, a ``FakeAttachment``, bare bytes), stored on
        the CDN in order and listed in the message JSON, so a message command on this
        message resolves it with them.
        """
        uploads = [as_attachment(a) for a in attachments]
        if len(uploads) > MAX_ATTACHMENTS:
            raise ValueError(f"a message carries at most {MAX_ATTACHMENTS} attachments")
        channel = self.state.channel(channel_id)
        bot_id = self.state.bot_user_id
        self.state.users.setdefault(int(author["id"]), author)
        if mentions_bot and f"<@{bot_id}>" not in content:
            content = f"<@{bot_id}> {content}"
        if channel.guild_id is not None:
            self.state.add_member(channel.guild_id, author)
        record = MessageRecord(
            id=self.state.snowflake(),
            channel_id=channel_id,
            guild_id=channel.guild_id,
            author=author,
            content=content,
        )
        record.created_at = snowflake_time(record.id)
        record.attachments = [self.cdn.store(channel_id, upload) for upload in uploads]
        if reply_to is not None:
            record.type = 19
            record.referenced = reply_to
            record.replied_user_id = int(reply_to.author["id"])
            record.message_reference = reference_json(reply_to)
        self.state.resolve_mentions(record)
        self.store_new(record)
        return record
