"""Words people read, in their language.

Messages are written in English in the code, marked with ``_`` (or ``n_`` for a count), and
looked up in gettext catalogs (``locales/<lang>/LC_MESSAGES/imagine.mo``, compiled from the
``.po`` sources with Babel). ``_`` does not translate at once: it returns a ``Text``, a ``str``
whose value is the English message (so logs, the CLI and the job log read English) that also
remembers its message id and parameters. Whoever shows it to a person translates it last,
with the ``Texts`` of that person's language; a parameter may itself be a ``Text``. A string
that is not a ``Text`` (a backend's own words, a prompt) is shown as it is.

What is shown to people is typed ``Shown``: a ``Text``, or a ``Verbatim`` (words that are
shown as they are, said so where they are made). An f-string, ``+``, ``%``, ``.format`` or
``.join`` makes a plain ``str`` even of a ``Text`` (the translation is lost, English is
shown), and the type checker refuses a plain ``str`` where ``Shown`` is expected: put the
pieces in a message's parameters instead (``_("Generating {index}/{length}", index=…)``),
or join messages with ``joined``.

A message missing from a catalog falls back to English, never to an id: the ids are the
English messages themselves.
"""

from __future__ import annotations

import gettext
import time
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any, NewType, TypeAlias

from babel import Locale
from babel.numbers import format_decimal

DOMAIN = "imagine"
LOCALE_DIR = Path(__file__).resolve().parent.parent / "locales"


class Language(StrEnum):
    """A language the bot speaks. Stored as its code."""

    EN = "en"
    RU = "ru"


DEFAULT_LANGUAGE = Language.EN

LANGUAGE_NAMES = {Language.EN: "English", Language.RU: "Русский"}
"""Each language in its own words (what a language menu shows)."""


def language_of(locale: str | None) -> Language:
    """The language for a Discord locale (``ru``, ``en-US``, ``pt-BR`` …): ours when we speak
    it, else English."""
    if locale:
        code = locale.replace("_", "-").split("-")[0].lower()
        for language in Language:
            if language.value == code:
                return language
    return DEFAULT_LANGUAGE


@dataclass(frozen=True, slots=True)
class Number:
    """A number shown to a person: grouped and with the decimal mark of their language
    (``1,234.5`` / ``1 234,5``). ``digits``: decimals always shown."""

    value: float
    digits: int = 0

    def __str__(self) -> str:
        return format_number(self.value, self.digits, DEFAULT_LANGUAGE)


@dataclass(frozen=True, slots=True)
class Moment:
    """A point in time shown to people: on Discord as ``<t:…:R>`` ("in 9 minutes", which the
    client renders in the reader's language and time zone); in English text (a log, the CLI)
    as a UTC clock time."""

    epoch: float

    def __str__(self) -> str:
        return time.strftime("%H:%M UTC", time.gmtime(self.epoch))

    def discord(self) -> str:
        return f"<t:{int(self.epoch)}:R>"


def format_number(value: float, digits: int, language: Language) -> str:
    if language is Language.EN:  # Python's own format is English's, at a fraction of the cost
        return f"{value:,.{digits}f}"
    pattern = "#,##0" + ("." + "0" * digits if digits else "")
    return format_decimal(value, format=pattern, locale=_locale(language))


class Text(str):
    """An English message that can be shown in another language (see the module's text)."""

    msgid: str
    plural: str | None
    number: int | None  # the count a plural message depends on
    params: dict[str, Any]

    def __new__(
        cls,
        msgid: str,
        params: dict[str, Any] | None = None,
        *,
        plural: str | None = None,
        count: int | None = None,
    ) -> Text:
        params = params or {}
        english = msgid if plural is None or count == 1 else plural
        self = super().__new__(cls, _fill(english, {k: str(v) for k, v in params.items()}))
        self.msgid = msgid
        self.plural = plural
        self.number = count
        self.params = params
        return self

    def __reduce__(self) -> Any:  # copies and pickles keep what makes it translatable
        return (_rebuild, (self.msgid, self.params, self.plural, self.number))


Verbatim = NewType("Verbatim", str)
"""Words shown to people as they are, in every language: a backend's own (its progress text,
its error message), a prompt, a name. ``Verbatim(...)`` claims that nothing translatable is
inside: never wrap what was built from a ``Text``."""

Shown: TypeAlias = Text | Verbatim
"""What is shown to a person: translated last when it is a ``Text``, as it is otherwise."""


def _rebuild(msgid: str, params: dict[str, Any], plural: str | None, count: int | None) -> Text:
    return Text(msgid, params, plural=plural, count=count)


def _(msgid: str, /, **params: Any) -> Text:
    """Mark a message for translation; ``{name}`` placeholders take ``params``."""
    return Text(msgid, params)


def n_(singular: str, plural: str, count: int, /, **params: Any) -> Text:
    """A message that depends on a count (Russian has three forms where English has two);
    ``{n}`` is the count unless ``params`` says otherwise."""
    params.setdefault("n", count)
    return Text(singular, params, plural=plural, count=count)


def joined(separator: str, parts: Iterable[Shown]) -> Text:
    """``separator.join(parts)`` for what is shown: each part is still translated when read
    (``str.join`` would make them all English). The separator is not a word: it is the same in
    every language."""
    values = {f"part{index}": part for index, part in enumerate(parts)}
    escaped = separator.replace("{", "{{").replace("}", "}}")
    return Text(escaped.join("{" + name + "}" for name in values), values)


def _fill(template: str, values: dict[str, str]) -> str:
    """``template`` with its ``{name}`` placeholders filled; a template whose placeholders do
    not match (a translator's slip) is shown unfilled rather than failing the reply."""
    if not values:
        return template
    try:
        return template.format_map(values)
    except (KeyError, IndexError, ValueError):
        return template


class Texts:
    """One language's translations, and its way of writing numbers."""

    def __init__(self, language: Language, catalog: gettext.NullTranslations) -> None:
        self.language = language
        self.catalog = catalog

    def __call__(self, value: Shown) -> str:
        """``value`` in this language when it is a ``Text``; as it is otherwise."""
        if not isinstance(value, Text):
            return value
        if value.plural is None:
            template = self.catalog.gettext(value.msgid)
        else:
            template = self.catalog.ngettext(value.msgid, value.plural, value.number or 0)
        return _fill(template, {k: self._param(v) for k, v in value.params.items()})

    def _param(self, value: Any) -> str:
        if isinstance(value, Text):
            return self(value)
        if isinstance(value, Number):
            return format_number(value.value, value.digits, self.language)
        if isinstance(value, Moment):
            return value.discord()
        return str(value)


@cache
def texts(language: Language | str | None = None) -> Texts:
    """The ``Texts`` of a language (a code such as ``"ru"``; None or unknown: English)."""
    chosen = language if isinstance(language, Language) else language_of(language)
    catalog = gettext.translation(
        DOMAIN, localedir=LOCALE_DIR, languages=[chosen.value], fallback=True
    )
    return Texts(chosen, catalog)


@cache
def _locale(language: Language) -> Locale:
    return Locale.parse(language.value)


ENGLISH = texts(Language.EN)


def language_for(chosen: str | None, locale: str | None) -> Language:
    """A member's language: the one they chose (``/settings``), else their client's."""
    return language_of(chosen) if chosen else language_of(locale)
