"""claims: an index on claim_references (kind, value)

Revision ID: f3a9c2d4b810
Revises: e5b8a1c3f702
Create Date: 2026-12-08 03:40:00

One personal certificate, one person (issue 20 item 9): a qualification certificate, transfer-in
certificate or exam card cited by another person's live claim is refused. The unique key starts
with the person; this index finds the other persons citing a value.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "f3a9c2d4b810"
down_revision: str | None = "e5b8a1c3f702"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("claim_references", schema=None) as batch_op:
        batch_op.create_index("ix_claim_references_kind_value", ["kind", "value"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("claim_references", schema=None) as batch_op:
        batch_op.drop_index("ix_claim_references_kind_value")
