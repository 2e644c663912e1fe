"""task origin: the request that made a call, and one deployment's tasks in order

Revision ID: 0018
Revises: 0017
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A call accepted by one gateway runs on the leader: its request id and trace context travel in the row.
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("request_id", sa.String(128), nullable=True))
        batch.add_column(sa.Column("traceparent", sa.String(64), nullable=True))
    op.create_index("ix_tasks_workspace_name_created", "tasks", ["workspace_id", "name", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_tasks_workspace_name_created", table_name="tasks")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("traceparent")
        batch.drop_column("request_id")
