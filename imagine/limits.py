"""Per-user and per-server limits on how often /imagine may be used.

``Cooldowns`` is the admins' per-member, per-server wait between jobs. ``RateLimiter`` is the
bot's own guard against bursts (a sliding window per key), which holds whatever the admins set.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Hashable


class Cooldowns:
    """When each (server, user) may start their next job."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._last: dict[Hashable, float] = {}

    def remaining(self, key: Hashable, cooldown: float) -> float:
        """Seconds until ``key`` may go again under ``cooldown`` (0: now)."""
        last = self._last.get(key)
        if last is None or cooldown <= 0:
            return 0.0
        return max(0.0, last + cooldown - self._clock())

    def start(self, key: Hashable) -> None:
        self._last[key] = self._clock()


class RateLimiter:
    """At most ``limit`` events per ``window`` seconds per key (a sliding window)."""

    def __init__(
        self, limit: int, window: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._events: dict[Hashable, deque[float]] = {}

    def hit(self, key: Hashable) -> float:
        """Count an event; returns 0 if allowed, else seconds until one would be."""
        now = self._clock()
        events = self._events.setdefault(key, deque())
        while events and now - events[0] >= self.window:
            events.popleft()
        if len(events) >= self.limit:
            return events[0] + self.window - now
        events.append(now)
        if len(self._events) > 10_000:
            self._forget_idle(now)
        return 0.0

    def _forget_idle(self, now: float) -> None:
        for key in [k for k, v in self._events.items() if not v or now - v[-1] >= self.window]:
            del self._events[key]
