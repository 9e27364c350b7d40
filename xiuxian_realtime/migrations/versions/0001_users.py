"""users: the table of the gateway's first version.

Databases created before migrations existed (by `create_all`) already have it; for them
this revision only records the baseline.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

IdType = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    if sa.inspect(op.get_bind()).has_table("users"):
        return
    op.create_table(
        "users",
        sa.Column("id", IdType, primary_key=True, autoincrement=True),
        sa.Column("username", sa.String(64), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(128), nullable=False),
        sa.Column("level", sa.Integer, nullable=False),
        sa.Column("realm", sa.String(32), nullable=False),
        sa.Column("spirit", sa.Float, nullable=False),
        sa.Column("spirit_rate", sa.Float, nullable=False),
        sa.Column("power", sa.Integer, nullable=False),
        sa.Column("last_spirit_gain_time", sa.Float, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("users")
