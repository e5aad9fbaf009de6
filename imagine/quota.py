"""ZeroGPU quota, by account: a refusal rests one (backend, account) pair until the time the
Space named, and nothing is sent to that pair before then.

ZeroGPU counts GPU seconds per Hugging Face account (anonymous visitors: per address), so a
Space that refused the bot's account may still draw for a member who brought a token of their
own, and the other way round. Unlike a circuit breaker (which reacts to errors and tries again
after a guess), a quota refusal says when it ends: the rest lasts exactly that long.

Rests live in memory here (``QuotaRests``); a process that shares them (the job service, in
the database) listens to new ones (``on_rest``) and hands in the others' (``adopt``).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .i18n import Shown

BOT_ACCOUNT = "bot"
"""The bot's own account: ``HF_TOKEN``, or anonymous when it is unset."""
DEFAULT_REST_SECONDS = 600.0
"""A refusal that named no time rests its pair this long (ZeroGPU's windows are minutes)."""


def account_of(hf_token: str | None) -> str:
    """Whose quota a job spends: the bot's, or a member's token (by a digest: the key is
    stored and shown, the token never)."""
    if not hf_token:
        return BOT_ACCOUNT
    return "member:" + hashlib.sha256(hf_token.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Rest:
    backend: str
    account: str
    until: float  # epoch seconds
    reason: Shown | None = None

    @property
    def mine(self) -> bool:
        """The bot's own account (not a member's)."""
        return self.account == BOT_ACCOUNT


class QuotaRests:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._rests: dict[tuple[str, str], Rest] = {}
        self.listeners: list[Callable[[Rest], object]] = []

    def on_rest(self, listener: Callable[[Rest], object]) -> None:
        """Call ``listener(rest)`` for each rest this process learns first (a refusal)."""
        self.listeners.append(listener)

    def rest(
        self,
        backend: str,
        account: str,
        retry_after: float | None,
        reason: Shown | None = None,
    ) -> Rest:
        """A refusal: the pair rests ``retry_after`` seconds from now (a default when the
        Space named no time); a longer rest already known stands."""
        seconds = DEFAULT_REST_SECONDS if retry_after is None else max(0.0, retry_after)
        rest = Rest(backend, account, self.clock() + seconds, reason)
        known = self._rests.get((backend, account))
        if known is not None and known.until >= rest.until:
            return known
        self._rests[(backend, account)] = rest
        for listener in self.listeners:
            listener(rest)
        return rest

    def adopt(self, rests: Iterable[Rest]) -> None:
        """Rests other processes learned (no listener is told: they are known already)."""
        for rest in rests:
            known = self._rests.get((rest.backend, rest.account))
            if known is None or known.until < rest.until:
                self._rests[(rest.backend, rest.account)] = rest

    def resting(self, backend: str, account: str) -> Rest | None:
        """The pair's rest, while it lasts."""
        rest = self._rests.get((backend, account))
        if rest is None:
            return None
        if rest.until <= self.clock():
            del self._rests[(backend, account)]
            return None
        return rest

    def current(self) -> list[Rest]:
        """Every rest still running, soonest over first."""
        now = self.clock()
        live = [r for r in self._rests.values() if r.until > now]
        return sorted(live, key=lambda r: r.until)
