"""Spirit growth through the real API and WebSocket, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import signal
import time

import pytest

from conftest import (GAME_ENV, ServerProcess, async_wait_until, bearer, collect, heartbeat, pinger,
                      read_db, recv_json, recv_until, register_many, sqlite_only)

SPIRIT_FIELDS = {"userId", "oldSpirit", "newSpirit", "gainAmount", "spiritRate", "elapsedSeconds", "timestamp"}


def snapshot(server: ServerProcess, token: str) -> dict:
    r = server.get("/api/player/snapshot", headers=bearer(token))
    assert r.status_code == 200, r.text
    return r.json()


async def stored_spirit(server: ServerProcess, uid: int) -> float:
    row = await read_db(server.database_url, lambda db: db.spirit_of(uid))
    return row[0]


async def test_grows_once_a_second_with_the_original_fields(game_server: ServerProcess) -> None:
    sqlite_only(game_server)
    uid, token = game_server.register()
    async with game_server.connect(uid, token) as ws:
        async with heartbeat(ws):
            got = await collect(ws, 3.6, lambda m: m["type"] == "spirit:grow")
    assert len(got) >= 3
    for _, msg in got:
        data = msg["data"]
        assert set(data) == SPIRIT_FIELDS and msg["userId"] == data["userId"] == uid
        assert data["newSpirit"] > data["oldSpirit"]
        assert data["gainAmount"] == pytest.approx(data["newSpirit"] - data["oldSpirit"], abs=0.05)
        assert data["spiritRate"] == 1.0
        assert 0.5 <= data["elapsedSeconds"] <= 1.5
        for value in (data["oldSpirit"], data["newSpirit"], data["gainAmount"], data["elapsedSeconds"]):
            assert round(value, 1) == value
    for (t0, a), (t1, b) in zip(got, got[1:]):
        assert b["data"]["oldSpirit"] == a["data"]["newSpirit"]  # a continuous series
        assert 0.7 < t1 - t0 < 1.3  # about once a second


async def test_offline_time_not_counted_and_logout_settles(game_server: ServerProcess) -> None:
    uid, token = game_server.register()
    started = time.monotonic()  # the session starts with the request (its answer waits for a batch write)
    login = game_server.post("/api/online/login", {"playerId": str(uid)})
    assert login.status_code == 200
    await asyncio.sleep(1.5)
    assert game_server.post("/api/online/logout", {"playerId": str(uid)}).status_code == 200
    online_1 = time.monotonic() - started
    # Settled in the database by the time logout answered.
    first = await stored_spirit(game_server, uid)
    assert online_1 - 0.4 <= first <= online_1 + 0.1
    assert snapshot(game_server, token)["spirit"] == pytest.approx(first, abs=0.05)

    await asyncio.sleep(1.5)  # offline: nothing grows
    assert await stored_spirit(game_server, uid) == first
    assert snapshot(game_server, token)["spirit"] == pytest.approx(first, abs=0.05)

    started = time.monotonic()
    assert game_server.post("/api/online/login", {"playerId": str(uid)}).status_code == 200
    await asyncio.sleep(1.0)
    assert game_server.post("/api/online/logout", {"playerId": str(uid)}).status_code == 200
    online_2 = time.monotonic() - started
    second = await stored_spirit(game_server, uid)
    assert first + online_2 - 0.4 <= second <= first + online_2 + 0.1  # the 1.5 s offline never counted
    # A second logout is a 404 and settles nothing.
    assert game_server.post("/api/online/logout", {"playerId": str(uid)}).status_code == 404
    assert await stored_spirit(game_server, uid) == second


async def test_settled_in_batches_while_online(game_server: ServerProcess) -> None:
    uid, token = game_server.register()
    async with game_server.connect(uid, token) as ws:
        async with heartbeat(ws):
            # SPIRIT_SETTLE_INTERVAL_S=1: the row follows without any logout.
            async def settled() -> bool:
                return await stored_spirit(game_server, uid) >= 1.0
            await async_wait_until(settled, timeout=5, interval=0.2, message="batch settle")
            live = snapshot(game_server, token)["spirit"]
            assert live - 1.6 <= await stored_spirit(game_server, uid) <= live + 0.1


async def test_replay_merges_spirit_updates(game_server: ServerProcess) -> None:
    """A v2 client that was away gets one cumulative spirit:grow, not one per second."""
    uid, token = game_server.register()
    async with game_server.connect(uid, token) as keep:  # keeps the session online
        async with heartbeat(keep):
            async with game_server.connect(uid, token, v=2) as ws:
                welcome = await recv_json(ws)
                first = await recv_until(ws, lambda m: m["type"] == "spirit:grow", timeout=3)
            await asyncio.sleep(2.5)
            async with game_server.connect(uid, token, v=2, since=first["seq"],
                                           epoch=welcome["data"]["epoch"]) as ws:
                welcome2 = await recv_json(ws)
                assert welcome2["data"]["recovered"] is True
                replay = [m for _, m in await collect(ws, 0.3) if m["type"] == "spirit:grow"]
    assert replay, "missed spirit growth is replayed"
    merged = replay[0]
    assert merged["data"]["oldSpirit"] == first["data"]["newSpirit"]
    assert merged["data"]["elapsedSeconds"] >= 1.5  # several seconds in one update
    assert merged["seq"] > first["seq"] + 1  # the merged ones' numbers are skipped


def test_shutdown_flushes_and_crash_loses_at_most_the_interval(make_server, database_url: str) -> None:
    env = {**GAME_ENV, "DATABASE_URL": database_url}
    server = make_server(env)
    uid, token = server.register()
    started = time.monotonic()
    assert server.post("/api/online/login", {"playerId": str(uid)}).status_code == 200
    time.sleep(1.2)
    server.stop()  # SIGTERM: settles everyone, logs nobody out
    assert '"stopped"' in server.log()
    online = time.monotonic() - started
    stored = asyncio.run(read_db(database_url, lambda db: db.spirit_of(uid)))[0]
    assert online - 0.5 <= stored <= online + 0.1

    # A crash (SIGKILL) loses at most SPIRIT_SETTLE_INTERVAL_S (1 s here) plus a write.
    server = make_server(env)
    started = time.monotonic()
    assert server.post("/api/online/login", {"playerId": str(uid)}).status_code == 200
    time.sleep(2.5)
    server.stop(signal.SIGKILL)
    online = time.monotonic() - started
    after_crash = asyncio.run(read_db(database_url, lambda db: db.spirit_of(uid)))[0]
    assert stored + online - 1.6 <= after_crash <= stored + online + 0.1

    # Down time is never counted: a new login continues from the stored value.
    server = make_server(env)
    time.sleep(0.5)
    assert server.post("/api/online/login", {"playerId": str(uid)}).status_code == 200
    snap = server.get("/api/player/snapshot", headers=bearer(token)).json()
    assert after_crash <= snap["spirit"] <= after_crash + 0.5


async def test_pushes_are_spread_over_the_second(game_server: ServerProcess) -> None:
    sqlite_only(game_server)
    users = register_many(game_server, 10)
    conns = [await game_server.connect(uid, tok) for uid, tok in users]
    tasks = [asyncio.create_task(pinger(ws)) for ws in conns]
    try:
        await asyncio.sleep(1.2)
        results = await asyncio.gather(*(collect(ws, 2.0, lambda m: m["type"] == "spirit:grow") for ws in conns))
    finally:
        for task in tasks:
            task.cancel()
        for ws in conns:
            await ws.close()
    times = sorted(t for got in results for t, _ in got)
    assert len(times) >= 15
    start = times[0]
    buckets = {int(((t - start) % 1.0) / 0.05) for t in times}
    assert len(buckets) >= 6, f"pushes bunched into {sorted(buckets)}"
