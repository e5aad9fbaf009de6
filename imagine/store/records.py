"""What the database holds, as Python values: servers' and members' settings, jobs, and the
states and kinds a job has (types, compared as types; stored as their text)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class JobState(StrEnum):
    """Where a job is. Stored as its text; compared as a type."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"


class JobKind(StrEnum):
    """What a job makes."""

    IMAGINE = "imagine"  # /imagine, "Imagine this", DMs, Reroll, Retry: one image or a grid
    PICK = "pick"  # U1..U4: one image of a grid, alone, with its own buttons (no generation)
    VARY = "vary"  # V1..V4, Vary: a variation of one image (image to image, same prompt)
    EDIT = "edit"  # the image option, "Edit this image", Edit: image to image, a new prompt
    DESCRIBE = "describe"  # /describe, "Describe this image": image to prompts
    UPSCALE = "upscale"  # Upscale: the same picture, larger (``factor``)
    ZOOM_OUT = "zoom_out"  # Zoom Out 2x / 1.5x, Custom Zoom: a wider view painted in (``factor``)
    PAN = "pan"  # ⬅️ ➡️ ⬆️ ⬇️: the canvas grown on one side and painted in (``direction``)
    REGION = "region"  # Vary (Region): the chosen cells repainted (``cells``)


ACTIVE_STATES = (JobState.QUEUED, JobState.RUNNING)
FINAL_STATES = (JobState.DONE, JobState.FAILED, JobState.CANCELLED, JobState.INTERRUPTED)
NOTHING_MADE = (JobState.FAILED, JobState.CANCELLED, JobState.INTERRUPTED)
"""Endings without an image: a job that ends so gives its daily-budget charge back (a grid
with any image delivered is ``DONE``, and keeps it)."""


@dataclass(frozen=True, slots=True)
class GuildSettings:
    """One server's settings; the defaults are what a server that changed nothing gets."""

    guild_id: int
    default_model: str | None = None
    allowed_models: tuple[str, ...] | None = None
    cooldown_seconds: float = 0.0
    channels: tuple[int, ...] = ()
    max_size: int | None = None
    fallback_model: str | None = None
    blocked_words: tuple[str, ...] = ()
    default_count: int | None = None
    max_count: int | None = None
    translate_model: str | None = None
    daily_limit: int | None = None


@dataclass(frozen=True, slots=True)
class UserSettings:
    """One member's own defaults (None: not chosen, the server's applies) and the Discord
    locale they were last seen with (what a DM, which carries none, is answered in)."""

    user_id: int
    model: str | None = None
    aspect: str | None = None
    count: int | None = None
    private: bool = False
    language: str | None = None  # an ``imagine.i18n.Language`` code; None: follow Discord
    locale: str | None = None

    def cleared(self) -> UserSettings:
        """Back to the server's defaults; the locale seen is not a choice, so it stays."""
        return UserSettings(self.user_id, locale=self.locale)


@dataclass(slots=True)
class JobRecord:
    id: int
    user_id: int
    guild_id: int | None
    channel_id: int | None
    source: str
    prompt: str
    model: str
    width: int
    height: int
    seed: int | None
    state: str
    application_id: int | None = None
    interaction_token: str | None = field(default=None, repr=False)
    token_expires_at: float | None = None
    message_id: int | None = None
    result_seed: int | None = None
    result_model: str | None = None
    result_backend: str | None = None
    error: str | None = None
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    kind: str = JobKind.IMAGINE
    count: int = 1
    negative: str | None = None
    parent_id: int | None = None
    image_index: int | None = None
    input_url: str | None = None
    input_sha256: str | None = None
    result: str | None = None
    language: str | None = None
    private: bool = False
    translated_prompt: str | None = None
    input_channel_id: int | None = None
    input_message_id: int | None = None
    nsfw: bool = False
    kudos: float | None = None
    charged: int = 0
    factor: float | None = None  # Upscale's and Zoom Out's
    direction: str | None = None  # Pan's (an ``imagine.canvas.Direction`` value)
    cells: str | None = None  # Vary (Region)'s: ``Cell`` values, comma-separated

    def results(self) -> list[Any]:
        """``result`` decoded: per-image records, or /describe's prompts."""
        return json_list(self.result) or []


def json_list(value: str | None) -> list[Any] | None:
    if value is None:
        return None
    try:
        data = json.loads(value)
    except ValueError:
        return None
    return data if isinstance(data, list) else None
