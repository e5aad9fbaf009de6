"""The modal that takes a member's own Hugging Face token (``/settings`` → ``Hugging Face``).

The field starts empty and its value is never shown back: the page says only whose account it
is. discord.py logs whole gateway events at DEBUG, the modal's submission among them, before
any handler could remember the token, so the field's ``custom_id`` is named a secret input for
the log redactor (``imagine.logsafe``).
"""

from __future__ import annotations

from typing import Protocol

import discord

from discord_jobs.language import Languages
from imagine import logsafe
from imagine.i18n import Texts, _

TOKEN_INPUT = "settings:hf-token"
logsafe.secret_input(TOKEN_INPUT)


class TokenTaker(Protocol):
    languages: Languages

    async def connect_token(self, interaction: discord.Interaction, typed: str) -> None: ...


class TokenModal(discord.ui.Modal):
    """One field: the token. Submitted, it goes to ``taker.connect_token``."""

    def __init__(self, taker: TokenTaker, tr: Texts) -> None:
        super().__init__(title="Hugging Face", timeout=15 * 60, custom_id="settings:hf-modal")
        self.taker = taker
        self.token: discord.ui.TextInput[TokenModal] = discord.ui.TextInput(
            label=tr(_("Access token (read is enough)")),
            custom_id=TOKEN_INPUT,
            placeholder=tr(_("hf_… from huggingface.co/settings/tokens")),
            style=discord.TextStyle.short,
            min_length=20,
            max_length=200,
        )
        self.add_item(self.token)

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        await self.taker.languages.prepare(interaction)  # the member's settings and language
        return True

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await self.taker.connect_token(interaction, self.token.value)
