"""Logging that cannot leak secrets, at any level.

A filter on the handlers rewrites every record after formatting its message: known secret
values (the bot token, HF_TOKEN, API keys), token-shaped URL parts (Discord webhook and
interaction tokens) and ``"token": "…"`` fields of logged payloads become ``[redacted]``.
It runs on handlers, so it also covers records of libraries (discord.py logs request URLs
and gateway payloads at DEBUG; those carry interaction tokens).

Secrets known only once the program runs (a member's own Hugging Face token, when it is
loaded) are handed to ``remember``: every redactor, of logs and of shown text, hides them from
then on. A secret typed into a modal arrives before anyone could remember it, and discord.py
logs the whole gateway event at DEBUG: the ``custom_id`` of such a field is named with
``secret_input``, and its ``value`` is taken out of a logged payload before the record is
formatted.
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


class LearnedSecrets:
    """Secrets learned at run time, one pattern for all of them (rebuilt when one is added)."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def add(self, secret: str) -> None:
        if not secret or len(secret) < 6 or secret in self._values:
            return
        self._values.add(secret)
        ordered = sorted(self._values, key=len, reverse=True)  # the longest wins an overlap
        self._pattern = re.compile("|".join(re.escape(value) for value in ordered))

    def hide(self, text: str) -> str:
        pattern = self._pattern
        return text if pattern is None else pattern.sub(REDACTED, text)


LEARNED = LearnedSecrets()
"""This process's learned secrets: every ``Redactor`` hides them."""


def remember(secret: str) -> None:
    """Redact ``secret`` from every log record and every shown text from now on."""
    LEARNED.add(secret)


SECRET_INPUTS: set[str] = set()
"""``custom_id`` of the modal fields whose values are secrets (``secret_input``)."""


def secret_input(custom_id: str) -> None:
    """The value typed into the modal field ``custom_id`` is a secret: never logged."""
    SECRET_INPUTS.add(custom_id)


def without_secret_inputs(value: Any) -> Any:
    """``value`` (a logged payload) with the values of secret modal fields redacted; parts
    with nothing to hide are the same objects."""
    if isinstance(value, dict):
        scrubbed = {key: without_secret_inputs(item) for key, item in value.items()}
        if scrubbed.get("custom_id") in SECRET_INPUTS and "value" in scrubbed:
            scrubbed["value"] = REDACTED
        changed = any(scrubbed[key] is not value[key] for key in value)
        return scrubbed if changed else value
    if isinstance(value, list | tuple):
        items = [without_secret_inputs(item) for item in value]
        if all(new is old for new, old in zip(items, value, strict=True)):
            return value
        return items if isinstance(value, list) else tuple(items)
    return value


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
        text = LEARNED.hide(text)
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
        secret_inputs = SECRET_INPUTS and isinstance(record.args, tuple | dict)
        if secret_inputs and any(custom_id in message for custom_id in SECRET_INPUTS):
            record.args = without_secret_inputs(record.args)
            message = record.getMessage()
        clean = self.redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:  # ``stack_info=True``: printed after the message, like a traceback
            record.stack_info = self.redact(record.stack_info)
        return True


def install(secrets: Iterable[str], logger: logging.Logger | None = None) -> RedactingFilter:
    """Attach a redacting filter to every handler of ``logger`` (the root by default)."""
    target = logger or logging.getLogger()
    redactor = RedactingFilter(secrets)
    for handler in target.handlers:
        handler.addFilter(redactor)
    return redactor
