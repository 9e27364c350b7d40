"""Who is online: the session records, in memory or in Redis.

The record is the original's `player:online:<id>` hash (playerId, loginTime,
lastHeartbeat, ip, status, logoutTime), so the original's tools keep working against a
Redis deployment. A store also answers the two questions the heartbeat logout needs,
atomically: "whose heartbeat is older than X?" and "log this player out, unless someone
refreshed them meanwhile". `sessions.py` holds the logic; stores only record.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Protocol


@dataclass(slots=True)
class PresenceRecord:
    player_id: int
    login_time: int  # unix ms
    last_heartbeat: int  # unix ms
    ip: str
    status: str = "online"
    logout_time: int | None = None

    def to_api(self) -> dict[str, object]:
        out: dict[str, object] = {
            "playerId": str(self.player_id), "status": self.status, "loginTime": self.login_time,
            "lastHeartbeat": self.last_heartbeat, "ip": self.ip,
        }
        if self.logout_time is not None:
            out["logoutTime"] = self.logout_time
        return out


# How long an offline record stays readable (the original's hash expires in 15 s).
OFFLINE_KEEP_MS = 60_000


class PresenceStore(Protocol):
    degraded: bool

    async def login(self, user_id: int, ip: str, now_ms: int) -> tuple[bool, int]:
        """Mark online. Returns (whether this started a new session, its loginTime)."""

    async def heartbeat(self, user_id: int, now_ms: int) -> bool:
        """Refresh one player; False if they are not online."""

    async def refresh(self, pings: list[tuple[int, int]]) -> list[int]:
        """Record the latest ping (unix ms) of many players held by this node; return
        those who are not online any more (logged out elsewhere, or lost by the store)
        and need a login. A heartbeat never moves backwards."""

    async def stale(self, before_ms: int, limit: int) -> list[int]:
        """Online players whose last heartbeat is older than `before_ms`."""

    async def logout(self, user_id: int, now_ms: int, stale_before_ms: int | None) -> bool:
        """End the session; True only for the one caller that ended it. With
        `stale_before_ms`, only if the last heartbeat is still older than that."""

    async def get(self, user_id: int) -> PresenceRecord | None: ...

    async def online(self) -> list[PresenceRecord]: ...

    async def close(self) -> None: ...


class MemoryPresence:
    """Presence for one process. Logged-out records are kept, marked offline."""

    degraded = False

    def __init__(self) -> None:
        self._records: dict[int, PresenceRecord] = {}

    async def login(self, user_id: int, ip: str, now_ms: int) -> tuple[bool, int]:
        record = self._records.get(user_id)
        if record is not None and record.status == "online":
            record.last_heartbeat = now_ms
            if ip:
                record.ip = ip
            return False, record.login_time
        self._records[user_id] = PresenceRecord(user_id, now_ms, now_ms, ip)
        return True, now_ms

    async def heartbeat(self, user_id: int, now_ms: int) -> bool:
        record = self._records.get(user_id)
        if record is None or record.status != "online":
            return False
        record.last_heartbeat = max(record.last_heartbeat, now_ms)
        return True

    async def refresh(self, pings: list[tuple[int, int]]) -> list[int]:
        missing = []
        records = self._records
        for user_id, ping_ms in pings:
            record = records.get(user_id)
            if record is None or record.status != "online":
                missing.append(user_id)
            elif ping_ms > record.last_heartbeat:
                record.last_heartbeat = ping_ms
        return missing

    async def stale(self, before_ms: int, limit: int) -> list[int]:
        out, forget = [], []
        for record in self._records.values():
            if record.status == "online":
                if record.last_heartbeat < before_ms and len(out) < limit:
                    out.append(record.player_id)
            elif record.logout_time is not None and record.logout_time < before_ms - OFFLINE_KEEP_MS:
                forget.append(record.player_id)
        for user_id in forget:  # like the original's expiring hash: offline records fade
            del self._records[user_id]
        return out

    async def logout(self, user_id: int, now_ms: int, stale_before_ms: int | None) -> bool:
        record = self._records.get(user_id)
        if record is None or record.status != "online":
            return False
        if stale_before_ms is not None and record.last_heartbeat >= stale_before_ms:
            return False
        record.status = "offline"
        record.logout_time = now_ms
        return True

    async def get(self, user_id: int) -> PresenceRecord | None:
        record = self._records.get(user_id)
        return PresenceRecord(**asdict(record)) if record is not None else None

    async def online(self) -> list[PresenceRecord]:
        return [PresenceRecord(**asdict(r)) for r in self._records.values() if r.status == "online"]

    async def close(self) -> None:
        return None
