"""Leaderboards: `spirit`, `power` and `level`, ranked incrementally in memory.

**Index.** `RankIndex` is the small interface a ranking needs (set a score, a player's
rank, the top n). `MemoryRankIndex` keeps one `SortedList` of int keys per category: the
score (to 0.1) and the user id packed into one integer, `(-round(score*10) << 40) + id`,
so higher scores sort first, ties go to the lower id, and comparisons are plain int
comparisons. Setting a score or reading a rank is O(log n) (a few µs at 100,000 players);
nothing ever sorts the whole table after start-up. A Redis implementation (a sorted set per
category, `ZADD`/`ZREVRANK`) can slot in behind the same methods.

**Online players.** The spirit of online players changes every second, but re-ranking
everyone every second is wasted work. Online players sit in a `SlotRing` with
`LEADERBOARD_CHECK_INTERVAL_S / 50 ms` slots; the shared ticker visits one slot per tick,
so each online player is re-ranked once per check interval (5 s): their live spirit goes
into the index and their rank in each category is compared with the one they were last
told. Only a change is sent (`rank_up` / `rank_down`), and at most one per category per
`LEADERBOARD_NOTIFY_INTERVAL_S` (30 s) per player, however fast their spirit grows: an
online player overtakes offline ones all the time, and without this every one of 19,000
players would get a ~1 KB message every few seconds. Power and level
changes (dungeon victories) update the index at once.

**Messages.** A player coming online gets a `full_refresh` per category. When the order
of a category's top 10 changes, a `update` is broadcast, at most once per
`LEADERBOARD_UPDATE_INTERVAL_S` per category (0 disables it).
"""

from __future__ import annotations

import logging
import time
from itertools import islice
from typing import Any, Protocol

from sortedcontainers import SortedList

from ..history import Coalesce
from ..hub import Hub
from .players import PlayerCard, Players
from .ticker import TICK_S, SlotRing

log = logging.getLogger("xiuxian.leaderboard")

CATEGORIES = ("spirit", "power", "level")
SCALE = 10  # scores are ranked to 0.1
ID_BITS = 40
ID_MASK = (1 << ID_BITS) - 1


class RankIndex(Protocol):
    """A ranking of players by score, highest first; ties go to the lower user id."""

    version: int  # changes whenever any score in the index changes

    def load(self, scores: dict[int, float]) -> None:
        """Replace everything with these scores (start-up)."""

    def set(self, user_id: int, score: float) -> bool:
        """Set a player's score; True when their position key changed."""

    def remove(self, user_id: int) -> None: ...

    def rank(self, user_id: int) -> int | None:
        """1-based rank, or None for a player not in the index."""

    def top(self, n: int) -> list[int]:
        """The user ids of the first n."""

    def __len__(self) -> int: ...


class MemoryRankIndex:
    def __init__(self) -> None:
        self._keys: dict[int, int] = {}
        self._sorted: SortedList = SortedList()
        # Bumped on every change: a rank in this index cannot have moved while it stands.
        self.version = 0

    @staticmethod
    def key(user_id: int, score: float) -> int:
        return (-int(round(score * SCALE)) << ID_BITS) + user_id

    def load(self, scores: dict[int, float]) -> None:
        key = self.key
        self._keys = {uid: key(uid, score) for uid, score in scores.items()}
        self._sorted = SortedList(self._keys.values())
        self.version += 1

    def set(self, user_id: int, score: float) -> bool:
        new = (-int(round(score * SCALE)) << ID_BITS) + user_id
        old = self._keys.get(user_id)
        if old == new:
            return False
        if old is not None:
            self._sorted.remove(old)
        self._sorted.add(new)
        self._keys[user_id] = new
        self.version += 1
        return True

    def remove(self, user_id: int) -> None:
        old = self._keys.pop(user_id, None)
        if old is not None:
            self._sorted.remove(old)
            self.version += 1

    def rank(self, user_id: int) -> int | None:
        key = self._keys.get(user_id)
        return None if key is None else self._sorted.bisect_left(key) + 1

    def top(self, n: int) -> list[int]:
        return [key & ID_MASK for key in islice(self._sorted, n)]

    def __len__(self) -> int:
        return len(self._keys)


def score_of(card: PlayerCard, category: str) -> float:
    if category == "spirit":
        return card.spirit
    if category == "power":
        return card.power
    return card.level


class OnlineRanks:
    """The ranks an online player was last told, and when, per category."""

    __slots__ = ("user_id", "ranks", "told_at", "seen")

    def __init__(self, user_id: int, ranks: list[int | None], now: float = 0.0) -> None:
        self.user_id = user_id
        self.ranks = ranks
        self.told_at = [now, now, now]
        self.seen = [-1, -1, -1]  # index versions at which `ranks` were last confirmed


def _newest(_older: dict[str, Any], newer: dict[str, Any]) -> dict[str, Any]:
    return newer


# Every leaderboard message addressed to a player (full_refresh, rank_up, rank_down) carries
# the whole state of its category for them, so the newest supersedes the one before it in
# resume history. They come from the node holding the player's connection: local.
RANK_COALESCE = {c: Coalesce(f"rank:{c}", _newest, local=True) for c in CATEGORIES}


class Leaderboard:
    def __init__(self, players: Players, hub: Hub, spirit: Any, *, check_interval_s: float = 5.0,
                 update_interval_s: float = 30.0, notify_interval_s: float = 30.0,
                 tick_s: float = TICK_S,
                 indexes: dict[str, RankIndex] | None = None) -> None:
        self.players = players
        self.hub = hub
        self.spirit = spirit  # anything with current(user_id, now) -> float | None
        self.indexes: dict[str, RankIndex] = indexes or {c: MemoryRankIndex() for c in CATEGORIES}
        self.update_interval_s = update_interval_s
        self.notify_interval_s = notify_interval_s
        self.ring: SlotRing[OnlineRanks] = SlotRing(max(1, round(check_interval_s / tick_s)))
        self._top_cache: dict[str, tuple[float, list[dict[str, Any]]]] = {}
        self._broadcast_top: dict[str, list[int]] = {}
        self._broadcast_at: dict[str, float] = {}
        self.notifications = 0
        players.listeners.append(self._card_changed)

    async def load(self) -> int:
        """Build the indexes from the database (start-up)."""
        count = await self.players.load_all()
        cards = self.players.cards.values()
        for category, index in self.indexes.items():
            index.load({card.id: score_of(card, category) for card in cards})
        for category in CATEGORIES:
            self._broadcast_top[category] = self.indexes[category].top(10)
        return count

    def _card_changed(self, card: PlayerCard) -> None:
        moved = False
        for category, index in self.indexes.items():
            moved |= index.set(card.id, score_of(card, category))
        if moved:
            # Power and level change rarely (a victory): show it at once, not a second later.
            self._top_cache.clear()

    # -- queries -------------------------------------------------------------------------

    def top10(self, category: str, max_age_s: float = 0.0) -> list[dict[str, Any]]:
        now = time.monotonic()
        cached = self._top_cache.get(category)
        if cached is not None and now - cached[0] <= max_age_s:
            return cached[1]
        cards = self.players.cards
        out = []
        for rank, uid in enumerate(self.indexes[category].top(10), 1):
            card = cards.get(uid)
            if card is None:
                continue
            out.append({"rank": rank, "userId": uid, "username": card.username,
                        "spirit": round(card.spirit, 1), "power": card.power, "level": card.level,
                        "avatarUrl": card.avatar_url})
        self._top_cache[category] = (now, out)
        return out

    def user_rank(self, user_id: int, category: str) -> dict[str, Any] | None:
        """`{rank, value, percent}`; percent is the rank as a share of all players (top x %)."""
        index = self.indexes[category]
        rank = index.rank(user_id)
        card = self.players.get(user_id)
        if rank is None or card is None:
            return None
        value = score_of(card, category)
        return {"rank": rank, "value": round(value, 1) if category == "spirit" else value,
                "percent": round(rank * 100.0 / max(len(index), 1), 2)}

    def message(self, kind: str, category: str, user_id: int | None,
                max_age_s: float = 0.0) -> dict[str, Any]:
        now = int(time.time())
        return {"type": kind, "category": category, "updateTime": now,
                "top10": self.top10(category, max_age_s),
                "userRank": None if user_id is None else self.user_rank(user_id, category),
                "timestamp": now}

    # -- sessions ------------------------------------------------------------------------

    async def on_login(self, user_id: int, now: float) -> None:
        return None

    async def on_logout(self, user_id: int, now: float) -> None:
        return None

    async def on_join(self, user_id: int, now: float) -> None:
        """Track the ranks of players connected here; greet them with full refreshes."""
        if self.players.get(user_id) is None:
            return
        self._refresh_spirit(user_id, now)
        ranks = [self.indexes[c].rank(user_id) for c in CATEGORIES]
        self.ring.add(user_id, OnlineRanks(user_id, ranks, now))
        for category in CATEGORIES:
            self.hub.send_to_user(user_id, "leaderboard:update",
                                  self.message("full_refresh", category, user_id, max_age_s=1.0),
                                  RANK_COALESCE[category])

    async def on_leave(self, user_id: int, now: float) -> None:
        self.ring.remove(user_id)

    # -- the tick ------------------------------------------------------------------------

    def _refresh_spirit(self, user_id: int, now: float) -> None:
        value = self.spirit.current(user_id, now)
        card = self.players.get(user_id)
        if value is not None and card is not None:
            card.spirit = value
            self.indexes["spirit"].set(user_id, value)

    def tick(self, now: float) -> None:
        """Re-rank the online players of the next slot; notify those whose rank moved."""
        indexes = [self.indexes[c] for c in CATEGORIES]
        spirit_index = indexes[0]
        cards = self.players.cards
        current = self.spirit.current
        send = self.hub.send_to_user
        quiet_until = now - self.notify_interval_s
        for entry in self.ring.advance().values():
            uid = entry.user_id
            value = current(uid, now)
            if value is not None:
                card = cards.get(uid)
                if card is not None:
                    card.spirit = value
                    spirit_index.set(uid, value)
            ranks = entry.ranks
            told_at = entry.told_at
            seen = entry.seen
            for i, index in enumerate(indexes):
                version = index.version
                if seen[i] == version:
                    continue  # nothing in this category moved since we last looked
                rank = index.rank(uid)
                old = ranks[i]
                if rank == old or rank is None:
                    seen[i] = version
                    continue
                if old is None:
                    ranks[i] = rank
                    seen[i] = version
                    continue
                if told_at[i] > quiet_until:
                    continue  # told recently: the change waits (compared with what they were told)
                ranks[i] = rank
                told_at[i] = now
                seen[i] = version
                category = CATEGORIES[i]
                kind = "rank_up" if rank < old else "rank_down"
                send(uid, "leaderboard:update", self.message(kind, category, uid, max_age_s=1.0),
                     RANK_COALESCE[category])
                self.notifications += 1
        if self.update_interval_s > 0:
            self._maybe_broadcast(now)

    def _maybe_broadcast(self, now: float) -> None:
        for category in CATEGORIES:
            if now - self._broadcast_at.get(category, 0.0) < self.update_interval_s:
                continue
            top = self.indexes[category].top(10)
            if top == self._broadcast_top.get(category):
                continue
            self._broadcast_top[category] = top
            self._broadcast_at[category] = now
            self.hub.broadcast("leaderboard:update", self.message("update", category, None))
