"""The hub's rules without sockets: held pongs, and broadcasts written in chunks.

The connection here is a recorder of what the hub hands it; the real transport's half (a
held pong written together with the next frame) is covered over real sockets in
test_gateway.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from xiuxian_realtime.broker import LocalBroker
from xiuxian_realtime.history import MemoryHistory
from xiuxian_realtime.hub import Hub


class Recorder:
    """The `Connection` surface, recording each write the way WsConnection makes it."""

    def __init__(self, hub: Hub, user_id: int, clock: list[float]) -> None:
        self.hub, self.user_id, self.clock = hub, user_id, clock
        self.conn_id, self.v2, self.closed = f"c{user_id}", True, False
        self.last_ping = self.last_seen = 0.0
        self.frames = 0
        self.pong_at, self.pong_client_time = 0.0, None
        self.writes: list[list[dict[str, Any]]] = []  # one list of messages per send call

    def send(self, payload: bytes, seq: int = 0) -> None:
        write = [orjson.loads(payload)]
        if self.pong_at:
            write.append(orjson.loads(self.hub.take_pong(self, self.clock[0])))
        self.writes.append(write)

    def start_stream(self, frames: list[bytes], seq: int) -> None:
        for frame in frames:
            self.send(frame)

    def close(self, code: int, reason: str) -> None:
        self.closed = True


def make_hub(hold_s: float) -> Hub:
    return Hub(LocalBroker(MemoryHistory(100, 60, 1 << 20)), heartbeat_interval_ms=1000,
               heartbeat_timeout_s=10, read_timeout_s=60, max_connections_per_user=5, pong_hold_s=hold_s)


def attached(hub: Hub, clock: list[float]) -> Recorder:
    conn = Recorder(hub, 7, clock)
    hub.attach(conn, None, None, None, None)
    conn.writes.clear()  # the welcome
    return conn


def test_a_held_pong_rides_on_the_next_frame_and_says_how_long_it_waited() -> None:
    clock = [100.0]
    hub = make_hub(1.0)
    conn = attached(hub, clock)
    hub.ping(conn, 555, clock[0])
    assert conn.writes == []
    clock[0] = 100.25
    hub.send_to_user(7, "quest:done", {"q": 1})
    [write] = conn.writes
    assert [m["type"] for m in write] == ["quest:done", "pong"]
    assert write[1]["data"]["clientTime"] == 555 and write[1]["data"]["heldMs"] == 250
    hub.flush_pongs(clock[0] + 5)  # already answered: nothing more
    assert len(conn.writes) == 1


def test_a_pong_without_a_frame_to_ride_on_goes_alone_after_the_hold() -> None:
    clock = [100.0]
    hub = make_hub(1.0)
    conn = attached(hub, clock)
    hub.ping(conn, 1, 100.0)
    hub.flush_pongs(100.9)
    assert conn.writes == []
    hub.flush_pongs(101.0)
    [[pong]] = conn.writes
    assert pong["type"] == "pong" and pong["data"]["heldMs"] == 1000


def test_every_ping_gets_its_own_pong() -> None:
    clock = [100.0]
    hub = make_hub(1.0)
    conn = attached(hub, clock)
    hub.ping(conn, 1, 100.0)
    hub.ping(conn, 2, 100.4)  # the first one's pong goes out at once
    hub.flush_pongs(101.2)  # past the first ping's hold: it must not be answered twice
    hub.flush_pongs(101.4)
    pongs = [m["data"]["clientTime"] for write in conn.writes for m in write if m["type"] == "pong"]
    assert pongs == [1, 2]


def test_no_hold_answers_at_once_and_closed_connections_get_nothing() -> None:
    clock = [100.0]
    hub = make_hub(0.0)
    conn = attached(hub, clock)
    hub.ping(conn, 3, 100.0)
    assert [m["type"] for write in conn.writes for m in write] == ["pong"]
    held = make_hub(1.0)
    gone = attached(held, clock)
    held.ping(gone, 4, 100.0)
    gone.closed = True
    held.flush_pongs(200.0)
    assert gone.writes == []


async def test_a_broadcast_is_written_a_chunk_per_loop_turn_and_broadcasts_keep_their_order() -> None:
    from xiuxian_realtime.hub import FANOUT_CHUNK

    clock = [100.0]
    hub = make_hub(1.0)
    conns = []
    for uid in range(1, 2 * FANOUT_CHUNK + 100):
        conn = Recorder(hub, uid, clock)
        hub.attach(conn, None, None, None, None)
        conn.writes.clear()
        conns.append(conn)
    hub.broadcast("world:boss", {"n": 1})
    hub.broadcast("world:boss", {"n": 2})
    assert sum(1 for c in conns if c.writes) == FANOUT_CHUNK  # the rest waits for the next turns
    late = Recorder(hub, 99_999, clock)
    hub.attach(late, None, None, None, None)  # joins mid-way: its welcome covers both
    late.writes.clear()
    for _ in range(100):
        if all(len(c.writes) == 2 for c in conns):
            break
        await asyncio.sleep(0)
    for conn in conns:
        assert [w[0]["data"]["n"] for w in conn.writes] == [1, 2]
        assert [w[0]["bseq"] for w in conn.writes] == [1, 2]
    assert late.writes == []
