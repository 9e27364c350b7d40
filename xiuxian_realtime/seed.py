"""Bulk-create players for load tests, straight into the server's database.

Registering 20,000 players through the API would spend minutes in bcrypt; here one
hash is computed and shared (every seeded player has the password "bench-<prefix>").
"""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import insert, select

from .auth import Tokens, hash_password
from .config import Settings
from .storage.db import Database
from .storage.models import User


async def seed_players(settings: Settings, count: int, out: Path, prefix: str = "bench") -> int:
    settings.ensure_secrets()
    tokens = Tokens(settings.jwt_secret.get_secret_value(), settings.jwt_expiry_days)
    db = Database(settings.resolved_database_url())
    try:
        await db.migrate()
        hashed = hash_password(f"bench-{prefix}")
        now = time.time()
        stamp = f"{prefix}-{int(now * 1000):x}"
        rows = [dict(username=f"{stamp}-{i}", password_hash=hashed, level=1, realm="练气期一层",
                     spirit=0.0, spirit_rate=1.0, power=10, last_spirit_gain_time=now, created_at=now,
                     avatar_url="")
                for i in range(count)]
        async with db.sessions() as s:
            for start in range(0, count, 5000):
                await s.execute(insert(User), rows[start:start + 5000])
            await s.commit()
            ids = (await s.execute(
                select(User.id).where(User.username.like(f"{stamp}-%")).order_by(User.id))).scalars().all()
        with out.open("w") as f:
            for user_id in ids:
                f.write(f"{user_id}\t{tokens.issue(user_id)}\n")
        return len(ids)
    finally:
        await db.close()
