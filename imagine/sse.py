"""An incremental Server-Sent Events decoder (the WHATWG event-stream format).

Fed raw bytes as they arrive, in chunks of any size; returns the ``data`` of each complete
event. It accepts CR, LF and CRLF line ends (also split across chunks), comments, multi-line
``data`` fields and a leading BOM, and never raises on odd input: undecodable bytes are
replaced, unknown fields ignored. A line longer than ``max_line``, or an event whose ``data``
lines add up to more than ``max_event``, is an error the caller handles, so a broken server
cannot make us buffer without bound.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import size_text

MAX_LINE = 8 * 1024 * 1024
MAX_EVENT = 16 * 1024 * 1024


class SSEError(ValueError):
    """The stream broke the format beyond what we accept (an over-long line or event)."""


@dataclass(slots=True)
class SSEEvent:
    data: str
    event: str = "message"
    id: str | None = None


class SSEDecoder:
    """Turns byte chunks into events; keep one per stream."""

    __slots__ = (
        "_buffer",
        "_data",
        "_data_size",
        "_event",
        "_id",
        "_pending_cr",
        "_started",
        "max_event",
        "max_line",
    )

    def __init__(self, *, max_line: int = MAX_LINE, max_event: int = MAX_EVENT) -> None:
        self._buffer = b""
        self._data: list[str] = []
        self._data_size = 0
        self._event = ""
        self._id: str | None = None
        self._pending_cr = False
        self._started = False
        self.max_line = max_line
        self.max_event = max_event

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Add bytes; return the events they complete (possibly none)."""
        if not chunk:
            return []
        if self._pending_cr and chunk[:1] == b"\n":
            chunk = chunk[1:]  # the LF of a CRLF split across chunks
        self._pending_cr = False
        buffer = self._buffer + chunk if self._buffer else chunk
        if b"\r" in buffer:
            if buffer.endswith(b"\r"):
                self._pending_cr = True
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = buffer.split(b"\n")
        self._buffer = lines.pop()
        if len(self._buffer) > self.max_line:
            raise self._line_too_long()
        events: list[SSEEvent] = []
        for raw in lines:
            if len(raw) > self.max_line:
                raise self._line_too_long()
            event = self._line(raw)
            if event is not None:
                events.append(event)
        return events

    def flush(self) -> list[SSEEvent]:
        """End of stream: a final event without its blank line is dropped, as the spec says."""
        self._buffer = b""
        self._data = []
        self._data_size = 0
        return []

    def _line_too_long(self) -> SSEError:
        return SSEError(f"an event-stream line of more than {size_text(self.max_line)}")

    def _line(self, raw: bytes) -> SSEEvent | None:
        line = raw.decode("utf-8", errors="replace")
        if not self._started:
            self._started = True
            line = line.removeprefix("\ufeff")
        if not line:
            if not self._data:
                self._event = ""
                return None
            event = SSEEvent("\n".join(self._data), self._event or "message", self._id)
            self._data = []
            self._data_size = 0
            self._event = ""
            return event
        if line[0] == ":":
            return None
        name, colon, value = line.partition(":")
        if colon and value[:1] == " ":
            value = value[1:]
        if name == "data":
            # Lines are capped one by one; so must be their sum, or a stream of short data
            # lines without a blank line would pile up into one event without bound.
            self._data_size += len(value) + 1
            if self._data_size > self.max_event:
                raise SSEError(f"an event of more than {size_text(self.max_event)}")
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
        return None
