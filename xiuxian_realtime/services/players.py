"""The players' public profile, kept in memory for every player.

Leaderboards need every player's score and the top players' names without touching the
database; the snapshot needs the player's state without an await between reading it and
reading the stream position. One small `PlayerCard` per player (about 200 bytes: 20 MB for
100,000 players) is loaded at start-up and kept current by the services that change it.

Loads of single players (a login, a player registered on another node) are coalesced:
everything asked for within `batch_window_s` is fetched with one `SELECT ... WHERE id IN`.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Callable

from ..storage.db import Database, PlayerRow

log = logging.getLogger("xiuxian.players")


class PlayerCard:
    __slots__ = ("id", "username", "level", "realm", "power", "spirit", "spirit_rate", "avatar_url",
                 "settled_at")

    def __init__(self, row: PlayerRow) -> None:
        self.id = row.id
        self.update(row)

    def update(self, row: PlayerRow) -> None:
        self.username = row.username
        self.level = row.level
        self.realm = sys.intern(row.realm)
        self.power = row.power
        self.spirit = row.spirit
        self.spirit_rate = row.spirit_rate
        self.avatar_url = sys.intern(row.avatar_url or "")
        self.settled_at = row.settled_at


class Players:
    def __init__(self, db: Database, batch_window_s: float = 0.1) -> None:
        self.db = db
        self.batch_window_s = batch_window_s
        self.cards: dict[int, PlayerCard] = {}
        # Called with a card whenever its level, power or spirit changed.
        self.listeners: list[Callable[[PlayerCard], None]] = []
        self._pending: dict[int, asyncio.Future[PlayerCard | None]] = {}
        self._flush: asyncio.TimerHandle | None = None
        self.batches = 0

    def get(self, user_id: int) -> PlayerCard | None:
        return self.cards.get(user_id)

    def __len__(self) -> int:
        return len(self.cards)

    async def load_all(self) -> int:
        async for rows in self.db.iter_players():
            for row in rows:
                self.cards[row.id] = PlayerCard(row)
        return len(self.cards)

    def upsert(self, row: PlayerRow) -> PlayerCard:
        card = self.cards.get(row.id)
        if card is None:
            card = self.cards[row.id] = PlayerCard(row)
        else:
            card.update(row)
        self.changed(card)
        return card

    def changed(self, card: PlayerCard) -> None:
        for listener in self.listeners:
            listener(card)

    async def load(self, user_id: int) -> PlayerCard | None:
        """Fresh from the database (batched with other loads); None for an unknown id."""
        future = self._pending.get(user_id)
        if future is None:
            loop = asyncio.get_running_loop()
            future = self._pending[user_id] = loop.create_future()
            if self._flush is None:
                self._flush = loop.call_later(self.batch_window_s, self._start_flush)
        return await asyncio.shield(future)

    async def card(self, user_id: int) -> PlayerCard | None:
        """The in-memory card, loading it if this node has not seen the player yet."""
        return self.cards.get(user_id) or await self.load(user_id)

    def _start_flush(self) -> None:
        pending, self._pending = self._pending, {}
        self._flush = None
        asyncio.get_running_loop().create_task(self._run_flush(pending))

    async def _run_flush(self, pending: dict[int, asyncio.Future[PlayerCard | None]]) -> None:
        self.batches += 1
        try:
            rows = await self.db.load_players(list(pending))
        except Exception as exc:
            log.exception("loading players failed")
            for future in pending.values():
                if not future.done():
                    future.set_exception(exc)
            return
        for user_id, future in pending.items():
            row = rows.get(user_id)
            card = self.upsert(row) if row is not None else None
            if not future.done():
                future.set_result(card)
