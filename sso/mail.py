"""Outbound mail: an outbox table, and a sender that delivers it by SMTP (or to a maildir).

A request that wants a mail sent only inserts a row; the sender delivers it later and retries
with back-off, so an SMTP outage delays a mail and loses none.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from sso.db import Base, UtcDateTime, utcnow


class OutboxMail(Base):
    """One message waiting to be delivered, or delivered (``sent_at``)."""

    __tablename__ = "outbox_mails"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    to_address: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(256))
    text_body: Mapped[str] = mapped_column(Text)
    html_body: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Not before this time: the back-off after a failure, or a sender's claim on the row.
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    last_error: Mapped[str] = mapped_column(Text, default="")
