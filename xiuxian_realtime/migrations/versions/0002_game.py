"""Game services: avatars, inventory, dungeon runs, exploration results.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

IdType = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("avatar_url", sa.String(255), nullable=False, server_default=""))
    op.create_table(
        "inventory_items",
        sa.Column("id", IdType, primary_key=True, autoincrement=True),
        sa.Column("user_id", IdType, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("item", sa.String(64), nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("ix_inventory_user_item", "inventory_items", ["user_id", "item"], unique=True)
    op.create_table(
        "dungeon_runs",
        sa.Column("id", IdType, primary_key=True, autoincrement=True),
        sa.Column("user_id", IdType, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("dungeon", sa.String(64), nullable=False),
        sa.Column("victory", sa.Boolean, nullable=False),
        sa.Column("rounds", sa.Integer, nullable=False),
        sa.Column("loot", sa.Text, nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("finished_at", sa.Float, nullable=False),
    )
    op.create_index("ix_dungeon_runs_user", "dungeon_runs", ["user_id"])
    op.create_table(
        "exploration_results",
        sa.Column("id", IdType, primary_key=True, autoincrement=True),
        sa.Column("user_id", IdType, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("location", sa.String(64), nullable=False),
        sa.Column("success", sa.Boolean, nullable=False),
        sa.Column("discoveries", sa.Text, nullable=False),
        sa.Column("reward", sa.Text, nullable=False),
        sa.Column("error_msg", sa.String(255), nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("finished_at", sa.Float, nullable=False),
    )
    op.create_index("ix_exploration_results_user", "exploration_results", ["user_id"])


def downgrade() -> None:
    op.drop_table("exploration_results")
    op.drop_table("dungeon_runs")
    op.drop_table("inventory_items")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("avatar_url")
