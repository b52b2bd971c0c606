"""project replica (filing status), the cited project and special leave on review tasks

Revision ID: 58f7801c81c7
Revises: 7b3f0c2a9d41
Create Date: 2026-11-26 19:40:00

Tasks opened before this carry no project or leave (NULL): events written before the fields
existed had none to give.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from libs.common.db import UTCDateTime

revision: str = "58f7801c81c7"
down_revision: str | None = "7b3f0c2a9d41"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "review_projects",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("applicant_org_id", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("opinion", sa.Text(), nullable=True),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_projects")),
    )
    with op.batch_alter_table("review_tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("project_id", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("leave_kind", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("leave_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("review_tasks", schema=None) as batch_op:
        batch_op.drop_column("leave_reason")
        batch_op.drop_column("leave_kind")
        batch_op.drop_column("project_id")
    op.drop_table("review_projects")
