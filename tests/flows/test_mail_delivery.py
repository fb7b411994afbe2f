"""The running server delivers its outbox by SMTP, and an SMTP outage loses no mail."""

from __future__ import annotations

import socket
import time

import pytest
from sqlalchemy import select

from sso.mail import OutboxMail
from tests.support.ports import LOOPBACK, free_port
from tests.support.smtp import SmtpServer

TO = "jeanne.dupont@ac-test.fr"


@pytest.fixture
def smtp_port() -> int:
    return free_port()


@pytest.fixture
def settings_overrides(smtp_port):
    return {
        "smtp_host": LOOPBACK,
        "smtp_port": smtp_port,
        "smtp_timeout": 2,
        "mail_retry_seconds": 1,
        "mail_poll_seconds": 0.2,
    }


def outbox_rows(runtime):
    with runtime.engine.connect() as connection:
        return connection.execute(select(OutboxMail.__table__)).all()


def test_the_server_sends_a_queued_mail_at_once(client, runtime, smtp_port):
    with SmtpServer(smtp_port) as server:
        runtime.outbox.enqueue(TO, "Bonjour", "texte", "<p>texte</p>")
        [message] = server.wait_for(1, timeout=5)
    assert message["To"] == TO


def test_an_smtp_outage_delays_the_mail_and_the_mail_arrives(client, runtime, smtp_port):
    server = SmtpServer(smtp_port)  # down when the mail is queued
    started = time.monotonic()
    runtime.outbox.enqueue(TO, "Pendant la panne", "texte")
    assert time.monotonic() - started < 1  # the request that asked for it does not wait

    deadline = time.monotonic() + 10
    while not (rows := outbox_rows(runtime)) or rows[0].attempts == 0:
        assert time.monotonic() < deadline, "the sender never tried"
        time.sleep(0.05)
    [row] = rows
    assert row.sent_at is None and "ConnectionRefusedError" in row.last_error
    assert row.next_attempt_at > row.created_at  # backing off

    with server:
        [message] = server.wait_for(1, timeout=15)
    assert message["Subject"] == "Pendant la panne"
    deadline = time.monotonic() + 5
    while (row := outbox_rows(runtime)[0]).sent_at is None:  # recorded just after the send
        assert time.monotonic() < deadline, "the delivery was never recorded"
        time.sleep(0.05)
    assert row.attempts >= 2 and row.last_error == ""


def test_a_server_that_never_answers_does_not_hold_up_the_request(client, runtime, smtp_port):
    """A listener that accepts and says nothing: the enqueue returns at once all the same."""
    with socket.socket() as silent:
        silent.bind((LOOPBACK, smtp_port))
        silent.listen()
        started = time.monotonic()
        runtime.outbox.enqueue(TO, "Bonjour", "texte")
        assert time.monotonic() - started < 1
        deadline = time.monotonic() + 10
        while not outbox_rows(runtime)[0].last_error:
            assert time.monotonic() < deadline, "the sender never gave up waiting"
            time.sleep(0.05)
    [row] = outbox_rows(runtime)
    assert row.sent_at is None and "timed out" in row.last_error.lower()
