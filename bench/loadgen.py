"""Load generator: many WebSocket players from one core, plus latency probes.

Why it looks the way it does: at 20,000 connections every per-message Python
cost is paid 20,000+ times a second on a single core, so

* the transport is picows (the frame parser and sender are C) on uvloop;
* incoming frames are classified by a byte search, never by parsing JSON,
  except the 100/s probes whose send time we need;
* pings are sent by one 10 ms ticker that walks one hundredth of the
  connections per tick, so the load is spread over the second and there is
  no task or timer per connection;
* probes go through a tiny hand-rolled HTTP/1.1 client (keep-alive when the
  server allows it), not aiohttp, to keep its cost out of the measurement.

The run is bounded: connecting stops after a time budget, each connection is
retried at most ``--retries`` times, and the whole run has a hard deadline.
Progress events are printed to stdout as JSON lines (the orchestrator in
``bench/run.py`` samples the server's /proc figures on them); the final result
is printed as the last line and written to ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import resource
import sys
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Optional

import orjson
from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a project dependency on Linux
    uvloop = None  # type: ignore[assignment]

TICK = 0.010  # ping/probe ticker period; 100 slots per second
SLOTS = 100

B_SPIRIT = b"spirit:grow"
B_PROBE = b"bench:probe"
B_PONG = b'"pong"'
B_WELCOME = b'"welcome"'
B_SEQ = b'"seq":'


def emit(event: str, **fields: Any) -> None:
    """Print one progress line; the orchestrator reacts to these, so flush."""
    fields["event"] = event
    fields["t"] = time.time()
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def percentiles(values: list[float]) -> dict[str, Optional[float]]:
    """p50/p90/p99/max of a list (nearest-rank), None when empty."""
    if not values:
        return {"count": 0, "p50": None, "p90": None, "p99": None, "max": None}
    s = sorted(values)
    n = len(s)

    def rank(p: float) -> float:
        return round(s[min(n - 1, max(0, int(p * n + 0.999999) - 1))], 3)

    return {"count": n, "p50": rank(0.50), "p90": rank(0.90), "p99": rank(0.99), "max": round(s[-1], 3)}


def read_players(path: str, n: int) -> list[tuple[int, str]]:
    """First ``n`` ``userId<TAB>token`` lines; fewer players than N is an error."""
    players: list[tuple[int, str]] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            uid, _, token = line.partition("\t")
            players.append((int(uid), token))
            if len(players) >= n:
                break
    if len(players) < n:
        raise SystemExit(f"players file {path} has {len(players)} players, need {n}")
    return players


def parse_seq(payload: bytes) -> int:
    """The ``"seq":<int>`` of a v2 event, or -1; a byte scan, no JSON parse."""
    i = payload.rfind(B_SEQ)
    if i < 0:
        return -1
    i += len(B_SEQ)
    end = len(payload)
    while i < end and payload[i] == 0x20:
        i += 1
    j = i
    while j < end and 0x30 <= payload[j] <= 0x39:
        j += 1
    return int(payload[i:j]) if j > i else -1


@dataclass
class Stats:
    """Counters shared by all connections (one process, one thread: no locks)."""

    attempts: int = 0
    retries: int = 0
    connect_failures: int = 0  # players that never connected after all retries
    connect_errors: dict[str, int] = field(default_factory=dict)
    connect_latency_ms: list[float] = field(default_factory=list)
    ready: int = 0
    disconnects: int = 0
    close_codes: dict[str, int] = field(default_factory=dict)
    welcomes: int = 0
    pongs: int = 0
    seq_gaps: int = 0
    other_frames: int = 0
    probes_received: int = 0
    probes_duplicate: int = 0
    probe_latency_ms: list[float] = field(default_factory=list)


class Player(WSListener):
    """One connection. Kept small (slots) because there are 20,000 of them."""

    __slots__ = ("lg", "user_id", "slot", "transport", "t0", "ready", "spirit", "last_seq", "closing")

    def __init__(self, lg: "LoadGen", user_id: int, slot: int, t0: float) -> None:
        self.lg = lg
        self.user_id = user_id
        self.slot = slot
        self.transport: Optional[WSTransport] = None
        self.t0 = t0
        self.ready = False
        self.spirit = 0
        self.last_seq = -1
        self.closing = False

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        if self.lg.protocol == "legacy":
            self._mark_ready()

    def _mark_ready(self) -> None:
        if self.ready:
            return
        self.ready = True
        lg = self.lg
        lg.stats.ready += 1
        lg.stats.connect_latency_ms.append((time.perf_counter() - self.t0) * 1000.0)
        lg.slots[self.slot].append(self)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        mt = frame.msg_type
        if mt is WSMsgType.TEXT:
            payload = frame.get_payload_as_bytes()
            if self.lg.protocol == "socketio":
                self._on_sio(transport, payload)
                return
            if B_SPIRIT in payload:
                self.spirit += 1
                if self.lg.protocol == "v2":
                    self._check_seq(payload)
            elif B_PROBE in payload:
                if self.lg.protocol == "v2":
                    self._check_seq(payload)
                self.lg.on_probe(payload, self.user_id)
            elif B_PONG in payload:
                self.lg.stats.pongs += 1
            elif B_WELCOME in payload:
                self.lg.stats.welcomes += 1
                self.last_seq = parse_seq(payload)
                self._mark_ready()
            else:
                # Other sequenced events (leaderboards...) take positions too: follow them,
                # or every one of them would look like a gap.
                self.lg.stats.other_frames += 1
                if self.lg.protocol == "v2":
                    self._check_seq(payload)
        elif mt is WSMsgType.CLOSE:
            self.lg.note_close(str(frame.get_close_code().value))
            self.closing = True
            transport.send_close(frame.get_close_code())
            transport.disconnect()

    def _check_seq(self, payload: bytes) -> None:
        seq = parse_seq(payload)
        if seq >= 0:
            if self.last_seq >= 0 and seq != self.last_seq + 1:
                self.lg.stats.seq_gaps += 1
            self.last_seq = seq

    def _on_sio(self, transport: WSTransport, payload: bytes) -> None:
        """engine.io v4 / socket.io v5 packets, one per WebSocket frame."""
        kind = payload[:1]
        if kind == b"4":
            if payload.startswith(b'42["spirit:grow"'):
                self.spirit += 1
            elif payload.startswith(b'42["bench:probe"'):
                self.lg.on_probe(payload[2:], self.user_id, sio=True)
            elif payload.startswith(b"40"):
                self.lg.stats.welcomes += 1
                self._mark_ready()
            elif payload.startswith(b"44"):
                self.lg.note_close("sio-connect-error")
                transport.disconnect()
            else:
                self.lg.stats.other_frames += 1
        elif kind == b"2":
            transport.send(WSMsgType.TEXT, b"3")
        elif kind == b"0":
            transport.send(WSMsgType.TEXT, b"40")
        elif kind == b"1":
            self.lg.note_close("eio-close")
        else:
            self.lg.stats.other_frames += 1

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        lg = self.lg
        if self.ready:
            try:
                lg.slots[self.slot].remove(self)
            except ValueError:
                pass
        self.ready = False
        if not lg.stopping:
            lg.stats.disconnects += 1
            if not self.closing:
                hs = transport.close_handshake
                code = str(hs.recv.code.value) if hs is not None and hs.recv is not None else "1006"
                lg.note_close(code)
        lg.players_by_id.pop(self.user_id, None)


class _Unanswered(ConnectionError):
    """The connection closed before any byte of a response."""


class HttpClient:
    """Minimal HTTP/1.1 client for the probe publish calls.

    Keeps up to ``size`` connections; reuses one when the server keeps it
    alive and opens a new one when the server closes (picows and websockets
    answer plain GETs with ``Connection: close``). A request never waits for
    a free connection: if all are busy the probe is skipped and counted, so a
    slow server cannot make the load generator queue unboundedly.
    """

    def __init__(self, host: str, port: int, size: int = 8, timeout: float = 5.0) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.busy = 0
        self.size = size

    async def request(self, raw: bytes) -> int:
        """Send a full request; return the status code, or raise."""
        if self.busy >= self.size:
            raise BlockingIOError("all publish connections busy")
        self.busy += 1
        try:
            return await asyncio.wait_for(self._request(raw), self.timeout)
        finally:
            self.busy -= 1

    async def _request(self, raw: bytes) -> int:
        if self.idle:
            reader, writer = self.idle.pop()
            try:
                return await self._exchange(reader, writer, raw)
            except _Unanswered:
                # The server closed it while it sat idle (keep-alive timeout) and never
                # read the request: send it again on a fresh connection, as HTTP clients do.
                pass
        reader, writer = await asyncio.open_connection(self.host, self.port)
        return await self._exchange(reader, writer, raw)

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes) -> int:
        try:
            try:
                writer.write(raw)
                status_line = await reader.readline()
            except (ConnectionResetError, BrokenPipeError) as exc:
                raise _Unanswered("publish connection closed") from exc
            if not status_line:
                raise _Unanswered("publish connection closed")
            status = int(status_line.split()[1])
            length = -1
            chunked = False
            close = False
            for _ in range(100):  # bounded header count
                line = await reader.readline()
                if line in (b"\r\n", b"\n", b""):
                    break
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                value = value.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"transfer-encoding" and b"chunked" in value:
                    chunked = True
                elif name == b"connection" and value == b"close":
                    close = True
            if chunked:
                for _ in range(1000):
                    size = int((await reader.readline()).strip().split(b";")[0], 16)
                    await reader.readexactly(size + 2)
                    if size == 0:
                        break
            elif length >= 0:
                await reader.readexactly(length)
            else:
                await reader.read()  # body until EOF
                close = True
        except BaseException:
            writer.close()
            raise
        if close:
            writer.close()
        else:
            self.idle.append((reader, writer))
        return status

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()


class LoadGen:
    """Drives one scenario: connect, warm up, measure, drain, close."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.protocol: str = args.protocol
        self.stats = Stats()
        self.slots: list[list[Player]] = [[] for _ in range(SLOTS)]
        self.players_by_id: dict[int, Player] = {}
        self.stopping = False
        self.stop_at = float("inf")
        self.probe_window = False
        self.probes_sent: dict[int, int] = {}  # probeId -> userId, publish returned 2xx
        self.probes_seen: set[int] = set()
        self.probe_publish_failed = 0
        self.probe_publish_errors: dict[str, int] = {}
        self.probe_skipped = 0
        self.lag_ms: list[float] = []
        self.gc_pauses_ms: list[float] = []
        self._gc_t0 = 0.0
        self.http = HttpClient(args.host, args.port, size=args.probe_connections)
        self.probe_targets: list[int] = []
        self.probe_start = 0.0

    # -- bookkeeping -------------------------------------------------------

    def note_close(self, code: str) -> None:
        self.stats.close_codes[code] = self.stats.close_codes.get(code, 0) + 1

    def on_probe(self, payload: bytes, user_id: int, sio: bool = False) -> None:
        """Record a probe's delivery latency (sentAt is the sender's time_ns)."""
        now = time.time_ns()
        msg = orjson.loads(payload)
        data = msg[1] if sio else msg
        if isinstance(data, dict) and "data" in data and isinstance(data["data"], dict):
            data = data["data"]
        pid = int(data["probeId"])
        if pid in self.probes_seen:
            self.stats.probes_duplicate += 1
            return
        self.probes_seen.add(pid)
        self.stats.probes_received += 1
        self.stats.probe_latency_ms.append((now - int(data["sentAt"])) / 1e6)

    def _gc_callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_t0 = time.perf_counter()
        elif info.get("generation", 0) >= 1:
            self.gc_pauses_ms.append((time.perf_counter() - self._gc_t0) * 1000.0)

    # -- connecting --------------------------------------------------------

    def _url(self, user_id: int, token: str) -> str:
        a = self.args
        q = urllib.parse.urlencode({"userId": user_id, "token": token})
        if self.protocol == "socketio":
            return f"ws://{a.host}:{a.port}{a.sio_path}?EIO=4&transport=websocket&{q}"
        if self.protocol == "v2":
            q += "&v=2"
        return f"ws://{a.host}:{a.port}{a.ws_path}?{q}"

    async def _connect_one(self, idx: int, user_id: int, token: str, deadline: float) -> None:
        """Connect one player, retrying a bounded number of times."""
        a = self.args
        for attempt in range(a.retries + 1):
            if time.monotonic() > deadline or self.stopping:
                break
            self.stats.attempts += 1
            if attempt:
                self.stats.retries += 1
            t0 = time.perf_counter()
            try:
                _, player = await ws_connect(
                    lambda: Player(self, user_id, idx % SLOTS, t0),
                    self._url(user_id, token),
                    websocket_handshake_timeout=a.handshake_timeout,
                    read_buffer_init_size=2048,
                    max_frame_size=1 << 20,
                )
                self.players_by_id[user_id] = player  # type: ignore[assignment]
                return
            except Exception as exc:  # noqa: BLE001 - every failure kind is counted
                kind = type(exc).__name__
                self.stats.connect_errors[kind] = self.stats.connect_errors.get(kind, 0) + 1
                await asyncio.sleep(min(2.0, 0.25 * (2**attempt)) * (0.5 + random.random()))
        self.stats.connect_failures += 1

    async def connect_all(self, players: list[tuple[int, str]]) -> float:
        """Open connections at ``--rate`` per second; returns the phase duration."""
        a = self.args
        start = time.monotonic()
        budget = len(players) / a.rate + a.connect_grace
        deadline = start + budget
        inflight: set[asyncio.Task[None]] = set()
        launched = 0
        n = len(players)
        while launched < n and time.monotonic() < deadline:
            due = min(n, int((time.monotonic() - start) * a.rate) + 1)
            while launched < due and len(inflight) < a.max_inflight:
                uid, tok = players[launched]
                t = asyncio.ensure_future(self._connect_one(launched, uid, tok, deadline))
                inflight.add(t)
                t.add_done_callback(inflight.discard)
                launched += 1
            await asyncio.sleep(TICK)
        # Wait for in-flight attempts and for v2/socket.io readiness, bounded.
        for _ in range(int(budget / TICK) + 1):
            if not inflight and self.stats.ready + self.stats.connect_failures + self.stats.disconnects >= launched:
                break
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(TICK)
        for t in list(inflight):
            t.cancel()
        self.stats.connect_failures += n - launched  # never even attempted in the budget
        return time.monotonic() - start

    # -- steady state ------------------------------------------------------

    def _ping_bytes(self) -> bytes:
        ms = time.time_ns() // 1_000_000
        if self.protocol == "socketio":
            return b'42["ping",{"type":"ping","timestamp":%d}]' % ms
        return b'{"type":"ping","timestamp":%d}' % ms

    def _probe_request(self, user_id: int, probe_id: int) -> bytes:
        a = self.args
        sent = time.time_ns()
        if a.probe_method == "get":
            q = f"userId={user_id}&sentAt={sent}&probeId={probe_id}"
            return (
                f"GET {a.probe_path}?{q} HTTP/1.1\r\nHost: {a.host}:{a.port}\r\n"
                f"Content-Length: 0\r\n\r\n"
            ).encode()
        body = orjson.dumps(
            {"userId": user_id, "type": "bench:probe", "data": {"sentAt": sent, "probeId": probe_id}}
        )
        key = f"X-API-Key: {a.api_key}\r\n" if a.api_key else ""
        head = (
            f"POST {a.probe_path} HTTP/1.1\r\nHost: {a.host}:{a.port}\r\n{key}"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        return head + body

    async def _send_probe(self, user_id: int, probe_id: int) -> None:
        try:
            status = await self.http.request(self._probe_request(user_id, probe_id))
        except BlockingIOError:
            self.probe_skipped += 1
            return
        except Exception as exc:  # noqa: BLE001
            self.probe_publish_failed += 1
            kind = type(exc).__name__
            self.probe_publish_errors[kind] = self.probe_publish_errors.get(kind, 0) + 1
            return
        if 200 <= status < 300:
            self.probes_sent[probe_id] = user_id
        else:
            self.probe_publish_failed += 1
            self.probe_publish_errors[str(status)] = self.probe_publish_errors.get(str(status), 0) + 1

    async def ticker(self, limit_s: float) -> None:
        """Every 10 ms: ping one slot of players, send due probes, record loop lag.

        Starts before the first connection, as a real client pings from the moment it is
        connected (a server with the original's 10 s heartbeat timeout would otherwise
        drop the first connections of a long connect phase). Runs until `self.stop_at`,
        set once the connect phase is over, and never longer than `limit_s`.
        """
        a = self.args
        start = time.monotonic()
        k = 0
        probe_id = 0
        probe_tasks: set[asyncio.Task[None]] = set()
        max_ticks = int(limit_s / TICK) + 2
        for _ in range(max_ticks):
            stop_at = self.stop_at
            k += 1
            due = start + k * TICK
            now = time.monotonic()
            if due > now:
                await asyncio.sleep(due - now)
            now = time.monotonic()
            if now >= stop_at:
                break
            self.lag_ms.append(max(0.0, (now - due) * 1000.0))
            ping = self._ping_bytes()
            for p in self.slots[k % SLOTS]:
                p.transport.send(WSMsgType.TEXT, ping)  # type: ignore[union-attr]
            if self.probe_window and a.probe_rate > 0:
                want = int((now - self.probe_start) * a.probe_rate)
                ids = self.probe_targets
                for _ in range(min(want - probe_id, 50)):
                    if not ids:
                        break
                    uid = random.choice(ids)
                    if uid not in self.players_by_id:
                        continue  # disconnected since; pick again next tick
                    probe_id += 1
                    t = asyncio.ensure_future(self._send_probe(uid, probe_id))
                    probe_tasks.add(t)
                    t.add_done_callback(probe_tasks.discard)
        for t in list(probe_tasks):
            t.cancel()

    def _spirit_snapshot(self) -> dict[int, int]:
        return {uid: p.spirit for uid, p in self.players_by_id.items() if p.ready}

    async def run(self) -> dict[str, Any]:
        a = self.args
        players = read_players(a.players, a.n)
        gc.callbacks.append(self._gc_callback)
        emit("connecting", n=a.n, rate=a.rate)
        total = a.warmup + a.duration + a.drain
        self.stop_at = float("inf")
        ticker = asyncio.ensure_future(self.ticker(a.n / a.rate + a.connect_grace + total + 60))
        ccpu0 = os.times()
        connect_s = await self.connect_all(players)
        ccpu1 = os.times()
        # Near 1.0 means the load generator itself limited the connect rate/latency.
        connect_cpu = ((ccpu1.user - ccpu0.user) + (ccpu1.system - ccpu0.system)) / max(connect_s, 1e-9)
        emit("connected", ready=self.stats.ready, failures=self.stats.connect_failures, seconds=round(connect_s, 3))
        self.probe_targets = [uid for uid, p in self.players_by_id.items() if p.ready]
        if a.gc_freeze:
            gc.freeze()

        t_start = time.monotonic()
        self.stop_at = t_start + total
        self.probe_start = t_start
        self.probe_window = False

        await asyncio.sleep(a.warmup)
        # Measured window: counters and our own CPU are sampled at both ends.
        snap0 = self._spirit_snapshot()
        lag_i0 = len(self.lag_ms)
        gc_i0 = len(self.gc_pauses_ms)
        cpu0 = os.times()
        w0 = time.monotonic()
        self.stats.probe_latency_ms.clear()
        self.probe_start = w0
        self.probe_window = True
        emit("window_start", held=self.stats.ready)
        await asyncio.sleep(a.duration)
        self.probe_window = False
        w1 = time.monotonic()
        cpu1 = os.times()
        snap1 = self._spirit_snapshot()
        held = self.stats.ready
        emit("window_end", held=held)
        await asyncio.sleep(a.drain)  # let in-flight probes arrive
        await ticker

        window = w1 - w0
        whole = int(round(window))
        both = [uid for uid in snap1 if uid in snap0]
        received = sum(snap1[u] - snap0[u] for u in both)
        missing = sum(max(0, whole - 1 - (snap1[u] - snap0[u])) for u in both)
        zero = sum(1 for u in both if snap1[u] == snap0[u])
        lg_cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
        probes_ok = len(self.probes_sent)
        probes_recv = sum(1 for pid in self.probes_sent if pid in self.probes_seen)
        s = self.stats
        result: dict[str, Any] = {
            "config": {
                "protocol": self.protocol, "n": a.n, "rate": a.rate, "warmup": a.warmup,
                "duration": a.duration, "probe_rate": a.probe_rate, "probe_method": a.probe_method,
                "probe_path": a.probe_path, "gc_freeze": a.gc_freeze, "label": a.label,
            },
            "connections": {
                "target": a.n, "held": held, "attempts": s.attempts, "retries": s.retries,
                "connect_failures": s.connect_failures, "connect_errors": s.connect_errors,
                "disconnects": s.disconnects, "close_codes": s.close_codes,
                "connect_phase_s": round(connect_s, 3),
                "connect_phase_loadgen_cpu_s_per_s": round(connect_cpu, 3),
                "connect_latency_ms": percentiles(s.connect_latency_ms),
            },
            "spirit": {
                "window_s": round(window, 3), "conns_measured": len(both),
                "expected": len(both) * whole, "received": received,
                "missing_beyond_phase_tolerance": missing, "conns_with_none": zero,
            },
            "probes": {
                "published_ok": probes_ok, "publish_failed": self.probe_publish_failed,
                "publish_errors": self.probe_publish_errors, "skipped_client_busy": self.probe_skipped,
                "received": probes_recv, "lost": probes_ok - probes_recv,
                "duplicates": s.probes_duplicate, "latency_ms": percentiles(s.probe_latency_ms),
            },
            "v2": {"welcomes": s.welcomes, "pongs": s.pongs, "seq_gaps": s.seq_gaps},
            "other_frames": s.other_frames,
            "loadgen": {
                "cpu_s_per_s": round(lg_cpu / window, 4) if window > 0 else None,
                "cpu_user_s_per_s": round((cpu1.user - cpu0.user) / window, 4) if window > 0 else None,
                "cpu_sys_s_per_s": round((cpu1.system - cpu0.system) / window, 4) if window > 0 else None,
                "loop_lag_ms": percentiles(self.lag_ms[lag_i0:]),
                "gc_pauses_ms": percentiles(self.gc_pauses_ms[gc_i0:]),
                "maxrss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "pid": os.getpid(),
            },
        }
        self.stopping = True
        for p in list(self.players_by_id.values()):
            if p.transport is not None:
                p.transport.send_close(WSCloseCode.OK)
                p.transport.disconnect()
        self.http.close()
        return result


def raise_nofile() -> None:
    """Raise the soft fd limit to the hard limit: one fd per connection."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--players", required=True, help="file of userId<TAB>token lines")
    p.add_argument("--n", type=int, required=True, help="connections to open")
    p.add_argument("--protocol", choices=["legacy", "v2", "socketio"], default="legacy")
    p.add_argument("--ws-path", default="/ws")
    p.add_argument("--sio-path", default="/socket.io/")
    p.add_argument("--rate", type=float, default=2000.0, help="new connections per second")
    p.add_argument("--max-inflight", type=int, default=2000, help="concurrent connect attempts")
    p.add_argument("--retries", type=int, default=2, help="retries per failed connection")
    p.add_argument("--handshake-timeout", type=float, default=10.0)
    p.add_argument("--connect-grace", type=float, default=20.0,
                   help="seconds beyond n/rate allowed for the connect phase")
    p.add_argument("--warmup", type=float, default=5.0)
    p.add_argument("--duration", type=float, default=60.0, help="measured window, seconds")
    p.add_argument("--drain", type=float, default=2.0, help="seconds to wait for late probes")
    p.add_argument("--probe-rate", type=float, default=100.0)
    p.add_argument("--probe-method", choices=["get", "post"], default="post")
    p.add_argument("--probe-path", default="/api/publish")
    p.add_argument("--probe-connections", type=int, default=16)
    p.add_argument("--api-key", default=os.environ.get("API_KEY", ""))
    p.add_argument("--gc-freeze", action="store_true", help="gc.freeze() after connecting")
    p.add_argument("--label", default="")
    p.add_argument("--out", help="write the JSON result here too")
    p.add_argument("--deadline", type=float, default=0.0,
                   help="hard limit for the whole run in seconds (0: computed)")
    return p


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    raise_nofile()
    lg = LoadGen(args)
    deadline = args.deadline or (
        args.n / args.rate + args.connect_grace * 2 + args.warmup + args.duration + args.drain + 30
    )

    async def bounded() -> dict[str, Any]:
        return await asyncio.wait_for(lg.run(), deadline)

    if uvloop is not None:
        result = uvloop.run(bounded())
    else:  # pragma: no cover
        result = asyncio.run(bounded())
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(json.dumps(result, indent=2) + "\n")
    emit("result", result=result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
