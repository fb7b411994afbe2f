"""SAML identity provider: persistent NameIDs, the message-ID replay cache, and the NameID a
SAML SP received in each session (for single logout)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 11:00:00
"""

import sqlalchemy as sa
from alembic import op

import sso.db

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "saml_persistent_ids",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sp_entity_id", sa.String(length=1024), nullable=False),
        sa.Column("subject", sa.String(length=256), nullable=False),
        sa.Column("value", sa.String(length=64), nullable=False),
        sa.Column("created_at", sso.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saml_persistent_ids")),
        sa.UniqueConstraint(
            "sp_entity_id", "subject", name=op.f("uq_saml_persistent_ids_sp_subject")
        ),
        sa.UniqueConstraint("sp_entity_id", "value", name=op.f("uq_saml_persistent_ids_sp_value")),
    )
    op.create_index(
        op.f("ix_saml_persistent_ids_subject"), "saml_persistent_ids", ["subject"], unique=False
    )
    op.create_table(
        "saml_seen_messages",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sso.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saml_seen_messages")),
    )
    op.create_index(
        op.f("ix_saml_seen_messages_expires_at"), "saml_seen_messages", ["expires_at"], unique=False
    )
    with op.batch_alter_table("service_logins") as batch:
        batch.add_column(sa.Column("name_id", sa.Text(), nullable=True))
        batch.add_column(sa.Column("name_id_format", sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("service_logins") as batch:
        batch.drop_column("name_id_format")
        batch.drop_column("name_id")
    op.drop_index(op.f("ix_saml_seen_messages_expires_at"), table_name="saml_seen_messages")
    op.drop_table("saml_seen_messages")
    op.drop_index(op.f("ix_saml_persistent_ids_subject"), table_name="saml_persistent_ids")
    op.drop_table("saml_persistent_ids")
