"""Brokers: how an event addressed to a user gets its position and reaches every node.

The hub asks the broker to publish; the broker gives the event its place in the user's
stream (seq), records it for resume, and hands it back to the hub of every node that
holds a connection of that user, in order. Two implementations, chosen at start-up like
centrifuge's engines:

- `LocalBroker` (this module): one process. Publishing is a function call.
- `RedisBroker` (`redis_broker.py`): several nodes sharing positions, history and
  delivery through Redis.

Greeting a v2 connection (welcome, replay or resync) is the broker's job too, because
only it knows where history lives.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from .history import Coalesce, MemoryHistory, Position

if TYPE_CHECKING:
    from .hub import Connection, Hub


class Broker(Protocol):
    degraded: bool

    def bind(self, hub: "Hub") -> None: ...

    def publish_user(self, user_id: int, type_: str, ts: int, data: Any, payload: bytes,
                     coalesce: Coalesce | None) -> int:
        """Publish without waiting; return the seq if known now, else 0."""

    async def publish_user_confirmed(self, user_id: int, type_: str, ts: int, data: Any,
                                     payload: bytes) -> int:
        """Publish and wait until the event is recorded; raise BrokerUnavailable if not."""

    def publish_broadcast(self, type_: str, ts: int, data: Any, payload: bytes) -> int: ...

    async def publish_broadcast_confirmed(self, type_: str, ts: int, data: Any, payload: bytes) -> int: ...

    def user_attached(self, conn: "Connection", first_on_node: bool, since: int | None,
                      bsince: int | None, epoch: str | None) -> None:
        """A connection joined: subscribe if needed, and greet it if it speaks v2."""

    def user_detached(self, user_id: int, last_on_node: bool) -> None:
        """A connection left (`last_on_node`: the user has none left here)."""

    async def position(self, user_id: int) -> Position: ...

    def expire(self) -> None:
        """Periodic clean-up of history (called by the hub's sweeper every second)."""

    def history_bytes(self) -> int: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


# The share of the histories each sweep looks at: every stream is visited every 10 s.
EXPIRE_SHARE = 0.1


class BrokerUnavailable(Exception):
    """The broker cannot record the event now (e.g. Redis is down)."""


class LocalBroker:
    """Everything in this process: positions and history in `MemoryHistory`."""

    degraded = False

    def __init__(self, history: MemoryHistory) -> None:
        self.history = history
        self.hub: Hub | None = None

    def bind(self, hub: "Hub") -> None:
        self.hub = hub

    def publish_user(self, user_id: int, type_: str, ts: int, data: Any, payload: bytes,
                     coalesce: Coalesce | None) -> int:
        seq = self.history.append_user(user_id, type_, ts, data, payload, coalesce)
        self.hub.deliver_user(user_id, payload, seq)  # type: ignore[union-attr]
        return seq

    async def publish_user_confirmed(self, user_id: int, type_: str, ts: int, data: Any,
                                     payload: bytes) -> int:
        return self.publish_user(user_id, type_, ts, data, payload, None)

    def publish_broadcast(self, type_: str, ts: int, data: Any, payload: bytes) -> int:
        bseq = self.history.append_broadcast(type_, ts, data, payload)
        self.hub.deliver_broadcast(payload, bseq)  # type: ignore[union-attr]
        return bseq

    async def publish_broadcast_confirmed(self, type_: str, ts: int, data: Any, payload: bytes) -> int:
        return self.publish_broadcast(type_, ts, data, payload)

    def user_attached(self, conn: "Connection", first_on_node: bool, since: int | None,
                      bsince: int | None, epoch: str | None) -> None:
        history = self.history
        # What was delivered live so far must not merge with what the client may miss.
        history.seal(conn.user_id)
        if not conn.v2:
            return
        history.ensure_stream(conn.user_id)
        replay = history.replay(conn.user_id, epoch, since, bsince) if since is not None else None
        self.hub.greet(conn, history.position(conn.user_id), replay)  # type: ignore[union-attr]

    def user_detached(self, user_id: int, last_on_node: bool) -> None:
        self.history.seal(user_id)

    async def position(self, user_id: int) -> Position:
        return self.history.position(user_id)

    def position_now(self, user_id: int) -> Position:
        return self.history.position(user_id)

    def expire(self) -> None:
        assert self.hub is not None
        self.history.expire(self.hub.is_online, share=EXPIRE_SHARE)

    def history_bytes(self) -> int:
        return self.history.total_bytes

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

