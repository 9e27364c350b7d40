"""Online status over the original's REST API, the heartbeat timeout, shutdown, and logs."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import time


from conftest import API_KEY, JWT_SECRET, ServerProcess, async_wait_until, closed_with, recv_json


def _user_row(server: ServerProcess, uid: int) -> tuple[float, float]:
    with sqlite3.connect(server.data_dir / "xiuxian.db") as db:
        return db.execute("SELECT spirit, last_spirit_gain_time FROM users WHERE id = ?", (uid,)).fetchone()


def test_online_api_contract(server: ServerProcess) -> None:
    uid, _ = server.register()
    assert server.post("/api/online/heartbeat", {"playerId": str(uid)}).status_code == 404
    assert server.post("/api/online/logout", {"playerId": str(uid)}).status_code == 404
    assert server.get(f"/api/online/player/{uid}").status_code == 404
    assert server.post("/api/online/login", {"playerId": "999999"}).status_code == 400
    assert server.post("/api/online/login", {}).status_code == 400
    assert server.post("/api/online/login", {"playerId": "abc"}).status_code == 400

    r = server.post("/api/online/login", {"playerId": str(uid), "ip": "10.1.2.3"})
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"message", "playerId", "loginTime"} and body["playerId"] == str(uid)
    hb = server.post("/api/online/heartbeat", {"playerId": str(uid)})
    assert hb.status_code == 200 and set(hb.json()) == {"message", "playerId", "lastHeartbeat"}
    players = server.get("/api/online/players").json()["players"]
    mine = [p for p in players if p["playerId"] == str(uid)]
    assert mine and set(mine[0]) == {"playerId", "loginTime", "lastHeartbeat", "ip"} and mine[0]["ip"] == "10.1.2.3"
    record = server.get(f"/api/online/player/{uid}").json()
    assert record["status"] == "online" and record["loginTime"] == body["loginTime"]

    out = server.post("/api/online/logout", {"playerId": str(uid)})
    assert out.status_code == 200 and set(out.json()) == {"message", "playerId", "logoutTime"}
    # Exactly once: the second logout finds nobody.
    assert server.post("/api/online/logout", {"playerId": str(uid)}).status_code == 404
    record = server.get(f"/api/online/player/{uid}").json()
    assert record["status"] == "offline" and record["logoutTime"] == out.json()["logoutTime"]


def test_token_for_another_player_is_refused(server: ServerProcess) -> None:
    uid, token = server.register()
    other, _ = server.register()
    r = server.post("/api/online/login", {"playerId": str(other)}, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 403


def test_rest_session_without_heartbeat_times_out(server: ServerProcess) -> None:
    uid, _ = server.register()
    assert server.post("/api/online/login", {"playerId": str(uid)}).status_code == 200
    from conftest import wait_until
    wait_until(lambda: server.get(f"/api/online/player/{uid}").json()["status"] == "offline",
               timeout=6, message="REST session to expire")


def test_logout_settles_spirit_and_offline_time_does_not_count(server: ServerProcess) -> None:
    uid, _ = server.register()
    server.post("/api/online/login", {"playerId": str(uid)})
    login_spirit, login_clock = _user_row(server, uid)
    time.sleep(1.2)  # online time that must be credited
    server.post("/api/online/heartbeat", {"playerId": str(uid)})
    out = server.post("/api/online/logout", {"playerId": str(uid)}).json()
    spirit, clock = _user_row(server, uid)
    assert abs(clock * 1000 - out["logoutTime"]) < 50
    assert 1.0 <= spirit - login_spirit <= 2.5
    time.sleep(1.0)  # offline: must not count at the next login
    server.post("/api/online/login", {"playerId": str(uid)})
    server.post("/api/online/logout", {"playerId": str(uid)})
    spirit2, clock2 = _user_row(server, uid)
    assert clock2 > clock + 0.9
    assert spirit2 - spirit < 0.5  # only the instant between login and logout counted


async def test_heartbeat_timeout_at_the_real_ten_seconds(make_server) -> None:
    srv = make_server({"HEARTBEAT_TIMEOUT_S": "10"})
    uid, token = srv.register()
    async with srv.connect(uid, token, v=2) as ws:
        welcome = await recv_json(ws)
        assert welcome["data"]["heartbeatTimeout"] == 10_000
        await ws.send('{"type":"ping","timestamp":0}')
        last_ping = time.monotonic()
        assert await closed_with(ws, timeout=15) == 4000
        silence = time.monotonic() - last_ping
        assert 9.5 <= silence <= 11.5, silence
    await async_wait_until(lambda: srv.get(f"/api/online/player/{uid}").json()["status"] == "offline",
                           timeout=3, message="logout after the timeout")
    assert srv.stats()["logouts"] == 1


async def test_sigterm_closes_with_1001_without_logging_out(make_server) -> None:
    srv = make_server()
    uid, token = srv.register()
    async with srv.connect(uid, token) as ws:
        await ws.send('{"type":"ping","timestamp":0}')
        await async_wait_until(lambda: srv.get(f"/api/online/player/{uid}").status_code == 200)
        stopper = asyncio.get_running_loop().run_in_executor(None, srv.stop, signal.SIGTERM)
        assert await closed_with(ws, timeout=10) == 1001
        # uvicorn re-raises the signal after its graceful shutdown.
        assert await stopper in (0, -signal.SIGTERM)
    log = srv.log()
    assert '"msg":"stopped"' in log
    assert '"msg":"logout"' not in log
    _, clock = _user_row(srv, uid)
    assert clock > 0


async def test_no_secret_or_token_in_logs(make_server) -> None:
    srv = make_server({"LOG_LEVEL": "DEBUG"})
    uid, token = srv.register()
    srv.get(f"/ws?userId={uid}&token={token}")  # plain GET, goes through the access log
    async with srv.connect(uid, token) as ws:
        await ws.send('{"type":"ping","timestamp":0}')
        srv.publish(uid, "a:b", {})
        await ws.recv()
    async with srv.connect(uid, token + "x") as ws:
        assert await closed_with(ws) == 4100
    srv.post("/api/publish", {"userId": uid, "type": "a:b"}, headers={"X-API-Key": "wrong-key"})
    srv.stop()
    log = srv.log()
    assert "GET /ws" in log  # the access log ran at DEBUG
    for secret in (token, token.split(".")[2], JWT_SECRET, API_KEY, "wrong-key"):
        assert secret not in log


def test_generated_secrets_are_kept_and_never_logged(tmp_path) -> None:
    proc = ServerProcess(tmp_path / "gen")
    proc.env.pop("JWT_SECRET")
    proc.env.pop("API_KEY")
    proc.start()
    try:
        uid, token = proc.register()
    finally:
        proc.stop()
    secret = (tmp_path / "gen" / "jwt_secret").read_text().strip()
    assert len(secret) >= 32 and secret not in proc.log()
    assert "JWT_SECRET is not set" in proc.log()
    # Same secret after a restart: the token still works.
    proc.start()
    try:
        assert proc.post("/api/online/login", {"playerId": str(uid)},
                         headers={"Authorization": f"Bearer {token}"}).status_code == 200
    finally:
        proc.stop()
