"""Tables. Column names follow the original's `users` table where it has one.

The schema is created and changed by the Alembic migrations in
`xiuxian_realtime/migrations/`; these models must match the latest migration.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
IdType = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(128))
    level: Mapped[int] = mapped_column(Integer, default=1)
    realm: Mapped[str] = mapped_column(String(32), default="练气期一层")
    spirit: Mapped[float] = mapped_column(Float, default=0.0)
    spirit_rate: Mapped[float] = mapped_column(Float, default=1.0)
    power: Mapped[int] = mapped_column(Integer, default=10)
    # Unix seconds (float) up to which spirit growth has been settled into `spirit`.
    # Growth after this is owed to the player only while they are online.
    last_spirit_gain_time: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[float] = mapped_column(Float, default=0.0)
    avatar_url: Mapped[str] = mapped_column(String(255), default="", server_default="")


class InventoryItem(Base):
    """One stack of an item a player owns (dungeon loot, exploration rewards)."""

    __tablename__ = "inventory_items"
    __table_args__ = (Index("ix_inventory_user_item", "user_id", "item", unique=True),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(IdType, ForeignKey("users.id", ondelete="CASCADE"))
    item: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[float] = mapped_column(Float, default=0.0)


class DungeonRun(Base):
    __tablename__ = "dungeon_runs"
    __table_args__ = (Index("ix_dungeon_runs_user", "user_id"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(IdType, ForeignKey("users.id", ondelete="CASCADE"))
    dungeon: Mapped[str] = mapped_column(String(64))
    victory: Mapped[bool] = mapped_column(Boolean)
    rounds: Mapped[int] = mapped_column(Integer)
    loot: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of {name, quantity}
    started_at: Mapped[float] = mapped_column(Float)
    finished_at: Mapped[float] = mapped_column(Float)


class ExplorationResult(Base):
    __tablename__ = "exploration_results"
    __table_args__ = (Index("ix_exploration_results_user", "user_id"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(IdType, ForeignKey("users.id", ondelete="CASCADE"))
    location: Mapped[str] = mapped_column(String(64))
    success: Mapped[bool] = mapped_column(Boolean)
    discoveries: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of names
    reward: Mapped[str] = mapped_column(Text, default="null")  # JSON {items, ...} or null
    error_msg: Mapped[str] = mapped_column(String(255), default="")
    started_at: Mapped[float] = mapped_column(Float)
    finished_at: Mapped[float] = mapped_column(Float)
