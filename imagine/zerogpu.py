"""ZeroGPU tokens: what a Space wants in ``x-zerogpu-token`` / ``x-zerogpu-uuid``.

Anonymous tokens come from the space page, where the hub embeds them HTML-escaped
(``&quot;token&quot;:&quot;…&quot;`` and ``&quot;sessionUuid&quot;:&quot;…&quot;``). With
``HF_TOKEN`` the hub's ``/api/spaces/{space}/jwt`` gives a token on that account's quota
instead. Tokens are JWTs with an ``exp``: they are cached per space until shortly before they
expire, and concurrent jobs wait for one shared fetch rather than each hitting the hub
(gpt4free fetches one per image).

A member who connected their own Hugging Face token gets a cache of their own
(``ZeroGPUTokens`` made with their token): their jobs spend their quota, and no token fetched
with one account is ever handed to another's job. ``account`` names whose quota a cache
spends, without the token (``imagine.quota.account_of``: the bot's, or a member's digest).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import json
import logging
import re
import time
from dataclasses import dataclass

import aiohttp

from .errors import BackendError, BackendTimeout
from .http import MAX_JSON_BYTES, MAX_PAGE_BYTES, decode_text, raise_for_status, read_capped
from .quota import BOT_ACCOUNT, account_of

log = logging.getLogger(__name__)

HUB = "The Hugging Face hub"

_TOKEN = re.compile(r"&quot;token&quot;:&quot;([^&]+?)&quot;")
_UUID = re.compile(r"&quot;sessionUuid&quot;:&quot;([^&]+?)&quot;")

DEFAULT_TTL = 300.0
"""How long to keep a token whose expiry we cannot read."""
MAX_REFRESH_MARGIN = 60.0
"""Refresh this long before ``exp`` at most (less for short-lived tokens)."""


@dataclass(frozen=True, slots=True)
class ZeroGPUToken:
    token: str | None
    uuid: str | None
    refresh_at: float
    """``time.monotonic()`` after which the token should not be used for a new job."""

    def headers(self) -> dict[str, str]:
        headers = {}
        if self.token:
            headers["x-zerogpu-token"] = self.token
        if self.uuid:
            headers["x-zerogpu-uuid"] = self.uuid
        return headers

    def __repr__(self) -> str:  # never print the token itself
        return f"ZeroGPUToken(uuid={self.uuid!r}, refresh_at={self.refresh_at:.0f})"


def jwt_expiry(token: str) -> float | None:
    """The ``exp`` claim (epoch seconds) of a JWT, or None when it is not a readable JWT."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (ValueError, binascii.Error):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None


def refresh_deadline(token: str | None, *, now_wall: float, now_mono: float) -> float:
    """When (monotonic) to stop using ``token``: shortly before its ``exp``."""
    exp = jwt_expiry(token) if token else None
    if exp is None:
        return now_mono + DEFAULT_TTL
    lifetime = exp - now_wall
    margin = min(MAX_REFRESH_MARGIN, max(lifetime, 0.0) * 0.2)
    return now_mono + lifetime - margin


class ZeroGPUTokens:
    """A per-space cache of ZeroGPU tokens, safe for many concurrent jobs."""

    def __init__(
        self,
        hf_endpoint: str,
        *,
        hf_token: str | None = None,
        timeout: aiohttp.ClientTimeout | None = None,
        member: bool = False,
    ) -> None:
        """``hf_token``: the account whose quota the tokens spend (``HF_TOKEN``; or a
        member's own token, with ``member``); none: anonymous tokens from the Space pages."""
        self.hf_endpoint = hf_endpoint.rstrip("/")
        self._hf_token = hf_token
        self.account = account_of(hf_token) if member else BOT_ACCOUNT
        self._whose = "a member's own token" if member else "HF_TOKEN"
        self._timeout = timeout or aiohttp.ClientTimeout(total=30)
        self._cache: dict[str, ZeroGPUToken] = {}
        self._pending: dict[str, asyncio.Future[ZeroGPUToken]] = {}

    def cached(self, space: str) -> ZeroGPUToken | None:
        """A still-fresh token for ``space``, without any I/O."""
        token = self._cache.get(space)
        if token is not None and time.monotonic() < token.refresh_at:
            return token
        return None

    async def get(self, session: aiohttp.ClientSession, space: str) -> ZeroGPUToken:
        """A fresh token for ``space``; at most one fetch per space is in flight."""
        token = self.cached(space)
        if token is not None:
            return token
        pending = self._pending.get(space)
        if pending is None:
            pending = asyncio.ensure_future(self._fetch(session, space))
            self._pending[space] = pending
            pending.add_done_callback(functools.partial(self._forget_pending, space))
        # Shielded: one waiter giving up (a cancelled job) must not cancel the shared fetch.
        return await asyncio.shield(pending)

    def _forget_pending(self, space: str, _done: asyncio.Future[ZeroGPUToken]) -> None:
        self._pending.pop(space, None)

    def invalidate(self, space: str) -> None:
        """Forget the token of ``space`` (the Space said it expired or is invalid)."""
        self._cache.pop(space, None)

    async def _fetch(self, session: aiohttp.ClientSession, space: str) -> ZeroGPUToken:
        try:
            if self._hf_token:
                page, account = await asyncio.gather(
                    self._from_page(session, space), self._from_account(session, space)
                )
                token = ZeroGPUToken(account or page.token, page.uuid, 0.0)
            else:
                token = await self._from_page(session, space)
        except TimeoutError:
            raise BackendTimeout(
                f"The Hugging Face hub did not hand out a GPU token for {space} in time",
                backend="hub",
            ) from None
        except aiohttp.ClientError as exc:
            raise BackendError(
                f"Could not reach the Hugging Face hub for a GPU token ({type(exc).__name__})",
                transient=True,
                backend="hub",
            ) from None
        token = ZeroGPUToken(
            token.token,
            token.uuid,
            refresh_deadline(token.token, now_wall=time.time(), now_mono=time.monotonic()),
        )
        self._cache[space] = token
        log.debug("ZeroGPU token for %s cached (%s)", space, token)
        return token

    async def _from_page(self, session: aiohttp.ClientSession, space: str) -> ZeroGPUToken:
        url = f"{self.hf_endpoint}/spaces/{space}"
        async with session.get(url, timeout=self._timeout) as response:
            await raise_for_status(response, backend="hub")
            text = decode_text(response, await read_capped(response, MAX_PAGE_BYTES, backend=HUB))
        token = _TOKEN.search(text)
        uuid = _UUID.search(text)
        return ZeroGPUToken(token and token.group(1), uuid and uuid.group(1), 0.0)

    async def _from_account(self, session: aiohttp.ClientSession, space: str) -> str | None:
        """A token on the ``HF_TOKEN`` account's quota; None (page token used) if refused."""
        url = f"{self.hf_endpoint}/api/spaces/{space}/jwt"
        headers = {"Authorization": f"Bearer {self._hf_token}"}
        async with session.get(url, headers=headers, timeout=self._timeout) as response:
            if not response.ok:
                log.warning(
                    "The hub refused %s for a %s GPU token (HTTP %s); using an anonymous one",
                    self._whose,
                    space,
                    response.status,
                )
                return None
            body = await read_capped(response, MAX_JSON_BYTES, backend=HUB)
        try:
            data = json.loads(body)
        except ValueError:
            log.warning("The hub's %s GPU token answer is not JSON; using an anonymous one", space)
            return None
        token = data.get("token") if isinstance(data, dict) else None
        return token if isinstance(token, str) and token else None
