"""Shared test machinery: a real server process on a free loopback port, real clients.

Nothing is mocked: the server is the installed `xiuxian-realtime serve` command, the
database is a real SQLite file in a temporary folder, clients speak WebSocket over TCP.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterator

import httpx
import orjson
import pytest
import websockets

ROOT = Path(__file__).resolve().parent.parent
SERVER_CMD = [sys.executable, "-m", "xiuxian_realtime", "serve"]
JWT_SECRET = "test-secret-0123456789abcdef0123456789abcdef"
API_KEY = "test-api-key-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02,
               message: str = "condition") -> Any:
    """Poll a condition until it holds; fail with a message when it never does."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


async def async_wait_until(predicate: Callable[[], Any], timeout: float = 10.0,
                           interval: float = 0.02, message: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        await asyncio.sleep(interval)


class ServerProcess:
    """One `xiuxian-realtime serve` process with its own port, data folder and log."""

    def __init__(self, tmp: Path, env: dict[str, str] | None = None, port: int | None = None) -> None:
        self.port = port or free_port()
        self.data_dir = tmp
        self.log_path = tmp / f"server-{self.port}.log"
        self.env = {
            **os.environ,
            "JWT_SECRET": JWT_SECRET,
            "API_KEY": API_KEY,
            "HEARTBEAT_TIMEOUT_S": "10",
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_base(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def start(self) -> "ServerProcess":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [*SERVER_CMD, "--host", "127.0.0.1", "--port", str(self.port), "--data-dir", str(self.data_dir)],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        wait_until(self._ready, timeout=30, message=f"server on port {self.port}")
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.log()}")
        try:
            return httpx.get(f"{self.base}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # -- REST helpers ----------------------------------------------------------------------

    def post(self, path: str, json: Any = None, **kw: Any) -> httpx.Response:
        return httpx.post(f"{self.base}{path}", json=json, timeout=10, **kw)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return httpx.get(f"{self.base}{path}", timeout=10, **kw)

    def register(self, name: str | None = None) -> tuple[int, str]:
        name = name or f"p{time.monotonic_ns()}"
        r = self.post("/api/auth/register", {"username": name, "password": "pw"})
        assert r.status_code == 201, r.text
        body = r.json()
        return body["id"], body["token"]

    def seed(self, count: int) -> list[tuple[int, str]]:
        """Create players straight in the database (no bcrypt per player)."""
        out = self.data_dir / f"seed-{time.monotonic_ns()}.tsv"
        subprocess.run([sys.executable, "-m", "xiuxian_realtime", "seed-players", "--count", str(count),
                        "--out", str(out), "--data-dir", str(self.data_dir)],
                       env=self.env, cwd=ROOT, check=True, capture_output=True)
        rows = [line.split("\t") for line in out.read_text().splitlines()]
        return [(int(uid), token) for uid, token in rows]

    def publish(self, user_id: int, type_: str, data: dict[str, Any]) -> httpx.Response:
        return self.post("/api/publish", {"userId": user_id, "type": type_, "data": data},
                         headers={"X-API-Key": API_KEY})

    def stats(self) -> dict[str, Any]:
        return self.get("/ws/stats").json()

    def ws_url(self, user_id: int, token: str, **params: Any) -> str:
        query = "&".join(f"{k}={v}" for k, v in {"userId": user_id, "token": token, **params}.items())
        return f"{self.ws_base}?{query}"

    def connect(self, user_id: int, token: str, **params: Any) -> Any:
        """A websockets client connection (use with `async with`)."""
        return websockets.connect(self.ws_url(user_id, token, **params), max_size=None,
                                  ping_interval=None, open_timeout=10)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server shared by a module's tests, with a short heartbeat timeout."""
    proc = ServerProcess(tmp_path_factory.mktemp("srv"), {"HEARTBEAT_TIMEOUT_S": "2"}).start()
    yield proc
    proc.stop()


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start servers with their own settings; all are stopped at the end of the test."""
    started: list[ServerProcess] = []

    def make(env: dict[str, str] | None = None, data_dir: Path | None = None,
             port: int | None = None) -> ServerProcess:
        proc = ServerProcess(data_dir or tmp_path / f"d{len(started)}", env, port).start()
        started.append(proc)
        return proc

    yield make
    for proc in started:
        proc.stop()


# What the game services push on their own to every online player (spirit each second,
# leaderboards on coming online): skipped by `recv_json` unless asked for.
AMBIENT_TYPES = frozenset({"spirit:grow", "leaderboard:update"})


async def recv_any(ws: Any, timeout: float = 5.0) -> dict[str, Any]:
    return orjson.loads(await asyncio.wait_for(ws.recv(), timeout))


async def recv_json(ws: Any, timeout: float = 5.0) -> dict[str, Any]:
    """The next message that is not ambient game traffic."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise asyncio.TimeoutError
        msg = await recv_any(ws, left)
        if msg.get("type") not in AMBIENT_TYPES:
            return msg


async def recv_until(ws: Any, predicate: Callable[[dict[str, Any]], bool], timeout: float = 5.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("expected message never arrived")
        msg = await recv_any(ws, left)
        if predicate(msg):
            return msg


async def closed_with(ws: Any, timeout: float = 5.0) -> int:
    """Read until the server closes; return the close code it sent."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                await ws.recv()
    except websockets.ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd is not None else 1006
    raise AssertionError("unreachable")


class RedisServer:
    """A redis-server of our own on a free port, so tests can kill and restart it."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.dir = tmp
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        import shutil
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed; `make test` installs it (scripts/setup.sh)")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.dir), "--logfile", str(self.dir / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        wait_until(self.ping, timeout=10, message="redis-server to start")
        return self

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def client(self) -> Any:
        import redis
        return redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.kill()


# -- game services: a server per storage backend ---------------------------------------------

PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")

# Fast pacing for tests; the minimum spacings (100 ms dungeon, 50 ms exploration) still hold.
GAME_ENV = {
    "HEARTBEAT_TIMEOUT_S": "2",
    "GAME_SEED": "7",
    "DUNGEON_EVENT_INTERVAL_MS": "100",
    "EXPLORATION_TIME_SCALE": "0.2",
    "SPIRIT_SETTLE_INTERVAL_S": "1",
    "LEADERBOARD_CHECK_INTERVAL_S": "0.5",
    "LEADERBOARD_UPDATE_INTERVAL_S": "1",
    "LEADERBOARD_NOTIFY_INTERVAL_S": "0.5",
}


async def _pg_admin(sql: str) -> None:
    import asyncpg
    conn = await asyncpg.connect(PG_ADMIN_URL, timeout=3)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def pg_unreachable_reason() -> str | None:
    try:
        asyncio.run(_pg_admin("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means "not usable here"
        return f"{type(exc).__name__}: {exc}"
    return None


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An empty database: a SQLite file, or a fresh PostgreSQL database dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'game.db'}"
        return
    reason = pg_unreachable_reason()
    if reason is not None:
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL} ({reason}); set TEST_POSTGRES_URL")
    name = f"xr_test_{os.getpid()}_{os.urandom(4).hex()}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql+asyncpg://{PG_ADMIN_URL.split('://', 1)[1].rsplit('/', 1)[0]}/{name}"
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="module")
def game_server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with fast game pacing on each storage backend, shared by a module's tests."""
    proc = ServerProcess(tmp_path_factory.mktemp("game"), {**GAME_ENV, "DATABASE_URL": database_url}).start()
    proc.database_url = database_url  # type: ignore[attr-defined]
    yield proc
    proc.stop()


def sqlite_only(server: ServerProcess) -> None:
    """For tests of timing and transport behaviour that the storage backend cannot change."""
    if not server.database_url.startswith("sqlite"):  # type: ignore[attr-defined]
        pytest.skip("storage-independent; covered by the SQLite run")


def register_many(server: ServerProcess, n: int) -> list[tuple[int, str]]:
    """Register n players concurrently (bcrypt runs in the server's threads)."""
    async def run() -> list[tuple[int, str]]:
        async with httpx.AsyncClient(base_url=server.base, timeout=20) as client:
            stamp = time.monotonic_ns()
            rs = await asyncio.gather(*(client.post("/api/auth/register",
                                                    json={"username": f"m{stamp}-{i}", "password": "pw"})
                                        for i in range(n)))
        return [(r.json()["id"], r.json()["token"]) for r in rs]
    return asyncio.run(run()) if not _loop_running() else _in_thread(run)


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _in_thread(fn: Callable[[], Any]) -> Any:
    import concurrent.futures
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(fn())).result()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def read_db(url: str, fn: Callable[[Any], Any]) -> Any:
    """Run `fn(database)` against the server's database from the test process."""
    from xiuxian_realtime.storage.db import Database
    db = Database(url)
    try:
        return await fn(db)
    finally:
        await db.close()


async def collect(ws: Any, seconds: float, predicate: Callable[[dict[str, Any]], bool] = lambda m: True
                  ) -> list[tuple[float, dict[str, Any]]]:
    """Every message (with its arrival time) that arrives within `seconds`."""
    out: list[tuple[float, dict[str, Any]]] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            msg = orjson.loads(await asyncio.wait_for(ws.recv(), left))
        except asyncio.TimeoutError:
            break
        if predicate(msg):
            out.append((time.monotonic(), msg))
    return out


async def pinger(ws: Any, interval: float = 0.5) -> None:
    """Keep a connection's heartbeat alive (run as a task)."""
    while True:
        await ws.send('{"type":"ping","timestamp":0}')
        await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def heartbeat(*conns: Any) -> AsyncIterator[None]:
    """Keep the connections' heartbeats alive for the length of the block."""
    tasks = [asyncio.create_task(pinger(ws)) for ws in conns]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
