"""outbound records: a lease so two senders split the work

Revision ID: b1c7e2a4d9f0
Revises: 8057e69d89fb
Create Date: 2026-11-26 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import libs.common.db

revision: str = "b1c7e2a4d9f0"
down_revision: str | None = "8057e69d89fb"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbound_records", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("leased_until", libs.common.db.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("outbound_records", schema=None) as batch_op:
        batch_op.drop_column("leased_until")
