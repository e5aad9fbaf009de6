"""Which language a member reads, decided once per interaction.

The member's ``/settings`` language when they chose one, else their Discord client's locale
(``interaction.locale``). What was decided is kept on the interaction (``extras``), so every
reply to it, a refusal included, speaks the same language without asking again. Nothing here
waits for the database: members' settings are in memory (``Store.load_users``), and the
locales seen lately are kept here, for DMs, which carry none.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

import discord
from discord import app_commands

from imagine.i18n import Language, Texts, language_for, texts
from imagine.store import Store, UserSettings

log = logging.getLogger(__name__)

MEMBER = "member"
LANGUAGE = "language"


LOCALES_KEPT = 10_000
"""Members whose latest locale is remembered in memory (the most recently seen)."""


class Languages:
    """Decides a member's language from their settings and their client."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._seen: OrderedDict[int, str] = OrderedDict()

    async def prepare(self, interaction: discord.Interaction) -> Texts:
        """Decide (once) and keep on ``interaction`` the member's settings and language."""
        if LANGUAGE in interaction.extras:
            return texts(interaction.extras[LANGUAGE])
        locale = str(interaction.locale)
        self._remember(interaction.user.id, locale)
        member = self.store.user(interaction.user.id)
        language = language_for(member.language, locale)
        interaction.extras[MEMBER] = member
        interaction.extras[LANGUAGE] = language
        return texts(language)

    def _remember(self, user_id: int, locale: str) -> None:
        self._seen[user_id] = locale
        self._seen.move_to_end(user_id)
        if len(self._seen) > LOCALES_KEPT:
            self._seen.popitem(last=False)

    async def for_message(self, user_id: int) -> Language:
        """The language of a member who wrote a message (a DM): their choice, else the locale
        their client showed here lately, else their latest job's (another process may have
        seen them), else English."""
        member = self.store.user(user_id)
        if member.language:
            return language_for(member.language, None)
        locale = self._seen.get(user_id) or member.locale
        if locale is None:
            locale = await self.store.last_language(user_id)
        return language_for(None, locale)


def language_of_interaction(interaction: discord.Interaction) -> Language:
    """The language decided for ``interaction`` (its client's locale if none was)."""
    decided = interaction.extras.get(LANGUAGE)
    return decided if decided is not None else language_for(None, str(interaction.locale))


def texts_of(interaction: discord.Interaction) -> Texts:
    return texts(language_of_interaction(interaction))


def member_of(interaction: discord.Interaction) -> UserSettings:
    """The member's own settings, as read for this interaction (none: no choices)."""
    member = interaction.extras.get(MEMBER)
    return member if member is not None else UserSettings(interaction.user.id)


class LocalizedTree(app_commands.CommandTree):
    """Decides the member's language before any command, menu or autocomplete runs."""

    languages: Languages | None = None

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        if self.languages is not None:
            await self.languages.prepare(interaction)
        return True
