"""Configuration, read once at start-up from environment variables.

The original backend's names are kept where they exist (``PORT``, ``DATABASE_URL``,
``REDIS_URL``, ``JWT_SECRET``) so a deployment can switch servers without renaming its
settings. Every variable is listed in the README.
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger("xiuxian.config")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    # Where the server listens and keeps its files.
    host: str = "127.0.0.1"
    port: int = 3000
    data_dir: Path = Path("data")

    # Backends. Empty means the embedded default (SQLite in data_dir, in-process broker).
    database_url: str = ""
    redis_url: str = ""

    # Secrets. Empty JWT_SECRET: generated once and kept in data_dir (a dev convenience).
    jwt_secret: SecretStr = SecretStr("")
    api_key: SecretStr = SecretStr("")
    jwt_expiry_days: int = 30

    # Comma-separated allowed Origins; "*" allows any. Empty: own host and localhost.
    allowed_origins: str = ""

    # Heartbeat: the client pings every interval; silence for timeout closes and logs out.
    heartbeat_interval_ms: int = 1000
    heartbeat_timeout_s: float = 10.0
    # A v2 pong waits up to this long to ride on the next frame to its connection (one send
    # call instead of two); 0 answers every ping at once.
    pong_hold_ms: int = 1000
    # No frame at all (not even a ping) for this long closes the connection.
    ws_read_timeout_s: float = 60.0

    # Per-connection limits.
    ws_max_connections_per_user: int = 5
    ws_max_inbound_bytes: int = 4096
    ws_rate_limit: int = 20  # frames per second per connection
    ws_queue_max_messages: int = 1000  # messages queued beyond the socket's high-water mark
    ws_queue_max_bytes: int = 1 << 20  # bytes queued in user space for one connection

    # Publish API limits.
    publish_max_bytes: int = 64 * 1024

    # History kept for resume (v=2).
    history_max_events: int = 500
    history_max_age_s: float = 600.0
    history_max_bytes: int = 64 << 20

    # Game services.
    spirit_settle_interval_s: float = 5.0  # batch settle of online players' spirit
    game_seed: int | None = None  # fixes dungeon and exploration outcomes (tests)
    dungeon_event_interval_ms: int = 500  # spacing of dungeon events; never below 100
    exploration_time_scale: float = 1.0  # multiplies every location's duration
    leaderboard_check_interval_s: float = 10.0  # how often an online player is re-ranked
    leaderboard_notify_interval_s: float = 30.0  # rank_up/rank_down per player and category
    leaderboard_update_interval_s: float = 30.0  # top-10 `update` broadcasts; 0 disables
    leaderboard_sync_interval_s: float = 10.0  # with Redis: how often a node re-reads the shared boards

    log_level: str = "INFO"

    @property
    def heartbeat_timeout_ms(self) -> int:
        return int(self.heartbeat_timeout_s * 1000)

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'xiuxian.db').resolve()}"

    def origin_allow_list(self) -> list[str]:
        return [o.strip().rstrip("/") for o in self.allowed_origins.split(",") if o.strip()]

    def ensure_secrets(self) -> None:
        """Fill in JWT_SECRET and API_KEY for a dev server.

        A generated secret is kept in the data folder so tokens survive a restart. The
        warning names the file, never the value.
        """
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not self.jwt_secret.get_secret_value():
            self.jwt_secret = SecretStr(_load_or_create(self.data_dir / "jwt_secret"))
            log.warning("JWT_SECRET is not set; using a generated secret kept in %s", self.data_dir / "jwt_secret")
        if not self.api_key.get_secret_value():
            self.api_key = SecretStr(_load_or_create(self.data_dir / "api_key"))
            log.warning("API_KEY is not set; using a generated key kept in %s", self.data_dir / "api_key")


def _load_or_create(path: Path) -> str:
    if path.exists():
        value = path.read_text().strip()
        if value:
            return value
    value = secrets.token_urlsafe(32)
    path.write_text(value)
    path.chmod(0o600)
    return value
