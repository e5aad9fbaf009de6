"""Errors the engine raises, worded for the person who asked for the image.

Every error carries a message that can be shown to a user as it is. Backend errors also say
whether trying again soon may help (``transient``), so callers can retry or fall back without
parsing text.
"""

from __future__ import annotations

from .i18n import Shown, Text, Verbatim


class ImagineError(Exception):
    """Base of every error the engine raises on purpose."""


class BadInput(ImagineError, ValueError):
    """The request itself is wrong; nothing was sent to any backend."""


class UnknownModel(BadInput):
    """The model name is not one we serve; the message lists those we do."""


class BackendError(ImagineError):
    """A backend answered with an error, or not in a way we could use.

    ``status`` is the HTTP status when there was one; ``transient`` is true when the same
    request may well succeed shortly (connection trouble, 5xx, 429, a cut stream);
    ``unavailable`` when this backend cannot serve anyone now (its API changed, say);
    ``kudos`` what the AI Horde charged for the attempt all the same (a censored image is
    paid for), so the job log can count it.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        transient: bool = False,
        unavailable: bool = False,
        backend: str | None = None,
        kudos: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.transient = transient
        self.unavailable = unavailable
        self.backend = backend
        self.kudos = kudos


class BackendTimeout(BackendError):
    """The backend did not answer (or went silent) within the time we allow.

    It already cost the job a whole watchdog period (or its whole time limit), so the engine
    never tries that backend again for the same job.
    """

    def __init__(self, message: str, *, backend: str | None = None) -> None:
        super().__init__(message, transient=True, backend=backend)


class QuotaExceeded(BackendError):
    """ZeroGPU refused the job for quota; ``retry_after`` seconds until it may work again."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None,
        status: int | None = None,
        backend: str | None = None,
    ) -> None:
        super().__init__(message, status=status, transient=False, backend=backend)
        self.retry_after = retry_after


def message_of(error: BaseException | None) -> Shown:
    """The error's message as it was made: a translatable ``imagine.i18n.Text`` stays one
    (``str(error)`` would make it plain English); any other text is shown as it is (a
    backend's own words, and the engine's errors not marked for translation)."""
    if error is not None and len(error.args) == 1 and isinstance(error.args[0], str):
        message = error.args[0]
        return message if isinstance(message, Text) else Verbatim(message)
    return Verbatim(str(error))


def naming(error: ImagineError | None) -> Shown:
    """The error's text, naming the backend it is about when the text does not already."""
    text = message_of(error)
    backend = getattr(error, "backend", None)
    if backend and backend not in text:
        return Text("{backend}: {error}", {"backend": backend, "error": text})
    return text


def reword(error: ImagineError, text: Shown) -> ImagineError:
    """The same error with another text (redacted, say): type and flags are kept."""
    error.args = (text,)
    if isinstance(error, BackendError):
        error.message = text
    return error


class FetchError(ImagineError):
    """The result image could not be downloaded safely; ``status`` is the HTTP status when
    the server refused it (a caller may tell an expired link from a failing server)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def size_text(size: int) -> str:
    """``16 MiB``, ``64 KiB``, ``300 bytes``: a size as error messages word it."""
    for unit, scale in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if size >= scale:
            return f"{size / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{size} bytes"
