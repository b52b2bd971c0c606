"""project replica: subject (a filed 公需 project certifies public hours)

Revision ID: b71c4e2a9d05
Revises: c4e1a7b2d903
Create Date: 2026-11-27 00:20:00

Projects replicated before this have no subject (NULL: "not said"), so only an e-certificate
certifies public hours for them until the registry's next ``project.approved`` of the project.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b71c4e2a9d05"
down_revision: str | None = "c4e1a7b2d903"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("project_replica", schema=None) as batch_op:
        batch_op.add_column(sa.Column("subject", sa.String(length=20), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("project_replica", schema=None) as batch_op:
        batch_op.drop_column("subject")
