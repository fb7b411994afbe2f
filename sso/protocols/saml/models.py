"""Tables of the SAML identity provider: persistent NameIDs and the message-ID replay cache.

Both live in the database, never in a worker's memory (pysaml2 keeps NameIDs in a shelve file
and outstanding IDs in a dict by default), so every worker and node sees the same state.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from sso.db import Base, UtcDateTime, utcnow


class PersistentNameIdRow(Base):
    """A persistent, pairwise NameID (SAML core 8.3.7): one opaque value per person and SP,
    random rather than derived, so it reveals nothing and survives a key change."""

    __tablename__ = "saml_persistent_ids"
    __table_args__ = (
        UniqueConstraint("sp_entity_id", "subject", name="uq_saml_persistent_ids_sp_subject"),
        UniqueConstraint("sp_entity_id", "value", name="uq_saml_persistent_ids_sp_value"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sp_entity_id: Mapped[str] = mapped_column(String(1024))
    subject: Mapped[str] = mapped_column(String(256), index=True)
    value: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)


class SeenMessageRow(Base):
    """An AuthnRequest (or LogoutRequest) ID already received from an SP: a second arrival
    of the same ID is a replay (SAML profiles 4.1.4.5 asks the IdP to detect them)."""

    __tablename__ = "saml_seen_messages"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of issuer + ID
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, index=True)
