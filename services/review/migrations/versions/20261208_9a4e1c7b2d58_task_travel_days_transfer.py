"""review tasks: an expert activity's travel days, a transfer-in's date and issuer

Revision ID: 9a4e1c7b2d58
Revises: 3c9d2e7f1a64
Create Date: 2026-12-08 03:40:00

Reviewers see what the rules of issue 20 look at: the travel and rest days of an expert
activity (not credited, 附件1.4) and the transfer date and issuing authority of a transfer-in
claim (四(三)), from ``claim.submitted``. Older tasks carry NULL.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "9a4e1c7b2d58"
down_revision: str | None = "3c9d2e7f1a64"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("review_tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("travel_days", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("transfer_date", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("issuing_authority", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("review_tasks", schema=None) as batch_op:
        batch_op.drop_column("issuing_authority")
        batch_op.drop_column("transfer_date")
        batch_op.drop_column("travel_days")
