"""Who is online, as other tools see it: the original's `player:online:<id>` records.

A small interface with an in-memory implementation here and a Redis one (the
original's keys, shared by several nodes) beside it. The session logic in
`sessions.py` decides; presence only records.
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


class Presence(Protocol):
    async def set_online(self, record: PresenceRecord) -> None: ...

    async def heartbeat(self, user_ids: list[int], now_ms: int) -> None:
        """Refresh lastHeartbeat (and liveness) of many users in one go."""

    async def set_offline(self, user_id: int, logout_ms: int) -> None: ...

    async def get(self, user_id: int) -> PresenceRecord | None: ...

    async def online(self) -> list[PresenceRecord]: ...

    async def close(self) -> None: ...


class MemoryPresence:
    """Presence for one process; records of logged-out players are kept as offline."""

    def __init__(self) -> None:
        self._records: dict[int, PresenceRecord] = {}

    async def set_online(self, record: PresenceRecord) -> None:
        self._records[record.player_id] = record

    async def heartbeat(self, user_ids: list[int], now_ms: int) -> None:
        for user_id in user_ids:
            record = self._records.get(user_id)
            if record is not None and record.status == "online":
                record.last_heartbeat = now_ms

    async def set_offline(self, user_id: int, logout_ms: int) -> None:
        record = self._records.get(user_id)
        if record is not None:
            record.status = "offline"
            record.logout_time = logout_ms

    async def get(self, user_id: int) -> PresenceRecord | None:
        record = self._records.get(user_id)
        return PresenceRecord(**asdict(record)) if record is not None else None

    async def online(self) -> list[PresenceRecord]:
        return [PresenceRecord(**asdict(r)) for r in self._records.values() if r.status == "online"]

    async def close(self) -> None:
        return None
