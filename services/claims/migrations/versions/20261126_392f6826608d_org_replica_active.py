"""org replica: active (a deactivated org takes no registrations or transfers)

Revision ID: 392f6826608d
Revises: 64c01e7d19e3
Create Date: 2026-11-26 19:45:00

Orgs replicated before this are taken as active; review's next ``org.upserted`` of an org
(every change carries ``active``) corrects one that was deactivated meanwhile.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "392f6826608d"
down_revision: str | None = "64c01e7d19e3"
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
