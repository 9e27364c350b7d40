"""Online sessions: login, heartbeat, logout — one code path for every way in and out.

A player is online from `POST /api/online/login` or their first WebSocket connection
(on any node) until they log out or every heartbeat stops for the timeout: WebSocket
pings on any connection, or `POST /api/online/heartbeat`.

Once a second each node tells the presence store "these players have a live
connection here" in one batch, then asks it whose last heartbeat is older than the
timeout. The store's logout is conditional and atomic ("unless refreshed meanwhile"), so
with several nodes sweeping the same store exactly one of them logs a player out, and
never one who still has a live connection anywhere. When a node dies its players stop
being refreshed and a surviving node logs them out.

Game services act through hooks, run in a per-user queue: a reconnect racing a logout
waits for the logout's settle before its own login.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Awaitable, Callable, Protocol

from .presence import PresenceRecord, PresenceStore

log = logging.getLogger("xiuxian.sessions")

STALE_BATCH = 500
REFRESH_CHUNK = 1000  # players per presence refresh (one Redis script each)


class SessionHooks(Protocol):
    """Game services that must act when a player comes online or leaves.

    `on_login`/`on_logout` run once per session, on whichever node starts or ends it.
    `on_join`/`on_leave` run on each node when it gets its first, or loses its last,
    connection of a player: where per-connection state (spirit pushes) has to live.
    """

    async def on_login(self, user_id: int, now: float) -> None: ...

    async def on_logout(self, user_id: int, now: float) -> None: ...

    async def on_join(self, user_id: int, now: float) -> None: ...

    async def on_leave(self, user_id: int, now: float) -> None: ...


class ConnectionView(Protocol):
    def is_online(self, user_id: int) -> bool: ...



def _now_ms() -> int:
    return int(time.time() * 1000)


class Sessions:
    def __init__(self, presence: PresenceStore, hooks: list[SessionHooks], connections: ConnectionView,
                 timeout_s: float) -> None:
        self.presence = presence
        self.hooks = hooks
        self.connections = connections
        self.timeout_ms = int(timeout_s * 1000)
        self._tails: dict[int, asyncio.Task[object]] = {}
        self._sweeping: asyncio.Task[None] | None = None
        # Players this node holds state for because of a REST login (no connection).
        self._rest_held: set[int] = set()
        self.logouts = 0

    # -- ways in -------------------------------------------------------------------------

    async def login(self, user_id: int, ip: str) -> int:
        """REST login; returns the session's loginTime. An existing session carries on.

        This node then holds the player's per-node state (as for a connection) until
        the session ends, so a client without a socket still grows and is settled.
        """
        async def work() -> int:
            login_ms = await self._login(user_id, ip)
            self._rest_held.add(user_id)
            await self._run_hooks("on_join", user_id)
            return login_ms

        return await self._serial(user_id, work)  # type: ignore[return-value]

    def user_connected(self, user_id: int, ip: str | None) -> None:
        """The hub's callback for a user's first live connection on this node."""
        async def work() -> None:
            await self._login(user_id, ip or "")
            await self._run_hooks("on_join", user_id)

        self._serial_nowait(user_id, work)

    async def heartbeat(self, user_id: int) -> int | None:
        """REST heartbeat; returns lastHeartbeat, or None if the player is not online."""
        now_ms = _now_ms()
        return now_ms if await self.presence.heartbeat(user_id, now_ms) else None

    async def _login(self, user_id: int, ip: str) -> int:
        created, login_ms = await self.presence.login(user_id, ip, _now_ms())
        if created:
            log.info("login", extra={"user_id": user_id})
            await self._run_hooks("on_login", user_id)
        return login_ms

    async def _run_hooks(self, name: str, user_id: int, now: float | None = None) -> None:
        now = time.time() if now is None else now
        for hook in self.hooks:
            try:
                await getattr(hook, name)(user_id, now)
            except Exception:
                log.exception("session hook failed", extra={"user_id": user_id, "hook": name})

    # -- ways out ------------------------------------------------------------------------

    def user_disconnected(self, user_id: int, last_ping: float) -> None:
        """The hub's callback when a user's last connection on this node has gone.

        Their last ping becomes their last heartbeat: the timeout counts from it.
        """
        last_ms = _now_ms() - int((time.monotonic() - last_ping) * 1000)

        async def work() -> None:
            await self.presence.heartbeat(user_id, last_ms)
            if not self.connections.is_online(user_id):  # unless they came back meanwhile
                await self._run_hooks("on_leave", user_id)

        self._serial_nowait(user_id, work)

    async def logout(self, user_id: int, reason: str = "logout") -> int | None:
        """Log out now; return the logout time (ms), or None if not online."""
        return await self._serial(user_id, lambda: self._logout(user_id, reason, None))  # type: ignore[return-value]

    async def _logout(self, user_id: int, reason: str, stale_before_ms: int | None) -> int | None:
        now = time.time()
        now_ms = int(now * 1000)
        if not await self.presence.logout(user_id, now_ms, stale_before_ms):
            return None
        self.logouts += 1
        log.info("logout", extra={"user_id": user_id, "reason": reason})
        await self._run_hooks("on_logout", user_id, now)
        return now_ms

    # -- the sweep -----------------------------------------------------------------------

    def sweep(self, alive: list[tuple[int, float]], now: float) -> None:
        """Called by the hub's sweeper every second with each connected user's latest
        ping (monotonic time); the work runs as one task."""
        if self._sweeping is None or self._sweeping.done():
            self._sweeping = asyncio.get_running_loop().create_task(self._sweep(alive, now, _now_ms()))

    async def _sweep(self, alive: list[tuple[int, float]], now: float, now_ms: int) -> None:
        try:
            # In pieces, yielding in between: at 10,000 players one piece was a 3-13 ms stall.
            for start in range(0, len(alive), REFRESH_CHUNK):
                if start:
                    await asyncio.sleep(0)
                pings = [(uid, now_ms - int((now - last) * 1000)) for uid, last in alive[start:start + REFRESH_CHUNK]]
                for user_id in await self.presence.refresh(pings):
                    # Logged out elsewhere (or the store lost them) while connected here.
                    if self.connections.is_online(user_id):
                        self.user_connected(user_id, None)
            before = now_ms - self.timeout_ms
            for user_id in list(self._rest_held):
                # A REST session ended (here or on another node): release its state.
                record = await self.presence.get(user_id)
                if record is None or record.status != "online":
                    self._rest_held.discard(user_id)
                    if not self.connections.is_online(user_id):
                        self._serial_nowait(user_id, lambda uid=user_id: self._run_hooks("on_leave", uid))
            for user_id in await self.presence.stale(before, STALE_BATCH):
                if not self.connections.is_online(user_id):
                    self._serial_nowait(user_id, lambda uid=user_id: self._logout(uid, "heartbeat timeout", before))
        except Exception as exc:  # the store is unreachable: try again next second
            log.warning("session sweep failed", extra={"error": type(exc).__name__})

    # -- queries -------------------------------------------------------------------------

    async def get(self, user_id: int) -> PresenceRecord | None:
        return await self.presence.get(user_id)

    async def online(self) -> list[PresenceRecord]:
        return await self.presence.online()

    async def close(self) -> None:
        """Let queued logins and logouts finish (shutdown); nobody is logged out for it."""
        pending = [t for t in (*self._tails.values(), self._sweeping) if t is not None]
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    # -- internals -----------------------------------------------------------------------

    def _serial_nowait(self, user_id: int, work: Callable[[], Awaitable[object]]) -> asyncio.Task[object]:
        """Run `work` after everything already queued for this user."""
        previous = self._tails.get(user_id)

        async def run() -> object:
            if previous is not None:
                await asyncio.wait([previous])
            return await work()

        task = asyncio.get_running_loop().create_task(run())
        self._tails[user_id] = task

        def done(t: asyncio.Task[object]) -> None:
            if self._tails.get(user_id) is t:
                del self._tails[user_id]
            if not t.cancelled() and t.exception() is not None:
                log.warning("session work failed", extra={"user_id": user_id, "error": repr(t.exception())})

        task.add_done_callback(done)
        return task

    async def _serial(self, user_id: int, work: Callable[[], Awaitable[object]]) -> object:
        return await self._serial_nowait(user_id, work)
