"""Writes that arrive together are written together.

A reconnect storm logs thousands of players in within seconds; one database statement per
player would queue behind each other on SQLite's single writer. A `WriteBatcher` collects
the rows added within a short window and writes them with one call; every caller awaits
that one write and sees its error, if any.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable, Generic, TypeVar

log = logging.getLogger("xiuxian.batching")

T = TypeVar("T")


class WriteBatcher(Generic[T]):
    def __init__(self, write: Callable[[list[T]], Awaitable[Any]], window_s: float, what: str) -> None:
        self._write = write
        self.window_s = window_s
        self.what = what
        self._rows: list[T] = []
        self._done: asyncio.Future[None] | None = None

    async def add(self, row: T) -> None:
        """Queue a row and wait until the batch holding it is written."""
        self._rows.append(row)
        await asyncio.shield(self._schedule())

    def add_many_nowait(self, rows: list[T]) -> None:
        """Queue rows without waiting for their write (a failure is logged): for writes
        that a later one supersedes anyway."""
        self._rows.extend(rows)
        self._schedule()

    def _schedule(self) -> asyncio.Future[None]:
        if self._done is None:
            loop = asyncio.get_running_loop()
            self._done = loop.create_future()
            # Retrieved here, so a batch nobody awaits does not warn about its error.
            self._done.add_done_callback(lambda f: f.cancelled() or f.exception())
            loop.call_later(self.window_s, lambda: loop.create_task(self._flush()))
        return self._done

    async def idle(self) -> None:
        """Wait for the batch being collected, if any (shutdown)."""
        if self._done is not None:
            await asyncio.shield(self._done)

    async def _flush(self) -> None:
        rows, self._rows = self._rows, []
        done, self._done = self._done, None
        try:
            await self._write(rows)
        except Exception as exc:
            log.exception("batched write failed", extra={"what": self.what, "rows": len(rows)})
            if done is not None and not done.done():
                done.set_exception(exc)
            return
        if done is not None and not done.done():
            done.set_result(None)
