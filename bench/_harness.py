"""The real bot in this process, the fakes in theirs: the pieces ``bench.bot`` drives them with.

``DiscordControl`` speaks the fake Discord's control API (see ``tests/fakes/discord/control.py``),
``space_completions`` reads the fake Space's completion records (``space_records`` those and
the failures its ``failure_rate`` injected), ``running_bot`` starts the real
``ImagineBot`` in this event loop the way ``tests/harness.py`` does, and ``reset_peak_rss`` /
``peak_rss_mb`` measure this process's peak resident set size one run at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

import bot as bot_module
from imagine.settings import Settings


class ControlError(RuntimeError):
    """A control call answered something else than 200."""


class DiscordControl:
    """The fake Discord's ``/_control`` API over one ``aiohttp`` session."""

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http = http
        self.base = base.rstrip("/")

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        async with self.http.request(method, self.base + path, json=body) as response:
            data = await response.json()
            if response.status != 200:
                raise ControlError(f"{method} {path}: {response.status} {data}")
            return data

    async def info(self) -> dict[str, Any]:
        return await self._call("GET", "/info")

    async def guilds(self, names: Iterable[str], *, shards: int = 0) -> list[dict[str, Any]]:
        """New servers; with ``shards``, server i is on shard ``i % shards``."""
        body = {"names": list(names), "shards": shards}
        return (await self._call("POST", "/guilds", body))["guilds"]

    async def users(self, specs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """``specs``: ``{"name", "guild_ids"?, "permissions"?}`` each; the user objects back."""
        return (await self._call("POST", "/users", {"users": list(specs)}))["users"]

    async def slash(self, specs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """Send every slash command in one event-loop turn of the fake; ``[{"id", ...}]``."""
        return await self._call("POST", "/slash", list(specs))

    async def interactions(
        self, ids: Iterable[str], *, wait: float = 0.0, until: str = "final"
    ) -> dict[str, Any]:
        body = {"ids": list(ids), "wait": wait, "until": until}
        return await self._call("POST", "/interactions", body)

    async def stats(self) -> dict[str, Any]:
        return await self._call("GET", "/stats")

    async def drop_gateway(self, code: int | None = None) -> dict[str, Any]:
        """Drop the bot's gateway connection: ``None`` aborts TCP, else close with ``code``."""
        return await self._call("POST", "/drop_gateway", {"code": code})

    async def replies(self, ids: Iterable[str]) -> list[dict[str, Any]]:
        """What each interaction's reply shows now: embeds (titles), buttons, attachments."""
        return (await self._call("POST", "/replies", {"ids": list(ids)}))["replies"]


async def space_completions(http: aiohttp.ClientSession, space_url: str) -> list[dict[str, Any]]:
    async with http.get(f"{space_url}/_control/completions") as response:
        response.raise_for_status()
        return (await response.json())["completions"]


async def space_records(http: aiohttp.ClientSession, space_url: str) -> dict[str, Any]:
    """``{"now", "completions": [...], "failures": [...]}`` from the fake Space."""
    async with http.get(f"{space_url}/_control/completions") as response:
        response.raise_for_status()
        return await response.json()


@asynccontextmanager
async def running_bot(settings: Settings, *, ready_within: float = 30) -> AsyncIterator[Any]:
    """``bot.ImagineBot`` started in this event loop against ``settings``; closed on exit."""
    bot_module.point_at_api(settings.discord_api_base_url)
    bot = bot_module.ImagineBot(settings, guild_ready_timeout=0.05)
    ready = asyncio.Event()

    async def on_ready() -> None:
        ready.set()

    bot.add_listener(on_ready, "on_ready")
    task = asyncio.create_task(bot.start(settings.discord_token))
    waiter = asyncio.ensure_future(ready.wait())
    try:
        done, _ = await asyncio.wait(
            {task, waiter}, timeout=ready_within, return_when=asyncio.FIRST_COMPLETED
        )
        if task in done:
            task.result()  # raise what stopped the bot
        if not ready.is_set():
            raise RuntimeError(f"the bot was not ready within {ready_within}s")
        yield bot
    finally:
        waiter.cancel()
        await bot.close()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(task, 10)


def reset_peak_rss() -> bool:
    """Start a new peak: Linux resets VmHWM (and so ``ru_maxrss``) to the current RSS."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def peak_rss_mb() -> float:
    """``getrusage(RUSAGE_SELF).ru_maxrss`` in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
