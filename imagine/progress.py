"""Turns a fast stream of statuses into few, well-timed edits of one message.

Providers report every 0.2 s; a chat message may be edited about five times per few seconds
before the platform makes the editor wait. So statuses are coalesced: at most one edit per
``interval``, at most ``per_window`` edits in any ``window`` seconds (leaving room in the
bucket for the final result edit, which then never waits for a reset), and always the newest
text. ``close()`` lets an edit that is already on the wire finish (it is never cancelled: the
chat client may hold a rate-limit lock inside it) and drops what was not sent, so no status can
land after the result.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from .i18n import Shown, Text, Verbatim, _
from .responses import ImagePreview

log = logging.getLogger(__name__)

T = TypeVar("T")


class StatusEditor(Generic[T]):
    """Coalesces ``update(value)`` calls into rate-limited ``edit(value)`` calls (a value is
    a status text, or whatever the edit shows)."""

    def __init__(
        self,
        edit: Callable[[T], Awaitable[None]],
        *,
        interval: float = 1.0,
        window: float = 5.0,
        per_window: int = 4,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._edit = edit
        self.interval = interval
        self.window = window
        self.per_window = per_window
        self._clock = clock
        self._latest: T | None = None
        self._shown: T | None = None
        self._sent: deque[float] = deque()
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._context = contextvars.copy_context()
        """The edits run in the context the editor was made in (its job's log ids,
        ``imagine.logcontext``), not in that of whichever task calls ``update`` first (a
        waiting job's place is updated from the task of the job that freed a slot)."""
        self.edits = 0
        self.failures = 0

    def update(self, value: T) -> None:
        """Make ``value`` the status to show next; cheap, never waits."""
        if self._closing:
            return
        self._latest = value
        self._wake.set()
        if self._task is None:
            loop = asyncio.get_running_loop()
            self._task = loop.create_task(self._run(), context=self._context)

    @property
    def latest(self) -> T | None:
        return self._latest

    def freeze(self) -> None:
        """Send nothing more from now on (an edit in flight still ends): the result is in,
        and a status edit started now would only delay the final edit, which must wait for
        it on the same token."""
        self._closing = True
        self._wake.set()

    async def close(self) -> None:
        """Stop: wait for an edit in flight (never cancel it), send nothing more."""
        self.freeze()
        if self._task is not None:
            await asyncio.shield(self._task)

    def _next_slot(self) -> float:
        """The earliest time another status edit fits both limits."""
        now = self._clock()
        while self._sent and now - self._sent[0] >= self.window:
            self._sent.popleft()
        slot = now
        if self._sent:
            slot = max(slot, self._sent[-1] + self.interval)
        if len(self._sent) >= self.per_window:
            slot = max(slot, self._sent[-self.per_window] + self.window)
        return slot

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            if self._closing:
                return
            delay = self._next_slot() - self._clock()
            if delay > 0:
                # Sleep until the slot, but wake early if we are closed meanwhile.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        while not self._closing:
                            self._wake.clear()
                            await self._wake.wait()
                if self._closing:
                    return
            self._wake.clear()
            text = self._latest
            if text is None or text == self._shown:
                continue
            self._sent.append(self._clock())
            self._shown = text
            try:
                await self._edit(text)
                self.edits += 1
            except Exception:  # a failed status edit must not end the job
                self.failures += 1
                log.debug("status edit failed", exc_info=True)


@dataclass(frozen=True, slots=True)
class Look:
    """A job's status as it should look now: its text and its newest preview, if any."""

    text: Shown
    preview: ImagePreview | None = None


class JobStatus:
    """One job's status: the latest route notice (a failover, a retry, a fallback) above the
    latest progress, and the newest preview. A notice stays until another replaces it: the
    progress that follows a failover arrives within milliseconds and would otherwise hide it
    before any edit."""

    def __init__(self, editor: StatusEditor[Look]) -> None:
        self.editor = editor
        self._notice: Shown | None = None
        self._progress: Shown | None = None
        self._preview: ImagePreview | None = None

    def notice(self, text: Shown) -> None:
        self._notice = text
        self._show()

    def progress(self, text: Shown) -> None:
        self._progress = text
        self._show()

    def preview(self, preview: ImagePreview) -> None:
        self._preview = preview
        self._show()

    def settle(self) -> None:
        """Every image is in: nothing more is shown until the ending (``StatusEditor.freeze``)."""
        self.editor.freeze()

    def _show(self) -> None:
        text: Shown
        if self._notice and self._progress:
            text = Text(
                "{notice}\n{progress}", {"notice": self._notice, "progress": self._progress}
            )
        else:
            text = self._notice or self._progress or Verbatim("")
        self.editor.update(Look(text, self._preview))


class GridProgress:
    """Statuses of a job's several images as one line: ``2/4 done · Sampling 3/4``."""

    def __init__(self, status: JobStatus, count: int) -> None:
        self.status = status
        self.count = count
        self.done = 0
        self.results: set[int] = set()

    def result_in(self, index: int) -> None:
        """Image ``index``'s result has arrived (its download starts); once every image's
        has, the status settles so that no edit begins in front of the result."""
        self.results.add(index)
        if len(self.results) >= self.count:
            self.status.settle()

    def image(self, text: Shown) -> None:
        if self.count == 1:
            self.status.progress(text)
        else:
            self.status.progress(
                _("{done}/{count} done · {status}", done=self.done, count=self.count, status=text)
            )

    def finished(self) -> None:
        self.done += 1
        if self.count > 1:
            self.status.progress(_("{done}/{count} done", done=self.done, count=self.count))
