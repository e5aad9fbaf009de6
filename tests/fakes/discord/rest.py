"""The REST routes a bot uses outside interactions and commands: the gateway URL, users,
the application, DM channels, channels and their messages (history, send, edit, delete,
typing), guilds and members.

Sending follows Discord: the bot's POST to a channel it lost Send Messages in is a 403
50013; a reply (``message_reference``) to a missing message is a 400 unless
``fail_if_not_exists`` is false; only the bot's own non-webhook messages can be edited;
history pages with ``before``/``after``/``around`` and ``limit`` 1..100, newest first. With
the Message Content switch off, other people's guild messages come back blanked.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from aiohttp import web

from .bodies import MessageBodies, read_body
from .errors import DiscordAPIError, form_error, json_response
from .gateway import Gateway
from .messages import MessageStore, reference_json
from .models import MessageRecord
from .routing import Route
from .state import DiscordState

__all__ = ["RestApi"]


class RestApi:
    """Users, applications, channels, messages and guilds."""

    def __init__(
        self,
        state: DiscordState,
        store: MessageStore,
        bodies: MessageBodies,
        gateway: Gateway,
        gateway_url: Callable[[], str],
    ) -> None:
        self.state = state
        self.store = store
        self.bodies = bodies
        self.gateway = gateway
        self._gateway_url = gateway_url

    def routes(self) -> list[Route]:
        channel_message = "/channels/{channel_id}/messages/{message_id}"
        return [
            Route("GET", "/gateway", self._get_gateway, auth=False),
            Route("GET", "/gateway/bot", self._get_gateway_bot),
            Route("GET", "/users/@me", self._get_me),
            Route("GET", "/users/{user_id}", self._get_user),
            Route("POST", "/users/@me/channels", self._create_dm),
            Route("GET", "/oauth2/applications/@me", self._get_application),
            Route("GET", "/applications/@me", self._get_application),
            Route("GET", "/channels/{channel_id}", self._get_channel),
            Route("GET", "/channels/{channel_id}/messages", self._get_messages),
            Route("POST", "/channels/{channel_id}/messages", self._post_message, bucket="channel"),
            Route("GET", channel_message, self._get_message),
            Route("PATCH", channel_message, self._patch_message, bucket="channel"),
            Route("DELETE", channel_message, self._delete_message, bucket="channel"),
            Route("POST", "/channels/{channel_id}/typing", self._typing),
            Route("GET", "/guilds/{guild_id}", self._get_guild),
            Route("GET", "/guilds/{guild_id}/channels", self._get_guild_channels),
            Route("GET", "/guilds/{guild_id}/members/{user_id}", self._get_member),
        ]

    # gateway, users, application

    async def _get_gateway(self, request: web.Request) -> web.Response:
        return json_response({"url": self._gateway_url()})

    async def _get_gateway_bot(self, request: web.Request) -> web.Response:
        return json_response(
            {
                "url": self._gateway_url(),
                "shards": self.gateway.shards,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 1000 - self.gateway.identifies,
                    "reset_after": 86_400_000,
                    "max_concurrency": 1,
                },
            }
        )

    async def _get_me(self, request: web.Request) -> web.Response:
        return json_response(
            {
                **self.state.bot_user,
                "verified": True,
                "mfa_enabled": False,
                "locale": "en-US",
                "email": None,
                "bio": "",
            }
        )

    async def _get_user(self, request: web.Request) -> web.Response:
        try:
            return json_response(self.state.users[int(request.match_info["user_id"])])
        except (KeyError, ValueError):
            raise DiscordAPIError(404, 10013, "Unknown User") from None

    async def _get_application(self, request: web.Request) -> web.Response:
        state = self.state
        return json_response(
            {
                "id": str(state.application_id),
                "name": state.bot_name,
                "icon": None,
                "description": "",
                "summary": "",
                "type": None,
                "hook": True,
                "bot_public": True,
                "bot_require_code_grant": False,
                "verify_key": hashlib.sha256(str(state.application_id).encode()).hexdigest(),
                "flags": 0,
                "owner": dict(state.owner_user),
                "team": None,
                "rpc_origins": [],
                "redirect_uris": [],
                "interactions_endpoint_url": None,
                "role_connections_verification_url": None,
                "tags": [],
                "install_params": None,
                "integration_types_config": {"0": {}},
                "approximate_guild_count": len(state.guilds),
                "bot": dict(state.bot_user),
            }
        )

    async def _create_dm(self, request: web.Request) -> web.Response:
        payload, _ = await read_body(request)
        try:
            user = self.state.users[int(payload["recipient_id"])]
        except (KeyError, TypeError, ValueError):
            raise DiscordAPIError(400, 50033, "Invalid Recipient(s)") from None
        return json_response(self.state.channel_json(self.state.dm_channel_for(user)))

    # channels and messages

    async def _get_channel(self, request: web.Request) -> web.Response:
        channel = self.state.channel(request.match_info["channel_id"])
        return json_response(self.state.channel_json(channel.id))

    def _message_json(self, record: MessageRecord) -> dict[str, Any]:
        data = record.to_json()
        if not self.state.message_content_intent:
            data = self.state.redact(record, data)
        return data

    async def _get_messages(self, request: web.Request) -> web.Response:
        channel = self.state.channel(request.match_info["channel_id"])
        query = request.query
        try:
            limit = int(query.get("limit", 50))
        except ValueError:
            raise form_error("limit", "NUMBER_TYPE_COERCE", "Value is not int.") from None
        if not 1 <= limit <= 100:
            raise form_error("limit", "NUMBER_TYPE_MAX", "int value should be between 1 and 100.")
        visible = self.store.channel_history(channel.id)  # oldest first
        if "before" in query:
            before = int(query["before"])
            picked = [m for m in visible if m.id < before][-limit:]
        elif "after" in query:
            after = int(query["after"])
            picked = [m for m in visible if m.id > after][:limit]
        elif "around" in query:
            around = int(query["around"])
            older = [m for m in visible if m.id <= around]
            newer = [m for m in visible if m.id > around]
            half = limit // 2
            picked = older[-(limit - half) :] + newer[:half]
        else:
            picked = visible[-limit:]
        picked.sort(key=lambda m: m.id, reverse=True)
        return json_response([self._message_json(m) for m in picked])

    async def _get_message(self, request: web.Request) -> web.Response:
        channel = self.state.channel(request.match_info["channel_id"])
        record = self.store.message(channel.id, request.match_info["message_id"])
        return json_response(self._message_json(record))

    async def _post_message(self, request: web.Request) -> web.Response:
        channel = self.state.channel(request.match_info["channel_id"])
        if channel.id in self.state.forbidden:
            raise DiscordAPIError(403, 50013, "Missing Permissions")
        payload, files = await read_body(request)
        record = self.store.new_bot_message(channel)
        ref = payload.get("message_reference")
        if ref:
            try:
                target = self.store.message(channel.id, int(ref.get("message_id")))
            except (DiscordAPIError, TypeError, ValueError):
                if ref.get("fail_if_not_exists", True):
                    raise form_error(
                        "message_reference", "MESSAGE_REFERENCE_UNKNOWN_MESSAGE", "Unknown message"
                    ) from None
                target = None
            if target is not None:
                record.type = 19
                record.referenced = target
                record.replied_user_id = int(target.author["id"])
                record.message_reference = reference_json(target)
        self.bodies.apply(record, payload, files, creating=True)
        self.store.store_new(record)
        return json_response(record.to_json())

    def _own_message(self, request: web.Request) -> MessageRecord:
        channel = self.state.channel(request.match_info["channel_id"])
        return self.store.message(channel.id, request.match_info["message_id"])

    async def _patch_message(self, request: web.Request) -> web.Response:
        record = self._own_message(request)
        if int(record.author["id"]) != self.state.bot_user_id or record.webhook_id is not None:
            raise DiscordAPIError(403, 50005, "Cannot edit a message authored by another user")
        payload, files = await read_body(request)
        self.bodies.apply(record, payload, files, creating=False)
        return json_response(self.store.store_edit(record))

    async def _delete_message(self, request: web.Request) -> web.Response:
        record = self._own_message(request)
        self.store.store_delete(record)
        return web.Response(status=204)

    async def _typing(self, request: web.Request) -> web.Response:
        self.state.channel(request.match_info["channel_id"])
        return web.Response(status=204)

    # guilds

    async def _get_guild(self, request: web.Request) -> web.Response:
        guild = self.state.guild(int(request.match_info["guild_id"]))
        data = self.state.guild_json(guild)
        if request.query.get("with_counts") in ("true", "1"):
            data["approximate_member_count"] = len(guild.members)
            data["approximate_presence_count"] = 0
        return json_response(data)

    async def _get_guild_channels(self, request: web.Request) -> web.Response:
        guild = self.state.guild(int(request.match_info["guild_id"]))
        return json_response([self.state.channel_json(cid) for cid in guild.channel_ids])

    async def _get_member(self, request: web.Request) -> web.Response:
        guild = self.state.guild(int(request.match_info["guild_id"]))
        member = guild.members.get(int(request.match_info["user_id"]))
        if member is None:
            raise DiscordAPIError(404, 10007, "Unknown Member")
        return json_response(member.to_json())
