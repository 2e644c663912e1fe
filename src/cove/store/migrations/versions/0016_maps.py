"""maps: a ``.map`` any gateway can serve, and each output's place in its order of completion

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "maps",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("deployment_id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("cancelled", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"]),
        sa.ForeignKeyConstraint(["deployment_id"], ["deployments.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.add_column("tasks", sa.Column("map_seq", sa.Integer(), nullable=True))
    op.create_index("ix_tasks_map_seq", "tasks", ["map_id", "map_seq"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_tasks_map_seq", table_name="tasks")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("map_seq")
    op.drop_table("maps")
