"""disk limits in workspace quotas

Existing quotas were set before disk limits existed: they get the shipped
default disk limits rather than none.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

GiB = 1 << 30
# The shipped defaults at the time of this revision (cove.scheduler._quotas declares the current ones).
_DISK_LIMITS = {"max_volume_bytes": 100 * GiB, "max_code_bytes": 10 * GiB, "max_blob_bytes": 50 * GiB}


def upgrade() -> None:
    with op.batch_alter_table("workspace_quotas", schema=None) as batch_op:
        for name in _DISK_LIMITS:
            batch_op.add_column(sa.Column(name, sa.BigInteger(), nullable=True))
    quotas = sa.table("workspace_quotas", *(sa.column(name, sa.BigInteger()) for name in _DISK_LIMITS))
    op.execute(quotas.update().values(**_DISK_LIMITS))


def downgrade() -> None:
    with op.batch_alter_table("workspace_quotas", schema=None) as batch_op:
        for name in _DISK_LIMITS:
            batch_op.drop_column(name)
