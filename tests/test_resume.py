"""Nothing lost across a reconnect: resume, resync and slow consumers, over real sockets."""

from __future__ import annotations

import asyncio
import random
import re
import signal
import socket
from typing import Any

import httpx
import orjson
import pytest

from conftest import API_KEY, ServerProcess, recv_json


async def _welcome(ws: Any) -> dict[str, Any]:
    msg = await recv_json(ws)
    assert msg["type"] == "welcome", msg
    return msg["data"]


async def _drain(ws: Any, count: int) -> list[dict[str, Any]]:
    return [await recv_json(ws) for _ in range(count)]


async def test_resume_after_disconnect_no_gap_no_duplicate(server: ServerProcess) -> None:
    uid, token = server.register()
    async with server.connect(uid, token, v=2) as ws:
        first = await _welcome(ws)
        for i in range(5):
            server.publish(uid, "test:n", {"i": i})
        got = await _drain(ws, 5)
    epoch, last = first["epoch"], got[-1]["seq"]
    for i in range(5, 12):  # while away
        server.publish(uid, "test:n", {"i": i})
    async with server.connect(uid, token, v=2, since=last, epoch=epoch) as ws:
        welcome = await _welcome(ws)
        assert welcome["recovered"] is True and welcome["epoch"] == epoch and welcome["seq"] >= last + 7
        replayed = await _drain(ws, 7)
        server.publish(uid, "test:n", {"i": 12})
        live = await recv_json(ws)
    everything = got + replayed + [live]
    assert [m["data"]["i"] for m in everything] == list(range(13))
    seqs = [m["seq"] for m in everything]
    assert seqs == sorted(set(seqs)) and replayed[-1]["seq"] <= welcome["seq"] < live["seq"]


async def test_resume_beyond_history_gets_resync(make_server) -> None:
    srv = make_server({"HISTORY_MAX_EVENTS": "5"})
    uid, token = srv.register()
    async with srv.connect(uid, token, v=2) as ws:
        epoch = (await _welcome(ws))["epoch"]
    for i in range(20):
        srv.publish(uid, "test:n", {"i": i})
    async with srv.connect(uid, token, v=2, since=0, epoch=epoch) as ws:
        welcome = await _welcome(ws)
        assert welcome["recovered"] is False
        resync = await recv_json(ws)
        assert resync["type"] == "resync" and resync["data"]["reason"] == "history_expired"
        assert resync["data"]["seq"] >= 20 and resync["data"]["epoch"] == epoch
        srv.publish(uid, "test:n", {"i": 20})
        assert (await recv_json(ws))["seq"] > resync["data"]["seq"]
    assert srv.stats()["resyncs"] == 1


async def test_resume_with_wrong_epoch_gets_resync(server: ServerProcess) -> None:
    uid, token = server.register()
    async with server.connect(uid, token, v=2, since=3, epoch="not-ours") as ws:
        assert (await _welcome(ws))["recovered"] is False
        resync = await recv_json(ws)
        assert resync["type"] == "resync" and resync["data"]["reason"] == "epoch_mismatch"


async def test_broadcasts_are_recovered_too(server: ServerProcess) -> None:
    uid, token = server.register()
    async with server.connect(uid, token, v=2) as ws:
        welcome = await _welcome(ws)
    server.post("/api/broadcast", {"type": "world:news", "data": {"n": 1}}, headers={"X-API-Key": API_KEY})
    server.publish(uid, "test:n", {"n": 2})
    async with server.connect(uid, token, v=2, since=welcome["seq"], bsince=welcome["bseq"],
                              epoch=welcome["epoch"]) as ws:
        assert (await _welcome(ws))["recovered"] is True
        got = await _drain(ws, 2)
    assert [m["data"]["n"] for m in got] == [1, 2]
    assert got[0]["bseq"] == welcome["bseq"] + 1 and got[1]["seq"] > welcome["seq"]


async def test_legacy_clients_are_unaffected_by_positions(server: ServerProcess) -> None:
    uid, token = server.register()
    async with server.connect(uid, token, v=2) as v2, server.connect(uid, token) as legacy:
        await _welcome(v2)
        server.publish(uid, "test:n", {"n": 1})
        assert "seq" in await recv_json(v2)
        assert set(await recv_json(legacy)) == {"type", "userId", "timestamp", "data"}


def _stuck_v2_client(server: ServerProcess, uid: int, token: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall((f"GET /ws?userId={uid}&token={token}&v=2 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").encode())
    return sock


async def test_slow_reader_cut_off_resumes_with_everything(make_server) -> None:
    srv = make_server({"HEARTBEAT_TIMEOUT_S": "30", "HISTORY_MAX_BYTES": str(256 << 20),
                       "HISTORY_MAX_EVENTS": "5000"})
    uid, token = srv.register()
    sock = _stuck_v2_client(srv, uid, token)
    blob = "x" * 30_000
    sent = 0
    async with httpx.AsyncClient() as http:
        while srv.stats()["slowConsumerDisconnects"] == 0 and sent < 1000:
            r = await http.post(f"{srv.base}/api/publish", headers={"X-API-Key": API_KEY},
                                json={"userId": uid, "type": "test:blob", "data": {"i": sent, "b": blob}})
            assert r.status_code == 200
            sent += 1
        for _ in range(10):  # and a few more after the cut
            await http.post(f"{srv.base}/api/publish", headers={"X-API-Key": API_KEY},
                            json={"userId": uid, "type": "test:blob", "data": {"i": sent, "b": blob}})
            sent += 1
    assert srv.stats()["slowConsumerDisconnects"] == 1
    # Read what the stuck client did get, up to the close frame.
    sock.settimeout(10)
    data = bytearray()
    while b"\x0f\xa1slow consumer" not in data[-100:]:
        chunk = await asyncio.to_thread(sock.recv, 1 << 20)
        assert chunk, "connection ended without a close frame"
        data += chunk
    sock.sendall(b"\x88\x82\x00\x00\x00\x00\x03\xe8")  # our close frame (1000), masked
    assert await asyncio.to_thread(sock.recv, 1024) == b""
    sock.close()
    assert b"\x0f\xa1slow consumer" in data[-100:]
    epoch = re.search(rb'"epoch":"([^"]+)"', data).group(1).decode()
    # Every sequenced message (ours and the game's own) arrived in order, none skipped.
    seqs = [int(s) for s in re.findall(rb'"seq":(\d+)\}', data)]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    got_i = [int(i) for i in re.findall(rb'"i":(\d+),', data)]
    assert got_i == list(range(len(got_i)))
    async with srv.connect(uid, token, v=2, since=seqs[-1], epoch=epoch) as ws:
        assert (await _welcome(ws))["recovered"] is True
        rest = await _drain(ws, sent - len(got_i))
    assert [m["data"]["i"] for m in rest] == list(range(len(got_i), sent))


async def test_graceful_restart_keeps_history(make_server, tmp_path) -> None:
    srv = make_server()
    uid, token = srv.register()
    async with srv.connect(uid, token, v=2) as ws:
        welcome = await _welcome(ws)
        srv.publish(uid, "test:n", {"i": 0})
        seen = await recv_json(ws)
        srv.publish(uid, "test:n", {"i": 1})
        await recv_json(ws)
        await asyncio.get_running_loop().run_in_executor(None, srv.stop, signal.SIGTERM)
    srv.start()
    # Published after the restart, before the client is back.
    srv.publish(uid, "test:n", {"i": 2})
    async with srv.connect(uid, token, v=2, since=seen["seq"], epoch=welcome["epoch"]) as ws:
        again = await _welcome(ws)
        assert again["recovered"] is True and again["epoch"] == welcome["epoch"]
        assert [m["data"]["i"] for m in await _drain(ws, 2)] == [1, 2]


async def test_many_users_history_memory_stays_bounded(make_server) -> None:
    bound = 300_000
    srv = make_server({"HISTORY_MAX_BYTES": str(bound)})
    users = srv.seed(40)
    for uid, token in users:
        async with srv.connect(uid, token, v=2) as ws:
            await _welcome(ws)
    async with httpx.AsyncClient() as http:
        for round_ in range(10):
            await asyncio.gather(*(http.post(
                f"{srv.base}/api/publish", headers={"X-API-Key": API_KEY},
                json={"userId": uid, "type": "test:pad", "data": {"r": round_, "pad": "y" * 1000}})
                for uid, _ in users))
    metrics = srv.get("/metrics").text
    held = float(re.search(r"^xiuxian_history_bytes (\S+)$", metrics, re.M).group(1))
    assert 0 < held <= bound


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_random_schedule_every_client_gets_exactly_what_was_sent(server: ServerProcess, seed: int) -> None:
    """A seeded random schedule of sends, disconnects and resumes over several users.

    Each user's client keeps its position; whatever happens, the events it ends up with
    must equal, in order, the events sent to it.
    """
    rng = random.Random(seed)
    users = [server.register() for _ in range(4)]
    sent: dict[int, list[int]] = {uid: [] for uid, _ in users}
    got: dict[int, list[int]] = {uid: [] for uid, _ in users}
    state: dict[int, dict[str, Any]] = {uid: {"ws": None, "seq": None, "epoch": None} for uid, _ in users}
    tokens = dict(users)
    counter = 0

    async def keepalive(st: dict[str, Any]) -> None:
        """A ping every half second at most: under the heartbeat timeout and the rate limit."""
        now = asyncio.get_running_loop().time()
        if st["ws"] is not None and now - st.get("pinged", 0.0) >= 0.5:
            st["pinged"] = now
            await st["ws"].send('{"type":"ping","timestamp":0}')

    async def pump(uid: int) -> None:
        """Read whatever has arrived on a user's connection (pinging it, so it stays up)."""
        st = state[uid]
        await keepalive(st)
        while True:
            try:
                raw = await asyncio.wait_for(st["ws"].recv(), 0.05)
            except asyncio.TimeoutError:
                return
            msg = orjson.loads(raw)
            if msg["type"] == "pong" or "bseq" in msg:
                continue  # broadcasts (leaderboard updates) have their own stream
            if msg["type"] == "welcome":
                assert st["seq"] is None or msg["data"]["recovered"], msg
                st["epoch"] = msg["data"]["epoch"]
                if st["seq"] is None:
                    st["seq"] = msg["data"]["seq"]
                continue
            assert msg["seq"] > st["seq"], msg  # never a duplicate, never out of order
            st["seq"] = msg["seq"]
            if msg["type"] == "test:n":
                got[uid].append(msg["data"]["k"])

    async with httpx.AsyncClient() as http:
        for _ in range(120):
            for other in state.values():  # every open connection keeps its heartbeat
                await keepalive(other)
            uid = rng.choice(list(tokens))
            st = state[uid]
            action = rng.random()
            if action < 0.55:
                counter += 1
                r = await http.post(f"{server.base}/api/publish", headers={"X-API-Key": API_KEY},
                                    json={"userId": uid, "type": "test:n", "data": {"k": counter}})
                assert r.status_code == 200
                sent[uid].append(counter)
            elif action < 0.75 and st["ws"] is not None:
                await pump(uid)
                await st["ws"].close()
                st["ws"] = None
            elif st["ws"] is None:
                params: dict[str, Any] = {"v": 2}
                if st["seq"] is not None:
                    params.update(since=st["seq"], epoch=st["epoch"])
                else:
                    # A fresh client starts at the current position: only what is sent
                    # from now on is owed to it.
                    sent[uid].clear()
                st["ws"] = await server.connect(uid, tokens[uid], **params)
                await pump(uid)
            else:
                await pump(uid)
        for uid in tokens:
            st = state[uid]
            if st["ws"] is None:
                params = {"v": 2} if st["seq"] is None else {"v": 2, "since": st["seq"], "epoch": st["epoch"]}
                if st["seq"] is None:
                    sent[uid].clear()
                st["ws"] = await server.connect(uid, tokens[uid], **params)
            deadline = asyncio.get_running_loop().time() + 5
            while len(got[uid]) < len(sent[uid]) and asyncio.get_running_loop().time() < deadline:
                await pump(uid)
            await pump(uid)
            await st["ws"].close()
    for uid in tokens:
        assert got[uid] == sent[uid], uid
