"""Conversations as the engine sees them, and the prompt an image model gets from them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypedDict

Role = Literal["system", "user", "assistant"]


class Message(TypedDict):
    """One turn of a conversation: ``{"role": "user", "content": "a red fox"}``.

    ``content`` is a string or a list of parts (``{"type": "text", "text": ...}``); only text
    parts count for an image prompt. ``Message(role=..., content=...)`` builds one, as in G4F.
    """

    role: Role
    content: str | list[dict[str, Any]]


def message_text(content: Any) -> str:
    """The text of a message's content, whether a string or a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence) and not isinstance(content, bytes | bytearray):
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, Mapping) and part.get("type", "text") == "text":
                text = part.get("text")
                if isinstance(text, str):
                    texts.append(text)
        return "\n".join(texts)
    return ""


def format_image_prompt(
    messages: Iterable[Mapping[str, Any]] | None, prompt: str | None = None
) -> str:
    """The prompt to draw: ``prompt`` when given, else the user's latest messages.

    The latest messages are the last unbroken run of ``user`` messages (an assistant message
    ends the run: what came before it was already answered), each stripped, joined by newlines.
    """
    if prompt is not None:
        return prompt
    run: list[str] = []
    for message in messages or ():
        if not isinstance(message, Mapping):
            continue
        if message.get("role") == "user":
            text = message_text(message.get("content")).strip()
            if text:
                run.append(text)
        else:
            run = []
    return "\n".join(run)


@dataclass(frozen=True, slots=True)
class ChatEntry:
    """A chat message as the conversation builder needs it, whatever the chat platform.

    ``for_user`` is, for the bot's own messages, the user it was answering (None if unknown);
    ``pending`` marks a placeholder that is not an answer yet (a "thinking…" reply).
    """

    author_id: int
    text: str
    for_user: int | None = None
    pending: bool = False


def conversation(entries: Iterable[ChatEntry], *, user_id: int, bot_id: int) -> list[Message]:
    """The conversation between one user and the bot, oldest first.

    The user's messages are ``user`` turns and the bot's answers to that user ``assistant``
    turns; everyone else's messages (and the bot's answers to others, and its pending
    placeholders) are left out, so a bystander's "nice!" does not erase the user's idea.
    """
    turns: list[Message] = []
    for entry in entries:
        if entry.author_id == user_id:
            turns.append(Message(role="user", content=entry.text))
        elif entry.author_id == bot_id and not entry.pending and entry.for_user in (None, user_id):
            turns.append(Message(role="assistant", content=entry.text or "[image]"))
    return turns
