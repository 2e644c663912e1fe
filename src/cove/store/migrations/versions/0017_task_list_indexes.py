"""task list indexes: a workspace's tasks newest first, all or in one state, without sorting them all

Revision ID: 0017
Revises: 0016
"""

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # (workspace, state, created_at) serves every query (workspace, state) did, and pages of one state in order.
    op.drop_index("ix_tasks_workspace_state", table_name="tasks")
    op.create_index("ix_tasks_workspace_state_created", "tasks", ["workspace_id", "state", "created_at"])
    op.create_index("ix_tasks_workspace_created", "tasks", ["workspace_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_tasks_workspace_created", table_name="tasks")
    op.drop_index("ix_tasks_workspace_state_created", table_name="tasks")
    op.create_index("ix_tasks_workspace_state", "tasks", ["workspace_id", "state"])
