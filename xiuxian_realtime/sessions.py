"""Online sessions: login, heartbeat, logout — one code path for every way in and out.

A player is online from `POST /api/online/login` or their first WebSocket connection until
they log out or every heartbeat stops (WebSocket pings on any connection, or
`POST /api/online/heartbeat`) for the timeout. While a player has a live connection there
is no deadline at all; when the last one closes, the deadline is its last ping plus the
timeout. The sweeper looks only at players without connections, so its cost follows
the number of players who just left, not the number online.

Logging out happens exactly once per session: the session record is removed
synchronously by whoever decides to log out, so a second caller finds nothing. The
slow parts (settling spirit in the database, marking presence offline) run in a per-user
queue, so a reconnect racing a logout waits for the settle before its own login.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Awaitable, Callable, Protocol

from .presence import Presence, PresenceRecord

log = logging.getLogger("xiuxian.sessions")


class SessionHooks(Protocol):
    """Game services that must act when a player comes online or leaves."""

    async def on_login(self, user_id: int, now: float) -> None: ...

    async def on_logout(self, user_id: int, now: float) -> None: ...


class ConnectionView(Protocol):
    def is_online(self, user_id: int) -> bool: ...

    def last_ping(self, user_id: int) -> float | None: ...


@dataclass(slots=True)
class Session:
    user_id: int
    session_id: int
    login_ms: int
    ip: str
    last_heartbeat_ms: int


class Sessions:
    def __init__(self, presence: Presence, hooks: list[SessionHooks], connections: ConnectionView,
                 timeout_s: float) -> None:
        self.presence = presence
        self.hooks = hooks
        self.connections = connections
        self.timeout_s = timeout_s
        self._online: dict[int, Session] = {}
        # Players with no live connection: user id -> monotonic deadline.
        self._deadlines: dict[int, float] = {}
        self._tails: dict[int, asyncio.Task[object]] = {}
        self._next_session = 0
        self.logouts = 0

    # -- queries -------------------------------------------------------------------------

    def is_online(self, user_id: int) -> bool:
        return user_id in self._online

    def session(self, user_id: int) -> Session | None:
        return self._online.get(user_id)

    def online_ids(self) -> list[int]:
        return list(self._online)

    def last_heartbeat_ms(self, user_id: int) -> int | None:
        session = self._online.get(user_id)
        if session is None:
            return None
        last_ping = self.connections.last_ping(user_id)
        if last_ping is not None:
            return max(session.last_heartbeat_ms, _wall_ms_of(last_ping))
        return session.last_heartbeat_ms

    # -- ways in -------------------------------------------------------------------------

    async def login(self, user_id: int, ip: str) -> Session:
        """REST login. Already online: the session (and its spirit clock) carries on."""
        session = self._online.get(user_id)
        if session is None:
            session = self._open(user_id, ip)
            await self._serial(user_id, lambda: self._login_work(session))
        else:
            session.ip = ip or session.ip
            self._touch(user_id)
            await self._serial(user_id, lambda: self.presence.set_online(_record(session)))
        return session

    def user_connected(self, user_id: int, ip: str | None) -> None:
        """The hub's callback for a user's first live connection on this node."""
        self._deadlines.pop(user_id, None)
        if user_id in self._online:
            return
        session = self._open(user_id, ip or "")
        self._serial_nowait(user_id, lambda: self._login_work(session))

    async def heartbeat(self, user_id: int) -> Session | None:
        session = self._online.get(user_id)
        if session is None:
            return None
        self._touch(user_id)
        await self.presence.heartbeat([user_id], session.last_heartbeat_ms)
        return session

    # -- ways out ------------------------------------------------------------------------

    def user_disconnected(self, user_id: int, last_ping: float) -> None:
        """The hub's callback when a user's last connection on this node has gone."""
        if user_id in self._online:
            self._deadlines[user_id] = last_ping + self.timeout_s

    async def logout(self, user_id: int, reason: str = "logout") -> int | None:
        """Log out now; return the logout time (ms), or None if not online."""
        task = self._begin_logout(user_id, reason)
        if task is None:
            return None
        return await task

    def sweep(self, now: float | None = None) -> int:
        """Log out every player whose deadline has passed; return how many."""
        if now is None:
            now = time.monotonic()
        due = [uid for uid, deadline in self._deadlines.items() if deadline <= now]
        for user_id in due:
            if self.connections.is_online(user_id):
                self._deadlines.pop(user_id, None)
                continue
            self._begin_logout(user_id, "heartbeat timeout")
        return len(due)

    def _begin_logout(self, user_id: int, reason: str) -> asyncio.Future[int] | None:
        session = self._online.pop(user_id, None)
        self._deadlines.pop(user_id, None)
        if session is None:
            return None
        self.logouts += 1
        now = time.time()
        log.info("logout", extra={"user_id": user_id, "reason": reason})

        async def work() -> int:
            for hook in self.hooks:
                try:
                    await hook.on_logout(user_id, now)
                except Exception:
                    log.exception("logout hook failed", extra={"user_id": user_id})
            logout_ms = int(now * 1000)
            await self.presence.set_offline(user_id, logout_ms)
            return logout_ms

        return self._serial_nowait(user_id, work)

    async def close(self) -> None:
        """Let queued logins and settles finish (shutdown); nobody is logged out for it."""
        tails = list(self._tails.values())
        if tails:
            await asyncio.gather(*tails, return_exceptions=True)

    # -- internals -----------------------------------------------------------------------

    def _open(self, user_id: int, ip: str) -> Session:
        self._next_session += 1
        now_ms = int(time.time() * 1000)
        session = Session(user_id, self._next_session, now_ms, ip, now_ms)
        self._online[user_id] = session
        if not self.connections.is_online(user_id):
            self._deadlines[user_id] = time.monotonic() + self.timeout_s
        log.info("login", extra={"user_id": user_id})
        return session

    def _touch(self, user_id: int) -> None:
        session = self._online[user_id]
        session.last_heartbeat_ms = int(time.time() * 1000)
        if not self.connections.is_online(user_id):
            self._deadlines[user_id] = time.monotonic() + self.timeout_s

    async def _login_work(self, session: Session) -> None:
        now = time.time()
        for hook in self.hooks:
            try:
                await hook.on_login(session.user_id, now)
            except Exception:
                log.exception("login hook failed", extra={"user_id": session.user_id})
        await self.presence.set_online(_record(session))

    def _serial_nowait(self, user_id: int, work: Callable[[], Awaitable[object]]) -> asyncio.Future:
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
                log.error("session work failed", exc_info=t.exception(), extra={"user_id": user_id})

        task.add_done_callback(done)
        return task

    async def _serial(self, user_id: int, work: Callable[[], Awaitable[object]]) -> object:
        return await self._serial_nowait(user_id, work)


def _record(session: Session) -> PresenceRecord:
    return PresenceRecord(session.user_id, session.login_ms, session.last_heartbeat_ms, session.ip)


def _wall_ms_of(monotonic_t: float) -> int:
    return int((time.time() - (time.monotonic() - monotonic_t)) * 1000)
