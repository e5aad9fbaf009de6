"""Per-user and per-server limits on how often /imagine may be used.

``Cooldowns`` is the admins' per-member, per-server wait between jobs. ``RateLimiter`` is the
bot's own guard against bursts (a sliding window per key), which holds whatever the admins set.

Both are keyed by ids anyone can bring (every user who ever writes, every server a user-app
runs in), so both forget idle keys: memory follows the keys active lately, not every key seen.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Hashable


class Cooldowns:
    """When each (server, user) last started a job, kept while their cooldown runs."""

    def __init__(self, clock: Callable[[], float] = time.time, *, sweep_every: int = 1024) -> None:
        self._clock = clock
        self._started: dict[Hashable, tuple[float, float]] = {}  # key: (started, until)
        self._sweep_every = sweep_every
        self._starts = 0

    def __len__(self) -> int:
        return len(self._started)

    def remaining(self, key: Hashable, cooldown: float) -> float:
        """Seconds until ``key`` may go again under the current ``cooldown`` (0: now); a
        cooldown lowered since the last start counts from that start."""
        entry = self._started.get(key)
        if entry is None or cooldown <= 0:
            return 0.0
        started, until = entry
        return max(0.0, min(until, started + cooldown) - self._clock())

    def start(self, key: Hashable, cooldown: float) -> None:
        """``key`` just started a job; it is remembered for ``cooldown`` seconds."""
        now = self._clock()
        self._starts += 1
        if self._starts % self._sweep_every == 0:
            self._started = {k: v for k, v in self._started.items() if v[1] > now}
        if cooldown > 0:
            self._started[key] = (now, now + cooldown)
        else:
            self._started.pop(key, None)


class RateLimiter:
    """At most ``limit`` events per ``window`` seconds per key (a sliding window)."""

    def __init__(
        self, limit: int, window: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._events: dict[Hashable, deque[float]] = {}
        self._swept = clock()

    def __len__(self) -> int:
        return len(self._events)

    def wait(self, key: Hashable) -> float:
        """Seconds until ``key`` may have another event (0: now), without counting one."""
        events = self._events.get(key)
        if not events:
            return 0.0
        now = self._clock()
        while events and now - events[0] >= self.window:
            events.popleft()
        return events[0] + self.window - now if len(events) >= self.limit else 0.0

    def hit(self, key: Hashable) -> float:
        """Count an event; returns 0 if allowed, else seconds until one would be."""
        now = self._clock()
        if now - self._swept >= self.window:
            self._forget_idle(now)  # once a window: amortised O(1) per event
        wait = self.wait(key)
        if wait:
            return wait
        self._events.setdefault(key, deque()).append(now)
        return 0.0

    def _forget_idle(self, now: float) -> None:
        self._swept = now
        idle = [k for k, v in self._events.items() if not v or now - v[-1] >= self.window]
        for key in idle:
            del self._events[key]
