"""Members' secrets sealed under ``SECRETS_KEY`` (Fernet, from ``cryptography``).

``SECRETS_KEY`` holds one Fernet key, or several separated by commas, newest first: a sealed
secret opens with any of them and is sealed with the first (``MultiFernet``). That is how a key
is rotated: put the new key in front of the old one, let the stored secrets be sealed again
with it (``reseal``; the bot does it at start), then drop the old key.

No key, or a key that is not a Fernet key, turns members' own secrets off rather than
stopping the bot: ``Vault.from_setting`` answers None and says why in the log (never the key).
A sealed secret that no key opens (a key lost, or changed without rotating) is treated as
absent: ``open`` answers None.
"""

from __future__ import annotations

import logging

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

log = logging.getLogger(__name__)


class Vault:
    """Seals and opens secrets with the keys of ``SECRETS_KEY``."""

    def __init__(self, keys: list[str]) -> None:
        """``keys``: Fernet keys, newest first. ``ValueError`` when there is none or one is
        malformed (the message never holds a key)."""
        if not keys:
            raise ValueError("no key")
        fernets = []
        for position, key in enumerate(keys, 1):
            try:
                fernets.append(Fernet(key.encode("ascii")))
            except (ValueError, UnicodeEncodeError):
                raise ValueError(
                    f"key {position} of {len(keys)} is not a Fernet key "
                    "(32 url-safe base64-encoded bytes)"
                ) from None
        self._newest = fernets[0]
        self._all = MultiFernet(fernets)

    @classmethod
    def from_setting(cls, raw: str | None) -> Vault | None:
        """The vault of ``SECRETS_KEY``; None (the feature is off, logged) when it is unset or
        not made of Fernet keys."""
        keys = [part.strip() for part in (raw or "").split(",") if part.strip()]
        if not keys:
            log.info("SECRETS_KEY is not set: members cannot connect their own Hugging Face token")
            return None
        try:
            return cls(keys)
        except ValueError as exc:
            log.warning(
                "SECRETS_KEY is unusable (%s): members cannot connect their own Hugging Face "
                "token until it is fixed (see .env.example for how to make a key)",
                exc,
            )
            return None

    def seal(self, secret: str) -> str:
        """``secret`` sealed with the newest key (ASCII, safe to store)."""
        return self._all.encrypt(secret.encode("utf-8")).decode("ascii")

    def open(self, sealed: str) -> str | None:
        """The secret, or None when no key opens ``sealed`` (or it is not a sealed secret)."""
        try:
            return self._all.decrypt(sealed.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError):
            return None

    def is_current(self, sealed: str) -> bool:
        """Whether ``sealed`` opens with the newest key (nothing to reseal)."""
        try:
            self._newest.decrypt(sealed.encode("ascii"))
        except (InvalidToken, UnicodeError):
            return False
        return True

    def reseal(self, sealed: str) -> str | None:
        """``sealed`` sealed again with the newest key; None when no key opens it."""
        try:
            return self._all.rotate(sealed.encode("ascii")).decode("ascii")
        except (InvalidToken, UnicodeError):
            return None
