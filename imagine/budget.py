"""Daily budgets: the images a member may have drawn in one server in one UTC day
(``/imagine-config daily-limit``; none by default).

A job is charged when it is accepted, before anything is drawn or even acknowledged, so a
refusal is private and nothing is made of it; the charge is its images (each image of a grid
counts, an Upscale, Zoom Out, Pan or Vary (Region) makes one; a U1..U4 pick or a /describe
draws none and costs nothing). The job keeps its charge
(``jobs.charged``) and gives it back, once, when it ends without an image (the store does it
with the ending: ``JobLog.update_job``). The clock is injected, so a test can stand just
before midnight instead of waiting for it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from .i18n import Moment, Text, n_
from .store import JobKind, Store, day_start, utc_day
from .store.usage import DAY_SECONDS

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Charge:
    """Images taken from a member's day for one job, at ``at`` (the job's ``created_at``)."""

    guild_id: int
    user_id: int
    day: str
    images: int
    at: float


class OverBudget(Exception):
    """The request would pass the server's daily limit: nothing was charged."""

    def __init__(self, limit: int, left: int, images: int, resets_at: float) -> None:
        self.limit = limit
        self.left = left
        self.images = images
        self.resets_at = resets_at
        super().__init__(self.message())

    def message(self) -> Text:
        when = Moment(self.resets_at)
        if self.left <= 0:
            return n_(
                "You have used the {n} image this server allows each member per day. "
                "The day resets {when}.",
                "You have used all {n} images this server allows each member per day. "
                "The day resets {when}.",
                self.limit,
                when=when,
            )
        return n_(
            "This server allows {n} image per member per day; you have {left} left today "
            "and this request makes {images}. The day resets {when}.",
            "This server allows {n} images per member per day; you have {left} left today "
            "and this request makes {images}. The day resets {when}.",
            self.limit,
            left=self.left,
            images=self.images,
            when=when,
        )


def images_of(kind: JobKind | str, count: int) -> int:
    """What a job costs: its images (a grid's each), nothing for what draws none."""
    if kind in (JobKind.PICK, JobKind.DESCRIBE):
        return 0
    if kind == JobKind.IMAGINE:
        return max(1, count)
    return 1


def next_midnight(at: float) -> float:
    """When the UTC day of ``at`` ends."""
    return day_start(at) + DAY_SECONDS


class Budget:
    def __init__(self, store: Store, clock: Clock = time.time) -> None:
        self.store = store
        self.clock = clock

    def today(self) -> str:
        return utc_day(self.clock())

    async def charge(
        self, guild_id: int | None, user_id: int, limit: int | None, images: int
    ) -> Charge | None:
        """Take ``images`` from the member's day; None when there is nothing to charge (no
        server, no limit, nothing drawn). ``OverBudget`` when it would pass the limit."""
        if guild_id is None or not limit or images <= 0:
            return None
        at = self.clock()
        day = utc_day(at)
        if await self.store.charge_usage(guild_id, user_id, day, images, limit) is None:
            used = await self.store.used_on(guild_id, user_id, day)
            raise OverBudget(limit, max(0, limit - used), images, next_midnight(at))
        return Charge(guild_id, user_id, day, images, at)

    async def give_back(self, charge: Charge | None) -> None:
        """A charge no job was made for (the acknowledgement or the job's row failed)."""
        if charge is not None:
            await self.store.give_back_usage(
                charge.guild_id, charge.user_id, charge.day, charge.images
            )

    async def used_today(self, guild_id: int, user_id: int) -> int:
        return await self.store.used_on(guild_id, user_id, self.today())
