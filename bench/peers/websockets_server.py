"""Peer server on the ``websockets`` library (its asyncio implementation), on uvloop.

The idiomatic way to write the benchmark job with websockets: one handler
coroutine per connection reading pings, one ticker that ``await``s
``send`` of each player's ``spirit:grow`` once a second spread over the
second, and ``process_request`` answering the plain HTTP GETs
``/publish?userId=..&sentAt=..&probeId=..`` and ``/health`` (websockets closes
such connections after the response).
"""

from __future__ import annotations

import json
import os
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import uvloop  # noqa: E402
from websockets.asyncio.server import ServerConnection, serve  # noqa: E402
from websockets.exceptions import ConnectionClosed  # noqa: E402
from websockets.http11 import Request, Response  # noqa: E402

from _common import GC_WATCH, SLOTS, Spirit, check_query, load_players, parse_args, probe_event, raise_nofile, spread_ticker  # noqa: E402

ARGS = parse_args(__doc__.split("\n")[0])
PLAYERS = load_players(ARGS.players)
CONNS: dict[int, ServerConnection] = {}
SLOT_LISTS: list[list[tuple[int, ServerConnection, Spirit]]] = [[] for _ in range(SLOTS)]
_counter = 0


async def process_request(connection: ServerConnection, request: Request) -> Response | None:
    """Plain HTTP routes; returning None lets the WebSocket upgrade proceed."""
    path, _, query = request.path.partition("?")
    if path == "/ws":
        _, _, err = check_query(query, PLAYERS)
        return connection.respond(400, err + "\n") if err else None
    if path == "/publish":
        q = urllib.parse.parse_qs(query)
        try:
            uid, sent_at, probe_id = int(q["userId"][0]), int(q["sentAt"][0]), int(q["probeId"][0])
        except (KeyError, ValueError):
            return connection.respond(400, "bad publish\n")
        ws = CONNS.get(uid)
        if ws is None:
            return connection.respond(404, "not connected\n")
        try:
            await ws.send(json.dumps(probe_event(uid, sent_at, probe_id)))
        except ConnectionClosed:
            return connection.respond(404, "not connected\n")
        return connection.respond(200, "ok\n")
    if path == "/health":
        return connection.respond(200, "ok\n")
    if path == "/stats":
        return connection.respond(200, json.dumps({"connections": len(CONNS), "gc": GC_WATCH.snapshot()}))
    return connection.respond(404, "not found\n")


async def handler(ws: ServerConnection) -> None:
    global _counter
    path, _, query = ws.request.path.partition("?")  # type: ignore[union-attr]
    uid, _, _ = check_query(query, PLAYERS)
    assert uid is not None  # checked in process_request
    entry = (uid, ws, Spirit())
    slot = _counter % SLOTS
    _counter += 1
    CONNS[uid] = ws
    SLOT_LISTS[slot].append(entry)
    try:
        async for message in ws:
            try:
                msg = json.loads(message)
            except ValueError:
                continue
            if isinstance(msg, dict) and msg.get("type") == "ping":
                pass  # heartbeat: the legacy protocol sends no reply
    except ConnectionClosed:
        pass
    finally:
        SLOT_LISTS[slot].remove(entry)
        if CONNS.get(uid) is ws:
            del CONNS[uid]


async def on_slot(slot: int) -> None:
    for uid, ws, spirit in list(SLOT_LISTS[slot]):
        try:
            await ws.send(json.dumps(spirit.grow(uid)))
        except ConnectionClosed:
            pass


async def main() -> None:
    raise_nofile()
    async with serve(handler, ARGS.host, ARGS.port, process_request=process_request,
                     ping_interval=None, compression=None, max_size=4096, backlog=4096):
        print(f"websockets peer listening on {ARGS.host}:{ARGS.port}", flush=True)
        await spread_ticker(on_slot, ARGS.gc_freeze)


if __name__ == "__main__":
    uvloop.run(main())
