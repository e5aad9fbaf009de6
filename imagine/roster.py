"""The workers alive, as the database knows them: each running ``worker.py`` renews its row
on the database's clock, so a gateway (and ``--check``) can tell that none runs and say so,
instead of leaving jobs to wait in silence."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from .shared import clock
from .store import Store, workers
from .store.database import retrying

FORGOTTEN_SECONDS = 24 * 3600.0
"""A worker unseen this long (it was killed) is taken off the table when another one starts."""


@dataclass(frozen=True, slots=True)
class WorkerSeen:
    name: str
    concurrency: int
    started_at: float
    seen_ago: float  # seconds since its last renewal, on the database's clock


class Roster:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.now = clock(store)

    async def join(self, name: str, concurrency: int) -> None:
        """A worker starts: its row, and the rows of long-dead workers gone."""

        async def join() -> None:
            async with self.store.engine.begin() as conn:
                await conn.execute(
                    workers.delete().where(
                        sa.or_(
                            workers.c.name == name,
                            workers.c.seen_at < self.now - FORGOTTEN_SECONDS,
                        )
                    )
                )
                await conn.execute(
                    workers.insert().values(
                        name=name, concurrency=concurrency, started_at=self.now, seen_at=self.now
                    )
                )

        await retrying(join, what="joining the workers")

    async def renew(self, name: str, concurrency: int) -> None:
        """Still alive (its row made again if a restore or a cleanup took it)."""
        async with self.store.engine.begin() as conn:
            result = await conn.execute(
                workers.update().where(workers.c.name == name).values(seen_at=self.now)
            )
            if not result.rowcount:
                await conn.execute(
                    workers.insert().values(
                        name=name, concurrency=concurrency, started_at=self.now, seen_at=self.now
                    )
                )

    async def leave(self, name: str) -> None:
        """A worker stops cleanly."""

        async def leave() -> None:
            async with self.store.engine.begin() as conn:
                await conn.execute(workers.delete().where(workers.c.name == name))

        await retrying(leave, what="leaving the workers", within=5.0)

    async def alive(self, within: float) -> list[WorkerSeen]:
        """The workers that renewed their row in the last ``within`` seconds."""

        async def read() -> list[WorkerSeen]:
            async with self.store.engine.connect() as conn:
                rows = await conn.execute(
                    sa.select(
                        workers.c.name,
                        workers.c.concurrency,
                        workers.c.started_at,
                        (self.now - workers.c.seen_at).label("seen_ago"),
                    )
                    .where(workers.c.seen_at >= self.now - within)
                    .order_by(workers.c.started_at)
                )
                return [
                    WorkerSeen(r.name, r.concurrency, r.started_at, float(r.seen_ago)) for r in rows
                ]

        return await retrying(read, what="reading the workers")
