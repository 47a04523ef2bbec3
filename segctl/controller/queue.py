"""Who goes next: the order in which changes, dry runs and switch events get the controller.

One thing changes the controller's state at a time (the service's lock), and a change may
take seconds of proof. A plain lock serves waiters in no particular order and lets any
one of them hold everyone else for as long as its proof runs (a tenant-admin's 600-port dry
run held an admin's label change for 15 s; a link failure's reroute waited behind it too).
:class:`ChangeQueue` decides instead:

* **priority**: :attr:`Priority.URGENT` (the fabric's own events: a link went down, a switch
  connected) before :attr:`Priority.CHANGE` (intent changes, rollbacks, drift repair) before
  :attr:`Priority.TRIAL` (dry runs and on-demand live proofs, which change nothing); within
  a priority, owners (tokens) take turns: the one served longest ago goes first, then the
  oldest request, so one tenant's ten queued changes delay another's by one change each,
  not ten. A running turn is never interrupted, except:
* **preemption**: a TRIAL turn is marked :attr:`Turn.preempted` as soon as anything of a
  higher priority waits; the service's proof asks (through the verifier's ``progress``
  callback, and between steps) and gives up with :class:`Preempted`, which the API answers
  503 with ``Retry-After``. So a dry run delays a change by at most the time to the proof's
  next progress call.
* **bounded waits**: a request that has not had its turn within ``max_wait`` seconds is
  answered 503 (:class:`Busy`) instead of waiting on; one owner (a token) may have at
  most ``max_waiting`` requests waiting, more are 429 (:class:`TooManyWaiting`). The
  fabric's own events wait as long as it takes.

Re-entrant for the turn's owner (a service method that calls another takes no second turn).
Works with threads (the default primitives) and with green threads (the runner passes the
hub's ``Event`` and ``getcurrent``).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Protocol

from segctl.errors import SegctlError

__all__ = ["Busy", "ChangeQueue", "Preempted", "Priority", "TooManyWaiting", "Turn"]


class Priority(IntEnum):
    """Lower goes first."""

    URGENT = 0
    CHANGE = 1
    TRIAL = 2


class Busy(SegctlError):
    """No turn within the bounded wait (HTTP 503 with Retry-After)."""

    retry_after = 5


class TooManyWaiting(Busy):
    """This caller already has as many requests waiting as it may (HTTP 429)."""

    retry_after = 1


class Preempted(Busy):
    """A dry run or live proof gave way to a change or a switch event (HTTP 503)."""

    retry_after = 1


class _Event(Protocol):
    def set(self) -> None: ...

    def wait(self, timeout: float | None = None) -> bool: ...


@dataclass(eq=False)
class Turn:
    """One caller's place: its priority, who it is, and whether it has been asked to give way."""

    priority: Priority
    owner: str
    order: int
    event: _Event
    preempted: bool = False
    thread: object = None
    depth: int = 0
    waited: float = field(default=0.0)

    def check(self, _message: str = "") -> None:
        """Raise :class:`Preempted` when asked to give way (a verifier ``progress`` callback)."""
        if self.preempted:
            raise Preempted("a change or a switch event is waiting; this dry run or proof gave way: retry")


class ChangeQueue:
    """The turns of the controller's state changes (see the module docstring)."""

    def __init__(
        self,
        *,
        max_wait: float | None = 60.0,
        max_waiting: int = 32,
        new_event: Callable[[], _Event] = threading.Event,
        current: Callable[[], object] = threading.get_ident,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_wait = max_wait
        self.max_waiting = max_waiting
        self._new_event = new_event
        self._current = current
        self._clock = clock
        self._mutex = threading.Lock()  # never held across a wait: fine for green threads too
        self._order = itertools.count()
        self._holder: Turn | None = None
        self._waiting: list[Turn] = []
        self._served: dict[str, int] = {}  # owner -> order of its latest turn

    @property
    def holder(self) -> Turn | None:
        return self._holder

    def waiting(self) -> int:
        return len(self._waiting)

    @contextmanager
    def turn(self, priority: Priority, owner: str = "", *, bounded: bool = True) -> Iterator[Turn]:
        """Wait for a turn (``bounded``: at most ``max_wait`` seconds) and hold it."""
        me = self._current()
        with self._mutex:
            held = self._holder
            if held is not None and held.thread == me:
                held.depth += 1
                mine, wait = held, False
            else:
                mine = self._enqueue(priority, owner, me, bounded)
                wait = self._holder is not mine
        if wait:
            self._wait(mine, bounded)
        try:
            yield mine
        finally:
            self._release(mine)

    def _enqueue(self, priority: Priority, owner: str, me: object, bounded: bool) -> Turn:
        if bounded and owner and sum(t.owner == owner for t in self._waiting) >= self.max_waiting:
            raise TooManyWaiting(f"{owner} already has {self.max_waiting} requests waiting for their turn")
        turn = Turn(priority, owner, next(self._order), self._new_event(), thread=me, depth=1)
        if self._holder is None and not self._waiting:
            self._holder = turn
            self._served[owner] = turn.order
            return turn
        self._waiting.append(turn)
        if self._holder is not None and self._holder.priority == Priority.TRIAL and priority < Priority.TRIAL:
            self._holder.preempted = True
        return turn

    def _wait(self, turn: Turn, bounded: bool) -> None:
        started = self._clock()
        limit = self.max_wait if bounded else None
        turn.event.wait(limit)
        with self._mutex:
            if self._holder is turn:
                turn.waited = self._clock() - started
                return
            self._waiting.remove(turn)  # timed out before its turn came
        ahead = "a change" if self._holder is None else f"a {self._holder.priority.name.lower()} turn"
        raise Busy(f"no turn within {limit:g} s ({ahead} is running, {len(self._waiting)} waiting): retry")

    def _release(self, turn: Turn) -> None:
        with self._mutex:
            turn.depth -= 1
            if turn.depth > 0:
                return
            if self._holder is not turn:  # pragma: no cover - released twice
                return
            self._holder = None
            if not self._waiting:
                return
            following = min(self._waiting, key=lambda t: (t.priority, self._served.get(t.owner, -1), t.order))
            self._waiting.remove(following)
            self._holder = following
            self._served[following.owner] = next(self._order)
            following.event.set()

    def describe(self) -> dict[str, Any]:
        """What runs and what waits (for logs and tests)."""
        with self._mutex:
            holder = self._holder
            return {
                "running": None if holder is None else (holder.priority.name, holder.owner),
                "waiting": [(t.priority.name, t.owner) for t in sorted(self._waiting, key=lambda t: t.order)],
            }
