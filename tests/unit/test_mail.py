"""The outbox and its sender, against a real SMTP server (aiosmtpd) on loopback."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import logging
import mailbox
import threading
from collections.abc import Iterator
from typing import Any

import anyio.to_thread
import pytest
from sqlalchemy import Engine, select, update

from sso.config import Settings
from sso.db import make_engine, utcnow
from sso.mail import GAVE_UP, GIVEN_UP_AT, MailSender, Outbox, OutboxMail, maildir_path
from tests.support.ports import free_port
from tests.support.smtp import SmtpServer
from tests.support.tls import make_test_pki

TO = "jeanne.dupont@ac-test.fr"
_mails = OutboxMail.__table__


def configured(settings: Settings, **changes: Any) -> Settings:
    """The test settings with some mail settings changed (validated again)."""
    return Settings(**{**settings.model_dump(), **changes})


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings.database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


def smtp_settings(settings: Settings, server: SmtpServer, **changes: Any) -> Settings:
    return configured(settings, smtp_host=server.host, smtp_port=server.port, **changes)


def rows(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        return connection.execute(select(_mails).order_by(_mails.c.id)).all()


def make_due(engine: Engine) -> None:
    """Skip the back-off (the time a test would otherwise sleep)."""
    with engine.begin() as connection:
        connection.execute(update(_mails).values(next_attempt_at=utcnow()))


def test_delivers_text_with_an_html_alternative(settings, engine, smtp):
    sender = MailSender(engine, smtp_settings(settings, smtp))
    Outbox(engine).enqueue(TO, "Réinitialisation — accès", "Bonjour é\nhttps://x/", "<p>é</p>")

    assert sender.deliver_due() == 1

    [message] = smtp.wait_for(1)
    assert smtp.recipients == [[TO]]
    assert message["To"] == TO
    assert message["Subject"] == "Réinitialisation — accès"
    assert message["From"] == settings.mail_from
    assert message["Date"] and message["Message-ID"].endswith("@localhost>")
    assert message.get_content_type() == "multipart/alternative"
    assert message.get_body(preferencelist=("plain",)).get_content() == "Bonjour é\nhttps://x/\n"
    assert message.get_body(preferencelist=("html",)).get_content() == "<p>é</p>\n"
    [row] = rows(engine)
    assert row.sent_at is not None and row.attempts == 1 and row.last_error == ""
    assert sender.deliver_due() == 0  # delivered once, never again
    assert len(smtp.messages) == 1


def test_text_only_mail_is_a_plain_text_message(settings, engine, smtp):
    sender = MailSender(engine, smtp_settings(settings, smtp))
    Outbox(engine).enqueue(TO, "Code", "123456")
    sender.deliver_due()
    [message] = smtp.wait_for(1)
    assert message.get_content_type() == "text/plain"
    assert message.get_content_charset() == "utf-8"


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_tls_and_login(settings, engine, tmp_path, security):
    pki = make_test_pki(tmp_path / "pki")
    with SmtpServer(security=security, pki=pki, credentials=("sso", "s3cret")) as server:
        sender = MailSender(
            engine,
            smtp_settings(
                settings,
                server,
                smtp_security=security,
                ca_bundle=pki.ca_cert,
                smtp_username="sso",
                smtp_password="s3cret",
            ),
        )
        Outbox(engine).enqueue(TO, "Bonjour", "texte")
        assert sender.deliver_due() == 1
        server.wait_for(1)
        assert server.logins == ["sso"]


def test_a_server_certificate_we_do_not_trust_gets_no_mail(settings, engine, tmp_path):
    pki = make_test_pki(tmp_path / "pki")
    with SmtpServer(security="starttls", pki=pki) as server:
        sender = MailSender(
            engine,
            smtp_settings(settings, server, smtp_security="starttls", ca_bundle=pki.other_ca_cert),
        )
        Outbox(engine).enqueue(TO, "Bonjour", "texte")
        assert sender.deliver_due() == 0
        assert server.messages == []
    [row] = rows(engine)
    assert "CERTIFICATE_VERIFY_FAILED" in row.last_error
    assert row.sent_at is None and not row.last_error.startswith(GAVE_UP)


def test_wrong_smtp_password_is_retried_not_given_up(settings, engine):
    with SmtpServer(credentials=("sso", "s3cret")) as server:
        sender = MailSender(
            engine, smtp_settings(settings, server, smtp_username="sso", smtp_password="wrong")
        )
        Outbox(engine).enqueue(TO, "Bonjour", "texte")
        assert sender.deliver_due() == 0
    [row] = rows(engine)
    assert "SMTPAuthenticationError" in row.last_error and row.attempts == 1
    assert row.next_attempt_at < GIVEN_UP_AT


def test_an_outage_delays_the_mail_and_loses_none(settings, engine):
    server = SmtpServer(free_port())  # not listening yet: the SMTP server is down
    sender = MailSender(engine, smtp_settings(settings, server, mail_retry_seconds=30))
    before = utcnow()
    Outbox(engine).enqueue(TO, "Pendant la panne", "texte")

    assert sender.deliver_due() == 0
    [row] = rows(engine)
    assert row.attempts == 1 and row.sent_at is None
    assert "ConnectionRefusedError" in row.last_error
    assert before + dt.timedelta(seconds=30) <= row.next_attempt_at
    assert row.next_attempt_at <= utcnow() + dt.timedelta(seconds=30)
    assert sender.deliver_due() == 0 and rows(engine)[0].attempts == 1  # not due yet

    make_due(engine)
    assert sender.deliver_due() == 0
    [row] = rows(engine)
    assert row.attempts == 2  # the back-off doubles
    assert row.next_attempt_at >= utcnow() + dt.timedelta(seconds=59)

    with server:
        make_due(engine)
        assert sender.deliver_due() == 1
        [message] = server.wait_for(1)
    assert message["Subject"] == "Pendant la panne"
    [row] = rows(engine)
    assert row.sent_at is not None and row.attempts == 3 and row.last_error == ""


def test_back_off_is_capped_at_an_hour(settings, engine):
    sender = MailSender(engine, configured(settings, smtp_port=free_port()))
    Outbox(engine).enqueue(TO, "Bonjour", "texte")
    with engine.begin() as connection:
        connection.execute(update(_mails).values(attempts=30))
    sender.deliver_due()
    [row] = rows(engine)
    assert row.attempts == 31
    assert row.next_attempt_at <= utcnow() + dt.timedelta(seconds=3600)
    assert row.next_attempt_at >= utcnow() + dt.timedelta(seconds=3590)


def test_two_senders_never_deliver_one_mail_twice(settings, smtp):
    """Two senders with engines of their own, as in two workers, race for the same mails."""
    mail_settings = smtp_settings(settings, smtp)
    engines = [make_engine(settings.database_url) for _ in range(2)]
    try:
        outbox = Outbox(engines[0])
        for number in range(20):
            outbox.enqueue(TO, f"mail {number}", "texte")
        senders = [MailSender(engine, mail_settings) for engine in engines]
        start = threading.Barrier(len(senders))
        delivered: list[int] = []

        def deliver(sender: MailSender) -> None:
            start.wait()
            delivered.append(sender.deliver_due())

        threads = [threading.Thread(target=deliver, args=(sender,)) for sender in senders]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert sum(delivered) == 20
        messages = smtp.wait_for(20)
        assert sorted(message["Subject"] for message in messages) == sorted(
            f"mail {number}" for number in range(20)
        )
        assert len(smtp.messages) == 20
        assert all(row.attempts == 1 and row.sent_at for row in rows(engines[0]))
    finally:
        for engine in engines:
            engine.dispose()


def test_a_claimed_mail_is_left_to_its_sender(settings, engine, smtp):
    """A mail another sender holds (its lease) is not due, so nobody else sends it."""
    sender = MailSender(engine, smtp_settings(settings, smtp))
    Outbox(engine).enqueue(TO, "Bonjour", "texte")
    [row] = rows(engine)
    assert sender._claim(row.id, row.next_attempt_at) is not None
    assert sender._claim(row.id, row.next_attempt_at) is None  # the old value no longer matches
    assert sender.deliver_due() == 0
    assert smtp.messages == []


def test_gives_up_once_older_than_mail_give_up_seconds(settings, engine, caplog):
    sender = MailSender(
        engine, configured(settings, smtp_port=free_port(), mail_give_up_seconds=3600)
    )
    Outbox(engine).enqueue(TO, "Bonjour", "texte")
    sender.deliver_due()
    with engine.begin() as connection:  # the outage has lasted longer than the limit
        connection.execute(
            update(_mails).values(
                created_at=utcnow() - dt.timedelta(seconds=3601), next_attempt_at=utcnow()
            )
        )

    with caplog.at_level(logging.ERROR, logger="sso.mail"):
        assert sender.deliver_due() == 0
    [row] = rows(engine)
    assert row.sent_at is None
    assert row.last_error.startswith(GAVE_UP) and "ConnectionRefusedError" in row.last_error
    assert row.next_attempt_at == GIVEN_UP_AT
    assert any("given up" in record.getMessage() for record in caplog.records)
    attempts = row.attempts
    sender.deliver_due()
    assert rows(engine)[0].attempts == attempts  # never tried again


def test_a_mailbox_that_does_not_exist_is_given_up_at_once(settings, engine):
    with SmtpServer(refused_recipients=(TO,)) as server:
        sender = MailSender(engine, smtp_settings(settings, server))
        Outbox(engine).enqueue(TO, "Bonjour", "texte")
        assert sender.deliver_due() == 0
    [row] = rows(engine)
    assert row.last_error.startswith(GAVE_UP) and "550" in row.last_error
    assert row.next_attempt_at == GIVEN_UP_AT


def test_maildir_delivery(settings, engine):
    maildir_settings = configured(settings, mail_delivery="maildir")
    assert maildir_settings.mail_transport == "maildir"
    sender = MailSender(engine, maildir_settings)
    Outbox(engine).enqueue(TO, "Démo", "Bonjour\nhttps://sso.test/reset", "<p>Bonjour</p>")
    assert sender.deliver_due() == 1
    box = mailbox.Maildir(maildir_path(maildir_settings), create=False)
    [key] = box.keys()
    message = email.message_from_bytes(box.get_bytes(key), policy=email.policy.default)
    assert message["Subject"] == "Démo" and message["To"] == TO
    assert "https://sso.test/reset" in message.get_body(("plain",)).get_content()


def test_demo_mode_delivers_to_the_maildir():
    assert Settings(demo=True).mail_transport == "maildir"
    assert Settings(demo=True, mail_delivery="smtp").mail_transport == "smtp"


@pytest.mark.parametrize(
    ("to_address", "subject"),
    [("a@b.test\r\nBcc: c@d.test", "x"), (TO, "x\nBcc: c@d.test"), ("", "x"), (TO, "x" * 257)],
)
def test_enqueue_refuses_what_could_inject_headers(engine, to_address, subject):
    with pytest.raises(ValueError):
        Outbox(engine).enqueue(to_address, subject, "texte")
    assert rows(engine) == []


def test_enqueue_wakes_the_sender(settings, engine, smtp):
    """With a poll of a minute, a mail still leaves at once: enqueue wakes the sender, from a
    worker thread as the request handlers do."""
    sender = MailSender(engine, smtp_settings(settings, smtp, mail_poll_seconds=60))
    outbox = Outbox(engine)
    outbox.set_waker(sender.wake)

    async def scenario() -> None:
        running = asyncio.create_task(sender.run())
        await asyncio.sleep(0.2)  # the first round found nothing; now it waits a minute
        await anyio.to_thread.run_sync(outbox.enqueue, TO, "Réveil", "texte")
        await anyio.to_thread.run_sync(smtp.wait_for, 1, 10.0)
        sender.stop()
        await asyncio.wait_for(running, 10)

    asyncio.run(scenario())
    assert smtp.messages[0]["Subject"] == "Réveil"


def test_purge_deletes_old_sent_mails_only(settings, engine, smtp):
    sender = MailSender(engine, smtp_settings(settings, smtp))
    outbox = Outbox(engine)
    outbox.enqueue(TO, "ancien", "texte")
    sender.deliver_due()
    outbox.enqueue(TO, "récent", "texte")
    sender.deliver_due()
    outbox.enqueue(TO, "en attente", "texte")
    old = utcnow() - dt.timedelta(days=31)
    with engine.begin() as connection:
        connection.execute(update(_mails).where(_mails.c.subject == "ancien").values(sent_at=old))
    assert sender.purge() == 1
    assert sorted(row.subject for row in rows(engine)) == ["en attente", "récent"]
