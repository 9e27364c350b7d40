"""What the three peer servers share: arguments, players, the spirit event, the tick.

Kept in one place so that the peers differ only in their WebSocket stack, which
is the thing the comparison is about.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import resource
import time
import urllib.parse
from typing import Awaitable, Callable, Optional

TICK = 0.010  # 100 slots: each connection is served once a second, spread over it
SLOTS = 100


def parse_args(description: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--players", help="userId<TAB>token file; without it any non-empty token is accepted")
    p.add_argument("--gc-freeze", action="store_true", help="gc.freeze() once a second after the first connections")
    return p.parse_args()


def raise_nofile() -> None:
    """One fd per connection: lift the soft limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def load_players(path: Optional[str]) -> Optional[dict[int, str]]:
    if not path:
        return None
    out: dict[int, str] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            uid, _, tok = line.strip().partition("\t")
            if uid:
                out[int(uid)] = tok
    return out


def check_query(query: str, players: Optional[dict[int, str]]) -> tuple[Optional[int], bool, str]:
    """(userId, v2, error) from a query string; error is '' when acceptable."""
    q = urllib.parse.parse_qs(query)
    uid_s = q.get("userId", [""])[0]
    token = q.get("token", [""])[0]
    if not uid_s.isdigit() or not token:
        return None, False, "userId and token required"
    uid = int(uid_s)
    if players is not None and players.get(uid) != token:
        return None, False, "bad token"
    return uid, q.get("v", [""])[0] == "2", ""


class Spirit:
    """Per-user spirit that grows by 1.0 per second, as the game's idle loop."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def grow(self, user_id: int) -> dict:
        old = self.value
        self.value = old + 1.0
        ts = int(time.time())
        return {
            "type": "spirit:grow", "userId": user_id, "timestamp": ts,
            "data": {"userId": user_id, "oldSpirit": old, "newSpirit": self.value, "gainAmount": 1.0,
                     "spiritRate": 1.0, "elapsedSeconds": 1.0, "timestamp": ts},
        }


class GcWatch:
    """Counts and times the collector's pauses, served at ``GET /stats``.

    Why: with 20,000 long-lived connection objects a full (gen 2) collection
    walks all of them; those pauses show up as probe latency spikes and are
    what ``--gc-freeze`` is meant to remove.
    """

    def __init__(self) -> None:
        self.t0 = 0.0
        self.pauses = [0, 0, 0]
        self.total_ms = [0.0, 0.0, 0.0]
        self.max_ms = [0.0, 0.0, 0.0]
        gc.callbacks.append(self._cb)

    def _cb(self, phase: str, info: dict) -> None:
        if phase == "start":
            self.t0 = time.perf_counter()
            return
        g = info.get("generation", 0)
        ms = (time.perf_counter() - self.t0) * 1000.0
        self.pauses[g] += 1
        self.total_ms[g] += ms
        self.max_ms[g] = max(self.max_ms[g], ms)

    def snapshot(self) -> dict:
        return {"pauses": list(self.pauses), "total_ms": [round(x, 3) for x in self.total_ms],
                "max_ms": [round(x, 3) for x in self.max_ms], "frozen": gc.get_freeze_count()}


GC_WATCH = GcWatch()


def probe_event(user_id: int, sent_at: int, probe_id: int) -> dict:
    return {"type": "bench:probe", "userId": user_id, "timestamp": int(time.time()),
            "data": {"sentAt": sent_at, "probeId": probe_id}}


async def spread_ticker(on_slot: Callable[[int], Optional[Awaitable[None]]], gc_freeze: bool = False) -> None:
    """Call ``on_slot(k % 100)`` every 10 ms, catching up (bounded) when late.

    Catching up keeps the rate at one event per connection per second for as
    long as the server can afford it; when it cannot, the lateness shows up as
    lost spirit events in the load generator, which is the honest outcome.
    Runs until cancelled (the process is stopped by the orchestrator).
    """
    start = time.monotonic()
    k = 0
    last_freeze = start
    while True:
        now = time.monotonic()
        due = start + (k + 1) * TICK
        if due > now:
            await asyncio.sleep(due - now)
        now = time.monotonic()
        for _ in range(SLOTS):  # at most one second of catch-up per wake-up
            if start + (k + 1) * TICK > now:
                break
            k += 1
            r = on_slot(k % SLOTS)
            if r is not None:
                await r
        if gc_freeze and now - last_freeze > 1.0:
            gc.freeze()  # move connection objects out of the collector's sight
            last_freeze = now
