"""orgs: the self-appraising flag (职称自主评聘单位, 五(二))

Revision ID: a7d3e9f1c205
Revises: 9a4e1c7b2d58
Create Date: 2026-12-08 03:50:00

The city bureau marks the units that appraise their own staff's titles (issue 20 item 10); the
flag travels in ``org.upserted`` and is shown on the compliance reports. Existing orgs are not.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a7d3e9f1c205"
down_revision: str | None = "9a4e1c7b2d58"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("orgs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("self_appraising", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("orgs", schema=None) as batch_op:
        batch_op.drop_column("self_appraising")
