"""Experiments (jobs with leases, their rows) and built indexes.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out here rather than imported from indexer.service.store: a migration is a fixed point in history.
JSON = sa.JSON().with_variant(JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)
STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")


def upgrade() -> None:
    op.create_table(
        "experiments",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("spec", JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("progress", sa.Float, nullable=False, server_default="0"),
        sa.Column("message", sa.Text, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("max_attempts", sa.Integer, nullable=False),
        sa.Column("worker_id", sa.String(200), nullable=True),
        sa.Column("lease_expires_at", TS, nullable=True),
        sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("queued_at", TS, nullable=False),
        sa.Column("started_at", TS, nullable=True),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("report_dir", sa.Text, nullable=True),
        sa.Column("rows", JSON, nullable=True),
        sa.CheckConstraint(f"status IN ({', '.join(repr(s) for s in STATUSES)})", name="ck_experiments_status"),
        sa.CheckConstraint("progress >= 0 AND progress <= 1", name="ck_experiments_progress"),
    )
    # claim: the oldest queued job, or a running one whose lease expired
    op.create_index("ix_experiments_status_queued_at", "experiments", ["status", "queued_at"])
    op.create_index("ix_experiments_created_at", "experiments", ["created_at"])

    op.create_table(
        "indexes",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("experiment_id", sa.String(64), sa.ForeignKey("experiments.id", name="fk_indexes_experiment"),
                  nullable=False),
        sa.Column("dataset", sa.Text, nullable=False),
        sa.Column("ordering", sa.String(64), nullable=False),
        sa.Column("backend", sa.String(64), nullable=False),
        sa.Column("params", JSON, nullable=False),
        sa.Column("reduction", sa.String(200), nullable=False),
        sa.Column("dims", sa.Integer, nullable=False),
        sa.Column("metric", sa.String(16), nullable=False),
        sa.Column("model", sa.Text, nullable=True),
        sa.Column("n", sa.Integer, nullable=False),
        sa.Column("dim", sa.Integer, nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("meta", JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_indexes_experiment_id", "indexes", ["experiment_id"])


def downgrade() -> None:
    op.drop_table("indexes")
    op.drop_table("experiments")
