"""Inline parameters in a prompt: ``a fox in snow --ar 16:9 --no text --seed 7``.

Midjourney users type options into the prompt, and DMs and "Imagine this" have no other
place for them, so every prompt is read the same way. A flag starts a whitespace-separated
word with ``--``, or with an em or en dash, which phones and word processors make of ``--``.
``a--b``, a dash inside a word, a lone ``-`` or ``---`` are text.

An unknown ``--word`` is an error (it is almost always a typo or another bot's option, and
silently drawing it would waste the GPU quota); an unknown word after an em dash is text,
because prose writes ``—like this`` too.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from .aspects import ASPECT_RULES, check_aspect
from .errors import BadInput
from .i18n import _

MAX_SEED = 2**32 - 1
"""As ``providers.base.MAX_SEED`` (not imported: this module needs nothing of the providers)."""
MAX_COUNT = 4
"""A job draws at most four images; a server may allow fewer (the bot applies its limit)."""

FLAGS = {
    "ar": "aspect",
    "aspect": "aspect",
    "no": "negative",
    "seed": "seed",
    "model": "model",
    "count": "count",
}
"""Each flag's name (lower case) and the ``Flags`` field it sets."""

_SPELLING = {
    "aspect": "--ar",
    "negative": "--no",
    "seed": "--seed",
    "model": "--model",
    "count": "--count",
}
_RANGES = {"seed": (0, MAX_SEED), "count": (1, MAX_COUNT)}
_USAGE = "--ar W:H, --no TEXT, --seed N, --model NAME and --count N"
_TRAILING = ".,;!?"
"""Punctuation that ends a sentence, not a value: ``a fox --ar 16:9.`` is ``16:9``."""
_DASHED = re.compile(r"(?<!\S)(--|[—–])(\S+)")
"""A word that starts with a flag's dash (``(?<!\\S)``: at the start or after whitespace)."""


@dataclass(frozen=True, slots=True)
class Flags:
    """A prompt with its inline parameters taken out. ``None`` means "not given"."""

    prompt: str
    aspect: str | None = None
    """``W:H`` as ``check_aspect`` spells it (``--ar 32:18`` gives ``16:9``, ``7:3`` ``21:9``)."""
    negative: str | None = None
    seed: int | None = None
    model: str | None = None
    count: int | None = None


def parse_flags(text: str) -> Flags:
    """``text`` without its flags (whitespace tidied) and the values they set.

    ``BadInput`` naming the flag for a malformed value, a missing one, an unknown ``--flag``
    or a flag given twice. ``--no`` takes everything up to the next flag (or the end); the
    others take one word.
    """
    found = [(match, field) for match in _DASHED.finditer(text) if (field := _field(match))]
    pieces = [text[: found[0][0].start()] if found else text]
    values: dict[str, Any] = {}
    for index, (match, field) in enumerate(found):
        end = found[index + 1][0].start() if index + 1 < len(found) else len(text)
        rest = text[match.end() : end]
        if field in values:
            raise BadInput(_twice(field, match))
        if field == "negative":
            value, remainder = " ".join(rest.split()), ""
        else:
            words = rest.split(maxsplit=1)
            value = words[0].rstrip(_TRAILING) if words else ""
            remainder = words[1] if len(words) > 1 else ""
        if not value:
            raise BadInput(_missing(field))
        values[field] = _convert(field, value)
        pieces.append(remainder)
    return Flags(prompt=_tidy(" ".join(pieces)), **values)


def merge(
    flags: Flags,
    *,
    aspect: str | None = None,
    negative: str | None = None,
    seed: int | None = None,
    model: str | None = None,
    count: int | None = None,
) -> Flags:
    """``flags`` with every explicit option that is not ``None`` in place of the flag's
    value: a ``/imagine`` option wins over the same flag in its prompt. Explicit values are
    checked as flags are (``BadInput``); a blank ``negative`` or ``model`` counts as not given.
    """
    explicit: dict[str, Any] = {}
    if aspect is not None:
        explicit["aspect"] = check_aspect(aspect)
    if negative is not None and negative.strip():
        explicit["negative"] = " ".join(negative.split())
    if seed is not None:
        explicit["seed"] = _whole("seed", seed)
    if model is not None and model.strip():
        explicit["model"] = model.strip()
    if count is not None:
        explicit["count"] = _whole("count", count)
    return dataclasses.replace(flags, **explicit)


def _field(match: re.Match[str]) -> str | None:
    """The field a dashed word sets; ``None`` when it is text; ``BadInput`` for an unknown
    ``--word``."""
    dash, word = match.groups()
    field = FLAGS.get(word.lower())
    if field is None and dash == "--" and word[0].isalpha():
        raise BadInput(
            _("Unknown flag {flag}. The flags are {flags}.", flag=_shown("--" + word), flags=_USAGE)
        )
    return field


def _convert(field: str, value: str) -> Any:
    if field in ("aspect", *_RANGES):
        value = unicodedata.normalize("NFKC", value)  # fullwidth digits and colons (CJK input)
    if field == "aspect":
        try:
            return check_aspect(value)
        except BadInput:
            raise BadInput(
                _("--ar takes {rules}; not {value}.", rules=ASPECT_RULES, value=_shown(value))
            ) from None
    if field in _RANGES:
        return _whole(field, value)
    return value  # negative (tidied already) or model (the engine checks the name)


def _whole(field: str, value: str | int) -> int:
    """A seed or count, typed (``"42"``) or given (``42``), within its range."""
    low, high = _RANGES[field]
    number = value
    if isinstance(value, str):
        short = len(value) <= len(str(high))  # int() of 5000 digits is an error of its own
        number = int(value) if short and value.isdecimal() else -1
    if isinstance(number, bool) or not isinstance(number, int) or not low <= number <= high:
        raise BadInput(_("{usage}; not {value}.", usage=_usage(field), value=_shown(str(value))))
    return number


def _usage(field: str) -> str:
    low, high = _RANGES[field]
    return _(
        "{flag} takes a whole number from {low} to {high}",
        flag=_SPELLING[field],
        low=low,
        high=high,
    )


def _missing(field: str) -> str:
    if field == "negative":
        return _("--no needs the things to leave out, e.g. --no text, watermark.")
    if field == "model":
        return _("--model needs a model name, e.g. --model flux-dev.")
    if field == "aspect":
        return _("--ar needs a ratio: {rules}.", rules=ASPECT_RULES)
    return _("{usage}; it has none.", usage=_usage(field))


def _twice(field: str, match: re.Match[str]) -> str:
    return _(
        "{flag} is given twice (again as {again}); give it once.",
        flag=_SPELLING[field],
        again=_shown(match.group()),
    )


def _tidy(text: str) -> str:
    """Runs of spaces as one space, no space at either end of a line, at most one empty
    line in a row: what taking words out of the middle of a prompt leaves behind."""
    lines = [" ".join(line.split()) for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _shown(value: str) -> str:
    """A user's text inside an error message: quoted, and short."""
    return f"“{value[:24]}…”" if len(value) > 24 else f"“{value}”"
