"""The job queue shared by several processes (gateways and workers), kept in the database.

The same rules as ``imagine.jobs.Scheduler``, with the state in two tables (``job_queue``,
``queue_users``) instead of one process's memory:

- At most ``max_concurrent`` jobs run at once, across every worker.
- One running job per user; at most ``max_queued_per_user`` jobs per user waiting or running;
  at most ``max_total`` jobs in all.
- Round-robin across users: each user in line has a ``turn``; the next job to run is the oldest
  waiting job of the user with the lowest turn among users with nothing running. A user whose
  job ends goes to the back (``turn`` = the largest + 1) with the rest of their jobs.
- ``positions()``: every waiting job's place in line, in the order they are expected to start.

Every change runs in one transaction holding an advisory lock (``QUEUE_LOCK``; on SQLite the
database's write lock), so two processes claiming at once never get the same job, nor run more
than ``max_concurrent`` between them. A claimed job has an owner and a lease, renewed by the
owner's heartbeats; a job whose lease ran out belongs to a worker that died, and another one
takes it over (``take_over``). Each change NOTIFYs ``imagine_positions`` (PostgreSQL).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from .jobs import QueueFull, SchedulerBusy
from .store import Store, job_queue, jobs, notify, queue_users

QUEUE_LOCK = int.from_bytes(b"imgnqueu", "big")
"""PostgreSQL advisory lock key held by every change to the shared queue."""
POSITIONS_CHANNEL = "imagine_positions"
"""NOTIFY channel: the queue changed (positions may have moved, a slot may be free)."""
CANCEL_CHANNEL = "imagine_cancel"
"""NOTIFY channel: a running job must stop (payload: ``job_id`` or ``job_id:who``)."""
LEASE_SECONDS = 30.0
"""A claim lasts this long without a heartbeat; heartbeats come every third of it."""
WAITING = "waiting"
RUNNING = "running"


@dataclass(frozen=True, slots=True)
class Claim:
    """A queued job as the queue holds it."""

    job_id: int
    user_id: int
    state: str
    owner: str | None
    lease_until: float | None
    attempts: int
    requester: str | None
    fallback: str | None

    @classmethod
    def from_row(cls, row: Any) -> Claim:
        m = row._mapping
        return cls(
            m["job_id"],
            m["user_id"],
            m["state"],
            m["owner"],
            m["lease_until"],
            m["attempts"],
            m["requester"],
            m["fallback"],
        )


class SharedScheduler:
    def __init__(
        self,
        store: Store,
        max_concurrent: int,
        *,
        max_queued_per_user: int = 3,
        max_total: int | None = None,
        lease_seconds: float = LEASE_SECONDS,
    ) -> None:
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        self.store = store
        self.max_concurrent = max_concurrent
        self.max_queued_per_user = max_queued_per_user
        self.max_total = max_total
        self.lease_seconds = lease_seconds

    # -- the one way in: a locked transaction ---------------------------------------------

    async def _lock(self, conn: AsyncConnection) -> None:
        if not self.store.is_sqlite:
            await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(QUEUE_LOCK)))

    async def _changed(self, conn: AsyncConnection) -> None:
        if not self.store.is_sqlite:
            await notify(conn, POSITIONS_CHANNEL)

    # -- counts ---------------------------------------------------------------------------

    async def active_jobs(self, user_id: int) -> int:
        async with self.store.engine.connect() as conn:
            return await _count(conn, job_queue.c.user_id == user_id)

    async def counts(self) -> tuple[int, int]:
        """``(waiting, running)`` across every process."""
        async with self.store.engine.connect() as conn:
            rows = await conn.execute(
                sa.select(job_queue.c.state, sa.func.count()).group_by(job_queue.c.state)
            )
            found: dict[str, int] = {state: count for state, count in rows.all()}
        return int(found.get(WAITING, 0)), int(found.get(RUNNING, 0))

    async def full(self) -> bool:
        if self.max_total is None:
            return False
        return sum(await self.counts()) >= self.max_total

    # -- changes --------------------------------------------------------------------------

    async def submit(
        self,
        job_id: int,
        user_id: int,
        *,
        requester: str | None = None,
        fallback: str | None = None,
    ) -> None:
        """Queue a job; ``QueueFull`` / ``SchedulerBusy`` when a limit is reached."""
        async with self.store._transaction() as conn:
            await self._lock(conn)
            if await _count(conn, job_queue.c.user_id == user_id) >= self.max_queued_per_user:
                raise QueueFull(self.max_queued_per_user)
            if self.max_total is not None and await _count(conn) >= self.max_total:
                raise SchedulerBusy(self.max_total)
            await conn.execute(
                job_queue.insert().values(
                    job_id=job_id,
                    user_id=user_id,
                    state=WAITING,
                    submitted_at=time.time(),
                    requester=requester,
                    fallback=fallback,
                )
            )
            known = await conn.scalar(
                sa.select(queue_users.c.turn).where(queue_users.c.user_id == user_id)
            )
            if known is None:
                await conn.execute(
                    queue_users.insert().values(user_id=user_id, turn=await _next_turn(conn))
                )
            await self._changed(conn)
            await conn.commit()

    async def claim(self, owner: str) -> Claim | None:
        """The next job to run, now ``owner``'s with a lease; None when none may start (none
        waiting, the global limit reached, or every waiting user has a job running)."""
        async with self.store._transaction() as conn:
            await self._lock(conn)
            if await _count(conn, job_queue.c.state == RUNNING) >= self.max_concurrent:
                return None
            running = sa.select(job_queue.c.user_id).where(job_queue.c.state == RUNNING)
            row = (
                await conn.execute(
                    sa.select(job_queue.c.job_id)
                    .join(queue_users, queue_users.c.user_id == job_queue.c.user_id)
                    .where(job_queue.c.state == WAITING, job_queue.c.user_id.not_in(running))
                    .order_by(queue_users.c.turn, job_queue.c.job_id)
                    .limit(1)
                )
            ).first()
            if row is None:
                return None
            now = time.time()
            await conn.execute(
                job_queue.update()
                .where(job_queue.c.job_id == row[0])
                .values(
                    state=RUNNING,
                    owner=owner,
                    started_at=now,
                    lease_until=now + self.lease_seconds,
                    attempts=job_queue.c.attempts + 1,
                )
            )
            # The job log's start is the claim's: ordered as the claims are, across workers.
            await conn.execute(
                jobs.update().where(jobs.c.id == row[0]).values(state="running", started_at=now)
            )
            claimed = await _row(conn, row[0])
            await self._changed(conn)
            await conn.commit()
        return claimed

    async def release(self, job_id: int) -> str | None:
        """The job is over (or cancelled while waiting): out of the queue; a user whose running
        job ended goes to the back of the line. Returns the state it had (None: not queued)."""
        return await self._release(job_id, (WAITING, RUNNING))

    async def cancel_waiting(self, job_id: int) -> bool:
        """Take a job out of the queue if it is still waiting; False if it runs (or is gone)."""
        return await self._release(job_id, (WAITING,)) == WAITING

    async def _release(self, job_id: int, states: tuple[str, ...]) -> str | None:
        async with self.store._transaction() as conn:
            await self._lock(conn)
            gone = await _row(conn, job_id)
            if gone is None or gone.state not in states:
                return None
            await conn.execute(job_queue.delete().where(job_queue.c.job_id == job_id))
            user = queue_users.c.user_id == gone.user_id
            if await _count(conn, job_queue.c.user_id == gone.user_id) == 0:
                await conn.execute(queue_users.delete().where(user))
            elif gone.state == RUNNING:
                await conn.execute(
                    queue_users.update().where(user).values(turn=await _next_turn(conn))
                )
            await self._changed(conn)
            await conn.commit()
        return gone.state

    async def heartbeat(self, owner: str, job_ids: Iterable[int]) -> int:
        """Renew ``owner``'s leases on ``job_ids``; returns how many it still holds."""
        ids = list(job_ids)
        if not ids:
            return 0
        async with self.store.engine.begin() as conn:
            result = await conn.execute(
                job_queue.update()
                .where(
                    job_queue.c.job_id.in_(ids),
                    job_queue.c.owner == owner,
                    job_queue.c.state == RUNNING,
                )
                .values(lease_until=time.time() + self.lease_seconds)
            )
        return result.rowcount

    async def take_over(self, owner: str, now: float | None = None) -> Claim | None:
        """One running job whose lease ran out (its worker died), now ``owner``'s, with its
        attempts counted up; None when there is none."""
        now = time.time() if now is None else now
        async with self.store._transaction() as conn:
            await self._lock(conn)
            row = (
                await conn.execute(
                    sa.select(job_queue.c.job_id)
                    .where(job_queue.c.state == RUNNING, job_queue.c.lease_until < now)
                    .order_by(job_queue.c.lease_until)
                    .limit(1)
                )
            ).first()
            if row is None:
                return None
            await conn.execute(
                job_queue.update()
                .where(job_queue.c.job_id == row[0])
                .values(
                    owner=owner,
                    lease_until=time.time() + self.lease_seconds,
                    attempts=job_queue.c.attempts + 1,
                )
            )
            claimed = await _row(conn, row[0])
            await conn.commit()
        return claimed

    @asynccontextmanager
    async def while_waiting(self, job_id: int) -> AsyncIterator[bool]:
        """Yields whether the job still waits; while True, no worker can claim it (its row
        is held FOR SHARE: a claim of it waits for the block to end). False too when a claim
        of it is under way. For the gateway's edits of a waiting job's reply, which must not
        land after the worker's first status."""
        if self.store.is_sqlite:
            claim = await self.get(job_id)
            yield claim is not None and claim.state == WAITING
            return
        async with self.store.engine.connect() as conn, conn.begin():
            try:
                state = await conn.scalar(
                    sa.select(job_queue.c.state)
                    .where(job_queue.c.job_id == job_id)
                    .with_for_update(read=True, nowait=True)
                )
            except sa.exc.DBAPIError:  # locked: a worker is claiming it right now
                state = None
            yield state == WAITING

    async def cancel_running(self, job_id: int, by: str | None = None) -> None:
        """Ask whichever process runs ``job_id`` to stop it (PostgreSQL NOTIFY)."""
        async with self.store.engine.begin() as conn:
            await notify(conn, CANCEL_CHANNEL, f"{job_id}:{by or ''}")

    # -- reading --------------------------------------------------------------------------

    async def get(self, job_id: int) -> Claim | None:
        async with self.store.engine.connect() as conn:
            return await _row(conn, job_id)

    async def order(self) -> list[int]:
        """Waiting job ids in the order they are expected to start: the users in line by
        turn (those with a job running after them, by when it started), one job each per
        round."""
        async with self.store.engine.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(
                        job_queue.c.job_id,
                        job_queue.c.user_id,
                        job_queue.c.state,
                        job_queue.c.started_at,
                        job_queue.c.submitted_at,
                        queue_users.c.turn,
                    )
                    .join(queue_users, queue_users.c.user_id == job_queue.c.user_id)
                    .order_by(job_queue.c.job_id)
                )
            ).all()
        running = {r.user_id: r.started_at or 0.0 for r in rows if r.state == RUNNING}
        queues: dict[int, list[int]] = {}
        turns: dict[int, tuple[int, float, int]] = {}
        for r in rows:
            if r.state != WAITING:
                continue
            queues.setdefault(r.user_id, []).append(r.job_id)
            if r.user_id not in turns:  # the user's oldest waiting job
                # A user with a job running waits behind the users in line, from when they
                # had both a job running and one waiting.
                busy = r.user_id in running
                since = max(running[r.user_id], r.submitted_at) if busy else 0.0
                turns[r.user_id] = (int(busy), since, r.turn)
        lines = [queues[user] for user in sorted(queues, key=lambda u: turns[u])]
        order: list[int] = []
        depth = 0
        while True:
            row = [line[depth] for line in lines if depth < len(line)]
            if not row:
                return order
            order.extend(row)
            depth += 1

    async def positions(self) -> dict[int, int]:
        """Every waiting job's place in line, from 1."""
        return {job_id: place for place, job_id in enumerate(await self.order(), start=1)}


_NEXT_TURN = sa.select(sa.func.coalesce(sa.func.max(queue_users.c.turn), 0) + 1).scalar_subquery()


async def _next_turn(conn: AsyncConnection) -> int:
    return int(await conn.scalar(sa.select(_NEXT_TURN)) or 1)


async def _count(conn: AsyncConnection, *where: Any) -> int:
    query = sa.select(sa.func.count()).select_from(job_queue)
    if where:
        query = query.where(*where)
    return int(await conn.scalar(query) or 0)


async def _row(conn: AsyncConnection, job_id: int) -> Claim | None:
    row = (await conn.execute(sa.select(job_queue).where(job_queue.c.job_id == job_id))).first()
    return Claim.from_row(row) if row else None
