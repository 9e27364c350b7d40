"""Dungeons through the real API and WebSocket, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import httpx

from conftest import (ServerProcess, async_wait_until, bearer, collect, heartbeat, read_db, recv_json,
                      sqlite_only)

DUNGEON_FIELDS = {"userId", "eventType", "dungeon", "message", "roundNum", "playerHp", "enemyHp",
                  "damageDealt", "damageTaken", "loot", "timestamp"}


def start(server: ServerProcess, token: str, body: object = None) -> httpx.Response:
    return server.post("/api/dungeon/start", body, headers=bearer(token))


async def run_to_end(ws, timeout: float = 10.0) -> list[tuple[float, dict]]:
    """Dungeon events until the run is over (a treasure, if any, follows a victory)."""
    events: list[tuple[float, dict]] = []
    async with asyncio.timeout(timeout):
        while not any(m["data"]["eventType"] in ("victory", "defeat") for _, m in events):
            events += await collect(ws, 0.5, lambda m: m["type"] == "dungeon:event")
    events += await collect(ws, 0.35, lambda m: m["type"] == "dungeon:event")
    return events


def check_run(events: list[tuple[float, dict]], uid: int) -> None:
    kinds = [m["data"]["eventType"] for _, m in events]
    assert kinds[0] == "start"
    n = kinds.count("combat_round")
    assert n >= 1 and kinds[1:1 + n] == ["combat_round"] * n
    assert kinds[1 + n:] in (["victory"], ["victory", "treasure"], ["defeat"])
    for _, m in events:
        assert m["userId"] == uid and set(m["data"]) == DUNGEON_FIELDS and m["data"]["userId"] == uid
    rounds = [m["data"] for _, m in events if m["data"]["eventType"] == "combat_round"]
    assert [r["roundNum"] for r in rounds] == list(range(1, n + 1))
    hp, enemy = events[0][1]["data"]["playerHp"], events[0][1]["data"]["enemyHp"]
    for r in rounds:
        assert r["enemyHp"] == max(0, enemy - r["damageDealt"]) and r["playerHp"] == max(0, hp - r["damageTaken"])
        hp, enemy = r["playerHp"], r["enemyHp"]
    # At least 100 ms between successive events. Measured at arrival on the client, which
    # a busy test process can delay and bunch: some slack per gap, none on the mean.
    gaps = [t1 - t0 for (t0, _), (t1, _) in zip(events, events[1:])]
    assert min(gaps) >= 0.07 and sum(gaps) / len(gaps) >= 0.099, gaps


async def test_victory_events_and_loot_persisted(game_server: ServerProcess) -> None:
    uid, token = game_server.register()
    async with game_server.connect(uid, token) as ws:
        async with heartbeat(ws):
            r = start(game_server, token)  # the demo page sends no body
            assert r.status_code == 200, r.text
            assert r.json()["dungeon"]["id"] == "bamboo_forest"
            events = await run_to_end(ws)
    check_run(events, uid)
    final = [m["data"] for _, m in events if m["data"]["eventType"] in ("victory", "treasure")]
    assert final and final[0]["eventType"] == "victory" and final[0]["enemyHp"] == 0
    loot = [item for d in final for item in d["loot"]]
    assert loot, "a victory brings loot"
    # Persisted: inventory, the run record and the power gained.
    inventory = game_server.get("/api/player/inventory", headers=bearer(token)).json()["items"]
    expected: dict[str, int] = {}
    for item in loot:
        expected[item["name"]] = expected.get(item["name"], 0) + item["quantity"]
    assert {i["name"]: i["quantity"] for i in inventory} == expected
    runs = await read_db(game_server.database_url, lambda db: db.dungeon_runs(uid))
    assert len(runs) == 1 and runs[0]["victory"] and runs[0]["loot"] == loot
    assert game_server.get("/api/player/snapshot", headers=bearer(token)).json()["power"] == 11


async def test_defeat_and_one_run_at_a_time(game_server: ServerProcess) -> None:
    uid, token = game_server.register()
    async with game_server.connect(uid, token) as ws:
        async with heartbeat(ws):
            # Concurrent starts: exactly one wins, the others get 409.
            async with httpx.AsyncClient(base_url=game_server.base, headers=bearer(token)) as client:
                rs = await asyncio.gather(*(client.post("/api/dungeon/start", json={"dungeon": "dragon_abyss"})
                                            for _ in range(5)))
            assert sorted(r.status_code for r in rs) == [200, 409, 409, 409, 409]
            assert "error" in next(r for r in rs if r.status_code == 409).json()
            events = await run_to_end(ws)
            check_run(events, uid)
            assert events[-1][1]["data"]["eventType"] == "defeat" and events[-1][1]["data"]["loot"] is None
            # Over: a new run may start.
            assert start(game_server, token, {"dungeon": "bamboo_forest"}).status_code == 200
            await run_to_end(ws)
    runs = await read_db(game_server.database_url, lambda db: db.dungeon_runs(uid))
    assert [r["victory"] for r in runs] == [False, True]


def test_bad_requests(game_server: ServerProcess) -> None:
    sqlite_only(game_server)
    uid, token = game_server.register()
    assert game_server.post("/api/dungeon/start", {}).status_code == 401
    assert game_server.post("/api/dungeon/start", {}, headers=bearer("junk")).status_code == 401
    bad = start(game_server, token, {"dungeon": "nowhere"})
    assert bad.status_code == 400 and "error" in bad.json()
    assert {d["id"] for d in game_server.get("/api/dungeon/list").json()["dungeons"]} >= {"bamboo_forest"}


async def test_run_survives_disconnect_and_lands_in_history(game_server: ServerProcess) -> None:
    uid, token = game_server.register()
    async with game_server.connect(uid, token, v=2) as ws:
        welcome = await recv_json(ws)
        assert start(game_server, token).status_code == 200
        first = await recv_json(ws)
        while first["type"] != "dungeon:event":
            first = await recv_json(ws)
        assert first["data"]["eventType"] == "start"
    # The player is gone (and is logged out after the 2 s timeout); the run goes on.

    async def finished() -> bool:
        return bool(await read_db(game_server.database_url, lambda db: db.dungeon_runs(uid)))
    await async_wait_until(finished, timeout=15, interval=0.2, message="run persisted")
    await asyncio.sleep(0.4)  # a possible treasure after the victory
    async with game_server.connect(uid, token, v=2, since=first["seq"], epoch=welcome["data"]["epoch"]) as ws:
        welcome2 = await recv_json(ws)
        assert welcome2["data"]["recovered"] is True
        replay = [m for _, m in await collect(ws, 0.3)]
    dungeon = [m for m in replay if m["type"] == "dungeon:event"]
    kinds = [m["data"]["eventType"] for m in dungeon]
    assert kinds[0] == "combat_round" and kinds[-1] in ("victory", "defeat", "treasure")
    seqs = [m["seq"] for m in replay if "seq" in m]  # (live broadcasts carry bseq)
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs) and seqs[0] > first["seq"]


def test_same_seed_same_fight() -> None:
    """Outcomes are a function of the seed, the player and their run number."""
    from xiuxian_realtime.services.activities import Activities
    from xiuxian_realtime.services.dungeon import DUNGEONS, fight
    from xiuxian_realtime.services.players import PlayerCard
    from xiuxian_realtime.storage.db import PlayerRow

    card = PlayerCard(PlayerRow(5, "x", 1, "练气期一层", 10, 0.0, 1.0, ""))
    a, b = Activities("dungeon", 42), Activities("dungeon", 42)
    fights_a = [fight(a.rng(5), card, DUNGEONS["blood_cave"]) for _ in range(3)]
    fights_b = [fight(b.rng(5), card, DUNGEONS["blood_cave"]) for _ in range(3)]
    assert fights_a == fights_b
    assert fights_a[0] != fights_a[1] or fights_a[1] != fights_a[2]  # runs differ from each other
    others = [fight(Activities("dungeon", 43).rng(5), card, DUNGEONS["blood_cave"]) for _ in range(3)]
    assert others != fights_a  # another seed, other fights
