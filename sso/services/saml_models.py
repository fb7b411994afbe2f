"""The SAML service provider table: registrations, their metadata and release policy."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Boolean, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from sso.db import Base, UtcDateTime, utcnow

PENDING = "pending"
APPROVED = "approved"
REJECTED = "rejected"
STATUSES = (PENDING, APPROVED, REJECTED)


class SamlServiceProviderRow(Base):
    """A SAML SP: registered by itself (pending) or by an administrator (approved)."""

    __tablename__ = "saml_service_providers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entity_id: Mapped[str] = mapped_column(String(1024), unique=True)
    name: Mapped[str] = mapped_column(String(256), default="")
    status: Mapped[str] = mapped_column(String(16), default=PENDING, index=True)
    # The last copy that passed validation: a failed refresh never overwrites it.
    metadata_xml: Mapped[str] = mapped_column(Text)
    metadata_url: Mapped[str | None] = mapped_column(Text)
    # PEM; when set, every copy of the metadata must carry a signature by this certificate.
    metadata_signing_cert: Mapped[str | None] = mapped_column(Text)
    valid_until: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    next_refresh_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, index=True)
    last_refreshed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    # Our attribute names (uid, mail, ...); "*" for all of them.
    released_attributes: Mapped[list[str]] = mapped_column(JSON, default=list)
    name_id_format: Mapped[str | None] = mapped_column(String(256))
    # None: follow settings.saml_encrypt_assertions.
    encrypt_assertions: Mapped[bool | None] = mapped_column(Boolean)
    contact: Mapped[str] = mapped_column(String(320), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
