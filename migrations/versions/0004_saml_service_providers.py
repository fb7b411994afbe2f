"""SAML service providers: self-registered or added SPs, their metadata and release policy

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 10:22:35.636510
"""

import sqlalchemy as sa
from alembic import op

import sso.db

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "saml_service_providers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entity_id", sa.String(length=1024), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("metadata_xml", sa.Text(), nullable=False),
        sa.Column("metadata_url", sa.Text(), nullable=True),
        sa.Column("metadata_signing_cert", sa.Text(), nullable=True),
        sa.Column("valid_until", sso.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("next_refresh_at", sso.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("last_refreshed_at", sso.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("released_attributes", sa.JSON(), nullable=False),
        sa.Column("name_id_format", sa.String(length=256), nullable=True),
        sa.Column("encrypt_assertions", sa.Boolean(), nullable=True),
        sa.Column("contact", sa.String(length=320), nullable=False),
        sa.Column("created_at", sso.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sso.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saml_service_providers")),
        sa.UniqueConstraint("entity_id", name=op.f("uq_saml_service_providers_entity_id")),
    )
    with op.batch_alter_table("saml_service_providers", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_saml_service_providers_next_refresh_at"),
            ["next_refresh_at"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_saml_service_providers_status"), ["status"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("saml_service_providers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_saml_service_providers_status"))
        batch_op.drop_index(batch_op.f("ix_saml_service_providers_next_refresh_at"))

    op.drop_table("saml_service_providers")
