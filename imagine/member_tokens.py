"""Members' own Hugging Face tokens: kept sealed, opened for their own jobs, forgotten on request.

A member who connects a token (``/settings``) spends their own ZeroGPU quota: each of their
jobs reads the token afresh when its turn comes (``token_for``), so a token connected or
forgotten in another process counts at once. The store keeps it sealed by the vault
(``SECRETS_KEY``); without a usable key the feature is off and every job uses the bot's
account. A token that no key opens any more counts as absent: the member is asked to connect
it again. Every token opened here is handed to the log redactor first.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from . import logsafe
from .errors import BackendError, BadInput, message_of
from .i18n import _
from .store import MemberSecrets
from .vault import Vault
from .whoami import HubAccount, checked_shape

log = logging.getLogger(__name__)

TOKENS_OFF = _(
    "Connecting your own Hugging Face token is off on this bot: its owner has not set a "
    "usable SECRETS_KEY."
)


class Standing(enum.Enum):
    OFF = enum.auto()  # no usable SECRETS_KEY: the feature is off
    NONE = enum.auto()  # the member connected no token
    CONNECTED = enum.auto()
    UNREADABLE = enum.auto()  # stored, but no key opens it: connect it again


@dataclass(frozen=True, slots=True)
class TokenState:
    """What ``/settings`` shows of a member's token: never the token."""

    standing: Standing
    account: str | None = None


class MemberTokens:
    def __init__(self, store: MemberSecrets, vault: Vault | None) -> None:
        self.store = store
        self.vault = vault

    @property
    def enabled(self) -> bool:
        return self.vault is not None

    def state(self, user_id: int) -> TokenState:
        """The member's token as ``/settings`` shows it, from memory."""
        if self.vault is None:
            return TokenState(Standing.OFF)
        stored = self.store.sealed_token(user_id)
        if stored is None:
            return TokenState(Standing.NONE)
        if self.vault.open(stored.sealed) is None:
            return TokenState(Standing.UNREADABLE, stored.account)
        return TokenState(Standing.CONNECTED, stored.account)

    async def connect(
        self, user_id: int, typed: str, whoami: Callable[[str], Awaitable[HubAccount]]
    ) -> TokenState:
        """Check a token a member typed with the hub (``whoami``), then keep it sealed. What
        goes wrong is an ``ImagineError`` worded for the member, and nothing is stored: the
        feature is off, the text cannot be a token, the hub refused it (``TokenRefused``) or
        could not say. Only a token the hub accepted is handed to the redactor (``keep``):
        anything else typed here must not make the bot hide those words everywhere."""
        if self.vault is None:
            raise BadInput(TOKENS_OFF)
        token = checked_shape(typed)
        try:
            account = await whoami(token)
        except BackendError as exc:
            raise BackendError(
                _(
                    "Hugging Face could not check the token ({error}), so nothing was stored. "
                    "Try again in a moment.",
                    error=message_of(exc),
                ),
                transient=True,
            ) from None
        return await self.keep(user_id, token, account.name)

    async def keep(self, user_id: int, token: str, account: str) -> TokenState:
        """Seal and store a token the hub accepted for ``account``."""
        if self.vault is None:
            raise RuntimeError("members' tokens are off (no usable SECRETS_KEY)")
        logsafe.remember(token)
        stored = await self.store.save_sealed_token(user_id, self.vault.seal(token), account)
        log.info("member %s connected a Hugging Face token", user_id)
        return TokenState(Standing.CONNECTED, stored.account)

    async def forget(self, user_id: int) -> bool:
        """Delete the member's token; False when there was none."""
        forgotten = await self.store.forget_sealed_token(user_id)
        if forgotten:
            log.info("member %s forgot their Hugging Face token", user_id)
        return forgotten

    async def token_for(self, user_id: int) -> str | None:
        """The member's own token for a job of theirs starting now; None: the bot's account
        (the feature is off, they connected none, or no key opens theirs)."""
        if self.vault is None or self.store.sealed_token(user_id) is None:
            return None  # most members have none: no database read for them (the cache
            # follows other processes' connects and forgets within a second)
        stored = await self.store.read_sealed_token(user_id)  # fresh: a forget counts at once
        if stored is None:
            return None
        token = self.vault.open(stored.sealed)
        if token is None:
            log.warning(
                "member %s's Hugging Face token opens with no key of SECRETS_KEY; "
                "their jobs use the bot's account until they connect it again",
                user_id,
            )
            return None
        logsafe.remember(token)
        return token

    async def reseal_all(self) -> tuple[int, int]:
        """Seal every stored token again with the newest key of ``SECRETS_KEY`` (after a key
        was put in front of the old one); ``(resealed, unreadable)``. Tokens already sealed
        with the newest key are left as they are, so it is cheap to run at every start."""
        if self.vault is None:
            return 0, 0
        resealed = unreadable = 0
        for user_id, sealed in (await self.store.sealed_tokens()).items():
            if self.vault.is_current(sealed):
                continue
            fresh = self.vault.reseal(sealed)
            if fresh is None:
                unreadable += 1
            elif await self.store.replace_sealed_token(user_id, sealed, fresh):
                resealed += 1
        if resealed or unreadable:
            log.info(
                "members' Hugging Face tokens: %d sealed again with the newest key, "
                "%d that no key opens (those members are asked to connect again)",
                resealed,
                unreadable,
            )
        return resealed, unreadable
