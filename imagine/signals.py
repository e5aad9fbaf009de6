"""Signals between processes, through PostgreSQL ``LISTEN/NOTIFY``.

One dedicated asyncpg connection per process listens; the senders NOTIFY inside their own
transactions (``imagine.store.notify``), so a signal goes out when its change commits.

- ``imagine_cancel`` (``job_id:who``): the process running that job stops it.
- ``imagine_positions``: the shared queue changed; waiting jobs' places may have moved and a
  slot may be free.
- ``imagine_settings`` (a server id; ``u<id>`` a member's settings, ``s<id>`` a member's own
  token): every process reads them again.

A lost connection is opened again (listeners re-added) after a short pause; signals sent
meanwhile are lost, so whoever relies on them registers ``on_reconnect`` to read again what
they may have missed, and also looks at the database now and then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import asyncpg

from .shared import CANCEL_CHANNEL, POSITIONS_CHANNEL
from .store import SETTINGS_CHANNEL, Store

log = logging.getLogger(__name__)

Listener = Callable[[str], None]
RECONNECT_SECONDS = 1.0


def plain_url(url: str) -> str:
    """A libpq URL (asyncpg's) from a SQLAlchemy one."""
    scheme, rest = url.split("://", 1)
    return f"postgresql://{rest}" if scheme.startswith("postgres") else url


class Signals:
    def __init__(self, url: str) -> None:
        self.url = plain_url(url)
        self.listeners: dict[str, list[Listener]] = {}
        self._conn: asyncpg.Connection | None = None
        self._closed = False
        self._reconnect: asyncio.Task[None] | None = None
        self._catch_up: list[Callable[[], Awaitable[object]]] = []
        self._settings_tasks: set[asyncio.Task[object]] = set()

    @classmethod
    async def connect(cls, url: str) -> Signals:
        signals = cls(url)
        await signals._open()
        return signals

    async def listen(self, channel: str, listener: Listener) -> None:
        """Call ``listener(payload)`` for each NOTIFY on ``channel`` from now on."""
        first = channel not in self.listeners
        self.listeners.setdefault(channel, []).append(listener)
        if first and self._conn is not None:
            await self._add(channel)

    async def _add(self, channel: str) -> None:
        assert self._conn is not None
        await self._conn.add_listener(channel, self._dispatch)

    def _dispatch(self, _conn: object, _pid: int, channel: str, payload: str) -> None:
        for listener in self.listeners.get(channel, ()):
            try:
                listener(payload)
            except Exception:
                log.exception("a %s signal listener failed", channel)

    async def _open(self) -> None:
        conn = await asyncpg.connect(self.url)
        conn.add_termination_listener(self._lost)
        self._conn = conn
        for channel in self.listeners:
            await self._add(channel)

    def _lost(self, _conn: object) -> None:
        if self._closed:
            return
        log.warning("the signal connection to PostgreSQL was lost; reconnecting")
        self._conn = None
        self._reconnect = asyncio.get_running_loop().create_task(self._reopen())

    async def _reopen(self) -> None:
        while not self._closed:
            await asyncio.sleep(RECONNECT_SECONDS)
            try:
                await self._open()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("cannot reach PostgreSQL for signals yet (%s)", exc)
                continue
            log.info("the signal connection to PostgreSQL is back")
            for catch_up in self._catch_up:
                try:
                    await catch_up()
                except Exception:
                    log.exception("could not catch up on signals missed while disconnected")
            return

    def on_reconnect(self, catch_up: Callable[[], Awaitable[object]]) -> None:
        """Run ``catch_up()`` each time the connection is back: whatever was signalled while
        it was down is lost, so read it again from the database."""
        self._catch_up.append(catch_up)

    async def close(self) -> None:
        self._closed = True
        if self._reconnect is not None:
            self._reconnect.cancel()
        pending = list(self._settings_tasks)
        await asyncio.gather(*pending, return_exceptions=True)  # reads under way end first
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close(timeout=5)
            self._conn = None

    # -- the signals this bot uses ----------------------------------------------------------

    async def on_cancel(self, listener: Callable[[int, str | None], None]) -> None:
        def parse(payload: str) -> None:
            job_id, _, by = payload.partition(":")
            listener(int(job_id), by or None)

        await self.listen(CANCEL_CHANNEL, parse)

    async def on_positions(self, listener: Callable[[], None]) -> None:
        await self.listen(POSITIONS_CHANNEL, lambda _payload: listener())

    async def follow_settings(self, store: Store) -> None:
        """Keep ``store``'s settings cache in step with changes made by other processes (all
        of it read again after a reconnection, which may have missed some)."""
        tasks = self._settings_tasks

        def changed(payload: str) -> None:
            refresh: Coroutine[Any, Any, object]
            if payload.startswith("u"):  # a member's own settings
                refresh = store.refresh_user(int(payload[1:]))
            elif payload.startswith("s"):  # a member's own token, connected or forgotten
                refresh = store.refresh_sealed_token(int(payload[1:]))
            else:
                refresh = store.refresh_guild(int(payload))
            task = asyncio.get_running_loop().create_task(refresh)
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        await self.listen(SETTINGS_CHANNEL, changed)
        self.on_reconnect(store.reload_settings)
