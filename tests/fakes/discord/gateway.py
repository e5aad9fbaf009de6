"""The gateway: a zlib-stream websocket per connection, sessions that outlive their
connection (RESUME), heartbeats, and the dispatch of events to each session by its intents.

Protocol notes:

* The client connects to ``ws://127.0.0.1:<port>/gateway?v=10&encoding=json`` with
  ``compress=zlib-stream`` (one zlib context for the whole connection, every frame ending
  in ``Z_SYNC_FLUSH``'s ``00 00 ff ff``) or uncompressed; other versions, encodings and
  compressions (zstd) close with 4012/4002, so a client built otherwise fails loudly.
* HELLO carries ``heartbeat_interval``; op 1 is answered with op 11. IDENTIFY with a wrong
  token closes 4004, without integer intents 4013. READY lists every guild unavailable, then
  a GUILD_CREATE per guild (with ``unavailable: false``) follows when GUILDS is asked for.
* ``message_content_intent`` is the app's privileged-intent switch in the developer portal.
  The bot must still ask for the intent (``Intents.message_content``) in IDENTIFY to get
  content in gateway events; asking for it while the switch is off closes with 4014.
  Without it, guild messages arrive with content, embeds, attachments and components blanked
  (except the bot's own and those that mention it).
* A session keeps every dispatch (seq, payload); RESUME with a known session replays what
  came after ``seq`` and ends with RESUMED; an unknown session gets op 9 (``d: false``).
  A clean close by the client (1000/1001) ends the session, as on Discord.
* Interactions dispatched while no gateway connection is up are buffered in the session and
  replayed on RESUME; before the very first IDENTIFY they are queued for the first session.
* ``take_down`` / ``bring_up``: an outage. Live connections are dropped as by ``drop``, and
  new ones are held (the websocket opens, no HELLO comes) until the gateway is back; then
  they get HELLO and the client RESUMEs its session as after any drop.
  ``delivered_at`` records when a connection actually wrote an interaction to the client.
* Sharding as on Discord: IDENTIFY's ``shard: [id, count]`` is refused with 4010 when out of
  range, and with 4011 when ``count`` is below ``required_shards``. A sharded session gets
  (in READY, GUILD_CREATE and every guild event, message and interaction) only the guilds
  with ``(guild_id >> 22) % count == id``; DMs and interactions outside guilds go to shard 0.
  An unsharded session is shard 0 of 1: it gets everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from .errors import dumps
from .models import MessageRecord
from .protocol import (
    INTENT_DIRECT_MESSAGES,
    INTENT_GUILD_MESSAGES,
    INTENT_GUILDS,
    INTENT_MESSAGE_CONTENT,
)
from .state import DiscordState

if TYPE_CHECKING:
    from .interactions import FakeInteraction

__all__ = ["Connection", "Gateway", "GatewaySession"]

GUILD_OBJECT_EVENTS = ("GUILD_CREATE", "GUILD_UPDATE", "GUILD_DELETE")
"""Events whose data is the guild itself (its ``id``); others carry ``guild_id``."""


@dataclass(eq=False)
class GatewaySession:
    """A gateway session: survives its connection, so a client can RESUME into it."""

    session_id: str
    intents: int
    shard: list[int] | None
    seq: int = 0
    #: Every dispatch (seq, payload), kept for replay on RESUME.
    buffer: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    conn: Connection | None = field(default=None, repr=False)
    ready: bool = False

    def handles(self, guild_id: int | None) -> bool:
        """Whether this session's shard gets the guild's events (``None``: a DM, shard 0)."""
        if self.shard is None:
            return True
        shard_id, count = self.shard
        if guild_id is None:
            return shard_id == 0
        return (guild_id >> 22) % count == shard_id

    @property
    def connected(self) -> bool:
        return self.conn is not None and not self.conn.closed

    def dispatch(self, event: str, data: dict[str, Any]) -> int:
        self.seq += 1
        payload = {"op": 0, "t": event, "s": self.seq, "d": data}
        self.buffer.append((self.seq, payload))
        if self.conn is not None:
            self.conn.send(payload)
        return self.seq


class Connection:
    """One gateway websocket; all writes go through one queue so zlib order holds."""

    def __init__(self, ws: web.WebSocketResponse, request: web.Request, compress: bool) -> None:
        self.ws = ws
        self.request = request
        self.transport = request.transport
        self.compressor = zlib.compressobj() if compress else None
        self.queue: asyncio.Queue[tuple[dict[str, Any] | None, Callable[[], None] | None]] = (
            asyncio.Queue()
        )
        self.session: GatewaySession | None = None
        self.closed = False
        self.writer = asyncio.create_task(self._write_loop(), name="fake-discord-gateway-writer")

    def send(self, payload: dict[str, Any], on_sent: Callable[[], None] | None = None) -> None:
        if not self.closed:
            self.queue.put_nowait((payload, on_sent))

    def call_when_flushed(self, callback: Callable[[], None]) -> None:
        if not self.closed:
            self.queue.put_nowait((None, callback))

    def encode(self, payload: dict[str, Any]) -> bytes | str:
        text = dumps(payload)
        if self.compressor is None:
            return text
        return self.compressor.compress(text.encode()) + self.compressor.flush(zlib.Z_SYNC_FLUSH)

    async def _write_loop(self) -> None:
        while True:
            payload, on_sent = await self.queue.get()
            if payload is not None:
                frame = self.encode(payload)
                try:
                    if isinstance(frame, bytes):
                        await self.ws.send_bytes(frame)
                    else:
                        await self.ws.send_str(frame)
                except (ConnectionError, RuntimeError):
                    self.closed = True
                    return
            if on_sent is not None:
                on_sent()

    async def close(self, code: int, message: str = "") -> None:
        self.closed = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(code=code, message=message.encode()), 3.0)

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    async def stop_writer(self) -> None:
        self.writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.writer


class Gateway:
    """Every session and connection, and the events sent to them."""

    def __init__(
        self,
        state: DiscordState,
        *,
        url: Callable[[], str],
        heartbeat_interval: int = 41250,
        shards: int = 1,
        required_shards: int = 1,
    ) -> None:
        self.state = state
        self._url = url
        self.heartbeat_interval = heartbeat_interval
        #: The shard count ``GET /gateway/bot`` recommends.
        self.shards = shards
        #: IDENTIFY with fewer shards than this closes 4011 "Sharding required".
        self.required_shards = required_shards
        self._sessions: dict[str, GatewaySession] = {}
        self._connections: set[Connection] = set()
        self._offline_interactions: list[dict[str, Any]] = []
        self.identifies = 0
        self.resumes = 0
        self.gateway_connects = 0
        self.gateway_closes: list[int | None] = []
        #: The query string of every gateway connection (v, encoding, compress).
        self.gateway_queries: list[dict[str, str]] = []
        self._up = asyncio.Event()
        self._up.set()
        #: Connections held without HELLO while the gateway is down.
        self.held = 0

    @property
    def sessions(self) -> list[GatewaySession]:
        return list(self._sessions.values())

    def ready_session(self) -> GatewaySession | None:
        """A session that was sent READY and all its GUILD_CREATEs, if any."""
        return next((s for s in self._sessions.values() if s.ready), None)

    def ready_sessions(self) -> int:
        """How many sessions (shards) were sent READY and all their GUILD_CREATEs."""
        return sum(1 for s in self._sessions.values() if s.ready)

    def live_connections(self) -> int:
        return sum(1 for c in self._connections if not c.closed)

    # ------------------------------------------------------------------ dispatch

    def _targets(self, required_intent: int, guild_id: int | None) -> list[GatewaySession]:
        return [
            s
            for s in self._sessions.values()
            if s.intents & required_intent and s.handles(guild_id)
        ]

    def guild_event(self, event: str, data: dict[str, Any]) -> None:
        """A guild or channel event, to every session with GUILDS on the guild's shard."""
        guild_id = data["id"] if event in GUILD_OBJECT_EVENTS else data.get("guild_id")
        for session in self._targets(INTENT_GUILDS, int(guild_id) if guild_id else None):
            session.dispatch(event, data)

    def message_event(self, event: str, record: MessageRecord) -> None:
        """Echo a message event to every session whose intents cover it."""
        if record.ephemeral:
            return
        intent = INTENT_DIRECT_MESSAGES if record.guild_id is None else INTENT_GUILD_MESSAGES
        for session in self._targets(intent, record.guild_id):
            if event == "MESSAGE_DELETE":
                data: dict[str, Any] = {"id": str(record.id), "channel_id": str(record.channel_id)}
                if record.guild_id is not None:
                    data["guild_id"] = str(record.guild_id)
            else:
                data = self._message_json(record, session)
            session.dispatch(event, data)

    def _message_json(self, record: MessageRecord, session: GatewaySession) -> dict[str, Any]:
        """MESSAGE_CREATE/UPDATE data: REST JSON + member, blanked without the intent."""
        data = record.to_json()
        if record.guild_id is not None:
            guild = self.state.guilds.get(record.guild_id)
            member = guild.members.get(int(record.author["id"])) if guild else None
            if member is not None and record.webhook_id is None:
                data["member"] = member.to_json(with_user=False)
            for mention in data["mentions"]:
                m = guild.members.get(int(mention["id"])) if guild else None
                if m is not None:
                    mention["member"] = m.to_json(with_user=False)
        has_intent = (
            bool(session.intents & INTENT_MESSAGE_CONTENT) and self.state.message_content_intent
        )
        if not has_intent:
            data = self.state.redact(record, data)
        return data

    def interaction_created(self, interaction: FakeInteraction) -> None:
        """INTERACTION_CREATE to every session of its guild's shard (shard 0 outside guilds);
        queued for the first such session if there is none yet."""
        sessions = [s for s in self._sessions.values() if s.handles(interaction.guild_id)]
        if not sessions:
            self._offline_interactions.append(interaction.payload)
            return
        for session in sessions:
            session.dispatch("INTERACTION_CREATE", interaction.payload)
            self._watch_delivery(session, interaction)

    def _watch_delivery(self, session: GatewaySession, interaction: FakeInteraction) -> None:
        """Record when a connection actually wrote the interaction to the bot."""
        if session.conn is None or session.conn.closed:
            return

        def delivered() -> None:
            if interaction.delivered_at is None:
                interaction.delivered_at = time.monotonic()
                self.state.changed()

        session.conn.call_when_flushed(delivered)

    async def drop(self, code: int | None = None) -> None:
        """Kill live gateway connections: ``None`` aborts TCP, else close with ``code``.

        Sessions survive (unless the code is non-resumable for the client), so events
        dispatched meanwhile are buffered and replayed when the client RESUMEs.
        """
        conns = [c for c in self._connections if not c.closed]
        for conn in conns:
            if conn.session is not None and conn.session.conn is conn:
                conn.session.conn = None
        for conn in conns:
            if code is None:
                conn.abort()
            else:
                await conn.close(code, "dropped by FakeDiscord")
        self.state.changed()

    @property
    def down(self) -> bool:
        return not self._up.is_set()

    async def take_down(self, code: int | None = None) -> None:
        """An outage: live connections dropped (``code`` as in ``drop``), new ones held
        without HELLO until ``bring_up``. Sessions survive, for RESUME."""
        self._up.clear()
        await self.drop(code)

    def bring_up(self) -> None:
        """The outage is over: held connections get their HELLO."""
        self._up.set()
        self.state.changed()

    async def close(self) -> None:
        """Abort every connection and stop its writer."""
        self._up.set()  # held connections end too
        for conn in list(self._connections):
            conn.abort()
            await conn.stop_writer()
        self._connections.clear()

    # ------------------------------------------------------------------ the websocket

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """The ``/gateway`` websocket route."""
        ws = web.WebSocketResponse(timeout=3.0, max_msg_size=0, autoping=True, compress=False)
        await ws.prepare(request)
        query = request.query
        compress = query.get("compress")
        self.gateway_queries.append(dict(query))
        conn = Connection(ws, request, compress=compress == "zlib-stream")
        self._connections.add(conn)
        self.gateway_connects += 1
        try:
            if query.get("v", "10") != "10":
                await conn.close(4012, "Invalid API version")
                return ws
            if query.get("encoding", "json") != "json":
                await conn.close(4002, "Only encoding=json is supported by FakeDiscord")
                return ws
            if compress not in (None, "zlib-stream"):
                # Not resumable for discord.py, so a zstd-enabled client fails loudly.
                await conn.close(4012, f"compress={compress} is not supported by FakeDiscord")
                return ws
            if self.down:
                self.held += 1
                self.state.changed()
                try:
                    await self._up.wait()
                finally:
                    self.held -= 1
                if conn.closed or ws.closed:
                    return ws
            conn.send({"op": 10, "s": None, "t": None, "d": self._hello()})
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    text = msg.data
                elif msg.type is WSMsgType.BINARY:
                    text = msg.data.decode("utf-8", "replace")
                else:
                    break
                try:
                    payload = json.loads(text)
                except ValueError:
                    await conn.close(4002, "Error while decoding payload.")
                    break
                if not await self._on_payload(conn, payload):
                    break
        finally:
            conn.closed = True
            self.gateway_closes.append(ws.close_code)
            session = conn.session
            if session is not None and session.conn is conn:
                session.conn = None
                # A clean close by the client (1000/1001) ends the session, as on Discord.
                if ws.close_code in (1000, 1001):
                    self._sessions.pop(session.session_id, None)
            self._connections.discard(conn)
            await conn.stop_writer()
            self.state.changed()
        return ws

    def _hello(self) -> dict[str, Any]:
        return {"heartbeat_interval": self.heartbeat_interval, "_trace": ['["fake-gateway",{}]']}

    async def _on_payload(self, conn: Connection, payload: dict[str, Any]) -> bool:
        """Handle one client payload; False ends the connection."""
        op = payload.get("op")
        data = payload.get("d")
        if op == 1:  # HEARTBEAT
            conn.send({"op": 11, "s": None, "t": None, "d": None})
            return True
        if op == 2:
            return await self._identify(conn, data or {})
        if op == 6:
            return await self._resume(conn, data or {})
        if conn.session is None:
            await conn.close(4003, "Not authenticated.")
            return False
        if op == 8:  # REQUEST_GUILD_MEMBERS
            self._members_chunk(conn.session, data or {})
            return True
        if op in (3, 4):  # presence / voice state: accepted, ignored
            return True
        await conn.close(4001, "Unknown opcode.")
        return False

    async def _identify(self, conn: Connection, data: dict[str, Any]) -> bool:
        state = self.state
        if conn.session is not None:
            await conn.close(4005, "Already authenticated.")
            return False
        if data.get("token") != state.token:
            await conn.close(4004, "Authentication failed.")
            return False
        intents = data.get("intents")
        if not isinstance(intents, int):
            await conn.close(4013, "Invalid intent(s).")
            return False
        if intents & INTENT_MESSAGE_CONTENT and not state.message_content_intent:
            await conn.close(4014, "Disallowed intent(s).")
            return False
        shard = data.get("shard")
        if shard is not None and not _valid_shard(shard):
            await conn.close(4010, "Invalid shard.")
            return False
        if (shard[1] if shard is not None else 1) < self.required_shards:
            await conn.close(4011, "Sharding required.")
            return False
        session = GatewaySession(session_id=secrets.token_hex(16), intents=intents, shard=shard)
        self._sessions[session.session_id] = session
        session.conn = conn
        conn.session = session
        self.identifies += 1
        guilds = [g for g in state.guilds.values() if session.handles(g.id)]
        ready = {
            "v": 10,
            "user": {**state.bot_user, "verified": True, "mfa_enabled": False, "email": None},
            "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
            "session_id": session.session_id,
            "session_type": "normal",
            "resume_gateway_url": self._url(),
            "application": {"id": str(state.application_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": ["fake"],
            "user_settings": {},
            "auth": {},
            "_trace": ['["fake-gateway",{}]'],
        }
        if session.shard is not None:
            ready["shard"] = session.shard
        session.dispatch("READY", ready)
        if intents & INTENT_GUILDS:
            for guild in guilds:
                session.dispatch("GUILD_CREATE", state.guild_json(guild, in_ready=True))

        def mark_ready() -> None:
            session.ready = True
            state.changed()

        conn.call_when_flushed(mark_ready)
        pending = [p for p in self._offline_interactions if session.handles(_guild_of(p))]
        self._offline_interactions = [p for p in self._offline_interactions if p not in pending]
        for interaction_payload in pending:
            session.dispatch("INTERACTION_CREATE", interaction_payload)
            interaction = state.interactions.get(int(interaction_payload["id"]))
            if interaction is not None:
                self._watch_delivery(session, interaction)
        return True

    async def _resume(self, conn: Connection, data: dict[str, Any]) -> bool:
        if data.get("token") != self.state.token:
            await conn.close(4004, "Authentication failed.")
            return False
        session = self._sessions.get(str(data.get("session_id")))
        if session is None or conn.session is not None:
            conn.send({"op": 9, "s": None, "t": None, "d": False})
            return True
        old = session.conn
        if old is not None and old is not conn:
            old.abort()
        session.conn = conn
        conn.session = session
        last_seq = data.get("seq") or 0
        for seq, payload in session.buffer:
            if seq > last_seq:
                conn.send(payload)
                if payload["t"] == "INTERACTION_CREATE":
                    interaction = self.state.interactions.get(int(payload["d"]["id"]))
                    if interaction is not None and interaction.delivered_at is None:
                        self._watch_delivery(session, interaction)
        session.dispatch("RESUMED", {"_trace": ['["fake-gateway",{}]']})
        self.resumes += 1
        self.state.changed()
        return True

    def _members_chunk(self, session: GatewaySession, data: dict[str, Any]) -> None:
        guild = self.state.guilds.get(int(data.get("guild_id") or 0))
        if guild is None:
            return
        members = list(guild.members.values())
        if data.get("user_ids"):
            wanted = {int(u) for u in data["user_ids"]}
            members = [m for m in members if m.id in wanted]
        elif data.get("query"):
            members = [m for m in members if m.user["username"].startswith(data["query"])]
        chunk: dict[str, Any] = {
            "guild_id": str(guild.id),
            "members": [m.to_json() for m in members],
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": [],
        }
        if data.get("nonce") is not None:
            chunk["nonce"] = data["nonce"]
        if data.get("presences"):
            chunk["presences"] = []
        session.dispatch("GUILD_MEMBERS_CHUNK", chunk)


def _valid_shard(shard: Any) -> bool:
    """``[id, count]`` with ``0 <= id < count``, as Discord checks it."""
    return (
        isinstance(shard, list)
        and len(shard) == 2
        and all(isinstance(n, int) and not isinstance(n, bool) for n in shard)
        and 0 <= shard[0] < shard[1]
    )


def _guild_of(payload: dict[str, Any]) -> int | None:
    guild_id = payload.get("guild_id")
    return int(guild_id) if guild_id else None
