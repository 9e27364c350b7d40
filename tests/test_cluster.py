"""Several nodes on one real redis-server: routing, presence, shared history, faults."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from conftest import (API_KEY, GAME_ENV, RedisServer, ServerProcess, async_wait_until, bearer, closed_with,
                      heartbeat, recv_json, recv_until)


def _nodes(make_server, redis_server: RedisServer, tmp_path: Path, count: int = 2,
           env: dict[str, str] | None = None) -> list[ServerProcess]:
    """Nodes sharing one Redis and one database (a SQLite file)."""
    db = tmp_path / "shared.db"
    common = {"REDIS_URL": redis_server.url, "DATABASE_URL": f"sqlite+aiosqlite:///{db}",
              "HEARTBEAT_TIMEOUT_S": "3", **(env or {})}
    return [make_server(common, data_dir=tmp_path / f"node{i}") for i in range(count)]


async def test_user_on_a_receives_what_b_publishes(make_server, redis_server, tmp_path) -> None:
    a, b = _nodes(make_server, redis_server, tmp_path)
    uid, token = a.register()
    async with a.connect(uid, token, v=2) as ws:
        welcome = await recv_json(ws)
        assert welcome["type"] == "welcome"
        for i in range(5):
            r = b.publish(uid, "test:n", {"i": i})
            assert r.status_code == 200, r.text
        got = [await recv_json(ws) for _ in range(5)]
        assert [m["data"]["i"] for m in got] == list(range(5))
        seqs = [m["seq"] for m in got]
        # Strictly increasing (leaderboard refreshes of the game take positions in between).
        assert seqs[0] > welcome["data"]["seq"] and seqs == sorted(set(seqs))
    health = b.get("/health").json()
    assert health["status"] == "ok" and health["broker"] == "redis"


async def test_broadcast_reaches_every_node_once(make_server, redis_server, tmp_path) -> None:
    a, b = _nodes(make_server, redis_server, tmp_path)
    (u1, t1), (u2, t2) = a.register(), a.register()
    async with a.connect(u1, t1) as on_a, b.connect(u2, t2) as on_b:
        await async_wait_until(lambda: a.stats()["connections"] == 1 and b.stats()["connections"] == 1)
        await asyncio.sleep(0.2)  # subscriptions are made within 50 ms
        r = a.post("/api/broadcast", {"type": "world:boss", "data": {"hp": 1}}, headers={"X-API-Key": API_KEY})
        assert r.status_code == 200
        assert (await recv_json(on_a))["type"] == "world:boss"
        assert (await recv_json(on_b))["type"] == "world:boss"
        with pytest.raises(asyncio.TimeoutError):
            await recv_json(on_a, timeout=0.5)


def test_presence_uses_the_original_keys(make_server, redis_server, tmp_path) -> None:
    a, b = _nodes(make_server, redis_server, tmp_path)
    uid, _ = a.register()
    r = redis_server.client()
    assert a.post("/api/online/login", {"playerId": str(uid), "ip": "1.2.3.4"}).status_code == 200
    assert str(uid) in r.smembers("server:online:players")
    record = r.hgetall(f"player:online:{uid}")
    assert record["status"] == "online" and record["ip"] == "1.2.3.4" and record["playerId"] == str(uid)
    assert 0 < r.ttl(f"player:online:{uid}") <= 15
    # Any node sees it, any node can log it out, once.
    assert b.get(f"/api/online/player/{uid}").json()["status"] == "online"
    assert b.post("/api/online/logout", {"playerId": str(uid)}).status_code == 200
    assert a.post("/api/online/logout", {"playerId": str(uid)}).status_code == 404
    record = r.hgetall(f"player:online:{uid}")
    assert record["status"] == "offline" and int(record["logoutTime"]) > 0
    assert str(uid) not in r.smembers("server:online:players")


async def test_move_between_nodes_resumes_without_gap(make_server, redis_server, tmp_path) -> None:
    a, b = _nodes(make_server, redis_server, tmp_path)
    uid, token = a.register()
    async with a.connect(uid, token, v=2) as ws:
        welcome = (await recv_json(ws))["data"]
        for i in range(3):
            a.publish(uid, "test:n", {"i": i})
        got = [await recv_json(ws) for _ in range(3)]
    for i in range(3, 8):  # while moving
        (a if i % 2 else b).publish(uid, "test:n", {"i": i})
    async with b.connect(uid, token, v=2, since=got[-1]["seq"], epoch=welcome["epoch"]) as ws:
        again = (await recv_json(ws))["data"]
        assert again["recovered"] is True and again["epoch"] == welcome["epoch"]
        got += [await recv_json(ws) for _ in range(5)]
        a.publish(uid, "test:n", {"i": 8})
        got.append(await recv_json(ws))
    assert [m["data"]["i"] for m in got] == list(range(9))
    seqs = [m["seq"] for m in got]
    assert seqs == sorted(set(seqs))


async def test_dead_node_users_are_logged_out_once_by_a_survivor(make_server, redis_server, tmp_path) -> None:
    a, b = _nodes(make_server, redis_server, tmp_path)
    uid, token = a.register()
    async with a.connect(uid, token) as ws:
        await ws.send('{"type":"ping","timestamp":0}')
        await async_wait_until(lambda: b.get(f"/api/online/player/{uid}").status_code == 200)
        a.stop(signal.SIGKILL)
        killed_at = time.monotonic()
    await async_wait_until(lambda: b.get(f"/api/online/player/{uid}").json().get("status") == "offline",
                           timeout=10, message="survivor to log the user out")
    assert time.monotonic() - killed_at < 3 + 3
    assert b.stats()["logouts"] == 1
    with sqlite3.connect(tmp_path / "shared.db") as db:
        (clock,) = db.execute("SELECT last_spirit_gain_time FROM users WHERE id=?", (uid,)).fetchone()
    assert clock > time.time() - 10  # settled by the survivor


async def test_no_logout_while_connected_on_another_node(make_server, redis_server, tmp_path) -> None:
    a, b = _nodes(make_server, redis_server, tmp_path)
    uid, token = a.register()
    async with a.connect(uid, token) as silent, b.connect(uid, token, v=2) as alive:
        await recv_json(alive)

        async with heartbeat(alive):
            assert await closed_with(silent, timeout=8) == 4000
            await asyncio.sleep(4)  # well past the timeout after A closed its connection
            assert a.get(f"/api/online/player/{uid}").json()["status"] == "online"
            assert a.stats()["logouts"] == 0 and b.stats()["logouts"] == 0


async def test_redis_restart_mid_stream(make_server, redis_server, tmp_path) -> None:
    a, b = _nodes(make_server, redis_server, tmp_path)
    uid, token = a.register()
    async with a.connect(uid, token, v=2) as ws:
        await recv_json(ws)

        async with heartbeat(ws):
            b.publish(uid, "test:n", {"i": 0})
            assert (await recv_json(ws))["data"]["i"] == 0
            redis_server.kill()

            async def status_of_publish(i: int) -> int:
                # In a thread: the pinger must keep running while HTTP calls wait.
                return (await asyncio.to_thread(b.publish, uid, "test:n", {"i": i})).status_code

            async def health(node: ServerProcess) -> str:
                return (await asyncio.to_thread(node.get, "/health")).json()["status"]

            # Publishing is refused, not lost silently; the node reports itself degraded.
            await async_wait_until(lambda: _eq(status_of_publish(-1), 503), message="publish refused")
            await async_wait_until(lambda: _eq(health(a), "degraded"), message="degraded health")
            redis_server.start()  # same port, empty data
            await async_wait_until(lambda: _eq(status_of_publish(1), 200), timeout=15,
                                   message="publish accepted again")
            msg = await recv_json(ws, timeout=10)
            while msg["type"] != "test:n":
                assert msg["type"] in ("resync", "pong"), msg
                msg = await recv_json(ws, timeout=10)
            assert msg["data"]["i"] == 1
            await async_wait_until(lambda: _eq(health(a), "ok"), timeout=10, message="healthy again")
            # Presence was rebuilt by the nodes themselves.
            await async_wait_until(lambda: str(uid) in redis_server.client().smembers("server:online:players"),
                                   timeout=5, message="presence rebuilt")


async def test_leaderboards_are_shared_through_redis(make_server, redis_server, tmp_path) -> None:
    a, b = _nodes(make_server, redis_server, tmp_path,
                  env={"LEADERBOARD_CHECK_INTERVAL_S": "0.5", "LEADERBOARD_SYNC_INTERVAL_S": "1"})
    uid, token = a.register()  # B started before this player existed
    r = redis_server.client()
    async with a.connect(uid, token) as ws:
        async with heartbeat(ws):
            await async_wait_until(lambda: (r.zscore("lb:spirit", str(uid)) or 0) >= 1.0, timeout=10,
                                   message="spirit score in the shared sorted set")

            async def seen_on_b() -> bool:
                board = (await asyncio.to_thread(
                    b.get, "/api/player/leaderboard?category=spirit",
                    headers={"Authorization": f"Bearer {token}"})).json()
                return bool(board["userRank"]) and any(e["userId"] == uid for e in board["top10"])

            await async_wait_until(seen_on_b, timeout=10, message="node B to rank a player of node A")
    assert r.zcard("lb:power") >= 1 and r.zcard("lb:level") >= 1


async def test_events_published_while_a_subscriber_is_down_arrive_after(make_server, redis_server,
                                                                          tmp_path) -> None:
    a, b = _nodes(make_server, redis_server, tmp_path)
    uid, token = a.register()
    async with a.connect(uid, token, v=2) as ws:
        await recv_json(ws)
        async with heartbeat(ws):
            def ours(m: dict) -> bool:
                return m["type"] in ("test:n", "world:news")

            await asyncio.to_thread(b.publish, uid, "test:n", {"i": 0})
            assert (await recv_until(ws, ours))["data"]["i"] == 0
            # Cut every subscriber connection; Redis itself stays up and keeps the streams.
            redis_server.client().execute_command("CLIENT", "KILL", "TYPE", "pubsub")
            for i in range(1, 6):
                r = await asyncio.to_thread(b.publish, uid, "test:n", {"i": i})
                assert r.status_code == 200
            await asyncio.to_thread(
                b.post, "/api/broadcast", {"type": "world:news", "data": {"i": 6}}, headers={"X-API-Key": API_KEY})
            got = [await recv_until(ws, ours, timeout=10) for _ in range(6)]
    assert [m["data"].get("i") for m in got] == [1, 2, 3, 4, 5, 6], got


async def test_exploration_started_on_another_node_reaches_the_player(make_server, redis_server,
                                                                      tmp_path) -> None:
    """A load balancer may send the REST call to a node that does not hold the socket: every
    exploration event, progress included, must reach the player, sequenced and replayable."""
    a, b = _nodes(make_server, redis_server, tmp_path, env=GAME_ENV)
    uid, token = a.register()
    async with a.connect(uid, token, v=2) as ws:
        await recv_json(ws)
        async with heartbeat(ws):
            r = await asyncio.to_thread(b.post, "/api/exploration/start", {"location": "misty_valley"},
                                        headers=bearer(token))
            assert r.status_code == 200, r.text
            events = []
            while not events or events[-1]["data"]["eventType"] not in ("complete", "failure"):
                events.append(await recv_until(ws, lambda m: m["type"] == "exploration:event", timeout=15))
    kinds = [m["data"]["eventType"] for m in events]
    assert kinds[0] == "start" and "progress" in kinds, kinds
    seqs = [m.get("seq") for m in events]
    assert all(isinstance(s, int) for s in seqs) and seqs == sorted(set(seqs)), seqs


async def _eq(awaitable, expected) -> bool:
    return await awaitable == expected
