"""/settings: a member's own defaults, on one ephemeral message of menus and buttons.

What a member chooses here fills in what they leave out of a request (``Launcher.plan``:
member > server > bot): the model (only where the server allows it), the shape, the number
of images (within the server's most), whether results are private (an ephemeral reply), and
the language the bot speaks to them. ``Reset`` goes back to the server's defaults.

``Hugging Face`` takes the member's own token in a modal (``cogs.utils.hugging_face``): once
the hub names its account, it is kept sealed and their ZeroGPU jobs spend their own quota. The
page then shows only "connected as <account>"; ``Forget token`` deletes it. Without a usable
``SECRETS_KEY`` the button says the feature is off.

The menus' custom ids are fixed and the view is registered at start, so a menu still works
on a message shown before a restart. That one registered view answers every page: a page is
sent with a view that discord.py does not keep (``components_only``), or each page and each
change would leave a view in its store for ever.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from cogs.utils.hugging_face import TokenModal
from discord_jobs.language import LANGUAGE, MEMBER, Languages, member_of, texts_of
from discord_jobs.launch import DEFAULT_MODEL, Launcher, allowed_models
from discord_jobs.render import COLOR_OK, NO_PINGS, shown_prompt
from discord_jobs.starting import refuse
from imagine.aspects import ASPECT_CHOICES
from imagine.errors import ImagineError
from imagine.flags import MAX_COUNT
from imagine.i18n import LANGUAGE_NAMES, Language, Text, Texts, _, language_for, n_, texts
from imagine.member_tokens import TOKENS_OFF, MemberTokens, Standing, TokenState
from imagine.store import GuildSettings, UserSettings
from imagine.whoami import HubAccount

if TYPE_CHECKING:
    from bot import ImagineBot

DEFAULT = "default"
"""The menu value that means "no choice of mine: the server's default"."""
FOLLOW_DISCORD = "discord"
MAX_OPTIONS = 25
SHOWN_ACCOUNT = 100
"""The most of an account name the page shows."""


def first_option(label: str, value: str, chosen: bool) -> discord.SelectOption:
    """The option that means "no choice of mine" (the server's default, or Discord's)."""
    return discord.SelectOption(label=label, value=value, default=chosen)


def model_options(
    member: UserSettings, allowed: list[str], server_default: str, tr: Texts
) -> list[discord.SelectOption]:
    label = tr(_("Server's default ({value})", value=server_default))
    options = [first_option(label, DEFAULT, member.model not in allowed)]
    options += [
        discord.SelectOption(label=name, value=name, default=member.model == name)
        for name in allowed[: MAX_OPTIONS - 1]
    ]
    return options


def aspect_options(member: UserSettings, tr: Texts) -> list[discord.SelectOption]:
    label = tr(_("Server's default ({value})", value="1:1"))
    options = [first_option(label, DEFAULT, member.aspect is None)]
    options += [
        discord.SelectOption(label=aspect, value=aspect, default=member.aspect == aspect)
        for aspect in ASPECT_CHOICES
    ]
    return options


def count_options(
    member: UserSettings, most: int, server_default: int, tr: Texts
) -> list[discord.SelectOption]:
    label = tr(_("Server's default ({value})", value=server_default))
    options = [first_option(label, DEFAULT, member.count is None)]
    options += [
        discord.SelectOption(label=tr(n_images(n)), value=str(n), default=member.count == n)
        for n in range(1, most + 1)
    ]
    return options


def n_images(n: int) -> Text:
    return n_("{n} image", "{n} images", n)


def token_text(token: TokenState) -> Text:
    """What the page says of the member's Hugging Face token: never the token."""
    if token.standing is Standing.OFF:
        return _("off on this bot")
    if token.standing is Standing.NONE:
        return _("not connected: your ZeroGPU jobs use the bot's quota")
    if token.standing is Standing.UNREADABLE:
        return _("your token can no longer be read: connect it again")
    account = shown_prompt(token.account or "?", SHOWN_ACCOUNT)
    return _("connected as {account}", account=account)


def language_options(member: UserSettings, tr: Texts) -> list[discord.SelectOption]:
    options = [first_option(tr(_("Follow Discord")), FOLLOW_DISCORD, member.language is None)]
    options += [
        discord.SelectOption(
            label=LANGUAGE_NAMES[language],
            value=language.value,
            default=member.language == language.value,
        )
        for language in Language
    ]
    return options


class SettingsPage:
    """What one member's /settings message shows, in their language."""

    def __init__(
        self,
        member: UserSettings,
        server: GuildSettings | None,
        allowed: list[str],
        locale: str,
        bot_default: str,
        token: TokenState,
    ) -> None:
        self.member = member
        self.server = server
        self.allowed = allowed
        self.token = token
        self.language = language_for(member.language, locale)
        self.tr = texts(self.language)
        self.server_model = (server.default_model if server else None) or bot_default
        self.most = (server.max_count if server else None) or MAX_COUNT
        self.server_count = min((server.default_count if server else None) or 1, self.most)

    def embed(self) -> discord.Embed:
        tr, member = self.tr, self.member
        mine, theirs = tr(_("yours")), tr(_("server's default"))
        model_mine = member.model is not None and member.model in self.allowed
        model = member.model if model_mine and member.model else self.server_model
        count = min(member.count, self.most) if member.count else self.server_count
        language_name = LANGUAGE_NAMES[self.language]
        embed = discord.Embed(
            title=tr(_("Your settings")),
            description=tr(
                _(
                    "Your own defaults for /imagine, \u201cImagine this\u201d and DMs. "
                    "What you give a command still wins."
                )
            ),
            color=COLOR_OK,
        )
        embed.add_field(name=tr(_("Model")), value=f"{model} ({mine if model_mine else theirs})")
        aspect = member.aspect or "1:1"
        embed.add_field(
            name=tr(_("Aspect")), value=f"{aspect} ({mine if member.aspect else theirs})"
        )
        embed.add_field(name=tr(_("Images")), value=f"{count} ({mine if member.count else theirs})")
        private = tr(_("on")) if member.private else tr(_("off"))
        embed.add_field(name=tr(_("Private results")), value=private)
        if member.language is None:
            language_name = tr(_("{language} (following Discord)", language=language_name))
        embed.add_field(name=tr(_("Language")), value=language_name)
        embed.add_field(name="Hugging Face", value=tr(token_text(self.token)), inline=False)
        return embed


class Menu(StrEnum):
    """A menu of the page; its value is the menu's ``custom_id`` part."""

    MODEL = "model"
    ASPECT = "aspect"
    COUNT = "count"
    LANGUAGE = "language"


class SettingsView(discord.ui.View):
    """The menus and buttons. Also registered once at start (no ``page``; the ids are fixed),
    so that a page shown before a restart still works: it answers with a fresh page."""

    def __init__(self, handler: SettingsHandler, page: SettingsPage | None = None) -> None:
        super().__init__(timeout=None)
        self.handler = handler
        tr = page.tr if page else texts(None)
        member = page.member if page else UserSettings(0)
        token = page.token if page else TokenState(Standing.CONNECTED)  # every button
        selects: list[tuple[Menu, str, list[discord.SelectOption]]] = [
            (
                Menu.MODEL,
                tr(_("Model")),
                model_options(member, page.allowed, page.server_model, tr)
                if page
                else [discord.SelectOption(label=DEFAULT, value=DEFAULT)],
            ),
            (Menu.ASPECT, tr(_("Aspect")), aspect_options(member, tr)),
            (
                Menu.COUNT,
                tr(_("Images")),
                count_options(member, page.most, page.server_count, tr)
                if page
                else [discord.SelectOption(label=DEFAULT, value=DEFAULT)],
            ),
            (Menu.LANGUAGE, tr(_("Language")), language_options(member, tr)),
        ]
        for row, (key, placeholder, options) in enumerate(selects):
            select: discord.ui.Select[SettingsView] = discord.ui.Select(
                custom_id=f"settings:{key.value}", placeholder=placeholder, options=options, row=row
            )
            select.callback = self._chosen(key, select)  # type: ignore[method-assign]
            self.add_item(select)
        private: discord.ui.Button[SettingsView] = discord.ui.Button(
            custom_id="settings:private",
            label=tr(_("Private results: on")) if member.private else tr(_("Private results: off")),
            style=discord.ButtonStyle.success if member.private else discord.ButtonStyle.secondary,
            row=4,
        )
        private.callback = self._toggled_private  # type: ignore[method-assign]
        reset: discord.ui.Button[SettingsView] = discord.ui.Button(
            custom_id="settings:reset",
            label=tr(_("Reset")),
            style=discord.ButtonStyle.danger,
            row=4,
        )
        reset.callback = self._reset  # type: ignore[method-assign]
        self.add_item(private)
        self.add_item(self._hugging_face_button(token, tr))
        if token.standing in (Standing.CONNECTED, Standing.UNREADABLE):
            forget: discord.ui.Button[SettingsView] = discord.ui.Button(
                custom_id="settings:hf-forget",
                label=tr(_("Forget token")),
                style=discord.ButtonStyle.secondary,
                row=4,
            )
            forget.callback = self._forget_token  # type: ignore[method-assign]
            self.add_item(forget)
        self.add_item(reset)

    def _hugging_face_button(self, token: TokenState, tr: Texts) -> discord.ui.Button[SettingsView]:
        """Connect a token (another one, when connected); says so when the feature is off."""
        off = token.standing is Standing.OFF
        button: discord.ui.Button[SettingsView] = discord.ui.Button(
            custom_id="settings:hf",
            label=tr(_("Hugging Face: off")) if off else "Hugging Face",
            style=discord.ButtonStyle.secondary
            if off or token.standing is Standing.CONNECTED
            else discord.ButtonStyle.primary,
            row=4,
        )
        button.callback = self._hugging_face  # type: ignore[method-assign]
        return button

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        await self.handler.languages.prepare(interaction)  # before any answer
        return True

    def _chosen(self, menu: Menu, select: discord.ui.Select[SettingsView]) -> Any:
        async def callback(interaction: discord.Interaction) -> None:
            await self.handler.choose(interaction, menu, select.values[0])

        return callback

    async def _toggled_private(self, interaction: discord.Interaction) -> None:
        await self.handler.change(interaction, lambda m: replace(m, private=not m.private))

    async def _reset(self, interaction: discord.Interaction) -> None:
        await self.handler.change(interaction, UserSettings.cleared)

    async def _hugging_face(self, interaction: discord.Interaction) -> None:
        await self.handler.ask_for_token(interaction)

    async def _forget_token(self, interaction: discord.Interaction) -> None:
        await self.handler.forget_token(interaction)


def components_only(view: SettingsView) -> SettingsView:
    """``view`` stopped before it is sent: discord.py then sends its menus but keeps nothing
    for the message (a view with no timeout, stored on every edit, would stay for ever); the
    persistent view registered at start answers the page instead."""
    view.stop()
    return view


class SettingsHandler:
    """Applies a member's choices and shows the page again."""

    def __init__(
        self,
        launcher: Launcher,
        languages: Languages,
        tokens: MemberTokens,
        whoami: Callable[[str], Awaitable[HubAccount]],
    ) -> None:
        self.launcher = launcher
        self.languages = languages
        self.tokens = tokens
        self.whoami = whoami
        """Asks the hub whose token a member typed (``imagine.whoami``)."""

    async def page(self, interaction: discord.Interaction, member: UserSettings) -> SettingsPage:
        server = await self.launcher.guild_settings(interaction.guild_id)
        allowed = allowed_models(self.launcher.engine, server)
        token = self.tokens.state(interaction.user.id)
        return SettingsPage(member, server, allowed, str(interaction.locale), DEFAULT_MODEL, token)

    async def show(self, interaction: discord.Interaction) -> None:
        page = await self.page(interaction, member_of(interaction))
        await interaction.response.send_message(
            embed=page.embed(),
            view=components_only(SettingsView(self, page)),
            ephemeral=True,
            allowed_mentions=NO_PINGS,
        )

    async def choose(self, interaction: discord.Interaction, menu: Menu, value: str) -> None:
        """Check a choice, then store it; a choice that cannot be made here (a model this
        server does not allow, a value no menu offers) is refused and changes nothing."""
        chosen = None if value in (DEFAULT, FOLLOW_DISCORD) else value
        server = await self.launcher.guild_settings(interaction.guild_id)
        if menu is Menu.MODEL:
            allowed = allowed_models(self.launcher.engine, server)
            if chosen is not None and chosen not in allowed:
                await refuse(interaction, _("That model is not enabled here."))
                return
            await self.change(interaction, lambda m: replace(m, model=chosen))
        elif menu is Menu.ASPECT:
            if chosen is not None and chosen not in ASPECT_CHOICES:
                await refuse(interaction, _("That shape is not one I know."))
                return
            await self.change(interaction, lambda m: replace(m, aspect=chosen))
        elif menu is Menu.COUNT:
            count = int(chosen) if chosen and chosen.isdigit() else None
            if count is not None and not 1 <= count <= MAX_COUNT:
                await refuse(interaction, _("That number of images is not allowed."))
                return
            await self.change(interaction, lambda m: replace(m, count=count))
        elif menu is Menu.LANGUAGE:
            if chosen is not None and chosen not in {lang.value for lang in Language}:
                await refuse(interaction, _("That language is not one I speak."))
                return
            await self.change(interaction, lambda m: replace(m, language=chosen))

    async def change(
        self, interaction: discord.Interaction, change: Callable[[UserSettings], UserSettings]
    ) -> None:
        """Store the member's new settings and show the page again, in their language now."""
        locale = str(interaction.locale)
        member = await self.launcher.store.change_user(
            interaction.user.id, lambda current: replace(change(current), locale=locale)
        )
        interaction.extras[MEMBER] = member
        interaction.extras[LANGUAGE] = language_for(member.language, str(interaction.locale))
        await self.show_again(interaction)

    async def show_again(self, interaction: discord.Interaction) -> None:
        """The page, shown anew in place (the answer to a menu, a button or a modal)."""
        page = await self.page(interaction, member_of(interaction))
        embed, view = page.embed(), components_only(SettingsView(self, page))
        if interaction.response.is_done():  # deferred while the hub was asked
            await interaction.edit_original_response(
                embed=embed, view=view, allowed_mentions=NO_PINGS
            )
        else:
            await interaction.response.edit_message(
                embed=embed, view=view, allowed_mentions=NO_PINGS
            )

    # -- the member's own Hugging Face token ----------------------------------------------

    async def ask_for_token(self, interaction: discord.Interaction) -> None:
        """The modal that takes a token; when the feature is off, says so instead."""
        if not self.tokens.enabled:
            await refuse(interaction, TOKENS_OFF)
            return
        await interaction.response.send_modal(TokenModal(self, texts_of(interaction)))

    async def connect_token(self, interaction: discord.Interaction, typed: str) -> None:
        """Check the typed token with the hub, keep it sealed, show the page again; a token
        the hub refuses (or cannot check) is told privately and nothing is stored."""
        await interaction.response.defer()  # the page is updated once the hub has answered
        try:
            await self.tokens.connect(interaction.user.id, typed, self.whoami)
        except ImagineError as exc:
            await refuse(interaction, exc)
            return
        await self.show_again(interaction)

    async def forget_token(self, interaction: discord.Interaction) -> None:
        await self.tokens.forget(interaction.user.id)
        await self.show_again(interaction)


class MemberSettings(commands.Cog):
    def __init__(self, bot: ImagineBot) -> None:
        self.handler = SettingsHandler(bot.launcher, bot.languages, bot.member_tokens, bot.whoami)
        self.bot = bot

    async def cog_load(self) -> None:
        self.bot.add_view(SettingsView(self.handler))

    @app_commands.command(
        name="settings", description="Your own defaults: model, shape, images, privacy, language"
    )
    @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=True)
    @app_commands.allowed_installs(guilds=True, users=True)
    async def settings(self, interaction: discord.Interaction) -> None:
        await self.handler.show(interaction)


async def setup(bot: ImagineBot) -> None:
    await bot.add_cog(MemberSettings(bot))
