"""The gateway over real sockets: /ws, the hub, limits, heartbeat, the HTTP contract."""

from __future__ import annotations

import asyncio
import socket
import time

import orjson
import pytest
import websockets

from conftest import (API_KEY, ServerProcess, async_wait_until, closed_with, heartbeat, recv_json,
                      recv_until)

ORIGINAL_TYPES = {"spirit:grow", "dungeon:event", "exploration:event", "leaderboard:update"}


# -- HTTP contract ---------------------------------------------------------------------------


def test_register_and_login(server: ServerProcess) -> None:
    r = server.post("/api/auth/register", {"username": "lin", "password": "pw1"})
    assert r.status_code == 201
    body = r.json()
    assert set(body) == {"id", "username", "token"} and body["username"] == "lin"
    assert server.post("/api/auth/register", {"username": "lin", "password": "x"}).status_code == 400
    ok = server.post("/api/auth/login", {"username": "lin", "password": "pw1"})
    assert ok.status_code == 200 and ok.json()["id"] == body["id"]
    bad = server.post("/api/auth/login", {"username": "lin", "password": "nope"})
    assert bad.status_code == 400 and "error" in bad.json()
    assert server.post("/api/auth/login", {"username": "ghost", "password": "x"}).status_code == 400


@pytest.mark.parametrize("body", [None, {}, {"username": "x"}, {"username": "", "password": "p"}, [1]])
def test_bad_bodies_get_400_json(server: ServerProcess, body: object) -> None:
    r = server.post("/api/auth/register", body)
    assert r.status_code == 400
    assert isinstance(r.json()["error"], str)


def test_bad_json_gets_400(server: ServerProcess) -> None:
    r = server.post("/api/auth/login", content=b"{nope", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "error" in r.json()


@pytest.mark.parametrize("query", ["", "?userId=1", "?token=x", "?userId=abc&token=x"])
def test_ws_bad_params_are_http_400(server: ServerProcess, query: str) -> None:
    # Both as a plain GET and as a real upgrade request.
    r = server.get(f"/ws{query}")
    assert r.status_code == 400 and "error" in r.json()
    r = server.get(f"/ws{query}", headers={"Connection": "Upgrade", "Upgrade": "websocket",
                                           "Sec-WebSocket-Version": "13",
                                           "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert r.status_code == 400 and "error" in orjson.loads(r.content)


def test_ws_without_upgrade_is_426(server: ServerProcess) -> None:
    assert server.get("/ws?userId=1&token=x").status_code == 426


def _upgrade_head(uid: int, token: str, path: str = "/ws") -> bytes:
    return (f"GET {path}?userId={uid}&token={token} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "upgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").encode()


def _read_head(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def test_upgrade_head_in_pieces_and_after_http_on_the_same_socket(server: ServerProcess) -> None:
    """The front reads a head that arrives a few bytes at a time; an upgrade after a plain
    request on a kept-alive socket goes through uvicorn's hand-over instead."""
    uid, token = server.register()
    head = _upgrade_head(uid, token)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for cut in (3, 9, 40, len(head)):
            sock.sendall(head[:cut])
            head = head[cut:]
            time.sleep(0.02)  # separate segments, not a wait for a result
        assert _read_head(sock).startswith(b"HTTP/1.1 101")
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        first = _read_head(sock)
        assert first.startswith(b"HTTP/1.1 200")
        length = int(next(line.split(b":")[1] for line in first.split(b"\r\n")
                          if line.lower().startswith(b"content-length")))
        rest = first.split(b"\r\n\r\n", 1)[1]
        while len(rest) < length:
            rest += sock.recv(4096)
        sock.sendall(_upgrade_head(uid, token))
        assert _read_head(sock).startswith(b"HTTP/1.1 101")


def test_stats_and_health(server: ServerProcess) -> None:
    stats = server.stats()
    for key in ("onlineCount", "timestamp", "connections", "users", "messagesIn", "messagesOut",
                "slowConsumerDisconnects", "policyDisconnects", "uptime"):
        assert key in stats
    assert server.get("/health").json()["status"] == "ok"
    metrics = server.get("/metrics").text
    assert "xiuxian_ws_connections" in metrics and "xiuxian_ws_slow_disconnects_total" in metrics


# -- legacy and v2 ------------------------------------------------------------------------------


async def test_original_client_sees_only_the_original_envelope(server: ServerProcess) -> None:
    """Behaves as the original websocket.js: legacy URL, a ping each second, four types."""
    uid, token = server.register()
    async with server.connect(uid, token) as ws:
        received: list[dict] = []

        async def original_pings() -> None:
            while True:
                await ws.send(orjson.dumps({"type": "ping", "timestamp": int(time.time() * 1000)}).decode())
                await asyncio.sleep(1)

        task = asyncio.create_task(original_pings())
        try:
            await async_wait_until(lambda: server.stats()["onlineCount"] >= 1, message="online")
            assert server.publish(uid, "dungeon:event", {"eventType": "start"}).status_code == 200
            msg = await recv_json(ws)
            received.append(msg)
            # 2.5 s of pings: the original server never answers them, neither do we.
            with pytest.raises(asyncio.TimeoutError):
                received.append(await recv_json(ws, timeout=2.5))
        finally:
            task.cancel()
    assert msg == {"type": "dungeon:event", "userId": uid, "timestamp": msg["timestamp"],
                   "data": {"eventType": "start"}}
    assert all(m["type"] in ORIGINAL_TYPES for m in received)
    assert abs(msg["timestamp"] - time.time()) < 5


async def test_v2_gets_welcome_and_pongs(server: ServerProcess) -> None:
    uid, token = server.register()
    async with server.connect(uid, token, v=2) as ws:
        welcome = await recv_json(ws)
        assert welcome["type"] == "welcome"
        data = welcome["data"]
        assert data["heartbeatInterval"] == 1000 and data["heartbeatTimeout"] == 2000
        assert data["recovered"] is False and data["seq"] == 0 and data["connectionId"]
        await ws.send('{"type":"ping","timestamp":777}')
        pong = await recv_json(ws)
        assert pong["type"] == "pong" and pong["data"]["clientTime"] == 777
        assert abs(pong["data"]["serverTime"] - time.time() * 1000) < 5000
        assert 0 <= pong["data"]["heldMs"] <= 1200
        server.publish(uid, "quest:done", {"q": 1})
        event = await recv_json(ws)
        assert event["type"] == "quest:done" and event["seq"] > data["seq"]


async def test_v2_pong_rides_on_the_next_frame(server: ServerProcess) -> None:
    """Written together with the frame that follows the ping, in the same send call."""
    uid, token = server.register()
    async with server.connect(uid, token, v=2) as ws:
        assert (await recv_json(ws))["type"] == "welcome"
        for attempt in range(3):
            await ws.send(f'{{"type":"ping","timestamp":{attempt}}}')
            server.publish(uid, "quest:done", {"q": attempt})
            before: list[dict] = []
            while True:
                msg = orjson.loads(await asyncio.wait_for(ws.recv(), 3))
                if msg["type"] == "pong":
                    break
                before.append(msg)
            assert msg["data"]["clientTime"] == attempt
            # It waited for a frame (the publish, or a spirit push that came first), not for the flush.
            assert before and msg["data"]["heldMs"] < 1000, (before, msg)


async def test_frames_of_every_size_arrive_whole_and_in_order(server: ServerProcess) -> None:
    """Small frames go through picows, large ones (over PICOWS_COPY_MAX) are framed by us."""
    uid, token = server.register()
    sizes = [10, 125, 126, 990, 1010, 5000, 20000, 300]
    async with server.connect(uid, token, v=2) as ws:
        assert (await recv_json(ws))["type"] == "welcome"
        for i, size in enumerate(sizes):
            assert server.publish(uid, "test:size", {"i": i, "text": "x" * size}).status_code == 200
        got = [await recv_until(ws, lambda m: m["type"] == "test:size") for _ in sizes]
    assert [(m["data"]["i"], len(m["data"]["text"])) for m in got] == list(enumerate(sizes))


# -- who may connect --------------------------------------------------------------------------


async def test_forged_token_is_closed_4100(server: ServerProcess) -> None:
    uid, token = server.register()
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    async with server.connect(uid, forged) as ws:
        assert await closed_with(ws) == 4100
    import jwt
    other_secret = jwt.encode({"id": uid, "exp": int(time.time()) + 60}, "x" * 40, algorithm="HS256")
    async with server.connect(uid, other_secret) as ws:
        assert await closed_with(ws) == 4100
    expired = jwt.encode({"id": uid, "exp": int(time.time()) - 10}, "test-secret-0123456789abcdef0123456789abcdef",
                         algorithm="HS256")
    async with server.connect(uid, expired) as ws:
        assert await closed_with(ws) == 4100


async def test_token_of_another_user_is_closed_4101(server: ServerProcess) -> None:
    uid, token = server.register()
    other, _ = server.register()
    async with server.connect(other, token) as ws:
        assert await closed_with(ws) == 4101


async def test_foreign_origin_is_closed_4102(server: ServerProcess) -> None:
    uid, token = server.register()
    url = server.ws_url(uid, token)
    async with websockets.connect(url, origin="https://evil.example") as ws:
        assert await closed_with(ws) == 4102
    async with websockets.connect(url, origin=f"http://127.0.0.1:{server.port}") as ws:
        server.publish(uid, "x:y", {})
        assert (await recv_json(ws))["type"] == "x:y"


# -- the hub ---------------------------------------------------------------------------------


async def test_two_tabs_each_receive_everything(server: ServerProcess) -> None:
    uid, token = server.register()
    async with server.connect(uid, token) as a, server.connect(uid, token, v=2) as b:
        await recv_json(b)  # welcome
        await async_wait_until(lambda: server.stats()["connections"] >= 2)
        for i in range(5):
            server.publish(uid, "test:n", {"i": i})
        got_a = [(await recv_json(a))["data"]["i"] for _ in range(5)]
        got_b = [(await recv_json(b))["data"]["i"] for _ in range(5)]
        assert got_a == got_b == list(range(5))


async def test_connection_cap_closes_the_oldest_4103(server: ServerProcess) -> None:
    uid, token = server.register()
    conns = [await server.connect(uid, token) for _ in range(5)]
    try:
        sixth = await server.connect(uid, token)
        assert await closed_with(conns[0]) == 4103
        server.publish(uid, "test:after", {})
        for ws in [*conns[1:], sixth]:
            assert (await recv_json(ws))["type"] == "test:after"
        await sixth.close()
    finally:
        for ws in conns:
            await ws.close()


async def test_broadcast_reaches_everyone(server: ServerProcess) -> None:
    users = [server.register() for _ in range(3)]
    conns = [await server.connect(uid, tok, v=2) for uid, tok in users]
    try:
        for ws in conns:
            await recv_json(ws)
        r = server.post("/api/broadcast", {"type": "world:boss", "data": {"hp": 9}}, headers={"X-API-Key": API_KEY})
        assert r.status_code == 200
        for ws in conns:
            msg = await recv_json(ws)
            assert msg["type"] == "world:boss" and msg["userId"] == 0 and msg["bseq"] >= 1
    finally:
        for ws in conns:
            await ws.close()


# -- bad input ---------------------------------------------------------------------------------


async def test_junk_text_is_ignored_and_counted(server: ServerProcess) -> None:
    uid, token = server.register()
    before = server.stats()["badFrames"]
    async with server.connect(uid, token, v=2) as ws:
        await recv_json(ws)
        for junk in ("hello", "[1]", '{"type":"dance"}', "{"):
            await ws.send(junk)
        await ws.send('{"type":"ping","timestamp":1}')
        assert (await recv_json(ws))["type"] == "pong"  # still open, still served
    assert server.stats()["badFrames"] >= before + 4


async def test_binary_frame_closed_4105(server: ServerProcess) -> None:
    uid, token = server.register()
    async with server.connect(uid, token) as ws:
        await ws.send(b"\x00\x01")
        assert await closed_with(ws) == 4105


async def test_oversized_frame_closed_4104(server: ServerProcess) -> None:
    uid, token = server.register()
    async with server.connect(uid, token) as ws:
        await ws.send('{"type":"ping","pad":"' + "x" * 5000 + '"}')
        assert await closed_with(ws) == 4104


async def test_flood_closed_4106_and_others_unaffected(server: ServerProcess) -> None:
    uid, token = server.register()
    bystander, btoken = server.register()
    async with server.connect(uid, token) as ws, server.connect(bystander, btoken, v=2) as calm:
        await recv_json(calm)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            for _ in range(200):
                await ws.send('{"type":"ping","timestamp":1}')
            await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4106
        await calm.send('{"type":"ping","timestamp":2}')
        assert (await recv_json(calm))["type"] == "pong"


async def test_publish_api_guards(server: ServerProcess) -> None:
    uid, _ = server.register()
    assert server.post("/api/publish", {"userId": uid, "type": "a:b", "data": {}}).status_code == 401
    wrong = server.post("/api/publish", {"userId": uid, "type": "a:b", "data": {}}, headers={"X-API-Key": "nope"})
    assert wrong.status_code == 401
    for bad_type in ("Bad", "a:b:c", "welcome", "", "pong"):
        assert server.publish(uid, bad_type, {}).status_code == 400
    huge = server.publish(uid, "a:b", {"blob": "x" * 70_000})
    assert huge.status_code == 413 and "error" in huge.json()
    assert server.post("/api/publish", {"userId": "x", "type": "a:b"}, headers={"X-API-Key": API_KEY}).status_code == 400
    not_json = server.post("/api/publish", content=b"{nope", headers={"X-API-Key": API_KEY})
    assert not_json.status_code == 400 and "invalid body" in not_json.json()["error"]
    wrong_method = server.get("/api/publish", headers={"X-API-Key": API_KEY})
    assert wrong_method.status_code == 405 and "error" in wrong_method.json()

    def chunks():  # no Content-Length: the limit is enforced while reading
        for _ in range(40):
            yield b"x" * 4096

    streamed = server.post("/api/publish", content=chunks(), headers={"X-API-Key": API_KEY})
    assert streamed.status_code == 413 and "error" in streamed.json()
    assert server.publish(uid, "guild:chat", {"text": "hi"}).status_code == 200


def _raw_upgrade(server: ServerProcess, uid: int, token: str) -> socket.socket:
    """A client that completes the handshake and then never reads: a stuck browser tab."""
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall((f"GET /ws?userId={uid}&token={token}&v=2 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").encode())
    assert b"101" in sock.recv(12)
    return sock


def test_slow_consumer_is_disconnected_4001(make_server) -> None:
    server = make_server({"HEARTBEAT_TIMEOUT_S": "30"})
    uid, token = server.register()
    sock = _raw_upgrade(server, uid, token)
    try:
        blob = "x" * 60_000
        for i in range(400):
            assert server.publish(uid, "test:blob", {"i": i, "b": blob}).status_code == 200
            if server.stats()["slowConsumerDisconnects"]:
                break
        assert server.stats()["slowConsumerDisconnects"] == 1
        assert server.stats()["connections"] == 0
        # What was queued is still delivered, and the last frame says why it ended.
        sock.settimeout(10)
        data = bytearray()
        while chunk := sock.recv(1 << 20):
            data += chunk
        assert b"\x0f\xa1slow consumer" in data[-100:]
        received = [int(m) for m in __import__("re").findall(rb'"i":(\d+)', data)]
        assert received == list(range(len(received)))  # in order, nothing skipped
    finally:
        sock.close()


# -- heartbeat and logout ----------------------------------------------------------------------


async def test_silent_connection_closed_4000_and_user_logged_out(server: ServerProcess) -> None:
    uid, token = server.register()
    async with server.connect(uid, token, v=2) as ws:
        await recv_json(ws)
        await async_wait_until(lambda: server.get(f"/api/online/player/{uid}").status_code == 200)
        started = time.monotonic()
        assert await closed_with(ws, timeout=6) == 4000
        assert 1.5 < time.monotonic() - started < 4.5
    await async_wait_until(lambda: server.get(f"/api/online/player/{uid}").json().get("status") == "offline",
                           message="offline after timeout")
    record = server.get(f"/api/online/player/{uid}").json()
    assert record["logoutTime"] > 0
    assert str(uid) not in [p["playerId"] for p in server.get("/api/online/players").json()["players"]]


async def test_no_logout_while_another_tab_is_alive(server: ServerProcess) -> None:
    uid, token = server.register()
    async with server.connect(uid, token) as silent, server.connect(uid, token, v=2) as alive:
        await recv_json(alive)

        async with heartbeat(alive):
            assert await closed_with(silent, timeout=6) == 4000
            await asyncio.sleep(1.5)  # past the timeout once more: still no logout
            assert server.get(f"/api/online/player/{uid}").json()["status"] == "online"


async def test_reload_within_timeout_keeps_the_session(server: ServerProcess) -> None:
    uid, token = server.register()
    async with server.connect(uid, token) as ws:
        await ws.send('{"type":"ping","timestamp":0}')
        await async_wait_until(lambda: server.get(f"/api/online/player/{uid}").status_code == 200)
    login_time = server.get(f"/api/online/player/{uid}").json()["loginTime"]
    async with server.connect(uid, token) as ws:
        await ws.send('{"type":"ping","timestamp":0}')
        await asyncio.sleep(0.3)
        record = server.get(f"/api/online/player/{uid}").json()
        assert record["status"] == "online" and record["loginTime"] == login_time
