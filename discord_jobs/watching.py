"""The Discord side of a process's metrics and readiness (``imagine.metrics``,
``imagine.ops_http``): every request discord.py sends to Discord, counted by the status it
got (429s included: discord.py retries them itself, and each try counts), and whether this
process's gateway shards are connected.

Requests are counted by a trace config on discord.py's own aiohttp session (the client's
``http_trace`` option), so the REST calls, the interaction callbacks and webhook edits made
through the client, and the gateway's websocket handshakes (101) are all seen, without a
wrapper around any call of ours.
"""

from __future__ import annotations

import types

import aiohttp
import discord
from prometheus_client import CollectorRegistry, Counter

FAILED = "error"
"""The ``status`` label of a request that got no answer (the connection failed)."""


class DiscordRequests:
    """``imagine_discord_requests_total{status}`` on a process's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "imagine_discord_requests",
            "Requests sent to Discord (REST, interaction callbacks, webhook edits, gateway "
            "handshakes), by the HTTP status they got (error: no answer).",
            ("status",),
            registry=registry,
        )

    def trace(self) -> aiohttp.TraceConfig:
        """For ``discord.Client(http_trace=...)``."""
        config = aiohttp.TraceConfig()
        config.on_request_end.append(self._answered)
        config.on_request_exception.append(self._failed)
        return config

    async def _answered(
        self,
        session: aiohttp.ClientSession,
        context: types.SimpleNamespace,
        params: aiohttp.TraceRequestEndParams,
    ) -> None:
        self.requests.labels(str(params.response.status)).inc()

    async def _failed(
        self,
        session: aiohttp.ClientSession,
        context: types.SimpleNamespace,
        params: aiohttp.TraceRequestExceptionParams,
    ) -> None:
        self.requests.labels(FAILED).inc()


def gateway_problem(client: discord.AutoShardedClient) -> str | None:
    """What keeps this process from being connected to Discord (None: every shard it runs is
    connected), in one line."""
    if client.is_closed():
        return "the Discord client is closed"
    if not client.is_ready():
        return "not connected to Discord yet"
    shard_ids = client.shard_ids
    expected = shard_ids if shard_ids is not None else range(client.shard_count or 1)
    for shard_id in expected:
        shard = client.get_shard(shard_id)
        if shard is None or shard.is_closed():
            return f"shard {shard_id} is not connected to Discord's gateway"
    return None
