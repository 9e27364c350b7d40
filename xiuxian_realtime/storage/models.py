"""Tables. Column names follow the original's `users` table where it has one."""

from __future__ import annotations

from sqlalchemy import BigInteger, Float, Integer, String
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
    # Unix seconds (float) of the last time spirit growth was settled. Growth between
    # this and "now" is owed to the player only while they are online.
    last_spirit_gain_time: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[float] = mapped_column(Float, default=0.0)
