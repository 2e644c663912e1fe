"""worker tokens bound to one worker identity

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tokens", sa.Column("worker_identity", sa.String(length=64), nullable=True))
    op.create_index("ix_tokens_worker_identity", "tokens", ["worker_identity"])
    op.add_column("workers", sa.Column("identity", sa.String(length=64), nullable=True))
    op.add_column("workers", sa.Column("token_id", sa.String(length=40), nullable=True))


def downgrade() -> None:
    op.drop_column("workers", "token_id")
    op.drop_column("workers", "identity")
    op.drop_index("ix_tokens_worker_identity", table_name="tokens")
    op.drop_column("tokens", "worker_identity")
