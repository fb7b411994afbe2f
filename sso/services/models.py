"""The CAS service table."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Boolean, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from sso.db import Base, UtcDateTime, utcnow


class CasServiceRow(Base):
    """A registered CAS service: which URLs it covers and what it may receive."""

    __tablename__ = "cas_services"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    # "exact": the URL as Apereo compares it; "regex": a pattern that must match the whole URL.
    match: Mapped[str] = mapped_column(String(8), default="exact")
    pattern: Mapped[str] = mapped_column(Text)
    evaluation_order: Mapped[int] = mapped_column(Integer, default=0)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    released_attributes: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Where back-channel logout requests go; the service URL itself when unset.
    logout_url: Mapped[str | None] = mapped_column(Text)
    single_logout: Mapped[bool] = mapped_column(Boolean, default=True)
    # Full-match pattern of the pgtUrl values this service may use; no proxying when unset.
    proxy_callback_pattern: Mapped[str | None] = mapped_column(Text)
    accepts_proxy_tickets: Mapped[bool] = mapped_column(Boolean, default=True)
    # How /login answers when the request does not say: "GET" (redirect), "POST" or "HEADER".
    response_method: Mapped[str] = mapped_column(String(8), default="GET")
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
