"""Circuit breakers: a backend that just failed is left alone for a while.

A transient failure opens the breaker of that backend: new jobs skip it (and go to the model's
next backend) until the window passes; then one job may try again (half-open), and a success
closes it. Each failure in a row doubles the window, up to a cap. A quota refusal is not a
failure of the backend: it rests that backend for one account only (``imagine.quota``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .i18n import Shown, Text, _

BASE_WINDOW = 30.0
MAX_WINDOW = 600.0


@dataclass
class Breaker:
    name: str
    clock: Callable[[], float] = time.monotonic
    base_window: float = BASE_WINDOW
    max_window: float = MAX_WINDOW
    failures: int = 0
    open_until: float = 0.0
    last_error: Shown | None = None
    last_failure_at: float | None = None
    successes: int = 0
    _probing: bool = field(default=False, repr=False)

    @property
    def state(self) -> str:
        if self.failures == 0:
            return "closed"
        return "open" if self.clock() < self.open_until else "half-open"

    def remaining(self) -> float:
        return max(0.0, self.open_until - self.clock())

    def allows(self) -> bool:
        """May a new job use this backend now? (One at a time while half-open.)"""
        state = self.state
        if state == "closed":
            return True
        if state == "half-open" and not self._probing:
            self._probing = True
            return True
        return False

    def success(self) -> None:
        self.failures = 0
        self.open_until = 0.0
        self._probing = False
        self.successes += 1

    def failure(self, error: Shown, *, retry_after: float | None = None) -> None:
        self.failures += 1
        self._probing = False
        window = min(self.base_window * 2 ** (self.failures - 1), self.max_window)
        if retry_after is not None:
            window = max(window, retry_after)
        self.open_until = self.clock() + window
        self.last_error = error
        self.last_failure_at = time.time()

    def release_probe(self) -> None:
        """A half-open trial ended without a verdict (e.g. the job was cancelled)."""
        self._probing = False

    def describe(self) -> Text:
        """The state in words, for people (the health list of ``/imagine-config show``)."""
        state = self.state
        if state == "closed":
            return _("healthy")
        if state == "open":
            return _(
                "resting {seconds}s after: {error}",
                seconds=f"{self.remaining():.0f}",
                error=self.last_error,
            )
        return _("on trial after: {error}", error=self.last_error)
