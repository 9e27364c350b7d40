"""Presence in Redis, with the original's keys, shared by every node.

- `server:online:players`  set of online player ids (as the original);
- `player:online:<id>`     hash playerId, loginTime, lastHeartbeat, ip, status
                           (+ logoutTime), TTL 15 s kept fresh while online (as the original);
- `rt:lastseen`            sorted set: player id -> last heartbeat (unix ms). It answers
                           "whose heartbeat is older than the timeout?" in one query.

Each decision is one Lua script, so it is atomic across nodes: a login starts a session
only if none is running; a heartbeat logout happens only if nobody refreshed the player
since the sweeper looked, and only once. A node refreshes all of its players in one
script call per 1,000 players each second (a few round trips per node, not one write
per ping); the same call rebuilds hashes and set members that Redis lost in a restart.

The scripts touch keys they build from player ids, which standalone Redis and
replication allow; Redis Cluster would need the refresh split by slot.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from .presence import PresenceRecord

ONLINE_SET = "server:online:players"
LAST_SEEN = "rt:lastseen"
HASH_TTL_S = 15
REFRESH_BATCH = 1000


def player_key(user_id: int | str) -> str:
    return f"player:online:{user_id}"


LOGIN_LUA = """
local score = redis.call('ZSCORE', KEYS[3], ARGV[1])
if score and redis.call('HGET', KEYS[1], 'status') == 'online' then
  if tonumber(ARGV[2]) > tonumber(score) then redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1]) end
  redis.call('HSET', KEYS[1], 'lastHeartbeat', math.max(tonumber(ARGV[2]), tonumber(score)))
  if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'ip', ARGV[3]) end
  redis.call('EXPIRE', KEYS[1], ARGV[4])
  return {0, redis.call('HGET', KEYS[1], 'loginTime')}
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'playerId', ARGV[1], 'loginTime', ARGV[2], 'lastHeartbeat', ARGV[2],
           'ip', ARGV[3], 'status', 'online')
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
return {1, ARGV[2]}
"""

HEARTBEAT_LUA = """
local score = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not score then return 0 end
local last = math.max(tonumber(ARGV[2]), tonumber(score))
redis.call('ZADD', KEYS[2], last, ARGV[1])
redis.call('HSET', KEYS[1], 'lastHeartbeat', last)
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""

REFRESH_LUA = """
local missing = {}
for i = 2, #ARGV, 2 do
  local uid, ms = ARGV[i], tonumber(ARGV[i + 1])
  local score = redis.call('ZSCORE', KEYS[1], uid)
  if not score then
    table.insert(missing, uid)
  else
    score = tonumber(score)
    if ms > score then redis.call('ZADD', KEYS[1], ms, uid); score = ms end
    local key = 'player:online:' .. uid
    if redis.call('HSET', key, 'lastHeartbeat', score) == 1 then
      -- the hash was gone (Redis lost it): rebuild it and the set membership
      redis.call('HSET', key, 'playerId', uid, 'loginTime', score, 'ip', '', 'status', 'online')
      redis.call('SADD', KEYS[2], uid)
    end
    redis.call('EXPIRE', key, ARGV[1])
  end
end
return missing
"""

LOGOUT_LUA = """
local score = redis.call('ZSCORE', KEYS[3], ARGV[1])
if not score then return 0 end
if ARGV[3] ~= '' and tonumber(score) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[1], 'status', 'offline', 'logoutTime', ARGV[2])
return 1
"""


class RedisPresence:
    def __init__(self, client: aioredis.Redis) -> None:
        self.redis = client
        self.degraded = False
        self._login = client.register_script(LOGIN_LUA)
        self._heartbeat = client.register_script(HEARTBEAT_LUA)
        self._refresh = client.register_script(REFRESH_LUA)
        self._logout = client.register_script(LOGOUT_LUA)

    async def _call(self, coro: Any) -> Any:
        try:
            result = await coro
        except (RedisError, OSError):
            self.degraded = True
            raise
        self.degraded = False
        return result

    async def login(self, user_id: int, ip: str, now_ms: int) -> tuple[bool, int]:
        created, login_ms = await self._call(self._login(
            keys=[player_key(user_id), ONLINE_SET, LAST_SEEN], args=[user_id, now_ms, ip, HASH_TTL_S]))
        return bool(created), int(login_ms)

    async def heartbeat(self, user_id: int, now_ms: int) -> bool:
        return bool(await self._call(self._heartbeat(
            keys=[player_key(user_id), LAST_SEEN], args=[user_id, now_ms, HASH_TTL_S])))

    async def refresh(self, pings: list[tuple[int, int]]) -> list[int]:
        if not pings:
            return []
        missing: list[int] = []

        async def run() -> None:
            async with self.redis.pipeline(transaction=False) as pipe:
                for start in range(0, len(pings), REFRESH_BATCH):
                    args: list[Any] = [HASH_TTL_S]
                    for user_id, ms in pings[start:start + REFRESH_BATCH]:
                        args += (user_id, ms)
                    await self._refresh(keys=[LAST_SEEN, ONLINE_SET], args=args, client=pipe)
                for result in await pipe.execute():
                    missing.extend(int(uid) for uid in result)

        await self._call(run())
        return missing

    async def stale(self, before_ms: int, limit: int) -> list[int]:
        ids = await self._call(self.redis.zrangebyscore(LAST_SEEN, "-inf", f"({before_ms}", start=0, num=limit))
        return [int(uid) for uid in ids]

    async def logout(self, user_id: int, now_ms: int, stale_before_ms: int | None) -> bool:
        return bool(await self._call(self._logout(
            keys=[player_key(user_id), ONLINE_SET, LAST_SEEN],
            args=[user_id, now_ms, "" if stale_before_ms is None else stale_before_ms])))

    async def get(self, user_id: int) -> PresenceRecord | None:
        raw = await self._call(self.redis.hgetall(player_key(user_id)))
        return _record(raw)

    async def online(self) -> list[PresenceRecord]:
        ids = await self._call(self.redis.smembers(ONLINE_SET))

        async def fetch() -> list[Any]:
            async with self.redis.pipeline(transaction=False) as pipe:
                for uid in ids:
                    pipe.hgetall(player_key(uid.decode()))
                return await pipe.execute()

        records = [_record(raw) for raw in await self._call(fetch())]
        return [r for r in records if r is not None and r.status == "online"]

    async def close(self) -> None:
        return None


def _record(raw: dict[bytes, bytes]) -> PresenceRecord | None:
    if not raw or b"playerId" not in raw:
        return None

    def num(field: bytes) -> int:
        value = raw.get(field)
        return int(float(value)) if value else 0

    logout = raw.get(b"logoutTime")
    return PresenceRecord(
        player_id=int(raw[b"playerId"]), login_time=num(b"loginTime"), last_heartbeat=num(b"lastHeartbeat"),
        ip=raw.get(b"ip", b"").decode(), status=raw.get(b"status", b"online").decode(),
        logout_time=int(float(logout)) if logout else None)
