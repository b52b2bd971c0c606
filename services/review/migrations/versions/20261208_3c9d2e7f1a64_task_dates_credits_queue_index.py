"""review tasks: claimed dates, months, expected credits and warnings; the queue's index

Revision ID: 3c9d2e7f1a64
Revises: 58f7801c81c7
Create Date: 2026-12-08 02:50:00

The console's task page shows what the claim said beside the hours (issue 18): the dates, the
months, the credits the rules expect and their warnings, all from ``claim.submitted``. Tasks
opened before this carry NULL (their events had none of it).

The queue page reads one org's open tasks of a stage oldest first: the index now ends with
``(created_at, id)``, the keyset of the page, so a page is read in index order instead of
sorting the whole queue (it replaces the index on ``(org_id, status, stage)``, which it covers).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "3c9d2e7f1a64"
down_revision: str | None = "58f7801c81c7"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("review_tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("start_date", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("end_date", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("months", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("expected_credits", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("warnings", sa.JSON(), nullable=True))
        batch_op.create_index(
            "ix_review_tasks_org_status_created",
            ["org_id", "status", "stage", "created_at", "id"],
            unique=False,
        )
        batch_op.drop_index("ix_review_tasks_org_status")


def downgrade() -> None:
    with op.batch_alter_table("review_tasks", schema=None) as batch_op:
        batch_op.create_index(
            "ix_review_tasks_org_status", ["org_id", "status", "stage"], unique=False
        )
        batch_op.drop_index("ix_review_tasks_org_status_created")
        batch_op.drop_column("warnings")
        batch_op.drop_column("expected_credits")
        batch_op.drop_column("months")
        batch_op.drop_column("end_date")
        batch_op.drop_column("start_date")
