"""claims: personal_evidence_holds, one live claim per personal certificate

Revision ID: c5d1e7a3f926
Revises: b2c8f4a6d913
Create Date: 2026-12-08 04:00:00

One personal certificate, one person (issue 20 item 9): the primary key (kind, value) refuses a
second person's claim citing a qualification or transfer-in certificate or an exam card even when
both are submitted at the same moment. Claims from before this hold nothing here; the submission's
query over claim_references finds them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c5d1e7a3f926"
down_revision: str | None = "b2c8f4a6d913"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "personal_evidence_holds",
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.Column("person_id", sa.String(length=36), nullable=False),
        sa.Column("claim_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["claim_id"], ["claims.id"], name=op.f("fk_personal_evidence_holds_claim_id_claims")
        ),
        sa.PrimaryKeyConstraint("kind", "value", name=op.f("pk_personal_evidence_holds")),
    )
    with op.batch_alter_table("personal_evidence_holds", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_personal_evidence_holds_claim_id"), ["claim_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("personal_evidence_holds", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_personal_evidence_holds_claim_id"))
    op.drop_table("personal_evidence_holds")
