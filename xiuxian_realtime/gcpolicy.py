"""Garbage collection that does not stall the loop with tens of thousands of sockets.

Each connection is a few hundred long-lived objects. Left to the defaults, CPython's
collector rescans all of them in every full collection: 100-350 ms pauses with 10-20k
connections, straight into the latency of every event. Two measures:

- young collections are kept small (a low gen0 threshold), so each takes well under a
  millisecond: request handling makes short-lived cycles that must still be collected;
- once the number of connections has grown, the surviving objects are moved out of the
  collector's reach with `gc.freeze()`. Frozen objects are still freed by reference
  counting when a connection closes (the connection objects form no cycles); only
  cyclic garbage among them would stay, which is why freezing follows growth instead of
  running all the time.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Callable

from .tasks import cancel_and_wait

log = logging.getLogger("xiuxian.gc")

GEN0, GEN1, GEN2 = 2_000, 20, 1_000


def configure() -> None:
    """At start-up: collect and freeze what start-up built, set the thresholds."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GEN0, GEN1, GEN2)


class FreezeOnGrowth:
    """Freeze survivors whenever the connection count grew by `step` since the last time."""

    def __init__(self, connections: Callable[[], int], step: int = 1_000, interval_s: float = 5.0) -> None:
        self.connections = connections
        self.step = step
        self.interval_s = interval_s
        self._frozen_at = 0
        self._task: asyncio.Task[None] | None = None
        self.freezes = 0

    def check(self) -> bool:
        count = self.connections()
        if count >= self._frozen_at + self.step:
            gc.freeze()
            self._frozen_at = count
            self.freezes += 1
            return True
        if count < self._frozen_at - self.step:
            self._frozen_at = count  # fewer connections now: the next growth counts from here
        return False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            if self.check():
                log.info("froze long-lived objects", extra={"connections": self._frozen_at,
                                                            "frozen": gc.get_freeze_count()})

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
