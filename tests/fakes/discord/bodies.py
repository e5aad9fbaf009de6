"""Message create/edit bodies, read and applied the way Discord validates them.

A body is JSON or multipart (``payload_json`` plus ``files[n]`` parts). Applying it to a
message is all or nothing: content (2000), embeds (10, ``attachment://name`` resolved to the
CDN url), components (numbered), ``allowed_mentions`` (validated), settable flags, and
attachments with Discord's keep/replace rule — ``attachments`` in the body lists what the
message keeps (existing ids) and describes new ``files[n]`` (``{"id": n}``); files not listed
are appended; without ``attachments`` an edit keeps every old file and appends the new ones.
Uploads over the interaction's ``attachment_size_limit`` are a 413, and an empty message a
400 50006.
"""

from __future__ import annotations

import itertools
import json
import re
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from .cdn import Cdn, FakeAttachment
from .components import number_components
from .errors import DiscordAPIError, form_error
from .models import MessageRecord
from .protocol import (
    DEFAULT_ATTACHMENT_LIMIT,
    FLAG_EPHEMERAL,
    FLAG_LOADING,
    MAX_ATTACHMENTS,
    MAX_CONTENT,
    MAX_EMBEDS,
    SETTABLE_FLAGS,
)
from .state import DiscordState

__all__ = ["Files", "MessageBodies", "read_body"]

#: Uploaded files by their ``files[n]`` index: (filename, bytes).
Files = dict[int, tuple[str, bytes]]


async def read_body(request: web.Request) -> tuple[dict[str, Any], Files]:
    """JSON or multipart (``payload_json`` + ``files[n]``) body -> (payload, files)."""
    files: Files = {}
    if request.content_type == "multipart/form-data":
        payload: dict[str, Any] = {}
        reader = await request.multipart()
        loose = itertools.count(1000)
        while True:
            part = await reader.next()
            if part is None:
                break
            name = part.name or ""
            if name == "payload_json":
                payload = json.loads(await part.text())
                continue
            data = bytes(await part.read(decode=False))
            match = re.fullmatch(r"files\[(\d+)\]", name)
            index = int(match.group(1)) if match else next(loose)
            files[index] = (part.filename or f"file{index}", data)
        return payload, files
    raw = await request.read()
    if not raw:
        return {}, files
    try:
        body = json.loads(raw)
    except ValueError:
        raise DiscordAPIError(400, 50109, "The request body contains invalid JSON.") from None
    if not isinstance(body, dict):
        raise form_error("_root", "DICT_TYPE_CONVERT", "Only dictionaries may be used.")
    return body, files


class MessageBodies:
    """Applies create/edit bodies to messages (their files go to the CDN)."""

    def __init__(self, state: DiscordState, cdn: Cdn) -> None:
        self.state = state
        self.cdn = cdn

    def apply(
        self,
        record: MessageRecord,
        payload: dict[str, Any],
        files: Files,
        *,
        creating: bool,
        size_limit: int = DEFAULT_ATTACHMENT_LIMIT,
        allow_ephemeral: bool = False,
        keep_loading: bool = False,
    ) -> None:
        """Validate a create/edit body, then apply it to ``record`` (all or nothing)."""
        content = record.content
        if "content" in payload:
            content = payload["content"] or ""
            if not isinstance(content, str):
                content = str(content)
            if len(content) > MAX_CONTENT:
                raise form_error(
                    "content", "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_CONTENT} or fewer in length."
                )
        embeds = record.embeds
        if "embeds" in payload:
            embeds = [dict(e) for e in payload["embeds"] or []]
            if len(embeds) > MAX_EMBEDS:
                raise form_error(
                    "embeds", "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_EMBEDS} or fewer in length."
                )
        components = record.components
        if "components" in payload:
            components = number_components(payload["components"] or [])
        allowed_mentions = record.allowed_mentions
        if "allowed_mentions" in payload:
            allowed_mentions = payload["allowed_mentions"]
            if allowed_mentions is not None:
                _validate_allowed_mentions(allowed_mentions)
        flags = record.flags
        if "flags" in payload and payload["flags"] is not None:
            requested = int(payload["flags"])
            settable = SETTABLE_FLAGS | (FLAG_EPHEMERAL if allow_ephemeral and creating else 0)
            flags = (flags & ~SETTABLE_FLAGS) | (requested & settable)
        if not keep_loading:
            flags &= ~FLAG_LOADING
        ephemeral = bool(flags & FLAG_EPHEMERAL)
        has_files = bool(files) or "attachments" in payload
        attachments = record.attachments
        if has_files:
            attachments = self._attachments(
                record.channel_id,
                record.attachments,
                payload.get("attachments"),
                files,
                size_limit=size_limit,
                ephemeral=ephemeral,
            )
        embeds = [_resolve_embed(e, attachments) for e in embeds]
        empty = not (content or embeds or attachments or components)
        touched = creating or "content" in payload or "embeds" in payload or has_files
        if empty and touched and not flags & FLAG_LOADING:
            raise DiscordAPIError(400, 50006, "Cannot send an empty message")
        record.content = content
        record.embeds = embeds
        record.components = components
        record.allowed_mentions = allowed_mentions
        record.flags = flags
        record.attachments = attachments
        if "tts" in payload:
            record.tts = bool(payload["tts"])
        if not creating:
            record.edited_at = datetime.now(UTC)
        self.state.resolve_mentions(record)

    def _attachments(
        self,
        channel_id: int,
        existing: list[dict[str, Any]],
        requested: list[dict[str, Any]] | None,
        files: Files,
        *,
        size_limit: int,
        ephemeral: bool,
    ) -> list[dict[str, Any]]:
        """Discord's rules: ``attachments`` lists what to keep (existing ids) + new ``files[n]``."""
        for _, (_, data) in files.items():
            if len(data) > size_limit:
                raise DiscordAPIError(413, 40005, "Request entity too large")
        by_id = {int(a["id"]): a for a in existing}
        used: set[int] = set()
        result: list[dict[str, Any]] = []
        for i, entry in enumerate(requested if requested is not None else []):
            try:
                ident = int(entry["id"])
            except (KeyError, TypeError, ValueError):
                raise form_error(
                    f"attachments.{i}.id", "BASE_TYPE_REQUIRED", "This field is required"
                ) from None
            if ident in by_id:
                result.append(by_id[ident])
            elif ident in files:
                used.add(ident)
                upload = FakeAttachment(
                    entry.get("filename") or files[ident][0],
                    files[ident][1],
                    description=entry.get("description"),
                )
                result.append(self.cdn.store(channel_id, upload, ephemeral=ephemeral))
            else:
                raise form_error(
                    f"attachments.{i}.id", "ATTACHMENT_NOT_FOUND", f"Attachment {ident} not found"
                )
        if requested is None:
            result = list(existing)
        for index in sorted(set(files) - used):
            filename, data = files[index]
            result.append(
                self.cdn.store(channel_id, FakeAttachment(filename, data), ephemeral=ephemeral)
            )
        if len(result) > MAX_ATTACHMENTS:
            raise form_error(
                "attachments",
                "BASE_TYPE_MAX_LENGTH",
                f"Must be {MAX_ATTACHMENTS} or fewer in length.",
            )
        return result


def _resolve_embed(embed: dict[str, Any], attachments: list[dict[str, Any]]) -> dict[str, Any]:
    """Fill ``attachment://name`` references the way Discord does, add ``type``."""
    embed.setdefault("type", "rich")
    by_name = {a["filename"]: a for a in attachments}
    for key in ("image", "thumbnail"):
        part = embed.get(key)
        if isinstance(part, dict) and str(part.get("url", "")).startswith("attachment://"):
            att = by_name.get(part["url"].removeprefix("attachment://"))
            if att is not None:
                part = {**part, "url": att["url"], "proxy_url": att["proxy_url"]}
                if "width" in att:
                    part.update(width=att["width"], height=att["height"])
                embed[key] = part
    return embed


def _validate_allowed_mentions(allowed: dict[str, Any]) -> None:
    parse = allowed.get("parse") or []
    for kind in parse:
        if kind not in ("users", "roles", "everyone"):
            raise form_error("allowed_mentions.parse", "ENUM_TYPE_COERCE", f"{kind!r} is not valid")
    for kind in ("users", "roles"):
        if kind in parse and allowed.get(kind):
            raise form_error(
                "allowed_mentions",
                "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE",
                f'parse:["{kind}"] and {kind}: [ids...] are mutually exclusive.',
            )
