"""code owners and image users

Revision ID: 0009
Revises: 0008

Code archives and images stay shared by hash; these tables say which
workspaces may use (and see) each one. Rows that exist already go to the
workspaces whose deployments use them.
"""

import time

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "code_owners",
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"]),
        sa.ForeignKeyConstraint(["hash"], ["code_objects.hash"]),
        sa.PrimaryKeyConstraint("workspace_id", "hash"),
    )
    op.create_table(
        "image_users",
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("image_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"]),
        sa.ForeignKeyConstraint(["image_id"], ["images.id"]),
        sa.PrimaryKeyConstraint("workspace_id", "image_id"),
    )
    now = time.time()
    op.execute(
        sa.text(
            "INSERT INTO code_owners (workspace_id, hash, created_at) "
            "SELECT DISTINCT workspace_id, code_hash, :now FROM deployments"
        ).bindparams(now=now)
    )
    op.execute(
        sa.text(
            "INSERT INTO image_users (workspace_id, image_id, created_at) "
            "SELECT DISTINCT workspace_id, image_id, :now FROM deployments"
        ).bindparams(now=now)
    )


def downgrade() -> None:
    op.drop_table("image_users")
    op.drop_table("code_owners")
