"""Peer server on picows + uvloop: the fastest Python WebSocket stack we know.

Does the benchmark job and nothing else: accept ``/ws?userId=..&token=..``,
push one ``spirit:grow`` per player per second spread over the second, deliver
probes published with ``GET /publish?userId=..&sentAt=..&probeId=..``. picows
only accepts body-less GETs, hence GET for publishing; it answers such plain
HTTP requests with ``Connection: close``. ``GET /health`` is the readiness probe.
With ``&v=2`` it also sends a ``welcome``, a ``pong`` per ping and ``seq``
numbers, so the load generator's v2 path can be exercised without our server.
"""

from __future__ import annotations

import os
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import orjson  # noqa: E402
import uvloop  # noqa: E402
from picows import (  # noqa: E402
    WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest, WSUpgradeResponse,
    WSUpgradeResponseWithListener, ws_create_server,
)

from _common import GC_WATCH, SLOTS, Spirit, check_query, load_players, parse_args, probe_event, raise_nofile, spread_ticker  # noqa: E402

ARGS = parse_args(__doc__.split("\n")[0])
PLAYERS = load_players(ARGS.players)
CONNS: dict[int, "Conn"] = {}
SLOT_LISTS: list[list["Conn"]] = [[] for _ in range(SLOTS)]
_counter = 0


class Conn(WSListener):
    __slots__ = ("user_id", "v2", "slot", "transport", "spirit", "seq", "last_ping")

    def __init__(self, user_id: int, v2: bool) -> None:
        global _counter
        self.user_id = user_id
        self.v2 = v2
        self.slot = _counter % SLOTS
        _counter += 1
        self.transport: WSTransport | None = None
        self.spirit = Spirit()
        self.seq = 0
        self.last_ping = time.monotonic()

    def send_event(self, event: dict) -> None:
        if self.v2:
            self.seq += 1
            event["seq"] = self.seq
        self.transport.send(WSMsgType.TEXT, orjson.dumps(event))  # type: ignore[union-attr]

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        old = CONNS.get(self.user_id)
        if old is not None and old.transport is not None:
            old.transport.disconnect()
        CONNS[self.user_id] = self
        SLOT_LISTS[self.slot].append(self)
        if self.v2:
            now = time.time()
            transport.send(WSMsgType.TEXT, orjson.dumps({
                "type": "welcome", "userId": self.user_id, "timestamp": int(now),
                "data": {"serverTime": int(now * 1000), "heartbeatInterval": 1000, "heartbeatTimeout": 10000,
                         "epoch": "peer", "seq": 0, "bseq": 0, "recovered": False}}))

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is WSMsgType.TEXT:
            try:
                msg = orjson.loads(frame.get_payload_as_bytes())
            except orjson.JSONDecodeError:
                return
            if isinstance(msg, dict) and msg.get("type") == "ping":
                self.last_ping = time.monotonic()
                if self.v2:
                    now = time.time()
                    transport.send(WSMsgType.TEXT, orjson.dumps({
                        "type": "pong", "userId": self.user_id, "timestamp": int(now),
                        "data": {"serverTime": int(now * 1000), "clientTime": msg.get("timestamp")}}))
        elif frame.msg_type is WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if CONNS.get(self.user_id) is self:
            del CONNS[self.user_id]
        try:
            SLOT_LISTS[self.slot].remove(self)
        except ValueError:
            pass


def text(status: int, body: bytes) -> WSUpgradeResponseWithListener:
    if status == 200:
        resp = WSUpgradeResponse.create_ok_response(body)
    else:
        resp = WSUpgradeResponse.create_error_response(status, body)
    return WSUpgradeResponseWithListener(resp, None)


def route(request: WSUpgradeRequest):
    """Listener factory doubling as the HTTP router (picows' only hook)."""
    path, _, query = request.path.decode("latin-1").partition("?")
    if path == "/ws":
        uid, v2, err = check_query(query, PLAYERS)
        if err:
            return text(400, orjson.dumps({"error": err}))
        return Conn(uid, v2)  # type: ignore[arg-type]
    if path == "/publish":
        q = urllib.parse.parse_qs(query)
        try:
            uid = int(q["userId"][0])
            sent_at = int(q["sentAt"][0])
            probe_id = int(q["probeId"][0])
        except (KeyError, ValueError):
            return text(400, b"bad publish")
        conn = CONNS.get(uid)
        if conn is None:
            return text(404, b"not connected")
        conn.send_event(probe_event(uid, sent_at, probe_id))
        return text(200, b"ok")
    if path == "/health":
        return text(200, b"ok")
    if path == "/stats":
        return text(200, orjson.dumps({"connections": len(CONNS), "gc": GC_WATCH.snapshot()}))
    return None  # 404


def on_slot(slot: int) -> None:
    for conn in SLOT_LISTS[slot]:
        conn.send_event(conn.spirit.grow(conn.user_id))


async def main() -> None:
    raise_nofile()
    server = await ws_create_server(route, ARGS.host, ARGS.port, backlog=4096, websocket_handshake_timeout=10)
    print(f"picows peer listening on {ARGS.host}:{ARGS.port}", flush=True)
    async with server:
        await spread_ticker(on_slot, ARGS.gc_freeze)


if __name__ == "__main__":
    uvloop.run(main())
