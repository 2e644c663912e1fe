"""cluster lease and task owners

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    leases = op.create_table(
        "cluster_leases",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("holder", sa.String(length=40), nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    # The row exists from the start, so taking the lease is always one conditional UPDATE.
    op.bulk_insert(leases, [{"name": "scheduler", "holder": None, "url": None, "epoch": 0, "expires_at": 0.0}])
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner", sa.String(length=40), nullable=True))
        batch_op.create_index(batch_op.f("ix_tasks_owner"), ["owner"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tasks_owner"))
        batch_op.drop_column("owner")
    op.drop_table("cluster_leases")
