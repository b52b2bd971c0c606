"""claims: an index on (status, created_at, id) for the claims list across an org

Revision ID: e5b8a1c3f702
Revises: b71c4e2a9d05
Create Date: 2026-12-08 03:00:00

``GET /v1/claims?org_id=&status=`` (the console's lists, issue 18) pages through the claims of a
status in the keyset (created_at, id): with the index the page is read in index order and the
scope's persons filter it, instead of sorting every claim of the status for each page.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "e5b8a1c3f702"
down_revision: str | None = "b71c4e2a9d05"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("claims", schema=None) as batch_op:
        batch_op.create_index(
            "ix_claims_status_created", ["status", "created_at", "id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("claims", schema=None) as batch_op:
        batch_op.drop_index("ix_claims_status_created")
