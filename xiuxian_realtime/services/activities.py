"""What dungeons and explorations share: one running activity per player, pacing, seeds.

An activity is one asyncio task (activities are rare next to connections). It belongs to
the service, not to a connection: a player who disconnects mid-run still gets the run
finished and persisted, and its events land in their history for resume.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from typing import Any, Awaitable, Callable

log = logging.getLogger("xiuxian.activities")


class Busy(Exception):
    """The player already has an activity of this kind running."""


class Pacer:
    """Keeps successive events of one activity at least `min_gap_s` apart."""

    __slots__ = ("min_gap_s", "_last")

    def __init__(self, min_gap_s: float) -> None:
        self.min_gap_s = min_gap_s
        self._last: float | None = None

    async def wait(self, at_least_until: float | None = None) -> None:
        """Sleep until the gap has passed (and until `at_least_until`, monotonic)."""
        target = 0.0 if self._last is None else self._last + self.min_gap_s
        if at_least_until is not None:
            target = max(target, at_least_until)
        delay = target - time.monotonic()
        while delay > 0:
            await asyncio.sleep(delay)
            delay = target - time.monotonic()

    def sent(self) -> None:
        self._last = time.monotonic()


class Activities:
    """Running activities of one kind, at most one per player."""

    def __init__(self, kind: str, seed: int | None) -> None:
        self.kind = kind
        # Without GAME_SEED, a random base seed: outcomes differ between processes.
        self.seed = seed if seed is not None else int.from_bytes(os.urandom(8), "big")
        self.running: dict[int, Any] = {}
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._counts: dict[int, int] = {}
        self.started = 0
        self.finished = 0

    def rng(self, user_id: int) -> random.Random:
        """The random source of a player's next run: the same seed gives the same runs."""
        n = self._counts.get(user_id, 0) + 1
        self._counts[user_id] = n
        return random.Random(f"{self.seed}:{self.kind}:{user_id}:{n}")

    def is_running(self, user_id: int) -> bool:
        return user_id in self.running

    def get(self, user_id: int) -> Any:
        return self.running.get(user_id)

    def launch(self, user_id: int, run: Any, body: Callable[[], Awaitable[None]]) -> None:
        """Register the run and start it. Synchronous: no await between check and claim."""
        if user_id in self.running:
            raise Busy(self.kind)
        self.running[user_id] = run
        self.started += 1

        async def wrapped() -> None:
            try:
                await body()
            finally:
                # Synchronously after the last event: a start right after it succeeds.
                if self.running.get(user_id) is run:
                    del self.running[user_id]
                    self._tasks.pop(user_id, None)
                self.finished += 1

        task = asyncio.get_running_loop().create_task(wrapped())
        self._tasks[user_id] = task

        def done(t: asyncio.Task[None]) -> None:
            if not t.cancelled() and t.exception() is not None:
                log.error("%s failed", self.kind, exc_info=t.exception(), extra={"user_id": user_id})

        task.add_done_callback(done)

    async def stop(self) -> None:
        """Cancel what is running (shutdown): unfinished runs are not persisted."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
