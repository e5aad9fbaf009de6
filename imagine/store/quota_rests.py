"""ZeroGPU quota rests, shared by every process: a worker that met a refusal writes the rest,
the others (and ``/imagine-config show``, ``--check``) read it, so no process sends a request
to a resting (backend, account) pair before its time."""

from __future__ import annotations

import asyncio
import logging
import time

import sqlalchemy as sa

from ..i18n import Verbatim
from ..quota import QuotaRests, Rest
from .database import Database, retrying
from .schema import quota_rests

log = logging.getLogger(__name__)


class QuotaRestLog(Database):
    async def save_rest(self, rest: Rest) -> None:
        """Keep ``rest`` (a longer one already kept stands); expired ones are dropped."""
        reason = None if rest.reason is None else str(rest.reason)[:500]
        values = {
            "backend": rest.backend,
            "account": rest.account,
            "until": rest.until,
            "reason": reason,
        }
        insert = self._insert(quota_rests).values(**values)
        upsert = insert.on_conflict_do_update(
            index_elements=[quota_rests.c.backend, quota_rests.c.account],
            set_={"until": insert.excluded.until, "reason": insert.excluded.reason},
            where=quota_rests.c.until < insert.excluded.until,
        )

        async def save() -> None:
            async with self.engine.begin() as conn:
                await conn.execute(quota_rests.delete().where(quota_rests.c.until < time.time()))
                await conn.execute(upsert)

        await retrying(save, what="keeping a quota rest")

    async def quota_rests(self) -> list[Rest]:
        """Every rest still running, soonest over first."""

        async def read() -> list[Rest]:
            async with self.engine.connect() as conn:
                rows = await conn.execute(
                    sa.select(quota_rests)
                    .where(quota_rests.c.until > time.time())
                    .order_by(quota_rests.c.until)
                )
                return [
                    Rest(r.backend, r.account, r.until, Verbatim(r.reason) if r.reason else None)
                    for r in rows
                ]

        return await retrying(read, what="reading the quota rests")


class SharedRests:
    """A process's quota rests shared through the database: the ones it learns are kept for
    every process (at once, in the background), and the others' are read in by ``refresh``
    (at start, and now and then)."""

    def __init__(self, rests: QuotaRests, store: QuotaRestLog) -> None:
        self.rests = rests
        self.store = store
        self._saving: set[asyncio.Task[None]] = set()
        rests.on_rest(self._keep)

    def _keep(self, rest: Rest) -> None:
        task = asyncio.get_running_loop().create_task(self._save(rest))
        self._saving.add(task)
        task.add_done_callback(self._saving.discard)

    async def _save(self, rest: Rest) -> None:
        try:
            await self.store.save_rest(rest)
        except Exception:
            log.exception("could not keep a quota rest for the other processes")

    async def refresh(self) -> None:
        self.rests.adopt(await self.store.quota_rests())

    async def close(self) -> None:
        await asyncio.gather(*self._saving, return_exceptions=True)
