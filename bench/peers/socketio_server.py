"""Peer server on python-socketio (aiohttp mode, uvloop).

The idiomatic socket.io version of the benchmark job: players connect with
``/socket.io/?EIO=4&transport=websocket&userId=..&token=..``, receive
``spirit:grow`` via ``sio.emit(..., to=sid)`` once a second spread over the
second, send ``ping`` events; probes arrive as ``POST /publish`` with JSON
``{"userId", "type", "data": {"sentAt", "probeId"}}`` and are emitted to the
player. ``GET /health`` is the readiness probe.
"""

from __future__ import annotations

import asyncio
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import socketio  # noqa: E402
import uvloop  # noqa: E402
from aiohttp import web  # noqa: E402

from _common import GC_WATCH, SLOTS, Spirit, check_query, load_players, parse_args, probe_event, raise_nofile, spread_ticker  # noqa: E402

ARGS = parse_args(__doc__.split("\n")[0])
PLAYERS = load_players(ARGS.players)
# Engine.io's own heartbeat stays at its defaults (25 s interval), as deployed.
sio = socketio.AsyncServer(async_mode="aiohttp", cors_allowed_origins="*", transports=["websocket"])
app = web.Application()
sio.attach(app)
SIDS: dict[int, str] = {}  # userId -> sid
SLOT_LISTS: list[dict[str, tuple[int, Spirit]]] = [{} for _ in range(SLOTS)]
SLOT_OF: dict[str, int] = {}
_counter = 0


@sio.event
async def connect(sid: str, environ: dict, auth: object = None) -> bool:
    global _counter
    uid, _, err = check_query(environ.get("QUERY_STRING", ""), PLAYERS)
    if err:
        return False
    slot = _counter % SLOTS
    _counter += 1
    SIDS[uid] = sid  # type: ignore[index]
    SLOT_OF[sid] = slot
    SLOT_LISTS[slot][sid] = (uid, Spirit())  # type: ignore[assignment]
    return True


@sio.event
async def disconnect(sid: str, reason: object = None) -> None:
    slot = SLOT_OF.pop(sid, None)
    if slot is not None:
        uid, _ = SLOT_LISTS[slot].pop(sid)
        if SIDS.get(uid) == sid:
            del SIDS[uid]


@sio.on("ping")
async def on_ping(sid: str, data: object) -> None:
    pass  # heartbeat only


async def publish(request: web.Request) -> web.Response:
    body = await request.json()
    uid = int(body["userId"])
    sid = SIDS.get(uid)
    if sid is None:
        return web.json_response({"error": "not connected"}, status=404)
    data = body.get("data") or {}
    await sio.emit("bench:probe", probe_event(uid, int(data["sentAt"]), int(data["probeId"])), to=sid)
    return web.json_response({"ok": True})


async def health(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def stats(request: web.Request) -> web.Response:
    return web.json_response({"connections": len(SIDS), "gc": GC_WATCH.snapshot()})


async def on_slot(slot: int) -> None:
    for sid, (uid, spirit) in list(SLOT_LISTS[slot].items()):
        await sio.emit("spirit:grow", spirit.grow(uid), to=sid)


async def start_ticker(app: web.Application) -> None:
    app["ticker"] = asyncio.ensure_future(spread_ticker(on_slot, ARGS.gc_freeze))


app.router.add_post("/publish", publish)
app.router.add_get("/health", health)
app.router.add_get("/stats", stats)
app.on_startup.append(start_ticker)

if __name__ == "__main__":
    raise_nofile()
    uvloop.install()
    print(f"socketio peer listening on {ARGS.host}:{ARGS.port}", flush=True)
    web.run_app(app, host=ARGS.host, port=ARGS.port, backlog=4096, print=None, access_log=None)
