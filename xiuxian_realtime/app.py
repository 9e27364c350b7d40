"""Wiring: builds every part from the settings and ties their lifetimes to the app's.

Read this file to see the whole server at a glance: which backend each interface gets,
who calls whom, and what happens at start-up and shutdown.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from . import gcpolicy, metrics
from .api import auth as auth_api
from .api import dungeon as dungeon_api
from .api import errors, online, player, publish, status
from .api import exploration as exploration_api
from .auth import Tokens
from .config import Settings
from . import redis_broker
from .broker import Broker, LocalBroker
from .history import MemoryHistory
from .hub import Hub
from .presence import MemoryPresence, PresenceStore
from .redis_presence import RedisPresence
from .services.dungeon import DungeonService
from .services.exploration import ExplorationService
from .services.leaderboard import CATEGORIES, Leaderboard
from .services.redis_ranks import RedisRankIndex
from .services.players import Players
from .services.spirit import SpiritService
from .services.ticker import TICK_S, Ticker
from .sessions import Sessions
from .storage.db import Database
from .transport import WsGateway

log = logging.getLogger("xiuxian.app")
STATIC_DIR = Path(__file__).parent / "static"


class Runtime:
    """Every long-lived part of one server process."""

    def __init__(self, settings: Settings) -> None:
        settings.ensure_secrets()
        self.settings = settings
        self.tokens = Tokens(settings.jwt_secret.get_secret_value(), settings.jwt_expiry_days)
        self.db = Database(settings.resolved_database_url())
        self.redis = None
        self.history: MemoryHistory | None = None
        if settings.redis_url:
            self.redis = redis_broker.connect(settings.redis_url)
            self.broker: Broker = redis_broker.RedisBroker(
                self.redis, max_events=settings.history_max_events, max_age_s=settings.history_max_age_s)
            self.presence: PresenceStore = RedisPresence(self.redis)
        else:
            self.history = MemoryHistory(settings.history_max_events, settings.history_max_age_s,
                                         settings.history_max_bytes)
            self.broker = LocalBroker(self.history)
            self.presence = MemoryPresence()
        self.hub = Hub(self.broker,
                       heartbeat_interval_ms=settings.heartbeat_interval_ms,
                       heartbeat_timeout_s=settings.heartbeat_timeout_s,
                       pong_hold_s=min(settings.pong_hold_ms, settings.heartbeat_interval_ms) / 1000,
                       read_timeout_s=settings.ws_read_timeout_s,
                       max_connections_per_user=settings.ws_max_connections_per_user)
        # Game services. One ticker drives all per-player periodic work (see services/ticker.py).
        self.players = Players(self.db)
        self.ticker = Ticker(TICK_S)
        self.spirit = SpiritService(self.db, self.hub, self.players, settings.spirit_settle_interval_s)
        # With Redis the leaderboards are shared sorted sets (each node keeps a replica).
        self.rank_boards: list[RedisRankIndex] = []
        if self.redis is not None:
            self.rank_boards = [RedisRankIndex(self.redis, c, self.players, settings.leaderboard_sync_interval_s)
                                for c in CATEGORIES]
        self.leaderboard = Leaderboard(self.players, self.hub, self.spirit,
                                       indexes=dict(zip(CATEGORIES, self.rank_boards)) or None,
                                       check_interval_s=settings.leaderboard_check_interval_s,
                                       update_interval_s=settings.leaderboard_update_interval_s,
                                       notify_interval_s=settings.leaderboard_notify_interval_s,
                                       tick_s=self.ticker.period)
        self.ticker.register(self.spirit.tick)
        self.ticker.register(self.leaderboard.tick)
        self.dungeon = DungeonService(self.db, self.hub, self.players, seed=settings.game_seed,
                                      event_interval_s=settings.dungeon_event_interval_ms / 1000)
        self.exploration = ExplorationService(self.db, self.hub, seed=settings.game_seed,
                                              time_scale=settings.exploration_time_scale)
        # Login hooks run in this order (spirit loads the player's row first); so do logouts.
        self.sessions = Sessions(self.presence, [self.spirit, self.leaderboard], self.hub,
                                 settings.heartbeat_timeout_s)
        self.hub.sessions = self.sessions
        self.gateway = WsGateway(
            self.hub, self.tokens,
            allowed_origins=settings.origin_allow_list(),
            max_inbound_bytes=settings.ws_max_inbound_bytes,
            rate_limit=settings.ws_rate_limit,
            queue_max_messages=settings.ws_queue_max_messages,
            queue_max_bytes=settings.ws_queue_max_bytes)
        self.metrics = metrics.make_registry(self.hub)
        self.gc = gcpolicy.FreezeOnGrowth(self.hub.connection_count)

    @property
    def history_file(self) -> Path:
        return self.settings.data_dir / "history.json"

    async def start(self) -> None:
        await self.db.migrate()
        players = await self.leaderboard.load()
        for board in self.rank_boards:
            await board.start()
        log.info("leaderboards loaded", extra={"players": players})
        if self.history is not None and self.history.load(self.history_file):
            log.info("history restored", extra={"streams": self.history.stream_count})
        await self.broker.start()
        self.hub.start()
        self.gc.start()
        self.ticker.start()

    async def stop(self) -> None:
        """Stop accepting, close connections with 1001, finish pending writes.

        Players are not logged out because the server stops: they reconnect (here or
        on another node) and their session carries on.
        """
        await self.gc.stop()
        await self.gateway.shutdown()
        await self.sessions.close()
        await self.ticker.stop()
        # Unfinished dungeons and explorations are dropped (nothing of them is persisted).
        await self.dungeon.activities.stop()
        await self.exploration.activities.stop()
        # Settle every online player's spirit before the database closes (no logout).
        try:
            await self.spirit.stop()
        except Exception:
            log.exception("final spirit settle failed")
        for board in self.rank_boards:
            await board.stop()
        await self.broker.stop()
        if self.history is not None:
            self.history.save(self.history_file)
        await self.presence.close()
        if self.redis is not None:
            await self.redis.aclose()
        await self.db.close()


def create_app(settings: Settings | None = None) -> FastAPI:
    runtime = Runtime(settings or Settings())

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        log.info("started", extra={"port": runtime.settings.port})
        try:
            yield
        finally:
            await runtime.stop()
            log.info("stopped")

    app = FastAPI(title="xiuxian-realtime", lifespan=lifespan, docs_url="/api/docs",
                  openapi_url="/api/openapi.json", redoc_url=None)
    app.state.runtime = runtime
    errors.install(app)
    for router in (auth_api.router, online.router, status.router, player.router,
                   dungeon_api.router, exploration_api.router):
        app.include_router(router)
    # The publish API is served ahead of FastAPI's routing (see api/publish.py for why).
    app.add_middleware(publish.PublishRoutes, runtime=runtime)
    if (STATIC_DIR / "index.html").exists():
        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

        @app.get("/", include_in_schema=False)
        async def index() -> FileResponse:
            return FileResponse(STATIC_DIR / "index.html")

    return app
