"""The real server (`sso serve`) in its own process, on the test's database, for tests that
must see responses as a browser does.

TestClient (and httpx's ASGITransport) hand back a response only once the application call
has returned, background tasks included; over a socket the response leaves first. And in the
test's own process the server's background threads would compete with the client for the
GIL, slowing the client's reading of exactly the answers that started background work: the
server gets a process of its own.

    with SsoServer(settings, ip_failure_limit=10_000) as server:
        answer = httpx.post(server.url + "/recover/password", data=...)
"""

from __future__ import annotations

import sys

from sso.config import Settings
from tests.support.ports import LOOPBACK, free_port
from tests.support.processes import ServerProcess


class SsoServer(ServerProcess):
    """`python -m sso serve` on a free loopback port, with the test's secret, database and
    var directory, its base URL on that port (plain HTTP: cookies without ``Secure``, so a
    client over loopback sends them back), and ``overrides`` as SSO_* variables. Its mail
    stays in the outbox for the test to read: the sender's one try finds no SMTP server."""

    def __init__(self, settings: Settings, **overrides: object) -> None:
        port = free_port()
        self.url = f"http://{LOOPBACK}:{port}"
        values = {
            "secret_key": settings.secret_key,
            "database_url": settings.database_url,
            "var_dir": settings.var_dir,
            "base_url": self.url + "/",
            "smtp_host": LOOPBACK,
            "smtp_port": free_port(),  # nothing listens there
            "mail_retry_seconds": 3600,
            **overrides,
        }
        super().__init__(
            [sys.executable, "-m", "sso", "serve", "--port", str(port)],
            env={f"SSO_{name.upper()}": str(value) for name, value in values.items()},
            port=port,
            ready_url=self.url + "/health",
            name="sso-server",
        )
