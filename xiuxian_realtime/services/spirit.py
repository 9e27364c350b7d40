"""Spirit growth: an online player's spirit grows at `spirit_rate` per second.

Settling is done in SQL from `last_spirit_gain_time`, so offline time never counts
(login moves the clock to now) and a logout credits exactly the time online.
"""

from __future__ import annotations

from ..storage.db import Database


class SpiritService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def on_login(self, user_id: int, now: float) -> None:
        # Only called for a new session: whatever time passed since the last settle
        # was spent offline and does not count.
        await self.db.reset_spirit_clock(user_id, now)

    async def on_logout(self, user_id: int, now: float) -> None:
        await self.db.settle_spirit(user_id, now)
