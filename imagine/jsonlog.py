"""``LOG_FORMAT=json``: one JSON object a line, so a log shipper can index the fields.

Each line holds ``time`` (ISO 8601, UTC), ``level``, ``logger`` and ``message``; ``job_id``,
``guild_id`` and ``user_id`` where the record is about a job (``imagine.logcontext``);
``traceback`` for an exception and ``stack`` for ``stack_info``. Discord ids are written as
strings, as Discord's own API writes them: they pass 2**53, past which a JSON reader that
holds numbers as doubles (JavaScript, jq 1.6) would change them.

The standard ``json`` module, not python-json-logger: the fields are few and fixed, the
image gains no dependency, and every string field goes through the redactor here, whatever
the handler's filters did (the redacting filter has already run on the message and the
traceback; this covers anything else a record carries into the line). The redaction works on
the fields before they are encoded, so a secret is found as it was logged, not as JSON
escapes it. ``ensure_ascii``: a line is plain ASCII whatever a message holds (a lone
surrogate from a payload cannot break the stream's encoding).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from .logcontext import FIELDS

SNOWFLAKES = frozenset({"guild_id", "user_id"})


def _as_is(text: str) -> str:
    return text


class JsonFormatter(logging.Formatter):
    def __init__(self, redact: Callable[[str], str] = _as_is) -> None:
        super().__init__()
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = str(value) if name in SNOWFLAKES else value
        if record.exc_text:  # the redacting filter's text
            entry["traceback"] = record.exc_text
        elif record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        clean = {key: self.redact(v) if isinstance(v, str) else v for key, v in entry.items()}
        return json.dumps(clean)
