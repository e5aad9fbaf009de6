"""Reading a channel's recent messages as the conversation between one user and the bot."""

from __future__ import annotations

import discord

from imagine.messages import ChatEntry, Message, conversation


def message_text(message: discord.Message) -> str:
    """What a message says; for the bot's own results, the prompt its embed shows."""
    if message.content:
        return message.content
    for embed in message.embeds:
        if embed.title or embed.description:
            return embed.description or embed.title or ""
    return ""


def chat_entry(message: discord.Message) -> ChatEntry:
    for_user = None
    if message.interaction_metadata is not None:
        for_user = message.interaction_metadata.user.id
    elif message.reference is not None and isinstance(message.reference.resolved, discord.Message):
        for_user = message.reference.resolved.author.id
    return ChatEntry(
        author_id=message.author.id,
        text=message_text(message),
        for_user=for_user,
        pending=message.flags.loading,
    )


async def read_conversation(
    channel: discord.abc.Messageable, *, user_id: int, bot_id: int, limit: int
) -> list[Message]:
    """The last ``limit`` messages of ``channel``, oldest first, as user/assistant turns."""
    if limit <= 0:
        return []
    newest_first = [m async for m in channel.history(limit=limit)]
    entries = [chat_entry(m) for m in reversed(newest_first)]
    return conversation(entries, user_id=user_id, bot_id=bot_id)
