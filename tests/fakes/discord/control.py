"""The control API: a small JSON API to drive the fake from another process (benchmarks).

``python -m tests.fakes.discord_server --port 0`` (or ``python -m tests.fakes.discord``)
prints one JSON line ``{"rest_base", "gateway_url", "control", ...}`` once it listens and
serves until SIGTERM/SIGINT. ``control`` is the base URL of this API on the same server
(outside ``/api/v10``, so the bot never sees it; no auth, no rate limits, not recorded;
bad input is a 400 ``{"error"}``):

* ``GET  /_control/info``: urls, ids, whether a gateway session is ready (and how many are),
  registered commands.
* ``POST /_control/guilds`` ``{"names": [...], "shards"?: N, "locale"?}`` -> ``{"guilds":
  [{"id", "name", "channel_id"}]}``; with ``shards``, guild i's id puts it on shard ``i % N``
  of N; ``locale`` is their preferred locale.
* ``POST /_control/users`` ``{"users": [{"name", "guild_ids"?: [...], "permissions"?,
  "locale"?}]}`` -> ``{"users": [user objects]}``; each user becomes a member of the listed
  guilds; ``locale`` is their client's language.
* ``POST /_control/members`` ``{"guild_id", "user_ids": [...], "permissions"?}``.
* ``POST /_control/slash`` ``{"name", "options"?, "user_id", "guild_id"?, "channel_id"?,
  "subcommand"?, "permissions"?, "locale"?}`` -> ``{"id", "created_at"}``; a JSON list of
  those sends them all in one go (same event-loop turn) and answers a list. Options are
  typed from the registered command, as :meth:`FakeDiscord.send_slash` does.
* ``GET  /_control/interactions?ids=1,2`` (all when absent; or POST the keys as JSON)
  -> ``{"now", "count_429", "timed_out", "interactions": [...]}``: per interaction
  ``created_at``, ``callback_at``, ``ack_latency``, ``callback_type``, ``edits`` (every later
  version of its original response: ``at``, ``has_attachments``, ``embeds``, ``content``),
  ``errors`` ([status, code] pairs) and ``count_429``. With ``wait=S&until=callback|final``
  it first waits up to S seconds until every one was answered (``callback``) or shows a final
  response (``final``: an attachment or embed, an immediate message, or a too-late answer).
* ``GET  /_control/stats``: requests per route and status, 429s, internal errors.
* ``POST /_control/drop_gateway`` ``{"code": null}`` (abort the TCP connections) or
  ``{"code": 4000}`` (close with that code): :meth:`FakeDiscord.drop_gateway`; answers
  ``{"dropped", "resumes", "identifies", "gateway_connects"}`` as they were before the drop.
* ``POST /_control/gateway`` ``{"up": false, "code"?: null}``: an outage of the gateway
  (:meth:`FakeDiscord.take_gateway_down`: live connections dropped, new ones held without
  HELLO); ``{"up": true}`` ends it; answers ``{"down", "held", "resumes", "identifies"}``
  as they are after the change.
* ``POST /_control/replies`` ``{"ids": [...]}`` -> ``{"replies": [...]}``: per interaction the
  message its callback made (or the pressed message) as it is now: ``content``, ``flags``,
  ``deleted``, ``attachments`` (count), ``embeds`` (``title``, ``description``), ``buttons``
  (``label``, ``custom_id``, ``disabled``), and the same for each followup.

Every timestamp is ``time.monotonic()`` of the fake's process. On Linux that is
CLOCK_MONOTONIC, one clock for the whole machine, so it compares with the same clock read in
another process (the fake Space's completion times, for one).
"""

from __future__ import annotations

import functools
import json
import time
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .errors import DiscordAPIError, json_response
from .interactions import FakeInteraction
from .locales import check_locale
from .models import MessageRecord, Snapshot, opt_str
from .protocol import CB_DEFERRED_MESSAGE, CB_MESSAGE, CONTROL_PREFIX
from .routing import Handler

if TYPE_CHECKING:
    from .server import FakeDiscord

__all__ = ["ControlApi"]


class ControlApi:
    """The ``/_control`` routes, over the whole fake."""

    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake

    def routes(self) -> list[tuple[str, str, Handler]]:
        """Raw routes (no Discord middleware), each answering bad input with a 400."""
        table: list[tuple[str, str, Handler]] = [
            ("GET", "/info", self._control_info),
            ("POST", "/guilds", self._control_guilds),
            ("POST", "/users", self._control_users),
            ("POST", "/members", self._control_members),
            ("POST", "/slash", self._control_slash),
            ("GET", "/interactions", self._control_interactions),
            ("POST", "/interactions", self._control_interactions),
            ("GET", "/stats", self._control_stats),
            ("POST", "/drop_gateway", self._control_drop_gateway),
            ("POST", "/gateway", self._control_gateway),
            ("POST", "/replies", self._control_replies),
        ]
        return [(method, CONTROL_PREFIX + path, _guarded(h)) for method, path, h in table]

    @staticmethod
    async def _control_body(request: web.Request) -> Any:
        raw = await request.read()
        return json.loads(raw) if raw else {}

    def _control_user(self, user_id: Any) -> dict[str, Any]:
        user = self.fake.users.get(int(user_id))
        if user is None:
            raise ValueError(f"unknown user {user_id}")
        return user

    async def _control_info(self, request: web.Request) -> web.Response:
        return json_response(
            {
                "rest_base": self.fake.rest_base,
                "gateway_url": self.fake.gateway_url,
                "control": self.fake.control_url,
                "application_id": str(self.fake.application_id),
                "bot_user_id": str(self.fake.bot_user_id),
                "ready": self.fake.gateway.ready_session() is not None,
                "ready_sessions": self.fake.gateway.ready_sessions(),
                "commands": [c["name"] for c in self.fake.commands],
                "guilds": [str(g) for g in self.fake.guilds],
                "now": time.monotonic(),
            }
        )

    async def _control_guilds(self, request: web.Request) -> web.Response:
        body = await self._control_body(request)
        shards = int(body.get("shards") or 0)  # spread the guilds over that many shards
        guilds = [
            self.fake.add_guild(
                str(name),
                shard=(i % shards, shards) if shards else None,
                preferred_locale=body.get("locale") or "en-US",
            )
            for i, name in enumerate(body["names"])
        ]
        return json_response(
            {
                "guilds": [
                    {"id": str(g.id), "name": g.name, "channel_id": str(g.channel_id)}
                    for g in guilds
                ]
            }
        )

    async def _control_users(self, request: web.Request) -> web.Response:
        specs = (await self._control_body(request))["users"]
        for spec in specs:  # check every guild and locale first: all or nothing
            for guild_id in spec.get("guild_ids") or []:
                self.fake.state.guild(int(guild_id))
            if spec.get("locale") is not None:
                check_locale(spec["locale"])
        users = []
        for spec in specs:
            user = self.fake.add_user(str(spec["name"]), locale=spec.get("locale"))
            for guild_id in spec.get("guild_ids") or []:
                self.fake.add_member(int(guild_id), user, permissions=spec.get("permissions"))
            users.append(user)
        return json_response({"users": users})

    async def _control_members(self, request: web.Request) -> web.Response:
        body = await self._control_body(request)
        guild = self.fake.state.guild(int(body["guild_id"]))
        users = [self._control_user(uid) for uid in body["user_ids"]]
        for user in users:
            self.fake.add_member(guild.id, user, permissions=body.get("permissions"))
        return json_response({"guild_id": str(guild.id), "members": len(users)})

    async def _control_slash(self, request: web.Request) -> web.Response:
        """One interaction, or a list of them created in the same event-loop turn."""
        body = await self._control_body(request)
        specs = body if isinstance(body, list) else [body]
        users = [self._control_user(spec["user_id"]) for spec in specs]
        sent = []
        for spec, user in zip(specs, users, strict=True):
            interaction = await self.fake.send_slash(
                spec["name"],
                spec.get("options") or {},
                user=user,
                guild_id=_opt_int(spec.get("guild_id")),
                channel_id=_opt_int(spec.get("channel_id")),
                permissions=spec.get("permissions"),
                subcommand=spec.get("subcommand"),
                locale=spec.get("locale"),
            )
            sent.append({"id": str(interaction.id), "created_at": interaction.created_at})
        return json_response(sent if isinstance(body, list) else sent[0])

    async def _control_interactions(self, request: web.Request) -> web.Response:
        """Records of interactions; GET takes a query, POST the same keys as JSON."""
        params: dict[str, Any] = dict(request.query)
        if request.method == "POST":
            params.update(await self._control_body(request))
        ids = params.get("ids")
        if isinstance(ids, str):
            ids = [part for part in ids.split(",") if part.strip()]
        if ids:
            try:
                chosen = [self.fake.interactions[int(i)] for i in ids]
            except KeyError as exc:
                raise ValueError(f"unknown interaction {exc.args[0]}") from None
        else:
            chosen = list(self.fake.interactions.values())
        until = params.get("until", "final")
        if until not in ("callback", "final"):
            raise ValueError(f"until must be 'callback' or 'final', not {until!r}")
        wait = float(params.get("wait", 0))
        timed_out = False
        if wait > 0:
            try:
                await self.fake.wait_until(lambda: all(_settled(i, until) for i in chosen), wait)
            except TimeoutError:
                timed_out = True
        return json_response(
            {
                "now": time.monotonic(),
                "count_429": self.fake.count_429,
                "timed_out": timed_out,
                "interactions": [_control_record(i) for i in chosen],
            }
        )

    async def _control_stats(self, request: web.Request) -> web.Response:
        requests = Counter(f"{r.method} {r.path} {r.status}" for r in self.fake.requests)
        return json_response(
            {
                "count_429": self.fake.count_429,
                "requests": dict(requests),
                "internal_errors": [repr(exc) for exc in self.fake.internal_errors],
                "unknown_routes": [f"{r.method} {r.url}" for r in self.fake.unknown_routes],
                "identifies": self.fake.identifies,
                "resumes": self.fake.resumes,
                "gateway_connects": self.fake.gateway_connects,
            }
        )

    async def _control_drop_gateway(self, request: web.Request) -> web.Response:
        """Drop every live gateway connection; ``code`` null aborts TCP, else a close code."""
        body = await self._control_body(request)
        code = body.get("code") if isinstance(body, dict) else None
        if code is not None and (isinstance(code, bool) or not isinstance(code, int)):
            raise ValueError(f"code must be null or an integer close code, not {code!r}")
        before = {
            "dropped": self.fake.gateway.live_connections(),
            "resumes": self.fake.resumes,
            "identifies": self.fake.identifies,
            "gateway_connects": self.fake.gateway_connects,
        }
        await self.fake.drop_gateway(code)
        return json_response(before)

    async def _control_gateway(self, request: web.Request) -> web.Response:
        """Take the gateway down (``up`` false) or bring it back (``up`` true)."""
        body = await self._control_body(request)
        up = body.get("up") if isinstance(body, dict) else None
        code = body.get("code") if isinstance(body, dict) else None
        if not isinstance(up, bool):
            raise ValueError(f"up must be true or false, not {up!r}")
        if code is not None and (isinstance(code, bool) or not isinstance(code, int)):
            raise ValueError(f"code must be null or an integer close code, not {code!r}")
        if up:
            self.fake.bring_gateway_up()
        else:
            await self.fake.take_gateway_down(code)
        gateway = self.fake.gateway
        return json_response(
            {
                "down": gateway.down,
                "held": gateway.held,
                "resumes": self.fake.resumes,
                "identifies": self.fake.identifies,
            }
        )

    async def _control_replies(self, request: web.Request) -> web.Response:
        """What each interaction's reply shows now (its embeds' titles, its buttons...)."""
        body = await self._control_body(request)
        ids = body.get("ids") if isinstance(body, dict) else None
        if ids is None:
            chosen = list(self.fake.interactions.values())
        else:
            try:
                chosen = [self.fake.interactions[int(i)] for i in ids]
            except KeyError as exc:
                raise ValueError(f"unknown interaction {exc.args[0]}") from None
        return json_response(
            {
                "replies": [
                    {
                        "id": str(i.id),
                        "callback_type": i.callback["type"] if i.callback else None,
                        "original": _reply_view(i.original),
                        "followups": [_reply_view(m) for m in i.followups],
                    }
                    for i in chosen
                ]
            }
        )


def _reply_view(record: MessageRecord | None) -> dict[str, Any] | None:
    """A message as the control API's ``replies`` shows it."""
    if record is None:
        return None
    buttons: list[dict[str, Any]] = []

    def collect(items: Iterable[dict[str, Any]]) -> None:
        for item in items:
            if item.get("type") == 2:
                buttons.append(
                    {
                        "label": item.get("label"),
                        "custom_id": item.get("custom_id"),
                        "disabled": bool(item.get("disabled")),
                    }
                )
            collect(item.get("components", []))

    collect(record.components)
    return {
        "id": str(record.id),
        "content": record.content,
        "flags": record.flags,
        "deleted": record.deleted,
        "edits": record.edit_count,
        "attachments": len(record.attachments),
        "embeds": [
            {"title": e.get("title"), "description": e.get("description")} for e in record.embeds
        ],
        "buttons": buttons,
    }


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _settled(interaction: FakeInteraction, until: str) -> bool:
    """``callback``: answered (or answered too late); ``final``: no longer a plain status."""
    if any(code == 10062 for _, code in interaction.errors):
        return True
    if interaction.callback is None:
        return False
    if until == "callback" or interaction.callback["type"] == CB_MESSAGE:
        return True
    original = interaction.original
    return original is not None and bool(original.attachments or original.embeds)


def _control_record(interaction: FakeInteraction) -> dict[str, Any]:
    """What the control API tells about one interaction (times: this process's monotonic)."""
    original = interaction.original
    versions: list[Snapshot] = []
    if original is not None:
        created_here = interaction.callback is not None and interaction.callback["type"] in (
            CB_MESSAGE,
            CB_DEFERRED_MESSAGE,
        )
        if created_here:
            versions = original.history[1:]
        else:  # a component's message: only what changed since the click
            versions = [s for s in original.history if s.at > interaction.created_at]
    return {
        "id": str(interaction.id),
        "type": interaction.type,
        "user_id": str(interaction.user["id"]),
        "guild_id": opt_str(interaction.guild_id),
        "channel_id": str(interaction.channel_id),
        "created_at": interaction.created_at,
        "delivered_at": interaction.delivered_at,
        "callback_at": interaction.callback_at,
        "ack_latency": interaction.ack_latency,
        "callback_type": interaction.callback["type"] if interaction.callback else None,
        "original_id": str(original.id) if original is not None else None,
        "edits": [
            {
                "at": snap.at,
                "has_attachments": bool(snap.data["attachments"]),
                "embeds": len(snap.data["embeds"]),
                "content": snap.data["content"][:200],
            }
            for snap in versions
        ],
        "followups": len(interaction.followups),
        "errors": [[status, code] for status, code in interaction.errors],
        "count_429": sum(1 for status, _ in interaction.errors if status == 429),
    }


def _guarded(handler: Handler) -> Handler:
    """Control routes: no auth, no rate limits, not recorded; bad input is a 400."""

    @functools.wraps(handler)
    async def guarded(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except (KeyError, ValueError, TypeError, DiscordAPIError) as exc:
            return json_response({"error": f"{type(exc).__name__}: {exc}"}, status=400)

    return guarded
