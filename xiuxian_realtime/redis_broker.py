"""The Redis broker: several nodes share positions, history and delivery.

Per user `<id>` (the `{<id>}` hash tag keeps a user's keys and channel in one Redis
Cluster slot, ready for sharded pub/sub):

- `rt:{<id>}:meta`   hash `epoch`, `seq` — the stream's identity and last position;
- `rt:{<id>}:stream` a Redis Stream of the user's recent events, entry id `<seq>-0`;
- `rt:{<id>}`        the pub/sub channel the nodes holding the user subscribe to.

Broadcasts use the same three keys with `{b}` in place of the id.

One Lua script records an event: it assigns the next seq (a new epoch if the meta hash
is gone, e.g. Redis lost its data), appends to the stream, and publishes
`<epoch> <seq> <payload>` on the channel. Running as one script keeps per-user order
across nodes: every node sees a user's events in seq order on its one subscriber
connection. Every sequenced event is delivered that way, even on the node that
published it, so delivery order never depends on which connection answers first.

State pushed by the node holding a user's connections, for those connections (spirit
ticks and the leaderboard messages addressed to the user: `Coalesce.local`), and pongs
concern only that node; they are sent locally, unsequenced, and never touch Redis. Every
other event, state-like or not (an exploration's progress, produced by whichever node
took the API call), is sequenced and delivered through Redis like a discrete one.

Publishes are queued and sent in pipelines, so `publish_user` never waits. When Redis is
unreachable the queue is kept (bounded) and retried in order; the publish API instead
reports the failure to its caller. After the subscriber reconnects, each local user's
missed events are read back from their stream, so nothing published during a
subscriber outage is lost.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from . import protocol
from .broker import BrokerUnavailable
from .history import Coalesce, Position, Replay

if TYPE_CHECKING:
    from .hub import Connection, Hub

log = logging.getLogger("xiuxian.redis")

PUBLISH_LUA = """
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[4]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'seq', 0)
end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], seq .. '-0', 'p', ARGV[2], 't', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[7])
redis.call('EXPIRE', KEYS[2], ARGV[6])
redis.call('PUBLISH', ARGV[1], epoch .. ' ' .. seq .. ' ' .. ARGV[2])
return {epoch, seq}
"""

# Reads a stream's identity, creating it if absent, so a first connection gets an epoch.
POSITION_LUA = """
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[1]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'seq', 0)
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  return {epoch, 0}
end
return {epoch, tonumber(redis.call('HGET', KEYS[1], 'seq'))}
"""

BROADCAST = "b"
OUTBOX_MAX = 100_000
BATCH = 512
META_TTL_S = 86_400


def user_tag(user_id: int | str) -> str:
    return f"rt:{{{user_id}}}"


def _new_epoch() -> str:
    return os.urandom(6).hex()


class _Pending:
    __slots__ = ("tag", "ts", "payload", "future")

    def __init__(self, tag: str, ts: int, payload: bytes, future: asyncio.Future[int] | None) -> None:
        self.tag = tag
        self.ts = ts
        self.payload = payload
        self.future = future


class RedisBroker:
    def __init__(self, client: aioredis.Redis, *, max_events: int, max_age_s: float) -> None:
        self.max_events = max_events
        self.max_age_s = max_age_s
        self.redis = client
        self._publish_script = self.redis.register_script(PUBLISH_LUA)
        self._position_script = self.redis.register_script(POSITION_LUA)
        self.hub: Hub | None = None
        self.degraded = False
        self.dropped = 0
        self._outbox: deque[_Pending] = deque()
        self._wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._pubsub: Any = None
        # Per local user: the epoch and last seq delivered on this node.
        self._delivered: dict[int, tuple[str, int]] = {}
        # The broadcast stream's epoch and last bseq delivered on this node.
        self._broadcast_last: tuple[str, int] | None = None
        self._subscribed: set[int] = set()
        self._pending_subs: set[int] = set()
        self._pending_unsubs: set[int] = set()
        self._greetings: set[asyncio.Task[None]] = set()

    def bind(self, hub: "Hub") -> None:
        self.hub = hub

    # -- publishing ----------------------------------------------------------------------

    def publish_user(self, user_id: int, type_: str, ts: int, data: Any, payload: bytes,
                     coalesce: Coalesce | None) -> int:
        if coalesce is not None and coalesce.local:
            # State of this node's connections: sent here only, unsequenced (see module doc).
            self.hub.send_local(user_id, payload)  # type: ignore[union-attr]
            return 0
        self._enqueue(_Pending(user_tag(user_id), ts, payload, None))
        return 0

    async def publish_user_confirmed(self, user_id: int, type_: str, ts: int, data: Any,
                                     payload: bytes) -> int:
        return await self._confirmed(user_tag(user_id), ts, payload)

    def publish_broadcast(self, type_: str, ts: int, data: Any, payload: bytes) -> int:
        self._enqueue(_Pending(user_tag(BROADCAST), ts, payload, None))
        return 0

    async def publish_broadcast_confirmed(self, type_: str, ts: int, data: Any, payload: bytes) -> int:
        return await self._confirmed(user_tag(BROADCAST), ts, payload)

    async def _confirmed(self, tag: str, ts: int, payload: bytes) -> int:
        if self.degraded:
            raise BrokerUnavailable("redis unavailable")
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        item = _Pending(tag, ts, payload, future)
        self._enqueue(item)
        try:
            return await asyncio.wait_for(asyncio.shield(future), 5)
        except (asyncio.TimeoutError, RedisError) as exc:
            # Not delivered later behind the caller's back: the caller was told it failed.
            try:
                self._outbox.remove(item)
            except ValueError:
                pass
            raise BrokerUnavailable("redis unavailable") from exc

    def _enqueue(self, item: _Pending) -> None:
        if len(self._outbox) >= OUTBOX_MAX:
            lost = self._outbox.popleft()
            self.dropped += 1
            log.error("redis outbox full, event dropped", extra={"tag": lost.tag})
            if lost.future is not None and not lost.future.done():
                lost.future.set_exception(BrokerUnavailable("outbox full"))
        self._outbox.append(item)
        self._wakeup.set()

    async def _flush_forever(self) -> None:
        backoff = 0.1
        while True:
            if not self._outbox:
                self._wakeup.clear()
                await self._wakeup.wait()
            batch = [self._outbox[i] for i in range(min(BATCH, len(self._outbox)))]
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for item in batch:
                        await self._publish_script(
                            keys=[f"{item.tag}:meta", f"{item.tag}:stream"],
                            args=[item.tag, item.payload, item.ts, _new_epoch(), self.max_events,
                                  int(self.max_age_s), META_TTL_S],
                            client=pipe)
                    results = await pipe.execute()
            except (RedisError, OSError) as exc:
                self._set_degraded(exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            backoff = 0.1
            self._set_healthy()
            for _ in batch:
                self._outbox.popleft()
            for item, (_, seq) in zip(batch, results):
                if item.future is not None and not item.future.done():
                    item.future.set_result(int(seq))

    def _set_degraded(self, exc: BaseException) -> None:
        if not self.degraded:
            log.warning("redis unavailable", extra={"error": type(exc).__name__})
        self.degraded = True

    def _set_healthy(self) -> None:
        if self.degraded:
            log.info("redis available again")
        self.degraded = False

    # -- subscriptions and delivery -------------------------------------------------------

    def user_attached(self, conn: "Connection", first_on_node: bool, since: int | None,
                      bsince: int | None, epoch: str | None) -> None:
        user_id = conn.user_id
        if first_on_node:
            self._pending_unsubs.discard(user_id)
            if user_id not in self._subscribed:
                self._pending_subs.add(user_id)  # the subscriber picks it up within 50 ms
        if conn.v2:
            task = asyncio.get_running_loop().create_task(self._greet(conn, since, bsince, epoch))
            self._greetings.add(task)
            task.add_done_callback(self._greetings.discard)

    def user_detached(self, user_id: int, last_on_node: bool) -> None:
        if not last_on_node:
            return
        self._pending_subs.discard(user_id)
        if user_id in self._subscribed:
            self._pending_unsubs.add(user_id)
        self._delivered.pop(user_id, None)

    async def _greet(self, conn: "Connection", since: int | None, bsince: int | None,
                     epoch: str | None) -> None:
        user_id = conn.user_id
        try:
            await self._until_subscribed(user_id)
            pos = await self.position(user_id)
            replay = None
            if since is not None:
                replay = await self._replay(user_id, pos, epoch, since, bsince)
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            self._set_degraded(exc)
            conn.close(1013, "try again later")
            return
        if conn.closed:
            return
        delivered = self._delivered.get(user_id)
        if delivered is None or delivered[0] != pos.epoch or delivered[1] < pos.seq:
            self._delivered[user_id] = (pos.epoch, pos.seq)
        assert self.hub is not None
        self.hub.greet(conn, pos, replay)

    async def _until_subscribed(self, user_id: int, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while user_id not in self._subscribed:
            if time.monotonic() > deadline:
                raise asyncio.TimeoutError
            await asyncio.sleep(0.005)

    async def position(self, user_id: int) -> Position:
        tag, btag = user_tag(user_id), user_tag(BROADCAST)
        async with self.redis.pipeline(transaction=False) as pipe:
            await self._position_script(keys=[f"{tag}:meta", f"{tag}:stream"],
                                        args=[_new_epoch(), META_TTL_S], client=pipe)
            await self._position_script(keys=[f"{btag}:meta", f"{btag}:stream"],
                                        args=[_new_epoch(), META_TTL_S], client=pipe)
            (epoch, seq), (bepoch, bseq) = await pipe.execute()
        if self._broadcast_last is None:
            self._broadcast_last = (bepoch.decode(), int(bseq))
        return Position(epoch.decode(), int(seq), int(bseq))

    async def _replay(self, user_id: int, pos: Position, epoch: str | None, since: int,
                      bsince: int | None) -> Replay:
        if epoch != pos.epoch:
            return Replay(False, [], "epoch_mismatch")
        user = await self._missed(user_tag(user_id), since, pos.seq)
        if isinstance(user, str):
            return Replay(False, [], user)
        frames = [(ts_order, protocol.with_position(p, b"seq", s)) for s, ts_order, p in user]
        if bsince is not None:
            broadcast = await self._missed(user_tag(BROADCAST), bsince, pos.bseq)
            if isinstance(broadcast, str):
                return Replay(False, [], broadcast)
            frames += [(ts_order, protocol.with_position(p, b"bseq", s)) for s, ts_order, p in broadcast]
            # Interleave by publish time; ties keep user events first (stable sort).
            frames.sort(key=lambda pair: pair[0])
        return Replay(True, [frame for _, frame in frames])

    async def _missed(self, tag: str, since: int, current: int) -> list[tuple[int, float, bytes]] | str:
        if since > current:
            return "ahead"
        if since == current:
            return []
        entries = await self.redis.xrange(f"{tag}:stream", min=f"{since + 1}-0", max="+")
        horizon = time.time() - self.max_age_s
        out = []
        for entry_id, fields in entries:
            seq = int(entry_id.split(b"-")[0])
            ts = float(fields[b"t"])
            out.append((seq, ts, fields[b"p"]))
        if not out or out[0][0] != since + 1 or out[0][1] < horizon:
            return "history_expired"
        return out

    # -- the subscriber ------------------------------------------------------------------

    async def _subscriber_forever(self) -> None:
        backoff = 0.1
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(f"{user_tag(BROADCAST)}")
                wanted = set(self._subscribed) | self._pending_subs
                self._subscribed.clear()
                self._pending_subs = wanted
                await self._sync_subscriptions(pubsub)
                await self._catch_up()
                self._set_healthy()
                backoff = 0.1
                while True:
                    if self._pending_subs or self._pending_unsubs:
                        await self._sync_subscriptions(pubsub)
                    message = await pubsub.get_message(timeout=0.05)
                    if message is not None and message["type"] == "message":
                        self._on_message(message["channel"], message["data"])
                        # Drain what is already buffered before looking at subscriptions.
                        for _ in range(1000):
                            message = await pubsub.get_message(timeout=0)
                            if message is None:
                                break
                            if message["type"] == "message":
                                self._on_message(message["channel"], message["data"])
            except asyncio.CancelledError:
                await _quietly(pubsub.aclose())
                raise
            except (RedisError, OSError) as exc:
                self._set_degraded(exc)
                await _quietly(pubsub.aclose())
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    async def _sync_subscriptions(self, pubsub: Any) -> None:
        subs, self._pending_subs = self._pending_subs, set()
        unsubs, self._pending_unsubs = self._pending_unsubs, set()
        try:
            channels = [user_tag(uid) for uid in subs]
            for i in range(0, len(channels), 1000):
                await pubsub.subscribe(*channels[i:i + 1000])
            gone = [user_tag(uid) for uid in unsubs]
            for i in range(0, len(gone), 1000):
                await pubsub.unsubscribe(*gone[i:i + 1000])
        except BaseException:
            self._pending_subs |= subs
            self._pending_unsubs |= unsubs
            raise
        self._subscribed |= subs
        self._subscribed -= unsubs

    async def _catch_up(self) -> None:
        """After (re)subscribing: deliver what local users missed while we were not."""
        assert self.hub is not None
        if self._broadcast_last is not None:
            epoch, last = self._broadcast_last
            btag = user_tag(BROADCAST)
            meta = await self.redis.hgetall(f"{btag}:meta")
            if meta.get(b"epoch", b"").decode() == epoch and int(meta.get(b"seq", 0)) > last:
                missed = await self._missed(btag, last, int(meta[b"seq"]))
                for bseq, _, payload in (missed if not isinstance(missed, str) else []):
                    self._deliver_broadcast(epoch, bseq, payload)
        for user_id, (epoch, last) in list(self._delivered.items()):
            pos = await self.position(user_id)
            if pos.epoch != epoch:
                self._epoch_changed(user_id, pos)
                continue
            if pos.seq <= last:
                continue
            missed = await self._missed(user_tag(user_id), last, pos.seq)
            if isinstance(missed, str):
                self._epoch_changed(user_id, pos)
                continue
            for seq, _, payload in missed:
                self._deliver(user_id, epoch, seq, payload)

    def _on_message(self, channel: bytes, data: bytes) -> None:
        epoch, seq_raw, payload = data.split(b" ", 2)
        tag = channel.decode()
        target = tag[4:-1]  # "rt:{<id>}" -> "<id>"
        if target == BROADCAST:
            self._deliver_broadcast(epoch.decode(), int(seq_raw), payload)
            return
        self._deliver(int(target), epoch.decode(), int(seq_raw), payload)

    def _deliver(self, user_id: int, epoch: str, seq: int, payload: bytes) -> None:
        assert self.hub is not None
        known = self._delivered.get(user_id)
        if known is not None:
            if known[0] != epoch:
                self._epoch_changed(user_id, Position(epoch, seq - 1, 0))
            elif seq <= known[1]:
                return  # already delivered (a catch-up overlapping the live stream)
        self._delivered[user_id] = (epoch, seq)
        self.hub.deliver_user(user_id, payload, seq)

    def _deliver_broadcast(self, epoch: str, bseq: int, payload: bytes) -> None:
        assert self.hub is not None
        last = self._broadcast_last
        if last is not None and last[0] == epoch and bseq <= last[1]:
            return  # already delivered (a catch-up overlapping the live stream)
        self._broadcast_last = (epoch, bseq)
        self.hub.deliver_broadcast(payload, bseq)

    def _epoch_changed(self, user_id: int, pos: Position) -> None:
        """Redis lost this user's stream: tell v2 connections to refetch state."""
        assert self.hub is not None
        self._delivered[user_id] = (pos.epoch, pos.seq)
        message = self.hub.resync_message(user_id, "epoch_mismatch", pos)
        for conn in self.hub.connections_of(user_id):
            if conn.v2:
                conn.send(message)

    # -- lifecycle ---------------------------------------------------------------------

    def expire(self) -> None:
        return None  # streams are trimmed by MAXLEN and expire by TTL in Redis

    def history_bytes(self) -> int:
        return 0

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._flush_forever()), loop.create_task(self._subscriber_forever())]

    async def stop(self) -> None:
        deadline = time.monotonic() + 3
        while self._outbox and not self.degraded and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for task in self._tasks:
            task.cancel()
        for task in [*self._tasks, *self._greetings]:
            await _quietly(task)


def connect(url: str) -> aioredis.Redis:
    """A client that fails fast (a few hundred ms) instead of stalling callers, and
    notices a dead subscriber connection within seconds."""
    retry = Retry(ExponentialBackoff(cap=0.5, base=0.05), 2)
    return aioredis.Redis.from_url(url, socket_timeout=3, socket_connect_timeout=2, retry=retry,
                                   health_check_interval=5)


async def _quietly(awaitable: Any) -> None:
    try:
        await awaitable
    except (asyncio.CancelledError, Exception):
        pass
