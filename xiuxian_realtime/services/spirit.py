"""Spirit growth: an online player's spirit grows at `spirit_rate` per second.

Nothing here reads or writes the database per player per second (the original did both):

- **In memory.** Each online player has a `SpiritState`: the spirit settled at `since`
  (`base`) and the rate. Spirit at time t is `base + rate * (t - since)`, computed on demand.
- **Pushes.** Online players are spread over 20 slots of a `SlotRing`; the shared 50 ms
  `Ticker` handles one slot per tick, so each player gets one `spirit:grow` a second and
  the pushes are spread evenly over the second. Per player per tick: a little arithmetic,
  one dict, one `hub.send_to_user` — no await, no I/O.
- **Settling.** Every `SPIRIT_SETTLE_INTERVAL_S` (5 s) each online player's spirit is
  written: the absolute value and the time it was settled up to. The tick that visits a
  player whose last settle is that old rebases them, and the rows of a quarter second
  share one batched UPDATE (executemany), so the writes are spread over the interval like
  the pushes, not one 10,000-row burst that stalls the loop. A logout settles that player
  (logouts arriving together share one batch, and the logout completes only once it is
  written); shutdown settles everyone without logging anybody out.
- **Never double-counted.** The row holds settled spirit and the time it is settled up
  to, the update only moves that time forward (a stale or reordered write is a no-op),
  and a login restarts the clock at the login time: time while offline, or while the
  server was down, never counts.
- **Crash bound.** A crash loses at most the growth since a player's last settle: at most
  `SPIRIT_SETTLE_INTERVAL_S` plus one batch window and write.

**Which node keeps the state.** A player's `SpiritState` lives on the nodes that hold a
connection of theirs (`on_join` / `on_leave`), because that is where the pushes go. It is
loaded as "stored spirit + rate x (now - stored settle time)", so every node computes
the same value, and the absolute writes of two nodes agree. A new session (`on_login`,
once per session cluster-wide) first moves the stored clock to now; a logout settles
from the in-memory state when this node has it, otherwise from the stored row in SQL
terms, crediting the time up to the logout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from ..history import Coalesce
from ..hub import Hub
from ..storage.db import Database
from .batching import WriteBatcher
from .players import Players
from .ticker import TICK_S, SlotRing

log = logging.getLogger("xiuxian.spirit")

SLOTS = round(1.0 / TICK_S)  # each player once a second
MIN_PUSH_GAP_S = 0.5
SETTLE_BATCH_S = 0.25
PUSH_CHUNK = 250  # players per loop turn within a tick


def merge_spirit(older: dict[str, Any], newer: dict[str, Any]) -> dict[str, Any]:
    """Two consecutive `spirit:grow` events as one cumulative update (resume history)."""
    merged = dict(newer)
    merged["oldSpirit"] = older["oldSpirit"]
    merged["gainAmount"] = round(older["gainAmount"] + newer["gainAmount"], 1)
    merged["elapsedSeconds"] = round(older["elapsedSeconds"] + newer["elapsedSeconds"], 1)
    return merged


SPIRIT_COALESCE = Coalesce("spirit", merge_spirit, local=True)


class SpiritState:
    __slots__ = ("user_id", "base", "rate", "since", "shown", "shown_at", "dirty")

    def __init__(self, user_id: int, spirit: float, rate: float, now: float) -> None:
        self.user_id = user_id
        self.base = spirit  # settled spirit at `since`
        self.rate = rate
        self.since = now
        self.shown = spirit  # the newSpirit of the last push (unrounded)
        self.shown_at = now
        self.dirty = True  # the clock reset at login is not in the database yet

    def value(self, now: float) -> float:
        return self.base + self.rate * (now - self.since)

    def rebase(self, now: float) -> float:
        value = self.base + self.rate * (now - self.since)
        self.base = value
        self.since = now
        self.dirty = False
        return value


class SpiritService:
    def __init__(self, db: Database, hub: Hub, players: Players, settle_interval_s: float = 5.0,
                 batch_window_s: float = 0.1) -> None:
        self.db = db
        self.hub = hub
        self.players = players
        self.settle_interval_s = settle_interval_s
        self.batch_window_s = batch_window_s
        self.ring: SlotRing[SpiritState] = SlotRing(SLOTS)
        self.chunk = PUSH_CHUNK  # 0: a whole slot in one go (bench/game_tick.py)
        self._settles: WriteBatcher[tuple[int, float, float]] = WriteBatcher(
            self._write_settles, SETTLE_BATCH_S, "spirit settle")
        # Logouts and new sessions of the same 100 ms share one statement: in a connect
        # storm the statement's fixed cost (SQLAlchemy, a hop to the SQLite thread) dominates.
        self._logout_settles: WriteBatcher[tuple[int, float, float]] = WriteBatcher(
            self._settle_rows, batch_window_s, "spirit settle on logout")
        self._clock_resets: WriteBatcher[tuple[int, float]] = WriteBatcher(
            db.restart_spirit_clocks, batch_window_s, "spirit clock restart")
        self.pushes = 0
        self.settled_rows = 0

    # -- queries -------------------------------------------------------------------------

    def current(self, user_id: int, now: float | None = None) -> float | None:
        """Live spirit of an online player; None when not online here."""
        state = self.ring.get(user_id)
        if state is None:
            return None
        return state.value(time.time() if now is None else now)

    def rate(self, user_id: int) -> float | None:
        state = self.ring.get(user_id)
        return None if state is None else state.rate

    def online_count(self) -> int:
        return len(self.ring)

    # -- the tick (hot path) -------------------------------------------------------------

    def tick(self, now: float) -> None:
        """Push `spirit:grow` to the players of the next slot, `chunk` per loop turn.

        A slot of 950 players (19,000 online) is about 20 ms of sends; in one piece,
        every publish and ping arriving meanwhile would wait that long.
        """
        states = list(self.ring.advance().values())
        self._push(states, 0, now)

    def _push(self, states: list[SpiritState], start: int, now: float) -> None:
        end = start + self.chunk if self.chunk else len(states)
        if end < len(states):
            asyncio.get_running_loop().call_soon(self._push, states, end, now)
        ring = self.ring
        send = self.hub.send_to_user
        coalesce = SPIRIT_COALESCE
        ts = int(now)
        sent = 0
        settle_before = now - self.settle_interval_s
        due: list[tuple[int, float, float]] = []
        for state in states[start:end]:
            if start and ring.get(state.user_id) is not state:
                continue  # left between two chunks of the tick
            if state.since <= settle_before and (state.rate or state.dirty):
                due.append((state.user_id, state.rebase(now), now))
            # The original skipped players with under 1 s to credit; a slot comes round
            # every second, so only the first visit after a login can be that early.
            if now - state.shown_at < MIN_PUSH_GAP_S:
                continue
            new = state.base + state.rate * (now - state.since)
            new_r = round(new, 1)
            old_r = round(state.shown, 1)
            if new_r <= old_r:
                continue
            uid = state.user_id
            data = {"userId": uid, "oldSpirit": old_r, "newSpirit": new_r,
                    "gainAmount": round(new_r - old_r, 1), "spiritRate": state.rate,
                    "elapsedSeconds": round(now - state.shown_at, 1), "timestamp": ts}
            state.shown = new
            state.shown_at = now
            send(uid, "spirit:grow", data, coalesce)
            sent += 1
        self.pushes += sent
        if due:
            self._settles.add_many_nowait(due)

    # -- sessions ------------------------------------------------------------------------

    async def on_login(self, user_id: int, now: float) -> None:
        # A new session: whatever time passed since the last settle was spent offline
        # and does not count. The stored clock restarts at `now`.
        await self._clock_resets.add((user_id, now))

    async def on_join(self, user_id: int, now: float) -> None:
        """This node got a connection of the player: keep their spirit here and push it."""
        if user_id in self.ring:
            return
        card = await self.players.load(user_id)  # fresh from the database, batched
        if card is None or user_id in self.ring:
            return
        value = card.spirit + card.spirit_rate * max(0.0, now - card.settled_at)
        state = SpiritState(user_id, value, card.spirit_rate, now)
        state.dirty = False
        self.ring.add(user_id, state)

    async def on_leave(self, user_id: int, now: float) -> None:
        """This node's last connection of the player closed (their session may go on)."""
        await self._settle_and_forget(user_id, now)

    async def on_logout(self, user_id: int, now: float) -> None:
        if await self._settle_and_forget(user_id, now):
            return
        # No state here (the player's connections were elsewhere, or gone): settle the
        # stored row up to the logout.
        card = await self.players.load(user_id)
        if card is None or card.settled_at >= now:
            return
        value = card.spirit + card.spirit_rate * (now - card.settled_at)
        card.spirit = value
        self.players.changed(card)
        await self._write_logout((user_id, value, now))

    async def _settle_and_forget(self, user_id: int, now: float) -> bool:
        state = self.ring.remove(user_id)
        if state is None:
            return False
        # A batch settle may have moved the clock past `now` meanwhile: never go back.
        at = max(now, state.since)
        value = state.rebase(at)
        card = self.players.get(user_id)
        if card is not None:
            card.spirit = value
            self.players.changed(card)
        await self._write_logout((user_id, value, at))
        return True

    # -- settling ------------------------------------------------------------------------

    async def stop(self) -> None:
        """Settle everyone online (shutdown, after the ticker stopped; no logout)."""
        for batch in (self._settles, self._logout_settles):
            with contextlib.suppress(Exception):  # logged by the batcher; settle_all covers it
                await batch.idle()
        await self.settle_all()

    def collect(self, now: float) -> list[tuple[int, float, float]]:
        """Rebase every changed online player at `now`; the rows to write."""
        rows = []
        for state in self.ring.values():
            if state.rate == 0 and not state.dirty:
                continue
            rows.append((state.user_id, state.rebase(now), now))
        return rows

    async def settle_all(self) -> int:
        now = time.time()
        rows = self.collect(now)
        if not rows:
            return 0
        await self._write_settles(rows)
        return len(rows)

    async def _write_settles(self, rows: list[tuple[int, float, float]]) -> None:
        try:
            await self.db.settle_spirit_many(rows)
        except Exception:
            # The in-memory state is still right; a player whose spirit does not grow
            # would not be written again without this.
            for uid, _, _ in rows:
                state = self.ring.get(uid)
                if state is not None:
                    state.dirty = True
            raise
        self.settled_rows += len(rows)

    async def _write_logout(self, row: tuple[int, float, float]) -> None:
        """Settle on logout; the logout completes once the row is written."""
        await self._logout_settles.add(row)

    async def _settle_rows(self, rows: list[tuple[int, float, float]]) -> None:
        await self.db.settle_spirit_many(rows)
        self.settled_rows += len(rows)
