"""org replica: active (a deactivated org files nothing, uploads nothing, issues no cards)

Revision ID: 5a8e3c71d2f4
Revises: 67174d94c08d
Create Date: 2026-11-27 00:10:00

Orgs replicated before this are taken as active; review's next ``org.upserted`` of an org
(every change carries ``active``) corrects one that was deactivated meanwhile.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5a8e3c71d2f4"
down_revision: str | None = "67174d94c08d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("org_replica", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("active", sa.Boolean(), server_default=sa.true(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("org_replica", schema=None) as batch_op:
        batch_op.drop_column("active")
