"""Interactions, from the user's side: :class:`FakeInteraction` (one interaction and
everything the bot did with it) and the drivers a test calls to make one — a slash command,
an autocomplete, a message or user context menu, a button press, a select, a modal submit.

Each driver builds the full INTERACTION_CREATE payload Discord would send (ids, a fresh
token, the member with its permissions, ``app_permissions``, ``channel``, ``context``,
``authorizing_integration_owners``, ``attachment_size_limit``...) and hands it to the
gateway. Discord's 3 s deadline runs from the moment the fake created the interaction
(``created_at``), not from its delivery. What a user's client would not send (a disabled or
missing button, a required option left out, a modal never opened) is a ``ValueError``.
How the bot's answers are checked and stored is ``responses.py``'s job.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .cdn import Cdn
from .commands import Commands
from .components import find_component
from .gateway import Gateway
from .locales import check_locale
from .modals import submission
from .models import Channel, Guild, MessageRecord
from .protocol import (
    APPLICATION_COMMAND,
    AUTOCOMPLETE,
    BUTTON,
    CB_MODAL,
    DEFAULT_ATTACHMENT_LIMIT,
    MESSAGE_COMPONENT,
    MODAL_SUBMIT,
    OPT_USER,
    STRING_SELECT,
)
from .state import DiscordState

__all__ = ["FakeInteraction", "InteractionDriver", "Waiter"]


class Waiter(Protocol):
    """What a FakeInteraction waits with (the FakeDiscord)."""

    async def wait_until(self, predicate: Callable[[], Any], timeout: float = 10.0) -> Any: ...  # noqa: ASYNC109


@dataclass(eq=False)
class FakeInteraction:
    """An interaction the fake dispatched, and everything the bot did with it."""

    id: int
    token: str
    type: int
    payload: dict[str, Any]
    #: time.monotonic() when the fake created it (Discord's 3 s clock starts here).
    created_at: float
    channel_id: int
    guild_id: int | None
    user: dict[str, Any]
    fake: Waiter = field(repr=False)
    #: When a gateway connection actually carried it (later if it waited for a RESUME).
    delivered_at: float | None = None
    #: ``{"type": ..., "data": ...}`` as the bot sent it, None until it answered.
    callback: dict[str, Any] | None = None
    callback_at: float | None = None
    #: The message created by callback 4/5, or the pressed message for 6/7.
    original: MessageRecord | None = None
    followups: list[MessageRecord] = field(default_factory=list)
    #: (HTTP status, Discord error code) of every error answered for this interaction.
    errors: list[tuple[int, int]] = field(default_factory=list)
    #: For component interactions: the message whose component was used (and for the
    #: submit of a modal opened from a component: that same message).
    source_message: MessageRecord | None = None
    #: The modal the bot opened in answer (callback 9): ``custom_id``, ``title`` and
    #: ``components`` as Discord keeps them (numbered). See ``FakeDiscord.submit_modal``.
    modal: dict[str, Any] | None = None
    #: For a modal submit: the interaction whose modal this submits.
    trigger: FakeInteraction | None = field(default=None, repr=False)

    @property
    def ack_latency(self) -> float | None:
        """Seconds from dispatch to the bot's callback, None if it never answered."""
        if self.callback_at is None:
            return None
        return self.callback_at - self.created_at

    @property
    def error_codes(self) -> list[int]:
        return [code for _, code in self.errors]

    @property
    def messages(self) -> list[MessageRecord]:
        """The reply (if any) then every follow-up, in order."""
        return [m for m in [self.original, *self.followups] if m is not None]

    @property
    def ephemeral_messages(self) -> list[MessageRecord]:
        """The reply and follow-ups only the user sees (not deleted)."""
        return [m for m in self.messages if m.ephemeral and not m.deleted]

    async def wait_callback(self, timeout: float = 5.0) -> dict[str, Any]:  # noqa: ASYNC109
        """Wait until the bot answered this interaction; returns the callback body."""
        await self.fake.wait_until(lambda: self.callback is not None, timeout=timeout)
        assert self.callback is not None
        return self.callback

    async def wait_for(
        self,
        predicate: Callable[[FakeInteraction], bool],
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> FakeInteraction:
        """Wait until ``predicate(self)`` holds (re-checked on every store change)."""
        await self.fake.wait_until(lambda: predicate(self), timeout=timeout)
        return self

    async def wait_modal(self, timeout: float = 5.0) -> dict[str, Any]:  # noqa: ASYNC109
        """The modal the bot answered with; AssertionError if it answered otherwise."""
        callback = await self.wait_callback(timeout)
        assert callback["type"] == CB_MODAL and self.modal is not None, (
            f"the bot answered with callback type {callback['type']}, not a modal: {callback}"
        )
        return self.modal

    async def wait_followup(
        self,
        predicate: Callable[[MessageRecord], bool] | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> MessageRecord:
        """The first follow-up message (optionally one for which ``predicate`` holds)."""

        def find() -> MessageRecord | None:
            return next((m for m in self.followups if predicate is None or predicate(m)), None)

        return await self.fake.wait_until(find, timeout=timeout)

    async def wait_ephemeral(
        self,
        predicate: Callable[[MessageRecord], bool] | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> MessageRecord:
        """The first ephemeral message the bot showed this user that says something.

        The reply (``send_message(ephemeral=True)``, or a ``defer(ephemeral=True)`` once
        edited past "thinking…") or an ephemeral follow-up; with ``predicate``, the first
        for which it holds.
        """

        def find() -> MessageRecord | None:
            return next(
                (
                    m
                    for m in self.ephemeral_messages
                    if not m.loading and (predicate is None or predicate(m))
                ),
                None,
            )

        return await self.fake.wait_until(find, timeout=timeout)


class InteractionDriver:
    """Makes interactions as users' clients do, and dispatches them."""

    def __init__(
        self,
        state: DiscordState,
        commands: Commands,
        gateway: Gateway,
        cdn: Cdn,
        waiter: Waiter,
    ) -> None:
        self.state = state
        self.commands = commands
        self.gateway = gateway
        self.cdn = cdn
        self.waiter = waiter

    def _context(
        self,
        *,
        user: dict[str, Any],
        guild_id: int | None,
        channel_id: int | None,
    ) -> tuple[Channel, Guild | None]:
        state = self.state
        if channel_id is None:
            if guild_id is None:
                channel_id = state.dm_channel_for(user)
            else:
                channel_id = state.guild(guild_id).channel_id
        channel = state.channel(channel_id)
        if guild_id is not None and channel.guild_id != guild_id:
            raise ValueError(f"channel {channel_id} is not in guild {guild_id}")
        guild = state.guilds[channel.guild_id] if channel.guild_id is not None else None
        uid = int(user["id"])
        state.users.setdefault(uid, user)
        if guild is not None:
            state.add_member(guild.id, user)
        return channel, guild

    def _locale(self, user: dict[str, Any], locale: str | None) -> str:
        """The language of the client sending it: ``locale``, else the user's own."""
        return check_locale(locale) if locale is not None else self.state.user_locale(user)

    def _new_interaction(
        self,
        itype: int,
        data: dict[str, Any] | None,
        *,
        user: dict[str, Any],
        channel: Channel,
        guild: Guild | None,
        permissions: int | None,
        attachment_size_limit: int,
        context: int | None,
        locale: str | None = None,
        extra: dict[str, Any] | None = None,
        source_message: MessageRecord | None = None,
        trigger: FakeInteraction | None = None,
    ) -> FakeInteraction:
        """Build the full INTERACTION_CREATE payload and dispatch it.

        ``locale``: the language of the user's client (default: the user's own, see
        ``DiscordState.user_locale``); ``guild_locale`` is the guild's preferred locale.
        """
        state = self.state
        interaction_id = state.snowflake()
        token = "aW50ZXJhY3Rpb246" + secrets.token_urlsafe(150)
        app_perms = state.app_permissions(channel)
        locale = self._locale(user, locale)
        payload: dict[str, Any] = {
            "id": str(interaction_id),
            "application_id": str(state.application_id),
            "type": itype,
            "token": token,
            "version": 1,
            "app_permissions": str(app_perms),
            "locale": locale,
            "entitlements": [],
            "entitlement_sku_ids": [],
            "attachment_size_limit": attachment_size_limit,
        }
        if data is not None:
            payload["data"] = data
        uid = int(user["id"])
        if guild is not None:
            member = guild.members[uid]
            perms = permissions if permissions is not None else state.member_permissions(guild, uid)
            payload["guild_id"] = str(guild.id)
            guild_locale = guild.preferred_locale
            payload["guild"] = {"id": str(guild.id), "locale": guild_locale, "features": []}
            payload["guild_locale"] = guild_locale
            payload["member"] = {**member.to_json(), "permissions": str(perms)}
            payload["channel"] = {**state.channel_json(channel.id), "permissions": str(perms)}
            payload["authorizing_integration_owners"] = {"0": str(guild.id)}
            payload["context"] = 0 if context is None else context
        else:
            payload["user"] = dict(user)
            payload["channel"] = state.channel_json(channel.id)
            payload["authorizing_integration_owners"] = {"0": "0"}
            payload["context"] = 1 if context is None else context
        payload["channel_id"] = str(channel.id)
        if extra:
            payload.update(extra)
        interaction = FakeInteraction(
            id=interaction_id,
            token=token,
            type=itype,
            payload=payload,
            created_at=time.monotonic(),
            channel_id=channel.id,
            guild_id=guild.id if guild is not None else None,
            user=user,
            fake=self.waiter,
            source_message=source_message,
            trigger=trigger,
        )
        state.register_interaction(interaction)
        self.gateway.interaction_created(interaction)
        state.changed()
        return interaction

    # ------------------------------------------------------------------ commands

    async def send_slash(
        self,
        name: str,
        options: dict[str, Any] | None = None,
        *,
        user: dict[str, Any],
        guild_id: int | None = None,
        channel_id: int | None = None,
        permissions: int | None = None,
        subcommand: str | None = None,
        attachment_size_limit: int = DEFAULT_ATTACHMENT_LIMIT,
        context: int | None = None,
        locale: str | None = None,
    ) -> FakeInteraction:
        """A user runs ``/name``; typed from the registered command when there is one.

        ``channel_id`` defaults to the guild's channel (or the user's DM without a guild);
        ``permissions`` defaults to what the member has (@everyone's unless overridden).
        ``subcommand`` may be ``"sub"`` or ``"group sub"``. Attachment options take
        ``bytes``, ``(filename, bytes)``, ``(filename, bytes, {"size": ...})`` or a
        ``FakeAttachment``; user options take a user dict. ``locale``: the user's client
        language (default: the user's own); the command, subcommand and option names may be
        canonical or as that client shows them, ``data`` carries the canonical ones.
        """
        channel, guild = self._context(user=user, guild_id=guild_id, channel_id=channel_id)
        locale = self._locale(user, locale)
        data = self.commands.command_data(
            name, options, guild=guild, channel=channel, subcommand=subcommand, locale=locale
        )
        return self._new_interaction(
            APPLICATION_COMMAND,
            data,
            user=user,
            channel=channel,
            guild=guild,
            permissions=permissions,
            attachment_size_limit=attachment_size_limit,
            context=context,
            locale=locale,
        )

    async def send_autocomplete(
        self,
        name: str,
        options: dict[str, Any],
        focused: str,
        *,
        user: dict[str, Any],
        guild_id: int | None = None,
        channel_id: int | None = None,
        permissions: int | None = None,
        subcommand: str | None = None,
        context: int | None = None,
        locale: str | None = None,
    ) -> FakeInteraction:
        """The user is typing option ``focused``; the bot must answer type 8 with choices.

        Names may be localized as in :meth:`send_slash`.
        """
        if focused not in options:
            raise ValueError(f"focused option {focused!r} must be in options")
        channel, guild = self._context(user=user, guild_id=guild_id, channel_id=channel_id)
        locale = self._locale(user, locale)
        data = self.commands.command_data(
            name,
            options,
            guild=guild,
            channel=channel,
            subcommand=subcommand,
            focused=focused,
            locale=locale,
        )
        return self._new_interaction(
            AUTOCOMPLETE,
            data,
            user=user,
            channel=channel,
            guild=guild,
            permissions=permissions,
            attachment_size_limit=DEFAULT_ATTACHMENT_LIMIT,
            context=context,
            locale=locale,
        )

    async def send_message_command(
        self,
        name: str,
        target: MessageRecord,
        *,
        user: dict[str, Any],
        permissions: int | None = None,
        context: int | None = None,
        attachment_size_limit: int = DEFAULT_ATTACHMENT_LIMIT,
        locale: str | None = None,
    ) -> FakeInteraction:
        """A user picks Apps > ``name`` on ``target`` (message context menu, data type 3).

        The target is resolved as it is now, attachments included. ``name`` may be the
        canonical name or the one the user's client (``locale``) shows; ``data`` carries
        the canonical one.
        """
        channel, guild = self._context(
            user=user, guild_id=target.guild_id, channel_id=target.channel_id
        )
        locale = self._locale(user, locale)
        schema = self.commands.find_schema(name, guild.id if guild else None, 3, locale)
        data: dict[str, Any] = {
            "id": schema["id"] if schema else str(self.state.snowflake()),
            "name": schema["name"] if schema else name,
            "type": 3,
            "target_id": str(target.id),
            # Context-menu targets carry content even without the Message Content intent.
            "resolved": {"messages": {str(target.id): target.to_json()}},
        }
        if schema is not None and "guild_id" in schema:
            data["guild_id"] = schema["guild_id"]
        return self._new_interaction(
            APPLICATION_COMMAND,
            data,
            user=user,
            channel=channel,
            guild=guild,
            permissions=permissions,
            attachment_size_limit=attachment_size_limit,
            context=context,
            locale=locale,
        )

    async def send_user_command(
        self,
        name: str,
        target_user: dict[str, Any],
        *,
        user: dict[str, Any],
        guild_id: int | None = None,
        channel_id: int | None = None,
        permissions: int | None = None,
        locale: str | None = None,
    ) -> FakeInteraction:
        """A user picks Apps > ``name`` on another user (user context menu, data type 2);
        ``name`` canonical or localized, as in :meth:`send_message_command`."""
        channel, guild = self._context(user=user, guild_id=guild_id, channel_id=channel_id)
        locale = self._locale(user, locale)
        schema = self.commands.find_schema(name, guild.id if guild else None, 2, locale)
        resolved: dict[str, dict[str, Any]] = {}
        target_id = self.commands.option_value(
            OPT_USER, target_user, resolved, guild=guild, channel=channel
        )
        data: dict[str, Any] = {
            "id": schema["id"] if schema else str(self.state.snowflake()),
            "name": schema["name"] if schema else name,
            "type": 2,
            "target_id": target_id,
            "resolved": resolved,
        }
        return self._new_interaction(
            APPLICATION_COMMAND,
            data,
            user=user,
            channel=channel,
            guild=guild,
            permissions=permissions,
            attachment_size_limit=DEFAULT_ATTACHMENT_LIMIT,
            context=None,
            locale=locale,
        )

    # ------------------------------------------------------------------ components

    async def press_button(
        self,
        message: MessageRecord,
        custom_id: str,
        *,
        user: dict[str, Any],
        permissions: int | None = None,
        stale: bool = False,
        locale: str | None = None,
        attachment_size_limit: int = DEFAULT_ATTACHMENT_LIMIT,
    ) -> FakeInteraction:
        """A user clicks an enabled button of ``message`` (as it is now).

        ``stale``: the click left the user's client while it still showed an earlier version
        of the message (a click racing an edit): the button may be gone by now.
        ``attachment_size_limit``: what the interaction allows uploading (a boosted server's).
        """
        shown = [message.to_json()]
        if stale:
            shown += list(reversed(message.versions))
        seen, component = next(
            (
                (version, found)
                for version in shown
                if (found := find_component(version.get("components") or [], custom_id))
            ),
            (None, None),
        )
        if component is None or component.get("type") != BUTTON:
            raise ValueError(f"message {message.id} has no button {custom_id!r}")
        if component.get("disabled"):
            raise ValueError(f"button {custom_id!r} is disabled; Discord would not send a click")
        return await self._component_interaction(
            message,
            {"custom_id": custom_id, "component_type": BUTTON},
            user=user,
            permissions=permissions,
            shown=seen,
            locale=locale,
            attachment_size_limit=attachment_size_limit,
        )

    async def choose_select(
        self,
        message: MessageRecord,
        custom_id: str,
        values: list[str],
        *,
        user: dict[str, Any],
        permissions: int | None = None,
        locale: str | None = None,
    ) -> FakeInteraction:
        """A user picks ``values`` in a string select of ``message``."""
        component = find_component(message.components, custom_id)
        if component is None or component.get("type") != STRING_SELECT:
            raise ValueError(f"message {message.id} has no string select {custom_id!r}")
        return await self._component_interaction(
            message,
            {"custom_id": custom_id, "component_type": STRING_SELECT, "values": list(values)},
            user=user,
            permissions=permissions,
            locale=locale,
        )

    async def _component_interaction(
        self,
        message: MessageRecord,
        data: dict[str, Any],
        *,
        user: dict[str, Any],
        permissions: int | None,
        shown: dict[str, Any] | None = None,
        locale: str | None = None,
        attachment_size_limit: int = DEFAULT_ATTACHMENT_LIMIT,
    ) -> FakeInteraction:
        """``shown``: the message as the user's client showed it (default: as it is now)."""
        if message.deleted:
            raise ValueError("the message was deleted")
        channel, guild = self._context(
            user=user, guild_id=message.guild_id, channel_id=message.channel_id
        )
        return self._new_interaction(
            MESSAGE_COMPONENT,
            data,
            user=user,
            channel=channel,
            guild=guild,
            permissions=permissions,
            attachment_size_limit=attachment_size_limit,
            context=None,
            locale=locale,
            extra={"message": shown or message.to_json()},
            source_message=message,
        )

    # ------------------------------------------------------------------ modals

    async def submit_modal(
        self,
        interaction: FakeInteraction,
        values: Mapping[str, Any] | None = None,
        *,
        user: dict[str, Any] | None = None,
        permissions: int | None = None,
        locale: str | None = None,
    ) -> FakeInteraction:
        """The user fills in the modal ``interaction``'s answer opened, and submits it.

        ``values``: custom id -> a ``str`` for a text input (left out: its pre-filled value,
        else ""), a list of option values for a string select, a list of files for a file
        upload. The MODAL_SUBMIT carries ``data.custom_id`` and the answers in the modal's
        own layout (labels or action rows, with Discord's component ids), and ``message``
        when the modal was opened from a message component. ``user`` defaults to (and must
        be) the user the modal was shown to; ``permissions`` and ``locale`` to what that
        interaction said (the client that opened the modal submits it).
        """
        modal = interaction.modal
        if modal is None:
            raise ValueError(
                f"interaction {interaction.id} did not open a modal "
                f"(its callback: {interaction.callback})"
            )
        user = user or interaction.user
        if int(user["id"]) != int(interaction.user["id"]):
            raise ValueError("only the user the modal was shown to can submit it")
        if permissions is None and "member" in interaction.payload:
            permissions = int(interaction.payload["member"]["permissions"])
        channel, guild = self._context(
            user=user, guild_id=interaction.guild_id, channel_id=interaction.channel_id
        )
        components, resolved = submission(
            modal, values or {}, lambda upload: self.cdn.store(channel.id, upload, ephemeral=True)
        )
        data: dict[str, Any] = {"custom_id": modal["custom_id"], "components": components}
        if resolved:
            data["resolved"] = resolved
        source = interaction.source_message if interaction.type == MESSAGE_COMPONENT else None
        return self._new_interaction(
            MODAL_SUBMIT,
            data,
            user=user,
            channel=channel,
            guild=guild,
            permissions=permissions,
            attachment_size_limit=interaction.payload.get(
                "attachment_size_limit", DEFAULT_ATTACHMENT_LIMIT
            ),
            context=interaction.payload.get("context"),
            locale=locale or interaction.payload.get("locale"),
            extra={"message": source.to_json()} if source is not None else None,
            source_message=source,
            trigger=interaction,
        )
