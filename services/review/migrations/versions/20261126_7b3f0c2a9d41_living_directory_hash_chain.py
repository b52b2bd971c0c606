"""living directory (orgs.active), hash-chained history, persons' affiliations

Revision ID: 7b3f0c2a9d41
Revises: de456ecd027d
Create Date: 2026-11-26 14:30:00

Existing history rows are numbered per claim (by time) and chained, so a database that already
holds decisions starts verified.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from services.review.history import GENESIS, step_hash

revision: str = "7b3f0c2a9d41"
down_revision: str | None = "de456ecd027d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("orgs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("active", sa.Boolean(), server_default=sa.true(), nullable=False)
        )
    with op.batch_alter_table("review_tasks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_review_tasks_person_id"), ["person_id"], unique=False)
    op.create_table(
        "review_history_heads",
        sa.Column("claim_id", sa.String(length=36), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("claim_id", name=op.f("pk_review_history_heads")),
    )
    op.create_table(
        "review_persons",
        sa.Column("person_id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.PrimaryKeyConstraint("person_id", name=op.f("pk_review_persons")),
    )
    with op.batch_alter_table("review_history", schema=None) as batch_op:
        batch_op.add_column(sa.Column("seq", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("from_org_id", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("prev_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("hash", sa.String(length=64), nullable=True))
    _chain_existing_rows()
    with op.batch_alter_table("review_history", schema=None) as batch_op:
        batch_op.alter_column("seq", existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column("prev_hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column("hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.create_unique_constraint(
            batch_op.f("uq_review_history_claim_id"), ["claim_id", "seq"]
        )


def _chain_existing_rows() -> None:
    from libs.common.db import UTCDateTime

    bind = op.get_bind()
    history = sa.table(
        "review_history",
        sa.column("id", sa.String),
        sa.column("claim_id", sa.String),
        sa.column("seq", sa.Integer),
        sa.column("revision", sa.Integer),
        sa.column("stage", sa.String),
        sa.column("org_id", sa.String),
        sa.column("from_org_id", sa.String),
        sa.column("actor", sa.String),
        sa.column("decision", sa.String),
        sa.column("reason", sa.Text),
        sa.column("at", UTCDateTime()),
        sa.column("prev_hash", sa.String),
        sa.column("hash", sa.String),
    )
    heads = sa.table(
        "review_history_heads",
        sa.column("claim_id", sa.String),
        sa.column("seq", sa.Integer),
        sa.column("hash", sa.String),
    )
    rows = bind.execute(
        sa.select(history).order_by(history.c.claim_id, history.c.at, history.c.id)
    ).all()
    last: dict[str, tuple[int, str]] = {}
    for row in rows:
        seq, prev = last.get(row.claim_id, (0, GENESIS))
        seq += 1
        digest = step_hash(
            claim_id=row.claim_id,
            seq=seq,
            revision=row.revision,
            stage=row.stage,
            org_id=row.org_id,
            from_org_id=None,
            actor=row.actor,
            decision=row.decision,
            reason=row.reason,
            at=row.at,
            prev_hash=prev,
        )
        bind.execute(
            history.update()
            .where(history.c.id == row.id)
            .values(seq=seq, prev_hash=prev, hash=digest)
        )
        last[row.claim_id] = (seq, digest)
    if last:
        bind.execute(
            heads.insert(),
            [{"claim_id": c, "seq": s, "hash": h} for c, (s, h) in last.items()],
        )


def downgrade() -> None:
    with op.batch_alter_table("review_history", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_review_history_claim_id"), type_="unique")
        batch_op.drop_column("hash")
        batch_op.drop_column("prev_hash")
        batch_op.drop_column("from_org_id")
        batch_op.drop_column("seq")
    op.drop_table("review_persons")
    op.drop_table("review_history_heads")
    with op.batch_alter_table("review_tasks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_review_tasks_person_id"))
    with op.batch_alter_table("orgs", schema=None) as batch_op:
        batch_op.drop_column("active")
