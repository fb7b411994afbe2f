"""The account table."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Boolean, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from sso.db import Base, UtcDateTime, utcnow


class Account(Base):
    """A person who can log in: an academic account (blue door) or an invited one (direct)."""

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Stored normalised (trimmed, NFKC, lower case): the identifier users type is case-insensitive.
    identifier: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    kind: Mapped[str] = mapped_column(String(16), default="academic")
    password_hash: Mapped[str | None] = mapped_column(String(255))
    given_name: Mapped[str] = mapped_column(String(128), default="")
    surname: Mapped[str] = mapped_column(String(128), default="")
    display_name: Mapped[str] = mapped_column(String(256), default="")
    email: Mapped[str] = mapped_column(String(254), default="")
    affiliation: Mapped[str] = mapped_column(String(64), default="")
    # Further released attributes (e.g. supannEntiteAffectation): name -> list of values.
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)

    def released_attributes(self) -> dict[str, list[str]]:
        """Every attribute the account has, as the services registry filters them."""
        attributes: dict[str, list[str]] = {
            "uid": [self.identifier],
            "mail": [self.email] if self.email else [],
            "givenName": [self.given_name] if self.given_name else [],
            "sn": [self.surname] if self.surname else [],
            "displayName": [self.display_name] if self.display_name else [],
            "eduPersonAffiliation": [self.affiliation] if self.affiliation else [],
        }
        for name, values in (self.attributes or {}).items():
            attributes[name] = [str(v) for v in (values if isinstance(values, list) else [values])]
        return {name: values for name, values in attributes.items() if values}
