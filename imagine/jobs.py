"""Scheduling: how many generations run at once, whose turn is next, who must wait.

- A global limit of running jobs (``MAX_CONCURRENT_JOBS``).
- One running job per user; a few more may wait in the queue (``max_queued_per_user``).
- Round-robin across users: a user whose job ends goes to the back of the line with the rest
  of their jobs, so one user with many jobs cannot starve the others.
- Every waiting job learns its live position in line (``on_position``), which the bot shows
  as its status; positions are recomputed whenever the queue changes.

It knows nothing of Discord: users are opaque hashable keys.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from enum import StrEnum

from .i18n import _, n_


class QueueFull(Exception):
    """The user already has as many jobs waiting or running as allowed."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            n_(
                "You already have {n} image in progress; wait for one to finish.",
                "You already have {n} images in progress; wait for one to finish.",
                limit,
            )
        )
        self.limit = limit


class SchedulerBusy(Exception):
    """The bot already holds as many jobs as it may take (waiting and running, all users)."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            _(
                "I am very busy right now ({n} images in progress); please try again in a few "
                "minutes.",
                n=limit,
            )
        )
        self.limit = limit


class SchedulerClosed(Exception):
    """The bot is shutting down and takes no new jobs."""


PositionCallback = Callable[[int], None]


class TicketState(StrEnum):
    WAITING = "waiting"
    RUNNING = "running"
    DONE = "done"


@dataclass(eq=False)
class Ticket:
    """A job's place in the scheduler, from submission until ``release``."""

    user: Hashable
    job_id: int
    on_position: PositionCallback | None = None
    position: int = 0
    state: TicketState = field(default_factory=lambda: TicketState.WAITING)
    _turn: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class Scheduler:
    def __init__(
        self, max_concurrent: int, *, max_queued_per_user: int = 3, max_total: int | None = None
    ) -> None:
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        self.max_concurrent = max_concurrent
        self.max_queued_per_user = max_queued_per_user
        self.max_total = max_total
        """Jobs held at once (waiting and running); past it new jobs are refused."""
        # Users in line, in turn order; each with their waiting jobs, oldest first.
        self._waiting: OrderedDict[Hashable, deque[Ticket]] = OrderedDict()
        # Users with a job running: their other jobs wait here until it ends.
        self._parked: dict[Hashable, deque[Ticket]] = {}
        self._running: dict[Hashable, Ticket] = {}
        self._closed = False

    @property
    def running(self) -> int:
        return len(self._running)

    @property
    def waiting(self) -> int:
        return sum(len(q) for q in (*self._waiting.values(), *self._parked.values()))

    def active_jobs(self, user: Hashable) -> int:
        queued = self._parked.get(user) or self._waiting.get(user) or ()
        return len(queued) + (user in self._running)

    @property
    def full(self) -> bool:
        return self.max_total is not None and self.running + self.waiting >= self.max_total

    def close(self) -> None:
        """Take no new jobs; those already waiting keep their place."""
        self._closed = True

    def submit(
        self, user: Hashable, job_id: int, on_position: PositionCallback | None = None
    ) -> Ticket:
        """Queue a job; ``QueueFull`` when the user is at their limit, ``SchedulerBusy`` when
        the bot is at its own. Does not wait."""
        if self._closed:
            raise SchedulerClosed(_("The bot is shutting down and takes no new images right now."))
        if self.active_jobs(user) >= self.max_queued_per_user:
            raise QueueFull(self.max_queued_per_user)
        if self.full:
            assert self.max_total is not None
            raise SchedulerBusy(self.max_total)
        ticket = Ticket(user, job_id, on_position)
        line = self._parked if user in self._running else self._waiting
        line.setdefault(user, deque()).append(ticket)
        self._dispatch()
        return ticket

    async def wait_turn(self, ticket: Ticket) -> None:
        """Return when the job may run. Cancelling the wait takes the job out of the queue."""
        try:
            await asyncio.shield(ticket._turn)
        except asyncio.CancelledError:
            self.release(ticket)
            raise

    def release(self, ticket: Ticket) -> None:
        """The job is over (finished, failed or cancelled, waiting or running)."""
        if ticket.state is TicketState.DONE:
            return
        if ticket.state is TicketState.RUNNING:
            if self._running.get(ticket.user) is ticket:
                del self._running[ticket.user]
                parked = self._parked.pop(ticket.user, None)
                if parked:
                    self._waiting[ticket.user] = parked  # back of the line
        else:
            for line in (self._waiting, self._parked):
                queue = line.get(ticket.user)
                if queue is not None and ticket in queue:
                    queue.remove(ticket)
                    if not queue:
                        del line[ticket.user]
        ticket.state = TicketState.DONE
        if not ticket._turn.done():
            ticket._turn.cancel()
        self._dispatch()

    def _dispatch(self) -> None:
        """Start whatever may start, round-robin by user, then tell the rest their places."""
        while len(self._running) < self.max_concurrent and self._waiting:
            user, queue = self._waiting.popitem(last=False)
            ticket = queue.popleft()
            if queue:
                self._parked[user] = queue
            ticket.state = TicketState.RUNNING
            ticket.position = 0
            self._running[user] = ticket
            ticket._turn.set_result(None)
        self._announce_positions()

    def order(self) -> list[Ticket]:
        """Waiting jobs in the order they are expected to start."""
        queues = [list(q) for q in (*self._waiting.values(), *self._parked.values())]
        order: list[Ticket] = []
        depth = 0
        while True:
            row = [q[depth] for q in queues if depth < len(q)]
            if not row:
                return order
            order.extend(row)
            depth += 1

    def _announce_positions(self) -> None:
        for position, ticket in enumerate(self.order(), start=1):
            if ticket.position != position:
                ticket.position = position
                if ticket.on_position is not None:
                    ticket.on_position(position)
