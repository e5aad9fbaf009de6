"""Command names and descriptions in the member's language, as Discord shows them.

discord.py hands every name, description and choice of the command tree to the tree's
``Translator`` when it syncs, once per Discord locale; what this returns goes into the synced
JSON as ``name_localizations`` / ``description_localizations``, and Discord shows each member
the names of their client's language. The English names stay the canonical ones: they are
what arrives in an interaction, whatever the member saw.
"""

from __future__ import annotations

import discord
from discord import app_commands

from imagine.i18n import DEFAULT_LANGUAGE, Language, texts

LOCALES = {discord.Locale.russian: Language.RU}
"""The Discord locales we have names for, and the catalog each one reads."""


class CatalogTranslator(app_commands.Translator):
    """Reads command strings from the gettext catalogs that hold the bot's messages."""

    async def translate(
        self,
        string: app_commands.locale_str,
        locale: discord.Locale,
        context: app_commands.TranslationContextTypes,
    ) -> str | None:
        return command_text(string.message, locale)


def command_text(message: str, locale: discord.Locale) -> str | None:
    """``message`` in ``locale``'s language; None where we have no translation (Discord then
    shows the English), never the message id."""
    language = LOCALES.get(locale)
    if language is None or language is DEFAULT_LANGUAGE:
        return None
    translated = texts(language).catalog.gettext(message)
    return translated if translated != message else None
