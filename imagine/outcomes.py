"""What a job ends with, and where it is shown (the ``Reply`` a platform implements).

Kept apart from the runner so that the bot's replies and renderers depend on these shapes
only, not on how jobs are run.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from .fetch import FetchedImage
from .i18n import Shown
from .store import JobRecord


class Outcome(StrEnum):
    """How a job ended, as the metrics count it (``imagine_jobs_total{outcome}``)."""

    DONE = "done"  # its image (or its prompts, for /describe) was shown
    FAILED = "failed"  # it produced nothing and said why
    CANCELLED = "cancelled"  # someone pressed Cancel
    INTERRUPTED = "interrupted"  # a restart (or a second dead worker) cut it off
    LOST = "lost"  # it never reached the queue, or lost its place there; the reaper told it


@dataclass(frozen=True, slots=True)
class Picture:
    """One finished image of a job (a grid has several)."""

    index: int  # its place in the job, from 0
    image: FetchedImage | None  # None: too large to upload even re-encoded; see ``link``
    link: str | None
    model: str
    seed: int | None
    width: int
    height: int
    backend: str
    reencoded: bool = False
    fallback_from: str | None = None  # the job's own model, when the fallback drew this
    fallback_reason: Shown | None = None
    ignored: tuple[str, ...] = ()  # options the backend could not use ("negative prompt")
    kudos: float | None = None  # what the AI Horde charged for it

    def close(self) -> None:
        if self.image is not None:
            self.image.close()


@dataclass(frozen=True, slots=True)
class Delivery:
    """A finished job: its pictures in order, and why any missing one failed."""

    job: JobRecord
    pictures: tuple[Picture, ...]
    elapsed: float
    failed: tuple[Shown, ...] = ()  # one line per image that could not be made
    extra_images: int = 0  # images a backend made beyond those asked (a gallery)

    @property
    def first(self) -> Picture:
        return self.pictures[0]

    def close(self) -> None:
        for picture in self.pictures:
            picture.close()


@dataclass(frozen=True, slots=True)
class Described:
    """A finished /describe: prompts read off an image."""

    job: JobRecord
    prompts: tuple[str, ...]
    backend: str
    elapsed: float


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a job produced nothing, in words for the person who asked."""

    job: JobRecord
    message: Shown
    retry_at: float | None = None  # epoch seconds, when a quota says when
    interrupted: bool = False
    transient: bool = False  # likely to pass: worth a Retry in a moment
    backend: str | None = None


@dataclass(frozen=True, slots=True)
class StatusLine:
    """What a running job shows: its status text, and the newest preview as a small JPEG
    (None: keep whatever preview is shown)."""

    text: Shown
    preview: bytes | None = None


class Reply(Protocol):
    """Where a job shows itself: statuses first, then exactly one ending."""

    upload_limit: int

    async def status(self, line: StatusLine) -> None: ...

    async def deliver(self, delivery: Delivery) -> None: ...

    async def described(self, described: Described) -> None: ...

    async def fail(self, failure: Failure) -> None: ...

    async def cancelled(self, job: JobRecord, by: str | None) -> None: ...
