"""Tickets lose their index on expires_at: every validation's DELETE had to update it, and the
one query that used it, the purge once a minute, scans a table of seconds-long tickets

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 05:40:00
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index(op.f("ix_tickets_expires_at"), table_name="tickets")


def downgrade() -> None:
    op.create_index(op.f("ix_tickets_expires_at"), "tickets", ["expires_at"], unique=False)
