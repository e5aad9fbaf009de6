"""How a bot answers interactions: the callback route and the webhook routes of the
interaction token (edit/delete the reply, follow-ups), with Discord's rules.

* The callback (``POST /interactions/{id}/{token}/callback``) must come within
  ``ack_deadline`` (3 s) of the interaction's creation, else 404 10062 Unknown interaction;
  a second one is 400 40060 already acknowledged. The callback type must suit the
  interaction (:data:`CALLBACKS_FOR`): 4/5 create the reply (5 as "thinking…", flag 128,
  ephemeral when asked), 6/7 acknowledge/update the component's message, 8 answers an
  autocomplete (≤ 25 choices), 9 opens a modal (validated, kept on ``interaction.modal``).
  A modal submit may update the message only when the modal came from one of its buttons.
  ``?with_response=true`` answers the callback resource as Discord does.
* Webhook routes work for ``token_lifetime`` (15 min) after creation, then 401 50027; they
  are rate limited per token (the ``webhook`` bucket) and exempt from the global limit.
  ``@original`` is the reply; follow-ups are new messages (ephemeral when flagged) whose
  ``interaction_metadata`` names the original response.

Every error answered for an interaction is also kept in ``interaction.errors``.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from .bodies import Files, MessageBodies, read_body
from .errors import DiscordAPIError, form_error, json_response
from .interactions import FakeInteraction
from .messages import MessageStore
from .modals import validate_modal
from .models import Channel, MessageRecord
from .protocol import (
    APPLICATION_COMMAND,
    AUTOCOMPLETE,
    CB_AUTOCOMPLETE,
    CB_DEFERRED_MESSAGE,
    CB_DEFERRED_UPDATE,
    CB_MESSAGE,
    CB_MODAL,
    CB_PONG,
    CB_UPDATE,
    DEFAULT_ATTACHMENT_LIMIT,
    FLAG_EPHEMERAL,
    FLAG_LOADING,
    MAX_AUTOCOMPLETE_CHOICES,
    MESSAGE_COMPONENT,
    MODAL_SUBMIT,
    PING,
)
from .routing import Route
from .state import DiscordState

__all__ = ["CALLBACKS_FOR", "InteractionResponses"]

#: The callback types each interaction type accepts.
CALLBACKS_FOR: dict[int, set[int]] = {
    PING: {CB_PONG},
    APPLICATION_COMMAND: {CB_MESSAGE, CB_DEFERRED_MESSAGE, CB_MODAL},
    MESSAGE_COMPONENT: {CB_MESSAGE, CB_DEFERRED_MESSAGE, CB_DEFERRED_UPDATE, CB_UPDATE, CB_MODAL},
    AUTOCOMPLETE: {CB_AUTOCOMPLETE},
    MODAL_SUBMIT: {CB_MESSAGE, CB_DEFERRED_MESSAGE, CB_DEFERRED_UPDATE, CB_UPDATE},
}


class InteractionResponses:
    """The callback and webhook routes, and the deadlines they enforce."""

    def __init__(
        self,
        state: DiscordState,
        store: MessageStore,
        bodies: MessageBodies,
        *,
        ack_deadline: float = 3.0,
        token_lifetime: float = 900.0,
    ) -> None:
        self.state = state
        self.store = store
        self.bodies = bodies
        self.ack_deadline = ack_deadline
        self.token_lifetime = token_lifetime

    def routes(self) -> list[Route]:
        message = "/webhooks/{application_id}/{token}/messages/{message_id}"
        return [
            Route(
                "POST",
                "/interactions/{interaction_id}/{token}/callback",
                self._callback,
                auth=False,
            ),
            Route(
                "POST",
                "/webhooks/{application_id}/{token}",
                self._execute,
                auth=False,
                bucket="webhook",
            ),
            Route("GET", message, self._get_message, auth=False, bucket="webhook"),
            Route("PATCH", message, self._edit_message, auth=False, bucket="webhook"),
            Route("DELETE", message, self._delete_message, auth=False, bucket="webhook"),
        ]

    @staticmethod
    def _error(
        interaction: FakeInteraction | None, status: int, code: int, message: str
    ) -> DiscordAPIError:
        if interaction is not None:
            interaction.errors.append((status, code))
        return DiscordAPIError(status, code, message)

    # ------------------------------------------------------------------ the callback

    async def _callback(self, request: web.Request) -> web.Response:
        now = time.monotonic()
        interaction = self.state.interactions_by_token.get(request.match_info["token"])
        if interaction is None or str(interaction.id) != request.match_info["interaction_id"]:
            raise DiscordAPIError(404, 10062, "Unknown interaction")
        body, files = await read_body(request)
        if now - interaction.created_at > self.ack_deadline:
            raise self._error(interaction, 404, 10062, "Unknown interaction")
        if interaction.callback is not None:
            raise self._error(interaction, 400, 40060, "Interaction has already been acknowledged.")
        cb_type = body.get("type")
        updates_nothing = (
            cb_type in (CB_DEFERRED_UPDATE, CB_UPDATE)
            and interaction.type == MODAL_SUBMIT
            and interaction.source_message is None
        )
        if cb_type not in CALLBACKS_FOR.get(interaction.type, set()) or updates_nothing:
            interaction.errors.append((400, 50035))
            raise form_error(
                "type", "INTERACTION_RESPONSE_TYPE_INVALID", "Interaction response type is invalid"
            )
        data = body.get("data") or {}
        try:
            resource = self._apply_callback(interaction, cb_type, data, files)
        except DiscordAPIError as err:
            interaction.errors.append((err.status, err.code))
            raise
        interaction.callback = {"type": cb_type, "data": data}
        interaction.callback_at = now
        self.state.changed()
        if request.query.get("with_response") not in ("1", "true", "True"):
            return web.Response(status=204)
        info: dict[str, Any] = {"id": str(interaction.id), "type": interaction.type}
        if resource is not None and cb_type in (CB_MESSAGE, CB_DEFERRED_MESSAGE, CB_UPDATE):
            info.update(
                response_message_id=str(resource.id),
                response_message_loading=resource.loading,
                response_message_ephemeral=resource.ephemeral,
            )
        result: dict[str, Any] = {"interaction": info}
        if resource is not None and cb_type in (CB_MESSAGE, CB_DEFERRED_MESSAGE, CB_UPDATE):
            result["resource"] = {"type": cb_type, "message": resource.to_json()}
        elif cb_type != CB_PONG:
            result["resource"] = {"type": cb_type}
        return json_response(result)

    def _apply_callback(
        self,
        interaction: FakeInteraction,
        cb_type: int,
        data: dict[str, Any],
        files: Files,
    ) -> MessageRecord | None:
        channel = self.state.channels[interaction.channel_id]
        limit = interaction.payload.get("attachment_size_limit", DEFAULT_ATTACHMENT_LIMIT)
        if cb_type in (CB_MESSAGE, CB_DEFERRED_MESSAGE):
            record = self._interaction_message(interaction, channel)
            if cb_type == CB_DEFERRED_MESSAGE:
                flags = int(data.get("flags") or 0) & FLAG_EPHEMERAL
                record.flags = flags | FLAG_LOADING
                self.bodies.apply(record, {}, {}, creating=True, keep_loading=True)
            else:
                self.bodies.apply(
                    record, data, files, creating=True, size_limit=limit, allow_ephemeral=True
                )
            interaction.original = record
            self.store.store_new(record)
            return record
        if cb_type in (CB_DEFERRED_UPDATE, CB_UPDATE):
            target = interaction.source_message
            interaction.original = target
            if cb_type == CB_UPDATE and target is not None:
                self.bodies.apply(target, data, files, creating=False, size_limit=limit)
                self.store.store_edit(target)
            return target
        if cb_type == CB_AUTOCOMPLETE:
            choices = data.get("choices")
            if not isinstance(choices, list) or len(choices) > MAX_AUTOCOMPLETE_CHOICES:
                raise form_error(
                    "data.choices",
                    "BASE_TYPE_MAX_LENGTH",
                    f"Must be {MAX_AUTOCOMPLETE_CHOICES} or fewer in length.",
                )
        if cb_type == CB_MODAL:
            interaction.modal = validate_modal(data)
        return None

    def _interaction_message(self, interaction: FakeInteraction, channel: Channel) -> MessageRecord:
        """The message an interaction response creates (authored by the bot, webhook_id=app)."""
        legacy: dict[str, Any] | None = None
        msg_type = 0
        if interaction.type == APPLICATION_COMMAND:
            cmd = interaction.payload["data"]
            msg_type = 20 if cmd.get("type", 1) == 1 else 23
            legacy = {
                "id": str(interaction.id),
                "type": interaction.type,
                "name": cmd["name"],
                "user": dict(interaction.user),
            }
            if "member" in interaction.payload:
                legacy["member"] = {
                    k: v for k, v in interaction.payload["member"].items() if k != "user"
                }
        return self.store.new_bot_message(
            channel,
            type=msg_type,
            webhook_id=self.state.application_id,
            application_id=self.state.application_id,
            interaction_id=interaction.id,
            interaction_metadata=_metadata(interaction),
            interaction=legacy,
        )

    # ------------------------------------------------------------------ webhook routes

    def _webhook_interaction(self, request: web.Request) -> FakeInteraction:
        token = request.match_info["token"]
        interaction = self.state.interactions_by_token.get(token)
        app_ok = request.match_info["application_id"] == str(self.state.application_id)
        if interaction is None or not app_ok:
            raise DiscordAPIError(401, 50027, "Invalid Webhook Token")
        if time.monotonic() - interaction.created_at > self.token_lifetime:
            raise self._error(interaction, 401, 50027, "Invalid Webhook Token")
        return interaction

    def _webhook_target(self, interaction: FakeInteraction, message_id: str) -> MessageRecord:
        if message_id == "@original":
            if interaction.callback is None or interaction.original is None:
                raise self._error(interaction, 404, 10015, "Unknown Webhook")
            record = interaction.original
        else:
            record = next(
                (
                    m
                    for m in [interaction.original, *interaction.followups]
                    if m is not None and str(m.id) == message_id
                ),
                None,
            )
            if record is None:
                raise self._error(interaction, 404, 10008, "Unknown Message")
        if record.deleted:
            raise self._error(interaction, 404, 10008, "Unknown Message")
        return record

    async def _execute(self, request: web.Request) -> web.Response:
        interaction = self._webhook_interaction(request)
        if interaction.callback is None:
            raise self._error(interaction, 404, 10015, "Unknown Webhook")
        payload, files = await read_body(request)
        channel = self.state.channels[interaction.channel_id]
        record = self._interaction_message(interaction, channel)
        if interaction.original is not None:
            record.interaction_metadata = {
                **(record.interaction_metadata or {}),
                "original_response_message_id": str(interaction.original.id),
            }
        limit = interaction.payload.get("attachment_size_limit", DEFAULT_ATTACHMENT_LIMIT)
        try:
            self.bodies.apply(
                record, payload, files, creating=True, size_limit=limit, allow_ephemeral=True
            )
        except DiscordAPIError as err:
            interaction.errors.append((err.status, err.code))
            raise
        interaction.followups.append(record)
        self.store.store_new(record)
        if request.query.get("wait") in ("1", "true", "True"):
            return json_response(record.to_json())
        return web.Response(status=204)

    async def _get_message(self, request: web.Request) -> web.Response:
        interaction = self._webhook_interaction(request)
        record = self._webhook_target(interaction, request.match_info["message_id"])
        return json_response(record.to_json())

    async def _edit_message(self, request: web.Request) -> web.Response:
        interaction = self._webhook_interaction(request)
        record = self._webhook_target(interaction, request.match_info["message_id"])
        payload, files = await read_body(request)
        limit = interaction.payload.get("attachment_size_limit", DEFAULT_ATTACHMENT_LIMIT)
        try:
            self.bodies.apply(record, payload, files, creating=False, size_limit=limit)
        except DiscordAPIError as err:
            interaction.errors.append((err.status, err.code))
            raise
        return json_response(self.store.store_edit(record))

    async def _delete_message(self, request: web.Request) -> web.Response:
        interaction = self._webhook_interaction(request)
        record = self._webhook_target(interaction, request.match_info["message_id"])
        self.store.store_delete(record)
        return web.Response(status=204)


def _metadata(interaction: FakeInteraction) -> dict[str, Any]:
    """The ``interaction_metadata`` of a message an interaction's answer created."""
    metadata: dict[str, Any] = {
        "id": str(interaction.id),
        "type": interaction.type,
        "user": dict(interaction.user),
        "authorizing_integration_owners": interaction.payload["authorizing_integration_owners"],
    }
    if interaction.type == APPLICATION_COMMAND:
        cmd = interaction.payload["data"]
        metadata.update(name=cmd["name"], command_type=cmd.get("type", 1))
    elif interaction.type == MODAL_SUBMIT:
        if interaction.trigger is not None:
            metadata["triggering_interaction_metadata"] = _metadata(interaction.trigger)
    elif interaction.source_message is not None:
        metadata["interacted_message_id"] = str(interaction.source_message.id)
    return metadata
