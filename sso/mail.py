"""Outbound mail: an outbox table, and a sender that delivers it by SMTP (or to a maildir).

A request that wants a mail sent only inserts a row; the sender delivers it later and retries
with back-off, so an SMTP outage delays a mail and loses none.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import logging
import mailbox
import smtplib
import ssl
import threading
import time
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

import anyio.to_thread
from sqlalchemy import Engine, Integer, String, Text, delete, insert, or_, select, update
from sqlalchemy.orm import Mapped, mapped_column

from sso.config import Settings
from sso.db import Base, UtcDateTime, utcnow

log = logging.getLogger("sso.mail")

# A failed delivery waits mail_retry_seconds, then twice as long each time, up to this.
MAX_BACKOFF = dt.timedelta(hours=1)
# next_attempt_at of a mail given up: it is never due again (last_error says why).
GIVEN_UP_AT = dt.datetime(9000, 1, 1, tzinfo=dt.UTC)
GAVE_UP = "gave up: "
# Mails claimed per round; each is claimed just before it is delivered.
BATCH_SIZE = 50
# Delivered mails (and mails given up) are kept this long for the helpdesk, then purged.
KEEP_SENT = dt.timedelta(days=30)
PURGE_EVERY_SECONDS = 3600


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


_mails = OutboxMail.__table__


def maildir_path(settings: Settings) -> Path:
    """The maildir that mail goes to with ``mail_transport == "maildir"`` (demo mode)."""
    return settings.var_dir / "mail"


class Outbox:
    """Where requests leave their mails: an insert, nothing that waits on the network."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._waker: Callable[[], None] | None = None

    def set_waker(self, waker: Callable[[], None] | None) -> None:
        """Call ``waker`` (from any thread) after each enqueue, so the sender goes at once."""
        self._waker = waker

    def enqueue(self, to_address: str, subject: str, text_body: str, html_body: str = "") -> None:
        """Queue one mail (blocking insert). Refuses what could never become a header."""
        if not to_address or len(to_address) > 254 or len(subject) > 256:
            raise ValueError("mail address or subject empty or too long")
        if any(char in value for value in (to_address, subject) for char in "\r\n"):
            raise ValueError("line break in a mail address or subject")
        now = utcnow()
        with self.engine.begin() as connection:
            connection.execute(
                insert(_mails).values(
                    to_address=to_address,
                    subject=subject,
                    text_body=text_body,
                    html_body=html_body,
                    created_at=now,
                    attempts=0,
                    next_attempt_at=now,
                    last_error="",
                )
            )
        if self._waker is not None:
            self._waker()


class Transport(Protocol):
    """One way mail leaves the server."""

    def send(self, message: EmailMessage) -> None:
        """Deliver ``message`` or raise."""


class SmtpTransport:
    """smtplib, one connection per mail: host, port, STARTTLS or TLS, AUTH from the settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def _tls_context(self) -> ssl.SSLContext:
        cafile = str(self.settings.ca_bundle) if self.settings.ca_bundle else None
        return ssl.create_default_context(cafile=cafile)

    def send(self, message: EmailMessage) -> None:
        """Deliver ``message`` to the configured SMTP server."""
        settings = self.settings
        client: smtplib.SMTP
        if settings.smtp_security == "ssl":
            client = smtplib.SMTP_SSL(
                settings.smtp_host,
                settings.smtp_port,
                timeout=settings.smtp_timeout,
                context=self._tls_context(),
            )
        else:
            client = smtplib.SMTP(
                settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout
            )
        with client:
            if settings.smtp_security == "starttls":
                client.starttls(context=self._tls_context())
                client.ehlo()
            if settings.smtp_username:
                client.login(settings.smtp_username, settings.smtp_password)
            client.send_message(message)


class MaildirTransport:
    """Mail kept in a local maildir: demo mode, where a newcomer has no SMTP server."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def send(self, message: EmailMessage) -> None:
        """File ``message`` in the maildir."""
        self.directory.parent.mkdir(parents=True, exist_ok=True)  # Maildir makes one level
        mailbox.Maildir(self.directory, create=True).add(message)


def transport_for(settings: Settings) -> Transport:
    """The transport ``settings.mail_transport`` names."""
    if settings.mail_transport == "maildir":
        return MaildirTransport(maildir_path(settings))
    return SmtpTransport(settings)


def _permanent(error: Exception) -> bool:
    """A refusal that no retry can change: every recipient refused with a 5xx."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in error.recipients.values())
    return False


class MailSender:
    """Delivers the outbox; several senders (workers, nodes) may run on one database.

    A sender claims a mail by moving its ``next_attempt_at`` forward (a lease) with an UPDATE
    that only matches the value it read: two senders never both win the same mail. A sender
    that dies mid-delivery leaves the lease to expire, and the mail is tried again.
    """

    def __init__(
        self, engine: Engine, settings: Settings, transport: Transport | None = None
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.transport = transport or transport_for(settings)
        self.lease = dt.timedelta(seconds=max(300.0, 4 * settings.smtp_timeout))
        self.give_up_after = dt.timedelta(seconds=settings.mail_give_up_seconds)
        self._domain = email.utils.parseaddr(settings.mail_from)[1].rpartition("@")[2]
        self._stopping = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wanted: asyncio.Event | None = None

    # -- one round ---------------------------------------------------------------------------

    def deliver_due(self) -> int:
        """Deliver every mail due now (blocking); the number delivered."""
        now = utcnow()
        with self.engine.connect() as connection:
            due = connection.execute(
                select(_mails.c.id, _mails.c.next_attempt_at)
                .where(_mails.c.sent_at.is_(None), _mails.c.next_attempt_at <= now)
                .order_by(_mails.c.next_attempt_at)
                .limit(BATCH_SIZE)
            ).all()
        delivered = 0
        for mail_id, seen_next_attempt_at in due:
            if self._stopping.is_set():
                break
            mail = self._claim(mail_id, seen_next_attempt_at)
            if mail is not None:
                delivered += self._deliver(mail)
        return delivered

    def _claim(self, mail_id: int, seen_next_attempt_at: dt.datetime) -> OutboxMail | None:
        with self.engine.begin() as connection:
            claimed = connection.execute(
                update(_mails)
                .where(
                    _mails.c.id == mail_id,
                    _mails.c.next_attempt_at == seen_next_attempt_at,
                    _mails.c.sent_at.is_(None),
                )
                .values(next_attempt_at=utcnow() + self.lease)
            )
            if claimed.rowcount != 1:
                return None  # another sender has it
            row = connection.execute(select(_mails).where(_mails.c.id == mail_id)).one()
        return OutboxMail(**row._mapping)

    def _deliver(self, mail: OutboxMail) -> int:
        if utcnow() - mail.created_at >= self.give_up_after:
            self._give_up(mail, mail.attempts, mail.last_error or "undelivered for too long")
            return 0
        try:
            message = self.message(mail)
        except Exception as error:  # a mail that cannot be built never will be
            self._give_up(mail, mail.attempts, f"cannot build the message: {error}")
            return 0
        try:
            self.transport.send(message)
        except Exception as error:  # any failure: retry later, never lose it
            self._failed(mail, error)
            return 0
        with self.engine.begin() as connection:
            connection.execute(
                update(_mails)
                .where(_mails.c.id == mail.id)
                .values(sent_at=utcnow(), attempts=mail.attempts + 1, last_error="")
            )
        log.info("mail %s delivered (attempt %d)", mail.id, mail.attempts + 1)
        return 1

    def _failed(self, mail: OutboxMail, error: Exception) -> None:
        attempts = mail.attempts + 1
        reason = f"{type(error).__name__}: {error}"
        if _permanent(error) or utcnow() - mail.created_at >= self.give_up_after:
            self._give_up(mail, attempts, reason)
            return
        delay = min(
            dt.timedelta(seconds=self.settings.mail_retry_seconds * 2 ** min(attempts - 1, 20)),
            MAX_BACKOFF,
        )
        with self.engine.begin() as connection:
            connection.execute(
                update(_mails)
                .where(_mails.c.id == mail.id)
                .values(attempts=attempts, last_error=reason, next_attempt_at=utcnow() + delay)
            )
        log.warning(
            "mail %s not delivered (attempt %d), next try in %ds: %s",
            mail.id,
            attempts,
            delay.total_seconds(),
            reason,
        )

    def _give_up(self, mail: OutboxMail, attempts: int, reason: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                update(_mails)
                .where(_mails.c.id == mail.id)
                .values(attempts=attempts, last_error=GAVE_UP + reason, next_attempt_at=GIVEN_UP_AT)
            )
        log.error("mail %s given up after %d attempt(s): %s", mail.id, attempts, reason)

    def message(self, mail: OutboxMail) -> EmailMessage:
        """The MIME message of an outbox row: text, with its HTML as an alternative."""
        message = EmailMessage()
        message["From"] = self.settings.mail_from
        message["To"] = mail.to_address
        message["Subject"] = mail.subject
        message["Date"] = email.utils.format_datetime(mail.created_at)
        # Stable across retries, so a mail sent twice (a sender died after sending) is one.
        stamp = mail.created_at.strftime("%Y%m%d%H%M%S%f")
        message["Message-ID"] = f"<{stamp}.{mail.id}@{self._domain or 'localhost'}>"
        message.set_content(mail.text_body, charset="utf-8")
        if mail.html_body:
            message.add_alternative(mail.html_body, subtype="html", charset="utf-8")
        return message

    def purge(self, keep: dt.timedelta = KEEP_SENT) -> int:
        """Delete mails sent, or given up, longer than ``keep`` ago; the number deleted."""
        now = utcnow()
        with self.engine.begin() as connection:
            result = connection.execute(
                delete(_mails).where(
                    or_(
                        _mails.c.sent_at < now - keep,
                        _mails.c.created_at < now - keep - self.give_up_after,
                    )
                )
            )
        return result.rowcount

    # -- forever -----------------------------------------------------------------------------

    def wake(self) -> None:
        """Have ``run`` look at the outbox now; safe from any thread."""
        loop, wanted = self._loop, self._wanted
        if loop is None or wanted is None:
            return
        try:
            loop.call_soon_threadsafe(wanted.set)
        except RuntimeError:  # the loop has closed: the server is stopping
            pass

    def stop(self) -> None:
        """Finish the mail in hand and take no other (the server is stopping)."""
        self._stopping.set()
        self.wake()

    async def run(self) -> None:
        """Deliver what is due, then wait ``mail_poll_seconds`` or a wake-up; until cancelled."""
        self._loop = asyncio.get_running_loop()
        self._wanted = asyncio.Event()
        self._stopping.clear()
        last_purge = time.monotonic()
        try:
            while not self._stopping.is_set():
                self._wanted.clear()
                try:
                    await anyio.to_thread.run_sync(self.deliver_due)
                    if time.monotonic() - last_purge >= PURGE_EVERY_SECONDS:
                        last_purge = time.monotonic()
                        await anyio.to_thread.run_sync(self.purge)
                except Exception:  # a database outage: try again next round
                    log.exception("mail delivery round failed")
                try:
                    await asyncio.wait_for(self._wanted.wait(), self.settings.mail_poll_seconds)
                except TimeoutError:
                    pass
        finally:
            self._loop = self._wanted = None
