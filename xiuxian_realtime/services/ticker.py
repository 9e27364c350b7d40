"""One periodic timer for all per-player periodic work, and slot rings to spread it.

At 19,000 online players a timer or task per player would cost more than the work
itself. Instead one `Ticker` fires every `period` seconds (50 ms) and each service keeps
its players in a `SlotRing`: players are spread over N slots and each tick handles the
next slot, so every player is visited once per N ticks and the work (and the pushes it
makes) is spread evenly over the cycle instead of bursting once a second.

Why 50 ms: a tick runs to completion and whatever else is ready (a publish, a ping)
waits behind it, so shorter ticks mean shorter waits; but shorter ticks cost more CPU.
Measured twice: at 10,000 legacy players on a slow machine, 10 ms ticks took 0.67 core
with probe p99 39-45 ms, 50 ms ticks 0.59-0.64 core with p99 53 ms; at 10,000 v2 players
on a faster one, 10 ms ticks took 0.49 core with p99 11 ms, 50 ms ticks 0.43 core with
p99 13 ms (a 50 ms tick there is a ~12 ms stall, once the sweep, settles and broadcasts
stopped adding stalls of their own).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Callable, Generic, Iterator, TypeVar

from ..tasks import cancel_and_wait

log = logging.getLogger("xiuxian.ticker")

T = TypeVar("T")

TICK_S = 0.05


class SlotRing(Generic[T]):
    """Members spread over `n` slots; `advance()` returns the next slot's members."""

    __slots__ = ("_slots", "_where", "_cursor", "_start", "_stride")

    def __init__(self, n: int) -> None:
        n = max(1, n)
        self._slots: list[dict[int, T]] = [{} for _ in range(n)]
        self._where: dict[int, int] = {}
        self._cursor = -1
        # Where the search for the least loaded slot starts moves by a golden-ratio stride,
        # so players arriving together land spread over the cycle, not in adjacent slots.
        self._start = 0
        self._stride = next(s for s in range(round(n * 0.618), 2 * n + 1) if math.gcd(s, n) == 1)

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, key: int) -> bool:
        return key in self._where

    @property
    def slot_count(self) -> int:
        return len(self._slots)

    def add(self, key: int, value: T) -> None:
        """Put a member in the least loaded slot (or replace its value where it is)."""
        index = self._where.get(key)
        if index is None:
            sizes = list(map(len, self._slots))  # C-level: a connect storm adds thousands a second
            start = self._start = (self._start + self._stride) % len(sizes)
            rotated = sizes[start:] + sizes[:start]
            index = (rotated.index(min(rotated)) + start) % len(sizes)
            self._where[key] = index
        self._slots[index][key] = value

    def remove(self, key: int) -> T | None:
        index = self._where.pop(key, None)
        if index is None:
            return None
        return self._slots[index].pop(key, None)

    def get(self, key: int) -> T | None:
        index = self._where.get(key)
        return None if index is None else self._slots[index].get(key)

    def advance(self) -> dict[int, T]:
        self._cursor = (self._cursor + 1) % len(self._slots)
        return self._slots[self._cursor]

    def values(self) -> Iterator[T]:
        for slot in self._slots:
            yield from slot.values()


class Ticker:
    """Calls every registered callback with the wall-clock time, every `period` seconds.

    The schedule does not drift: ticks are due at start + k * period. A loop that fell
    behind runs the missed ticks back to back (each handles its own slot, so nobody is
    skipped); one that fell more than a second behind starts afresh instead of bursting.
    """

    def __init__(self, period: float = TICK_S) -> None:
        self.period = period
        self._callbacks: list[Callable[[float], None]] = []
        self._task: asyncio.Task[None] | None = None
        self.ticks = 0
        self.busy_s = 0.0  # time spent in callbacks, for metrics and benchmarks

    def register(self, callback: Callable[[float], None]) -> None:
        self._callbacks.append(callback)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    def tick(self, now: float | None = None) -> None:
        if now is None:
            now = time.time()
        started = time.perf_counter()
        for callback in self._callbacks:
            try:
                callback(now)
            except Exception:  # pragma: no cover - a bug in one service must not stop the others
                log.exception("tick callback failed")
        self.ticks += 1
        self.busy_s += time.perf_counter() - started

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            due += self.period
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -1.0:
                due = loop.time()
            self.tick()
