"""Micro-benchmark: the cost of the spirit tick and leaderboard checks at 19,000 online players.

Runs the real services against a hub with no connections (history streams for every
player, as v2 clients would have). Prints µs per player per second.

    python bench/game_tick.py [players] [total players in the leaderboard]
"""

from __future__ import annotations

import asyncio
import random
import sys
import time

from xiuxian_realtime.broker import LocalBroker
from xiuxian_realtime.history import MemoryHistory
from xiuxian_realtime.hub import Hub
from xiuxian_realtime.services.leaderboard import Leaderboard
from xiuxian_realtime.services.players import PlayerCard, Players
from xiuxian_realtime.services.spirit import SLOTS, SpiritService, SpiritState
from xiuxian_realtime.services.ticker import TICK_S
from xiuxian_realtime.storage.db import PlayerRow


class NullDb:
    """The services only take bound methods of the database at construction here."""

    async def restart_spirit_clocks(self, rows: object) -> None:
        return None

    async def settle_spirit_many(self, rows: object) -> int:
        return 0


def main() -> None:
    # The spirit tick queues its settles on the running loop (written after the run).
    asyncio.run(_main())


async def _main() -> None:
    online = int(sys.argv[1]) if len(sys.argv) > 1 else 19_000
    total = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
    history = MemoryHistory(500, 600, 64 << 20)
    hub = Hub(LocalBroker(history), heartbeat_interval_ms=1000, heartbeat_timeout_s=10, pong_hold_s=1.0, read_timeout_s=60,
              max_connections_per_user=5)
    players = Players(NullDb())  # type: ignore[arg-type]
    rng = random.Random(1)
    for uid in range(1, total + 1):
        players.cards[uid] = PlayerCard(PlayerRow(uid, f"p{uid}", rng.randint(1, 50), "练气期一层",
                                                  rng.randint(10, 500), rng.uniform(0, 100_000), 1.0, ""))
    spirit = SpiritService(NullDb(), hub, players)  # type: ignore[arg-type]
    spirit.chunk = 0  # the whole slot per call: this loop never yields to run the rest
    board = Leaderboard(players, hub, spirit, check_interval_s=5.0, update_interval_s=0,
                        notify_interval_s=30.0)
    t = time.perf_counter()
    for category, index in board.indexes.items():
        from xiuxian_realtime.services.leaderboard import score_of
        index.load({c.id: score_of(c, category) for c in players.cards.values()})
    print(f"index build for {total} players x3 categories: {(time.perf_counter() - t) * 1000:.0f} ms")
    now = time.time() - 2
    for uid in range(1, online + 1):
        history.ensure_stream(uid)
        card = players.cards[uid]
        spirit.ring.add(uid, SpiritState(uid, card.spirit, 1.0, now))
        board.ring.add(uid, __import__("xiuxian_realtime.services.leaderboard", fromlist=["x"]).OnlineRanks(
            uid, [board.indexes[c].rank(uid) for c in ("spirit", "power", "level")], now))

    seconds = 60  # players came online at `now`: no rank notification is due in the first 30 s
    ticks = seconds * SLOTS
    start = now + 2
    spirit_s = board_s = 0.0
    quiet_board_s = 0.0
    for i in range(ticks):
        if i == ticks // 2:
            quiet_board_s = board_s
        tick_now = start + i * TICK_S
        t0 = time.perf_counter()
        spirit.tick(tick_now)
        t1 = time.perf_counter()
        board.tick(tick_now)
        board_s += time.perf_counter() - t1
        spirit_s += t1 - t0
    print(f"{online} online, {seconds} simulated seconds: {spirit.pushes} spirit:grow pushes, "
          f"{board.notifications} rank notifications")
    print(f"spirit tick:       {spirit_s / seconds * 1000:.1f} ms per second "
          f"= {spirit_s / seconds / online * 1e6:.2f} µs per player per second "
          f"({spirit_s / ticks * 1000:.2f} ms per {TICK_S * 1000:.0f} ms tick)")
    print(f"leaderboard tick:  {board_s / seconds * 1000:.1f} ms per second "
          f"= {board_s / seconds / online * 1e6:.2f} µs per player per second; "
          f"re-ranking alone (first {seconds // 2} s, no notification due): "
          f"{quiet_board_s / (seconds / 2) * 1000:.1f} ms per second")
    t = time.perf_counter()
    for _ in range(10):
        spirit.collect(time.time())
    print(f"settle collect:    {(time.perf_counter() - t) / 10 * 1000:.1f} ms per batch of {online} (shutdown)")


if __name__ == "__main__":
    main()
