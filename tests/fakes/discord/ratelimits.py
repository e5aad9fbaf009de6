"""Discord's rate limits: a global limit per second and per-route buckets, with the
``X-RateLimit-*`` headers discord.py reads and the 429 bodies it handles.

Two route buckets matter to a bot: ``webhook`` (per interaction token: editing and following
up an interaction's reply; about 5 per window) and ``channel`` (per channel: the bot's own
messages). Interaction callbacks and webhook routes are exempt from the global limit. Each
bucket is a fixed window opened by its first request.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import DiscordAPIError

__all__ = ["RateLimits"]


@dataclass(eq=False)
class _Bucket:
    started: float
    window: float
    count: int = 0


class RateLimits:
    """The limits (settable at any time) and the buckets' counts."""

    def __init__(
        self,
        *,
        webhook_limit: int = 5,
        webhook_window: float = 5.0,
        channel_limit: int = 5,
        channel_window: float = 5.0,
        global_limit: int = 50,
    ) -> None:
        self.webhook_limit = webhook_limit
        self.webhook_window = webhook_window
        self.channel_limit = channel_limit
        self.channel_window = channel_window
        self.global_limit = global_limit
        self._buckets: dict[tuple[str, str], _Bucket] = {}

    def take_global(self) -> None:
        """Count one request against the global limit; 429 (global) past it."""
        ok, reset_after, _ = self._take(("global", ""), self.global_limit, 1.0)
        if not ok:
            raise _rate_limited(reset_after, is_global=True)

    def take_route(self, kind: str, match_info: Mapping[str, str]) -> dict[str, str]:
        """Count one request in its route bucket; the headers to send, or a 429 with them.

        ``kind`` is ``"webhook"`` (keyed by the interaction token) or ``"channel"``.
        """
        if kind == "webhook":
            key = ("webhook", match_info["token"])
            limit, window = self.webhook_limit, self.webhook_window
        else:
            key = ("channel", match_info["channel_id"])
            limit, window = self.channel_limit, self.channel_window
        ok, reset_after, remaining = self._take(key, limit, window)
        headers = _ratelimit_headers(kind, limit, remaining, reset_after)
        if not ok:
            raise _rate_limited(reset_after, is_global=False, headers=headers)
        return headers

    def _take(self, key: tuple[str, str], limit: int, window: float) -> tuple[bool, float, int]:
        """Fixed window starting at the first request: (allowed, reset_after, remaining)."""
        now = time.monotonic()
        bucket = self._buckets.get(key)
        if bucket is None or now >= bucket.started + bucket.window:
            bucket = self._buckets[key] = _Bucket(started=now, window=window)
        reset_after = bucket.started + bucket.window - now
        if bucket.count >= limit:
            return False, reset_after, 0
        bucket.count += 1
        return True, reset_after, limit - bucket.count


def _ratelimit_headers(kind: str, limit: int, remaining: int, reset_after: float) -> dict[str, str]:
    reset_after = math.ceil(reset_after * 1000) / 1000
    return {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
        "X-RateLimit-Reset-After": f"{reset_after:.3f}",
        "X-RateLimit-Bucket": hashlib.sha1(kind.encode()).hexdigest()[:32],
    }


def _rate_limited(
    retry_after: float, *, is_global: bool, headers: dict[str, str] | None = None
) -> DiscordAPIError:
    retry_after = math.ceil(retry_after * 1000) / 1000
    hdrs = dict(headers or {})
    hdrs["Retry-After"] = str(max(1, math.ceil(retry_after)))
    hdrs["X-RateLimit-Scope"] = "global" if is_global else "user"
    if is_global:
        hdrs["X-RateLimit-Global"] = "true"
    body = {
        "message": "You are being rate limited.",
        "retry_after": retry_after,
        "global": is_global,
    }
    return DiscordAPIError(429, 0, body["message"], headers=hdrs, body=body)
