"""events: the control plane's decisions with their reasons and inputs

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("ts", sa.Float(), nullable=False),
        sa.Column("workspace_id", sa.String(length=40), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("deployment", sa.String(length=63), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_events_ts", "events", ["ts"], unique=False)
    op.create_index("ix_events_workspace_id_id", "events", ["workspace_id", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_events_workspace_id_id", table_name="events")
    op.drop_index("ix_events_ts", table_name="events")
    op.drop_table("events")
