"""Locales as Discord models them: the locales a client can be in, the checks Discord applies
to a command's ``name_localizations``/``description_localizations`` on registration, and what
a client in one locale shows (and sends back) for a localized command.

A client shows ``name_localizations[locale]`` when the command has one and the canonical
name otherwise; whatever the user picked, the interaction carries the canonical names.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .errors import form_error
from .protocol import COMMAND_NAME_RE

__all__ = [
    "DEFAULT_LOCALE",
    "DISCORD_LOCALES",
    "check_command_localizations",
    "check_locale",
    "check_option_localizations",
    "check_unique_localized_names",
    "find_by_shown_name",
    "shown_name",
]

DEFAULT_LOCALE = "en-US"
#: Every locale a Discord client can be in (developers/docs/reference#locales).
DISCORD_LOCALES = frozenset(
    {
        *("id", "da", "de", "en-GB", "en-US", "es-ES", "es-419", "fr", "hr", "it", "lt"),
        *("hu", "nl", "no", "pl", "pt-BR", "ro", "fi", "sv-SE", "vi", "tr", "cs", "el"),
        *("bg", "ru", "uk", "hi", "th", "zh-CN", "ja", "zh-TW", "ko"),
    }
)


def check_locale(locale: str) -> str:
    """``locale`` if a Discord client can be in it; a ValueError (a test's mistake) if not."""
    if locale not in DISCORD_LOCALES:
        raise ValueError(f"{locale!r} is not a Discord locale (one of {sorted(DISCORD_LOCALES)})")
    return locale


def shown_name(entry: dict[str, Any], locale: str) -> str:
    """The name a client in ``locale`` shows for a command, option or choice."""
    return (entry.get("name_localizations") or {}).get(locale) or entry["name"]


def find_by_shown_name(
    entries: Iterable[dict[str, Any]], name: str, locale: str
) -> dict[str, Any] | None:
    """The entry whose canonical name is ``name``, else the one shown as ``name`` in
    ``locale`` (a test may type either; the client sends the canonical one)."""
    entries = list(entries)
    found = next((e for e in entries if e["name"] == name), None)
    if found is None:
        found = next((e for e in entries if shown_name(e, locale) == name), None)
    return found


# ---------------------------------------------------------------------- registration checks


def _localizations(data: dict[str, Any], key: str, path: str) -> dict[str, Any]:
    """The ``key`` map of ``data``, its keys checked to be Discord locales."""
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise form_error(f"{path}.{key}", "DICT_TYPE_CONVERT", "Only dictionaries may be used")
    for locale in value:
        if locale not in DISCORD_LOCALES:
            raise form_error(
                f"{path}.{key}.{locale}",
                "ENUM_TYPE_COERCE",
                f'Value "{locale}" is not a valid enum value.',
            )
    return value


def _check_length(value: Any, low: int, high: int, path: str) -> None:
    if not isinstance(value, str):
        raise form_error(path, "STRING_TYPE_CONVERT", "Could not interpret value as string.")
    if not low <= len(value) <= high:
        message = f"Must be between {low} and {high} in length."
        raise form_error(path, "BASE_TYPE_BAD_LENGTH", message)


def _check_chat_names(names: dict[str, Any], path: str) -> None:
    """Localized chat-input names follow the canonical name's rule (lowercase, ≤ 32)."""
    for locale, name in names.items():
        where = f"{path}.name_localizations.{locale}"
        _check_length(name, 1, 32, where)
        if not COMMAND_NAME_RE.fullmatch(name) or name != name.lower():
            raise form_error(where, "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid")


def _check_descriptions(data: dict[str, Any], path: str) -> None:
    descriptions = _localizations(data, "description_localizations", path)
    for locale, text in descriptions.items():
        _check_length(text, 1, 100, f"{path}.description_localizations.{locale}")


def check_command_localizations(data: dict[str, Any], path: str) -> None:
    """A command's own localizations (its options are checked with the options)."""
    names = _localizations(data, "name_localizations", path)
    if data.get("type", 1) == 1:
        _check_chat_names(names, path)
        _check_descriptions(data, path)
        return
    for locale, name in names.items():  # context menus: any text, 1..32
        _check_length(name, 1, 32, f"{path}.name_localizations.{locale}")


def check_option_localizations(option: dict[str, Any], path: str) -> None:
    """An option's localized name and description, and its choices' localized names."""
    _check_chat_names(_localizations(option, "name_localizations", path), path)
    _check_descriptions(option, path)
    for i, choice in enumerate(option.get("choices") or []):
        where = f"{path}.choices.{i}"
        for locale, name in _localizations(choice, "name_localizations", where).items():
            _check_length(name, 1, 100, f"{where}.name_localizations.{locale}")


def check_unique_localized_names(commands: list[dict[str, Any]], prefix: str = "") -> None:
    """Two commands of one type may not share a localized name in one locale.

    ``prefix`` is how a command's index appears in the error path (``"{i}."`` for a bulk
    overwrite, ``""`` for one command created on its own: the last one is reported).
    """
    seen: dict[tuple[int, str, str], int] = {}
    for i, command in enumerate(commands):
        for locale, name in (command.get("name_localizations") or {}).items():
            key = (command.get("type", 1), locale, name)
            if key in seen:
                where = prefix.format(i=i) + f"name_localizations.{locale}"
                raise form_error(
                    where,
                    "APPLICATION_COMMANDS_DUPLICATE_NAME",
                    "Application command names must be unique",
                )
            seen[key] = i
