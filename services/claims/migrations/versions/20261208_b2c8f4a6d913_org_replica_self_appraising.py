"""org replica: the self-appraising flag (职称自主评聘单位, 五(二))

Revision ID: b2c8f4a6d913
Revises: f3a9c2d4b810
Create Date: 2026-12-08 03:51:00

``org.upserted`` carries the flag review keeps (issue 20 item 10); the compliance reports show
it. Orgs replicated before this are taken as not self-appraising until review's next upsert.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b2c8f4a6d913"
down_revision: str | None = "f3a9c2d4b810"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("org_replica", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("self_appraising", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("org_replica", schema=None) as batch_op:
        batch_op.drop_column("self_appraising")
