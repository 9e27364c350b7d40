"""The connection hub: who is connected, and delivering events to them.

The hot path is shaped by the target of 19,000 players on one core:

- no task, queue or timer per connection: a send writes straight into the connection's
  transport buffer, and back-pressure is read from the transport's own watermarks;
- one sweeper for every connection, once a second, instead of a timer each;
- one encode per message: the legacy envelope is encoded once, a v2 connection gets the
  same bytes with its position spliced in;
- one send call per player-second for v2 too: a pong waits for the next frame to its
  connection (the player's spirit push, at most a second away) and is written with it;
- nothing here awaits: `send_to_user` and `broadcast` are plain calls that never block;
- a broadcast is written FANOUT_CHUNK connections per loop turn, so a leaderboard update
  to 10,000 players is not one 200 ms stall for everyone else; the once-a-second sweep
  yields every SWEEP_CHUNK users for the same reason.

The hub knows nothing about sockets beyond the small `Connection` surface that
`transport.py` implements, and nothing about sessions beyond two callbacks.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from typing import Any, Protocol

from . import protocol
from .broker import Broker
from .history import Coalesce, Position, Replay
from .protocol import CloseCode

log = logging.getLogger("xiuxian.hub")

_monotonic = time.monotonic
_time = time.time

# Connections a broadcast is written to per turn of the event loop (about 10 ms of sends
# on the bench machine); the rest follow on the next turns, in order.
FANOUT_CHUNK = 200
SWEEP_CHUNK = 1000


class Connection(Protocol):
    """What the hub needs from one WebSocket connection (see transport.WsConnection)."""

    conn_id: str
    user_id: int
    v2: bool
    last_ping: float
    last_seen: float
    frames: int
    closed: bool
    # A v2 ping waiting for its pong: when it arrived (monotonic; 0.0 = none) and its timestamp.
    pong_at: float
    pong_client_time: Any

    def send(self, payload: bytes, seq: int = 0) -> None:
        """Send one frame; a pending pong (`pong_at`) goes out with it, taken via `Hub.take_pong`."""

    def start_stream(self, frames: list[bytes], seq: int) -> None:
        """Send the greeting frames, then release what was held back, skipping any
        sequenced message at or below `seq` (already covered by the replay)."""

    def close(self, code: int, reason: str) -> None: ...


class Stats:
    """Plain counters, read by /ws/stats and the Prometheus collector at scrape time."""

    __slots__ = ("started", "connections_total", "messages_in", "messages_out", "bad_frames",
                 "slow_disconnects", "policy_disconnects", "timeout_disconnects", "replaced",
                 "auth_failures", "resumes", "resyncs")

    def __init__(self) -> None:
        self.started = _time()
        for name in self.__slots__[1:]:
            setattr(self, name, 0)


class SessionEvents(Protocol):
    """How the hub tells the session layer that a user appeared or went quiet."""

    def user_connected(self, user_id: int, ip: str | None) -> None: ...

    def user_disconnected(self, user_id: int, last_heartbeat: float) -> None: ...

    def sweep(self, alive: list[tuple[int, float]], now: float) -> None: ...


class Hub:
    def __init__(self, broker: Broker, *, heartbeat_interval_ms: int,
                 heartbeat_timeout_s: float, read_timeout_s: float,
                 max_connections_per_user: int, pong_hold_s: float = 0.0) -> None:
        self.broker = broker
        broker.bind(self)
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.pong_hold_s = pong_hold_s
        # Pings whose pong is held, oldest first: arrival times and connections side by
        # side, so a ping allocates nothing the garbage collector has to scan.
        self._pong_times: deque[float] = deque()
        self._pong_conns: deque[Connection] = deque()
        self._pong_flusher: asyncio.Task[None] | None = None
        # Broadcasts being written, oldest first: (connections still to write, legacy bytes, v2 bytes).
        self._fanouts: deque[tuple[list[Connection], bytes, bytes]] = deque()
        self.read_timeout_s = read_timeout_s
        self.max_connections_per_user = max_connections_per_user
        self.stats = Stats()
        self.sessions: SessionEvents | None = None
        self._users: dict[int, list[Connection]] = {}
        self._connections = 0
        self._conn_seq = 0
        self._node = os.urandom(3).hex()
        self._sweeper: asyncio.Task[None] | None = None
        self.closing = False

    # -- the API the rest of the server uses -------------------------------------------

    def send_to_user(self, user_id: int, type_: str, data: Any,
                     coalesce: Coalesce | None = None) -> int:
        """Deliver an event to every connection of a user, on every node.

        Never blocks. The event gets the next position in the user's stream and is kept
        for resume even while they have no connection. `coalesce` marks a state event
        (its latest value supersedes earlier ones, like spirit): it may be merged in
        history, and when it is `local`, in a cluster it is delivered by this node only,
        unsequenced.
        Returns the seq when already known (0 otherwise).
        """
        ts = int(_time())
        payload = protocol.encode_event(type_, user_id, ts, data)
        return self.broker.publish_user(user_id, type_, ts, data, payload, coalesce)

    async def send_to_user_confirmed(self, user_id: int, type_: str, data: Any) -> int:
        """Like send_to_user, but wait until the event is recorded; raises BrokerUnavailable."""
        ts = int(_time())
        payload = protocol.encode_event(type_, user_id, ts, data)
        return await self.broker.publish_user_confirmed(user_id, type_, ts, data, payload)

    def broadcast(self, type_: str, data: Any) -> int:
        """Deliver an event to every connection on every node; return its bseq if known."""
        ts = int(_time())
        payload = protocol.encode_event(type_, 0, ts, data)
        return self.broker.publish_broadcast(type_, ts, data, payload)

    async def broadcast_confirmed(self, type_: str, data: Any) -> int:
        ts = int(_time())
        payload = protocol.encode_event(type_, 0, ts, data)
        return await self.broker.publish_broadcast_confirmed(type_, ts, data, payload)

    def send_local(self, user_id: int, payload: bytes) -> None:
        """Send already-encoded, unsequenced bytes to this node's connections of a user."""
        conns = self._users.get(user_id)
        if conns:
            for conn in conns:
                conn.send(payload)
            self.stats.messages_out += len(conns)

    # -- what brokers call -----------------------------------------------------------------

    def deliver_user(self, user_id: int, payload: bytes, seq: int) -> None:
        """Hand a published event to this node's connections of its user."""
        conns = self._users.get(user_id)
        if not conns:
            return
        v2_payload = protocol.with_position(payload, b"seq", seq) if seq else payload
        for conn in conns:
            conn.send(v2_payload if conn.v2 else payload, seq)
        self.stats.messages_out += len(conns)

    def deliver_broadcast(self, payload: bytes, bseq: int) -> None:
        """Write a broadcast to every connection present now, a chunk per loop turn.

        Broadcasts keep their order on every connection: one starts when the one before
        it is written everywhere. A connection that joins meanwhile is not added: its
        welcome position already covers this broadcast (a resume replays it).
        """
        targets = [conn for conns in self._users.values() for conn in conns]
        if not targets:
            return
        self._fanouts.append((targets, payload, protocol.with_position(payload, b"bseq", bseq)))
        if len(self._fanouts) == 1:
            self._fan_out()

    def _fan_out(self) -> None:
        targets, payload, v2_payload = self._fanouts[0]
        chunk = targets[-FANOUT_CHUNK:]
        del targets[-FANOUT_CHUNK:]
        for conn in chunk:
            conn.send(v2_payload if conn.v2 else payload)
        self.stats.messages_out += len(chunk)
        if not targets:
            self._fanouts.popleft()
        if self._fanouts:
            asyncio.get_running_loop().call_soon(self._fan_out)

    def online_count(self) -> int:
        """Users with at least one connection on this node."""
        return len(self._users)

    def connection_count(self) -> int:
        return self._connections

    def is_online(self, user_id: int) -> bool:
        return user_id in self._users

    def online_user_ids(self) -> list[int]:
        return list(self._users)

    def connections_of(self, user_id: int) -> list[Connection]:
        return list(self._users.get(user_id, ()))

    def last_ping(self, user_id: int) -> float | None:
        conns = self._users.get(user_id)
        return max(conn.last_ping for conn in conns) if conns else None

    # -- connection lifecycle (called by the transport) ---------------------------------

    def new_connection_id(self) -> str:
        self._conn_seq += 1
        return f"{self._node}-{self._conn_seq:x}"

    def attach(self, conn: Connection, ip: str | None, since: int | None,
               bsince: int | None, epoch: str | None) -> None:
        """Register an authenticated connection and, for v2, greet it and replay."""
        existing = self._users.get(conn.user_id)
        while existing and len(existing) >= self.max_connections_per_user:
            self.stats.replaced += 1
            # close() detaches the oldest, which may empty and drop the list.
            existing[0].close(CloseCode.REPLACED, "too many connections for this user")
            existing = self._users.get(conn.user_id)
        first = existing is None
        conns = self._users.setdefault(conn.user_id, [])
        conns.append(conn)
        self.broker.user_attached(conn, first, since, bsince, epoch)
        self._connections += 1
        self.stats.connections_total += 1
        if first and self.sessions is not None:
            self.sessions.user_connected(conn.user_id, ip)

    def detach(self, conn: Connection) -> None:
        """Forget a connection. Idempotent: called on close and again on disconnect."""
        conns = self._users.get(conn.user_id)
        if not conns or conn not in conns:
            return
        conns.remove(conn)
        self._connections -= 1
        last = not conns
        if last:
            del self._users[conn.user_id]
        self.broker.user_detached(conn.user_id, last)
        if last:
            if self.sessions is not None and not self.closing:
                self.sessions.user_disconnected(conn.user_id, conn.last_ping)

    def greet(self, conn: Connection, pos: Position, replay: Replay | None) -> None:
        """Send a v2 connection its welcome, then the replay or a resync.

        Called by the broker once it knows the position (at once in one process,
        after a Redis round trip in a cluster). Until then the connection holds back
        whatever else is sent to it, so the welcome is always first.
        """
        recovered = replay is not None and replay.recovered
        frames: list[bytes] = [self._protocol_message("welcome", conn.user_id, {
            "connectionId": conn.conn_id,
            "serverTime": int(_time() * 1000),
            "heartbeatInterval": self.heartbeat_interval_ms,
            "heartbeatTimeout": int(self.heartbeat_timeout_s * 1000),
            "epoch": pos.epoch,
            "seq": pos.seq,
            "bseq": pos.bseq,
            "recovered": recovered,
        })]
        if replay is not None:
            if replay.recovered:
                self.stats.resumes += 1
                frames.extend(replay.frames)
            else:
                self.stats.resyncs += 1
                frames.append(self.resync_message(conn.user_id, replay.reason or "epoch_mismatch", pos))
        self.stats.messages_out += len(frames)
        conn.start_stream(frames, pos.seq)

    def resync_message(self, user_id: int, reason: str, pos: Position) -> bytes:
        return self._protocol_message("resync", user_id, {
            "reason": reason, "epoch": pos.epoch, "seq": pos.seq, "bseq": pos.bseq})

    # -- pongs (v2) -------------------------------------------------------------------------

    def ping(self, conn: Connection, client_time: Any, now: float) -> None:
        """Answer a v2 ping, within `pong_hold_s`.

        On loopback a send call costs as much as everything else a message needs, and a v2
        client's pong would double the sends per player. So the pong waits for the next
        frame to the same connection, normally the spirit push that comes once a second,
        and is written with it; `flush_pongs` sends those that found no frame in time.
        The pong says how long it was held, so the client's round-trip time stays exact.
        """
        if conn.pong_at:
            conn.send(self.take_pong(conn, now))  # the previous ping's pong is still waiting
        conn.pong_client_time = client_time
        conn.pong_at = now
        if self.pong_hold_s > 0:
            self._pong_times.append(now)
            self._pong_conns.append(conn)
        else:
            conn.send(self.take_pong(conn, now))

    def take_pong(self, conn: Connection, now: float) -> bytes:
        """The pong for a connection's pending ping, which stops being pending."""
        held_ms = int((now - conn.pong_at) * 1000)
        conn.pong_at = 0.0
        self.stats.messages_out += 1
        return protocol.encode_pong(conn.user_id, conn.pong_client_time, held_ms, _time())

    def flush_pongs(self, now: float) -> None:
        """Send, alone, the pongs held for `pong_hold_s` without a frame to ride on."""
        cutoff = now - self.pong_hold_s
        times, conns = self._pong_times, self._pong_conns
        while times and times[0] <= cutoff:
            at, conn = times.popleft(), conns.popleft()
            # Skip pings already answered (their pong rode on a frame) or superseded.
            if conn.pong_at == at and not conn.closed:
                conn.send(self.take_pong(conn, now))

    async def _flush_pongs_forever(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                self.flush_pongs(_monotonic())
            except Exception:  # pragma: no cover - a bug here must not stop the flusher
                log.exception("pong flush failed")

    @staticmethod
    def _protocol_message(type_: str, user_id: int, data: dict[str, Any]) -> bytes:
        return protocol.encode_event(type_, user_id, int(_time()), data)

    # -- the sweeper ---------------------------------------------------------------------

    def start(self, interval_s: float = 1.0) -> None:
        loop = asyncio.get_running_loop()
        self._sweeper = loop.create_task(self._sweep_forever(interval_s))
        if self.pong_hold_s > 0:
            self._pong_flusher = loop.create_task(self._flush_pongs_forever(min(0.1, self.pong_hold_s / 4)))

    async def _sweep_forever(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.sweep()
            except Exception:  # pragma: no cover - a bug here must not stop the sweeper
                log.exception("sweep failed")

    async def sweep(self, now: float | None = None) -> None:
        """Close silent connections and reset flood counters; one pass over everything.

        The pass yields to the loop every SWEEP_CHUNK users: in one piece it took 11-34 ms
        at 10,000 players, a stall every publish and ping behind it would wait out.
        """
        if now is None:
            now = _monotonic()
        ping_deadline = now - self.heartbeat_timeout_s
        read_deadline = now - self.read_timeout_s
        silent: list[Connection] = []
        # Each user's latest ping on this node, for the cluster-wide session store.
        alive: list[tuple[int, float]] = []
        users = list(self._users.items())
        for start in range(0, len(users), SWEEP_CHUNK):
            if start:
                await asyncio.sleep(0)
            for user_id, conns in users[start:start + SWEEP_CHUNK]:
                latest = 0.0
                for conn in conns:
                    conn.frames = 0
                    if conn.last_ping < ping_deadline or conn.last_seen < read_deadline:
                        silent.append(conn)
                    elif conn.last_ping > latest:
                        latest = conn.last_ping
                if latest:
                    alive.append((user_id, latest))
        for conn in silent:
            if conn.closed:
                continue  # went away by itself while the sweep yielded
            self.stats.timeout_disconnects += 1
            log.info("heartbeat timeout", extra={"user_id": conn.user_id, "conn_id": conn.conn_id})
            conn.close(CloseCode.HEARTBEAT_TIMEOUT, "heartbeat timeout")
        if self.sessions is not None:
            self.sessions.sweep(alive, now)
        self.broker.expire()

    def close_all(self, code: int, reason: str) -> None:
        """Close every connection (shutdown). Sessions are not logged out for this."""
        self.closing = True
        for task in (self._sweeper, self._pong_flusher):
            if task is not None:
                task.cancel()
        for conns in list(self._users.values()):
            for conn in list(conns):
                conn.close(code, reason)
        self._users.clear()
        self._connections = 0
