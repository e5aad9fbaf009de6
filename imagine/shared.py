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
than ``max_concurrent`` between them. A claimed job has an owner and a lease on the database's
clock (never a machine's), renewed by the owner's heartbeats; a job whose lease ran out belongs
to a worker that died, and the others take all such jobs over at once (``take_over``). Every
change that concerns one running job names its owner, so a worker cut off long enough to lose
a lease can neither end nor release the job its new owner runs. A Cancel is kept on the job's
row (``request_cancel``) until its worker sees it. Each change NOTIFYs ``imagine_positions``.

Operations are attempted again while the database is away (a restart): see
``imagine.store.retrying``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from .jobs import QueueFull, SchedulerBusy
from .settings import Settings
from .store import (
    ACTIVE_STATES,
    FINAL_STATES,
    JobState,
    Store,
    job_queue,
    jobs,
    notify,
    queue_users,
)
from .store.database import retrying

T = TypeVar("T")

QUEUE_LOCK = int.from_bytes(b"imgnqueu", "big")
"""PostgreSQL advisory lock key held by every change to the shared queue."""
PLACE_LOCK = int.from_bytes(b"imgp", "big")
"""First key of the per-job advisory lock held while a waiting job's place is being shown
(the second key is the job's id)."""
POSITIONS_CHANNEL = "imagine_positions"
"""NOTIFY channel: the queue changed (positions may have moved, a slot may be free)."""
CANCEL_CHANNEL = "imagine_cancel"
"""NOTIFY channel: a running job must stop (payload: ``job_id`` or ``job_id:who``)."""
LEASE_SECONDS = 30.0
"""A claim lasts this long without a heartbeat; heartbeats come every third of it."""
WAITING = "waiting"
RUNNING = "running"


class JobGone(Exception):
    """The job ended before it could be queued (the reaper told it as interrupted)."""


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
    cancel_requested: bool = False
    cancel_by: str | None = None

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
            bool(m["cancel_requested"]),
            m["cancel_by"],
        )


@dataclass(frozen=True, slots=True)
class Lease:
    """What a heartbeat learns of one held job: still ours or not, and any Cancel."""

    job_id: int
    held: bool
    cancel_requested: bool = False
    cancel_by: str | None = None


def clock(store: Store) -> Any:
    """The database's own clock, in epoch seconds: every process compares leases on it."""
    if store.is_sqlite:
        return sa.literal_column("((julianday('now') - 2440587.5) * 86400.0)", sa.Float)
    return sa.func.extract("epoch", sa.func.clock_timestamp())


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
        self.now = clock(store)

    @classmethod
    def from_settings(cls, store: Store, settings: Settings) -> SharedScheduler:
        """The queue with the limits the settings give (every process of one bot alike)."""
        return cls(
            store,
            settings.max_concurrent_jobs,
            max_queued_per_user=settings.max_jobs_per_user,
            max_total=settings.max_queued_jobs,
            lease_seconds=settings.job_lease_seconds,
        )

    # -- the one way in: a locked transaction ---------------------------------------------

    async def _lock(self, conn: AsyncConnection) -> None:
        if not self.store.is_sqlite:
            await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(QUEUE_LOCK)))

    async def _changed(self, conn: AsyncConnection) -> None:
        if not self.store.is_sqlite:
            await notify(conn, POSITIONS_CHANNEL)

    async def _read_clock(self, conn: AsyncConnection) -> float:
        return float(await conn.scalar(sa.select(self.now)) or 0.0)

    @staticmethod
    async def _again(operation: Callable[[], Awaitable[T]], what: str) -> T:
        return await retrying(operation, what=what)

    # -- counts ---------------------------------------------------------------------------

    async def active_jobs(self, user_id: int) -> int:
        async def count() -> int:
            async with self.store.engine.connect() as conn:
                return await _count(conn, job_queue.c.user_id == user_id)

        return await self._again(count, "counting a user's jobs")

    async def counts(self) -> tuple[int, int]:
        """``(waiting, running)`` across every process."""

        async def count() -> tuple[int, int]:
            async with self.store.engine.connect() as conn:
                rows = await conn.execute(
                    sa.select(job_queue.c.state, sa.func.count()).group_by(job_queue.c.state)
                )
                found: dict[str, int] = {state: count for state, count in rows.all()}
            return int(found.get(WAITING, 0)), int(found.get(RUNNING, 0))

        return await self._again(count, "counting the queue")

    async def owners(self) -> dict[str, int]:
        """How many jobs each worker runs now."""

        async def count() -> dict[str, int]:
            async with self.store.engine.connect() as conn:
                rows = await conn.execute(
                    sa.select(job_queue.c.owner, sa.func.count())
                    .where(job_queue.c.state == RUNNING)
                    .group_by(job_queue.c.owner)
                )
                return {owner: int(n) for owner, n in rows.all() if owner}

        return await self._again(count, "counting the workers' jobs")

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
        """Queue a job; ``QueueFull`` / ``SchedulerBusy`` when a limit is reached, ``JobGone``
        when the job already ended (reaped while this process was held up)."""

        async def submit() -> None:
            async with self.store._transaction() as conn:
                await self._lock(conn)
                ended = await conn.scalar(
                    sa.select(sa.func.count())
                    .select_from(jobs)
                    .where(jobs.c.id == job_id, jobs.c.state.in_(FINAL_STATES))
                )
                if ended:
                    raise JobGone(job_id)
                if await _count(conn, job_queue.c.user_id == user_id) >= self.max_queued_per_user:
                    raise QueueFull(self.max_queued_per_user)
                if self.max_total is not None and await _count(conn) >= self.max_total:
                    raise SchedulerBusy(self.max_total)
                await conn.execute(
                    job_queue.insert().values(
                        job_id=job_id,
                        user_id=user_id,
                        state=WAITING,
                        submitted_at=self.now,
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

        await self._again(submit, "queueing a job")

    async def claim(self, owner: str) -> Claim | None:
        """The next job to run, now ``owner``'s with a lease; None when none may start (none
        waiting, the global limit reached, or every waiting user has a job running)."""
        return await self._again(lambda: self._claim(owner), "claiming a job")

    async def _claim(self, owner: str) -> Claim | None:
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
            now = await self._read_clock(conn)
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
                jobs.update()
                .where(jobs.c.id == row[0])
                .values(state=JobState.RUNNING, started_at=now)
            )
            claimed = await _row(conn, row[0])
            await self._changed(conn)
            await conn.commit()
        return claimed

    async def release(self, job_id: int, owner: str | None = None) -> str | None:
        """The job is over: out of the queue; a user whose running job ended goes to the back
        of the line. With ``owner``, only while it is still that owner's (a worker that lost
        its lease must not take the new owner's job out). Returns the state it had (None: not
        queued, or not ``owner``'s)."""
        return await self._release(job_id, (WAITING, RUNNING), owner)

    async def cancel_waiting(self, job_id: int) -> bool:
        """Take a job out of the queue if it is still waiting; False if it runs (or is gone)."""
        return await self._release(job_id, (WAITING,)) == WAITING

    async def _release(
        self, job_id: int, states: tuple[str, ...], owner: str | None = None
    ) -> str | None:
        async def release() -> str | None:
            async with self.store._transaction() as conn:
                await self._lock(conn)
                gone = await _row(conn, job_id)
                if gone is None or gone.state not in states:
                    return None
                if owner is not None and gone.owner != owner:
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

        return await self._again(release, "taking a job out of the queue")

    async def hand_back(self, job_id: int, owner: str) -> bool:
        """``owner`` stops (a deploy) before the job ended: it waits again, in its user's
        place, for the next worker, as if never claimed (its attempts are not counted up).
        False when it was no longer ``owner``'s."""

        async def hand_back() -> bool:
            async with self.store._transaction() as conn:
                await self._lock(conn)
                result = await conn.execute(
                    job_queue.update()
                    .where(
                        job_queue.c.job_id == job_id,
                        job_queue.c.owner == owner,
                        job_queue.c.state == RUNNING,
                    )
                    .values(
                        state=WAITING,
                        owner=None,
                        lease_until=None,
                        started_at=None,
                        attempts=sa.func.max(job_queue.c.attempts - 1, 0)
                        if self.store.is_sqlite
                        else sa.func.greatest(job_queue.c.attempts - 1, 0),
                    )
                )
                if not result.rowcount:
                    return False
                await conn.execute(
                    jobs.update()
                    .where(jobs.c.id == job_id, jobs.c.state.in_(ACTIVE_STATES))
                    .values(state=JobState.QUEUED, started_at=None)
                )
                await self._changed(conn)
                await conn.commit()
            return True

        return await self._again(hand_back, "handing a job back")

    async def heartbeat(self, owner: str, job_ids: Iterable[int]) -> dict[int, Lease]:
        """Renew ``owner``'s leases on ``job_ids``: for each, whether it is still held, and
        whether a Cancel waits for it."""
        ids = list(job_ids)
        if not ids:
            return {}

        async def renew() -> dict[int, Lease]:
            async with self.store.engine.begin() as conn:
                rows = await conn.execute(
                    job_queue.update()
                    .where(
                        job_queue.c.job_id.in_(ids),
                        job_queue.c.owner == owner,
                        job_queue.c.state == RUNNING,
                    )
                    .values(lease_until=self.now + self.lease_seconds)
                    .returning(
                        job_queue.c.job_id, job_queue.c.cancel_requested, job_queue.c.cancel_by
                    )
                )
                held = {
                    r.job_id: Lease(r.job_id, True, bool(r.cancel_requested), r.cancel_by)
                    for r in rows
                }
            return {job_id: held.get(job_id, Lease(job_id, False)) for job_id in ids}

        return await self._again(renew, "renewing leases")

    async def owns(self, job_id: int, owner: str) -> bool:
        """Whether ``owner`` still holds the job (checked just before its ending is shown)."""

        async def check() -> bool:
            async with self.store.engine.connect() as conn:
                claim = await _row(conn, job_id)
            return claim is not None and claim.owner == owner and claim.state == RUNNING

        return await self._again(check, "checking a lease")

    async def take_over(self, owner: str, now: float | None = None) -> list[Claim]:
        """Every running job whose lease ran out (its worker died), all at once, now
        ``owner``'s with its attempts counted up. Never ``owner``'s own jobs: a worker cut off
        from the database for longer than a lease still runs them, and renews them when it
        is back."""

        async def take() -> list[Claim]:
            async with self.store._transaction() as conn:
                await self._lock(conn)
                current = await self._read_clock(conn) if now is None else now
                expired = sa.and_(
                    job_queue.c.state == RUNNING,
                    job_queue.c.lease_until < current,
                    sa.or_(job_queue.c.owner.is_(None), job_queue.c.owner != owner),
                )
                ids = list(await conn.scalars(sa.select(job_queue.c.job_id).where(expired)))
                if not ids:
                    return []
                await conn.execute(
                    job_queue.update()
                    .where(job_queue.c.job_id.in_(ids))
                    .values(
                        owner=owner,
                        lease_until=current + self.lease_seconds,
                        attempts=job_queue.c.attempts + 1,
                    )
                )
                rows = await conn.execute(
                    sa.select(job_queue)
                    .where(job_queue.c.job_id.in_(ids))
                    .order_by(job_queue.c.job_id)
                )
                claims = [Claim.from_row(row) for row in rows]
                await conn.commit()
            return claims

        return await self._again(take, "taking over jobs")

    async def request_cancel(self, job_id: int, by: str | None = None) -> bool:
        """Ask whichever process runs ``job_id`` to stop it: kept on the job's row (its worker
        looks at start and at every heartbeat) and signalled at once (PostgreSQL NOTIFY).
        False when the job is not queued."""

        async def request() -> bool:
            async with self.store.engine.begin() as conn:
                result = await conn.execute(
                    job_queue.update()
                    .where(job_queue.c.job_id == job_id)
                    .values(cancel_requested=True, cancel_by=by)
                )
                if result.rowcount and not self.store.is_sqlite:
                    await notify(conn, CANCEL_CHANNEL, f"{job_id}:{by or ''}")
            return bool(result.rowcount)

        return await self._again(request, "asking for a Cancel")

    async def reap(self, older_than: float, state: JobState) -> list[int]:
        """Jobs the log shows in progress that have had no place in the queue for
        ``older_than`` seconds (their gateway failed between the acknowledgement and the
        queue, or their worker failed before its runner started): each now ``state``, under
        the queue's lock so that a late ``submit`` of one is refused (``JobGone``). Returns
        their ids, for their replies to be told."""

        async def reap() -> list[int]:
            async with self.store._transaction() as conn:
                await self._lock(conn)
                now = await self._read_clock(conn)
                queued = sa.select(job_queue.c.job_id).where(job_queue.c.job_id == jobs.c.id)
                orphans = list(
                    await conn.scalars(
                        sa.select(jobs.c.id).where(
                            jobs.c.state.in_(ACTIVE_STATES),
                            jobs.c.created_at < now - older_than,
                            ~queued.exists(),
                        )
                    )
                )
                if orphans:
                    await conn.execute(
                        jobs.update()
                        .where(jobs.c.id.in_(orphans))
                        .values(state=state, finished_at=now)
                    )
                    await conn.commit()
            return orphans

        return await self._again(reap, "looking for jobs left without a queue")

    # -- a waiting job's reply, edited by its gateway ---------------------------------------

    @asynccontextmanager
    async def while_waiting(self, job_id: int) -> AsyncIterator[bool]:
        """Yields whether the job still waits; while True, the worker that claims it waits
        (``wait_place_shown``) before showing anything. For the gateway's edits of a waiting
        job's reply, which must not land after the worker's first status. Only this job's
        lock is held: every other claim goes on meanwhile."""
        if self.store.is_sqlite:
            claim = await self.get(job_id)
            yield claim is not None and claim.state == WAITING
            return
        async with self.store.engine.connect() as conn, conn.begin():
            mine = await conn.scalar(
                sa.select(sa.func.pg_try_advisory_xact_lock(PLACE_LOCK, job_id))
            )
            state = None
            if mine:
                state = await conn.scalar(
                    sa.select(job_queue.c.state).where(job_queue.c.job_id == job_id)
                )
            yield state == WAITING

    async def wait_place_shown(self, job_id: int) -> None:
        """A worker that has just claimed ``job_id``: wait until an edit of its place in line
        in flight (``while_waiting``) is over, so that its first status comes after."""
        if self.store.is_sqlite:
            return

        async def wait() -> None:
            async with self.store.engine.begin() as conn:
                await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(PLACE_LOCK, job_id)))

        await self._again(wait, "waiting for a place edit")

    # -- reading --------------------------------------------------------------------------

    async def get(self, job_id: int) -> Claim | None:
        async def get() -> Claim | None:
            async with self.store.engine.connect() as conn:
                return await _row(conn, job_id)

        return await self._again(get, "reading the queue")

    async def order(self) -> list[int]:
        """Waiting job ids in the order they are expected to start: the users in line by
        turn (those with a job running after them, by when it started), one job each per
        round."""
        rows = await self._again(self._rows, "reading the queue")
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

    async def _rows(self) -> list[Any]:
        async with self.store.engine.connect() as conn:
            return list(
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
            )

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
