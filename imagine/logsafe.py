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
from collections.abc import Iterable

REDACTED = "[redacted]"
TOKEN_PATHS = re.compile(r"(/(?:webhooks|interactions)/\d+/)[A-Za-z0-9_.\-]{20,}")
BEARER = re.compile(r"((?:Bearer|Bot)\s+)[A-Za-z0-9_.\-]{16,}", re.IGNORECASE)
TOKEN_FIELDS = re.compile(r"""(['"](?:\w+_)?token['"]\s*:\s*['"])[^'"]{8,}""", re.IGNORECASE)
"""``"token": "…"`` in logged payloads (discord.py logs gateway events, with interaction
tokens, at DEBUG; Spaces' JWTs travel the same way)."""


class RedactingFilter(logging.Filter):
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        text = TOKEN_PATHS.sub(rf"\g<1>{REDACTED}", text)
        text = TOKEN_FIELDS.sub(rf"\g<1>{REDACTED}", text)
        return BEARER.sub(rf"\g<1>{REDACTED}", text)

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
