"""Logging that cannot leak secrets, at any level.

A filter on the handlers rewrites every record after formatting its message: known secret
values (the bot token, HF_TOKEN, API keys), token-shaped URL parts (Discord webhook and
interaction tokens) and ``"token": "…"`` fields of logged payloads become ``[redacted]``.
It runs on handlers, so it also covers records of libraries (discord.py logs request URLs
and gateway payloads at DEBUG; those carry interaction tokens).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

from .i18n import Shown, Text, Verbatim

REDACTED = "[redacted]"
TOKEN_PATHS = re.compile(r"(/(?:webhooks|interactions)/\d+/)[A-Za-z0-9_.\-]{20,}")
BEARER = re.compile(r"((?:Bearer|Bot)\s+)[A-Za-z0-9_.\-]{16,}", re.IGNORECASE)
TOKEN_FIELDS = re.compile(r"""(['"](?:\w+_)?token['"]\s*:\s*['"])[^'"]{8,}""", re.IGNORECASE)
"""``"token": "…"`` in logged payloads (discord.py logs gateway events, with interaction
tokens, at DEBUG; Spaces' JWTs travel the same way)."""


URL = re.compile(r"\b(?:https?|wss?)://[^\s'\"<>()\[\]]+", re.IGNORECASE)
HIDDEN_ADDRESS = "[address hidden]"


class Redactor:
    """Secret values and token-shaped strings become ``[redacted]``.

    For text that people see (statuses, embeds, the health list), ``addresses`` maps known
    addresses (a backend's URL, its host) to the name people know it by, and any other URL is
    hidden: a backend's error may echo an internal address, and a private backend's host is
    nobody's business on Discord.
    """

    def __init__(
        self,
        secrets: Iterable[str] = (),
        *,
        addresses: Mapping[str, str] | None = None,
        hide_urls: bool = False,
    ) -> None:
        self.secrets = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)
        known = addresses or {}
        self.addresses = sorted(((a, n) for a, n in known.items() if a), key=lambda p: -len(p[0]))
        self.hide_urls = hide_urls

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        text = TOKEN_PATHS.sub(rf"\g<1>{REDACTED}", text)
        text = TOKEN_FIELDS.sub(rf"\g<1>{REDACTED}", text)
        text = BEARER.sub(rf"\g<1>{REDACTED}", text)
        for address, name in self.addresses:
            if address in text:
                text = text.replace(address, name)
        if self.hide_urls:
            text = URL.sub(HIDDEN_ADDRESS, text)
        return text

    def shown(self, text: Shown) -> Shown:
        """``text`` redacted for people, a message still a message: its parameters are
        redacted one by one, so it is still read in its reader's language. Should a secret
        still show in the whole (across parameters), the whole is redacted, in English."""
        if not isinstance(text, Text):
            return Verbatim(self(text))
        params = {name: self._param(value) for name, value in text.params.items()}
        clean = Text(text.msgid, params, plural=text.plural, count=text.number)
        whole = self(clean)
        return clean if whole == clean else Verbatim(whole)

    def _param(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.shown(value) if isinstance(value, Text) else self(value)
        return value


class RedactingFilter(logging.Filter):
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.redact = Redactor(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = self.redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        return True


def install(secrets: Iterable[str], logger: logging.Logger | None = None) -> RedactingFilter:
    """Attach a redacting filter to every handler of ``logger`` (the root by default)."""
    target = logger or logging.getLogger()
    redactor = RedactingFilter(secrets)
    for handler in target.handlers:
        handler.addFilter(redactor)
    return redactor
