"""Which language a member reads, decided once per interaction.

The member's ``/settings`` language when they chose one, else their Discord client's locale
(``interaction.locale``). What was decided is kept on the interaction (``extras``), so every
reply to it, a refusal included, speaks the same language without asking again. The locale
seen is remembered for the member, so a DM (which carries no locale) is answered in it too.
"""

from __future__ import annotations

import asyncio
import logging

import discord
from discord import app_commands

from imagine.i18n import Language, Texts, language_for, texts
from imagine.store import Store, UserSettings

log = logging.getLogger(__name__)

MEMBER = "member"
LANGUAGE = "language"


class Languages:
    """Reads a member's settings (cached by the store) and decides their language."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._notes: set[asyncio.Task[object]] = set()

    async def prepare(self, interaction: discord.Interaction) -> Texts:
        """Decide (once) and keep on ``interaction`` the member's settings and language."""
        if LANGUAGE in interaction.extras:
            return texts(interaction.extras[LANGUAGE])
        locale = str(interaction.locale)
        try:
            member = await self.store.user(interaction.user.id)
        except Exception:  # the database is down: still answer, in the client's language
            log.warning("could not read the settings of %s", interaction.user.id, exc_info=True)
            member = UserSettings(interaction.user.id)
        if member.locale != locale:
            self._note_locale(interaction.user.id, locale)
        language = language_for(member.language, locale)
        interaction.extras[MEMBER] = member
        interaction.extras[LANGUAGE] = language
        return texts(language)

    def _note_locale(self, user_id: int, locale: str) -> None:
        """Remember the locale in the background: the answer must not wait for a write."""
        task = asyncio.get_running_loop().create_task(self.store.note_locale(user_id, locale))
        self._notes.add(task)
        task.add_done_callback(self._noted)

    def _noted(self, task: asyncio.Task[object]) -> None:
        self._notes.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("could not remember a locale", exc_info=task.exception())


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
