"""The connection hub: who is connected, and delivering events to them.

The hot path is shaped by the target of 19,000 players on one core:

- no task, queue or timer per connection: a send writes straight into the connection's
  transport buffer, and back-pressure is read from the transport's own watermarks;
- one sweeper for every connection, once a second, instead of a timer each;
- one encode per message: the legacy envelope is encoded once, a v2 connection gets the
  same bytes with its position spliced in;
- nothing here awaits: `send_to_user` and `broadcast` are plain calls that never block.

The hub knows nothing about sockets beyond the small `Connection` surface that
`transport.py` implements, and nothing about sessions beyond two callbacks.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any, Protocol

import orjson

from . import protocol
from .history import Coalesce, MemoryHistory, Replay
from .protocol import CloseCode

log = logging.getLogger("xiuxian.hub")

_monotonic = time.monotonic
_time = time.time


class Connection(Protocol):
    """What the hub needs from one WebSocket connection (see transport.WsConnection)."""

    conn_id: str
    user_id: int
    v2: bool
    last_ping: float
    last_seen: float
    frames: int
    closed: bool

    def send(self, payload: bytes) -> None: ...

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

    def sweep(self, now: float) -> int: ...


class Hub:
    def __init__(self, history: MemoryHistory, *, heartbeat_interval_ms: int,
                 heartbeat_timeout_s: float, read_timeout_s: float,
                 max_connections_per_user: int) -> None:
        self.history = history
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.read_timeout_s = read_timeout_s
        self.max_connections_per_user = max_connections_per_user
        self.stats = Stats()
        self.sessions: SessionEvents | None = None
        self._users: dict[int, list[Connection]] = {}
        self._connections = 0
        self._conn_seq = 0
        self._node = os.urandom(3).hex()
        self._sweeper: asyncio.Task[None] | None = None
        self._sweeps = 0
        self.closing = False

    # -- the API the rest of the server uses -------------------------------------------

    def send_to_user(self, user_id: int, type_: str, data: Any,
                     coalesce: Coalesce | None = None) -> int:
        """Deliver an event to every connection of a user; return its seq (0: no stream).

        Never blocks. The event is recorded in the user's history (v2 resume) even while
        they have no connection, so a reconnect can replay it.
        """
        ts = int(_time())
        payload = protocol.encode_event(type_, user_id, ts, data)
        seq = self.history.append_user(user_id, type_, ts, data, payload, coalesce)
        conns = self._users.get(user_id)
        if conns:
            v2_payload = protocol.with_position(payload, b"seq", seq) if seq else payload
            for conn in conns:
                conn.send(v2_payload if conn.v2 else payload)
            self.stats.messages_out += len(conns)
        return seq

    def broadcast(self, type_: str, data: Any) -> int:
        """Deliver an event to every connection; return its bseq."""
        ts = int(_time())
        payload = protocol.encode_event(type_, 0, ts, data)
        bseq = self.history.append_broadcast(type_, ts, data, payload)
        v2_payload = protocol.with_position(payload, b"bseq", bseq)
        sent = 0
        for conns in self._users.values():
            for conn in conns:
                conn.send(v2_payload if conn.v2 else payload)
            sent += len(conns)
        self.stats.messages_out += sent
        return bseq

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
        if conn.v2:
            self._greet(conn, since, bsince, epoch)
        conns.append(conn)
        self.history.seal(conn.user_id)
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
        self.history.seal(conn.user_id)
        self._connections -= 1
        if not conns:
            del self._users[conn.user_id]
            if self.sessions is not None and not self.closing:
                self.sessions.user_disconnected(conn.user_id, conn.last_ping)

    def _greet(self, conn: Connection, since: int | None, bsince: int | None,
               epoch: str | None) -> None:
        history = self.history
        history.ensure_stream(conn.user_id)
        replay: Replay | None = None
        if since is not None:
            replay = history.replay(conn.user_id, epoch, since, bsince)
        pos = history.position(conn.user_id)
        recovered = replay is not None and replay.recovered
        conn.send(self._protocol_message("welcome", conn.user_id, {
            "connectionId": conn.conn_id,
            "serverTime": int(_time() * 1000),
            "heartbeatInterval": self.heartbeat_interval_ms,
            "heartbeatTimeout": int(self.heartbeat_timeout_s * 1000),
            "epoch": pos.epoch,
            "seq": pos.seq,
            "bseq": pos.bseq,
            "recovered": recovered,
        }))
        if replay is None:
            return
        if replay.recovered:
            self.stats.resumes += 1
            for frame in replay.frames:
                conn.send(frame)
            self.stats.messages_out += len(replay.frames)
        else:
            self.stats.resyncs += 1
            conn.send(self._protocol_message("resync", conn.user_id, {
                "reason": replay.reason, "epoch": pos.epoch, "seq": pos.seq, "bseq": pos.bseq,
            }))

    def pong(self, conn: Connection, client_time: Any) -> None:
        now = _time()
        conn.send(orjson.dumps({
            "type": "pong", "userId": conn.user_id, "timestamp": int(now),
            "data": {"serverTime": int(now * 1000), "clientTime": client_time},
        }))

    @staticmethod
    def _protocol_message(type_: str, user_id: int, data: dict[str, Any]) -> bytes:
        return protocol.encode_event(type_, user_id, int(_time()), data)

    # -- the sweeper ---------------------------------------------------------------------

    def start(self, interval_s: float = 1.0) -> None:
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever(interval_s))

    async def _sweep_forever(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                self.sweep()
            except Exception:  # pragma: no cover - a bug here must not stop the sweeper
                log.exception("sweep failed")

    def sweep(self, now: float | None = None) -> None:
        """Close silent connections and reset flood counters; one pass over everything."""
        if now is None:
            now = _monotonic()
        ping_deadline = now - self.heartbeat_timeout_s
        read_deadline = now - self.read_timeout_s
        silent: list[Connection] = []
        for conns in self._users.values():
            for conn in conns:
                conn.frames = 0
                if conn.last_ping < ping_deadline or conn.last_seen < read_deadline:
                    silent.append(conn)
        for conn in silent:
            self.stats.timeout_disconnects += 1
            log.info("heartbeat timeout", extra={"user_id": conn.user_id, "conn_id": conn.conn_id})
            conn.close(CloseCode.HEARTBEAT_TIMEOUT, "heartbeat timeout")
        if self.sessions is not None:
            self.sessions.sweep(now)
        self._sweeps += 1
        if self._sweeps % 10 == 0:
            self.history.expire(self.is_online)

    def close_all(self, code: int, reason: str) -> None:
        """Close every connection (shutdown). Sessions are not logged out for this."""
        self.closing = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        for conns in list(self._users.values()):
            for conn in list(conns):
                conn.close(code, reason)
        self._users.clear()
        self._connections = 0
