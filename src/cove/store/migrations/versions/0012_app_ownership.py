"""apps: where each was deployed from, ephemeral apps with their heartbeat, and the names a version's app uses

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("apps", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("ephemeral", sa.Boolean(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("heartbeat_at", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("stopped_at", sa.Float(), nullable=True))
    # The gateway's reaper looks for live ephemeral apps whose heartbeat is old.
    op.create_index("ix_apps_ephemeral_live", "apps", ["ephemeral", "stopped_at"], unique=False)
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("app_names", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.drop_column("app_names")
    op.drop_index("ix_apps_ephemeral_live", table_name="apps")
    with op.batch_alter_table("apps", schema=None) as batch_op:
        batch_op.drop_column("stopped_at")
        batch_op.drop_column("heartbeat_at")
        batch_op.drop_column("ephemeral")
        batch_op.drop_column("source")
