"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives, for mail tests.

    server = SmtpServer()                      # a free port on 127.0.0.1, not listening yet
    server.start()
    settings = Settings(..., smtp_host=server.host, smtp_port=server.port)
    ...
    [mail] = server.wait_for(1)                # EmailMessage objects, in arrival order
    server.stop()                              # an outage; start() listens again on that port

or as a context manager: ``with SmtpServer() as server: ...``. Options: ``security="starttls"``
or ``"ssl"`` with a ``pki`` from ``tests.support.tls.make_test_pki`` (trust ``pki.ca_cert``
through the ``ca_bundle`` setting), ``credentials=("user", "secret")`` to require AUTH, and
``refused_recipients`` answered with a permanent 550.
"""

from __future__ import annotations

import email
import email.policy
import re
import ssl
import threading
import time
from email.message import EmailMessage
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.support.ports import LOOPBACK, free_port
from tests.support.tls import TestPki


class _QuietSession(Session):
    """aiosmtpd 1.4 itself sets its deprecated ``login_data`` on every successful AUTH; under
    ``filterwarnings = error`` that warning would fail the login."""

    @property
    def login_data(self) -> Any:  # noqa: ANN401 - aiosmtpd's own attribute
        return self._login_data

    @login_data.setter
    def login_data(self, value: Any) -> None:  # noqa: ANN401
        self._login_data = value


class _QuietSmtp(SMTP):
    def _create_session(self) -> Session:
        return _QuietSession(self.loop)


class _Controller(Controller):
    def factory(self) -> SMTP:
        return _QuietSmtp(self.handler, **self.SMTP_kwargs)


class _Collector:
    """The aiosmtpd handler: refuses some recipients, keeps every message accepted."""

    def __init__(self, refused: set[str], auth_required: bool) -> None:
        self.refused = refused
        self.auth_required = auth_required
        self.messages: list[EmailMessage] = []
        self.envelopes: list[Envelope] = []
        self.arrived = threading.Condition()

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: Any, session: Session, envelope: Envelope, address: str, options: list
    ) -> str:
        if self.auth_required and not session.authenticated:
            return "530 5.7.0 Authentication required"
        if address.lower() in self.refused:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: Any, session: Session, envelope: Envelope
    ) -> str:
        # Line ends as Python writes them (SMTP carries CRLF), so tests compare plain strings.
        content = envelope.original_content.replace(b"\r\n", b"\n")
        message = email.message_from_bytes(content, policy=email.policy.default)
        with self.arrived:
            self.messages.append(message)  # type: ignore[arg-type]
            self.envelopes.append(envelope)
            self.arrived.notify_all()
        return "250 Message accepted for delivery"


class SmtpServer:
    """aiosmtpd on 127.0.0.1:``port``; start and stop it at will, the port stays the same."""

    def __init__(
        self,
        port: int | None = None,
        *,
        security: Literal["none", "starttls", "ssl"] = "none",
        pki: TestPki | None = None,
        credentials: tuple[str, str] | None = None,
        refused_recipients: tuple[str, ...] = (),
    ) -> None:
        if security != "none" and pki is None:
            raise ValueError("a TLS server needs a pki (tests.support.tls.make_test_pki)")
        self.host = LOOPBACK
        self.port = port or free_port()
        self.security = security
        self.pki = pki
        self.credentials = credentials
        self._collector = _Collector(
            {address.lower() for address in refused_recipients}, credentials is not None
        )
        self._controller: Controller | None = None
        self.logins: list[str] = []

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> SmtpServer:
        """Listen (again) on the port; retries a moment if the old socket still holds it."""
        if self._controller is not None:
            return self
        deadline = time.monotonic() + 10
        while True:
            controller = self._new_controller()
            try:
                controller.start()
            except OSError:  # address in use: a previous listener not quite gone yet
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
                continue
            self._controller = controller
            return self

    def stop(self) -> None:
        """Stop listening: connections are refused until ``start()``."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def running(self) -> bool:
        """Whether the server listens right now."""
        return self._controller is not None

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- what arrived ----------------------------------------------------------------------

    @property
    def messages(self) -> list[EmailMessage]:
        """Every message received so far, in arrival order."""
        with self._collector.arrived:
            return list(self._collector.messages)

    @property
    def recipients(self) -> list[list[str]]:
        """The envelope recipients (RCPT TO) of each message."""
        with self._collector.arrived:
            return [list(envelope.rcpt_tos) for envelope in self._collector.envelopes]

    def wait_for(self, count: int = 1, timeout: float = 10.0) -> list[EmailMessage]:
        """Block until at least ``count`` messages arrived; AssertionError after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._collector.arrived:
            while len(self._collector.messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"{len(self._collector.messages)} message(s) arrived on port "
                        f"{self.port} within {timeout:.1f}s, expected {count}"
                    )
                self._collector.arrived.wait(left)
            return list(self._collector.messages)

    def clear(self) -> None:
        """Forget the messages received so far."""
        with self._collector.arrived:
            self._collector.messages.clear()
            self._collector.envelopes.clear()

    # -- helpers ---------------------------------------------------------------------------

    def _new_controller(self) -> Controller:
        options: dict[str, Any] = {}
        if self.security != "none":
            assert self.pki is not None
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(self.pki.server_cert, self.pki.server_key)
            if self.security == "ssl":
                options["ssl_context"] = context
            else:
                options["tls_context"] = context
                options["require_starttls"] = True
        if self.credentials is not None:
            # aiosmtpd counts only STARTTLS as TLS: over implicit TLS it would hide AUTH, and it
            # warns (an error here) when AUTH is required without TLS; the handler requires it.
            options["authenticator"] = self._authenticate
            options["auth_require_tls"] = self.security == "starttls"
            options["auth_required"] = self.security == "starttls"
        return _Controller(self._collector, hostname=self.host, port=self.port, **options)

    def _authenticate(
        self, server: Any, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword) or self.credentials is None:
            return AuthResult(success=False, handled=False)
        login, password = auth_data.login.decode(), auth_data.password.decode()
        if (login, password) != self.credentials:
            return AuthResult(success=False, handled=False)
        self.logins.append(login)
        return AuthResult(success=True)


def links_in(text: str) -> list[str]:
    """The http(s) URLs in a mail's text, in order."""
    return re.findall(r"https?://[^\s<>\"']+", text)
