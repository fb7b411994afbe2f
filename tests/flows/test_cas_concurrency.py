"""CAS conformance under concurrency: a ticket is good for exactly one validation (3.1.1).

The real server runs in its own process with two workers on the test database (SQLite, then
PostgreSQL); clients hit it over real HTTP from many threads at once.
"""

from __future__ import annotations

import socket
import sys
import threading
from collections import Counter
from urllib.parse import quote

import httpx
import pytest

from tests.conftest import SECRET
from tests.support.cas import login, saml_request, sso_ticket
from tests.support.ports import LOOPBACK, free_port
from tests.support.processes import ServerProcess

USER = "jdupont"
PASSWORD = "correct horse battery staple"
SERVICE = "https://app.test/cas/"
CONCURRENCY = 20
ROUNDS = 4


@pytest.fixture(scope="module")
def server_url(migrated_database, tmp_path_factory):
    """``python -m sso serve --workers 2`` on the test database; its base URL."""
    port = free_port()
    base_url = f"http://{LOOPBACK}:{port}/"
    process = ServerProcess(
        [sys.executable, "-m", "sso", "serve", "--port", str(port), "--workers", "2"],
        env={
            "SSO_DATABASE_URL": migrated_database,
            "SSO_BASE_URL": base_url,
            "SSO_SECRET_KEY": SECRET,
            "SSO_VAR_DIR": str(tmp_path_factory.mktemp("var")),
            "SSO_SERVICE_CACHE_SECONDS": "0",
            "SSO_LOG_LEVEL": "warning",
        },
        port=port,
        ready_url=base_url + "health",
        name="sso-2-workers",
        timeout=30,
    )
    with process:
        yield base_url
        log = process.log_text()
    assert "Traceback" not in log, log[-5000:]


@pytest.fixture
def browser(server_url, add_account, add_service):
    """A user logged in on the real server (the account and service are in its database)."""
    add_account(USER, PASSWORD)
    add_service(SERVICE)
    with httpx.Client(base_url=server_url, timeout=30, trust_env=False) as client:
        yield client


def validate_once(base_url: str, kind: str, ticket: str, start: threading.Barrier) -> str:
    """One validation attempt on its own connection; "success", a failure code, or HTTP n."""
    with httpx.Client(base_url=base_url, timeout=30, trust_env=False) as client:
        start.wait(10)
        if kind == "/validate":
            answer = client.get(kind, params={"service": SERVICE, "ticket": ticket})
            if answer.status_code != 200:
                return f"HTTP {answer.status_code}"
            return "success" if answer.text == f"yes\n{USER}\n" else "no"
        if kind == "/samlValidate":
            answer = client.post(
                f"/samlValidate?TARGET={quote(SERVICE, safe='')}", content=saml_request(ticket)
            )
            if answer.status_code != 200:
                return f"HTTP {answer.status_code}"
            return "success" if "NameIdentifier" in answer.text else "saml failure"
        answer = client.get(kind, params={"service": SERVICE, "ticket": ticket})
        if answer.status_code != 200:
            return f"HTTP {answer.status_code}"
        if f"<cas:user>{USER}</cas:user>" in answer.text:
            return "success"
        if 'code="INVALID_TICKET"' in answer.text:
            return "INVALID_TICKET"
        return answer.text[:300]


def race(base_url: str, ticket: str, kinds: list[str]) -> Counter[str]:
    """Fire ``len(kinds)`` validations of ``ticket`` at once; count the outcomes."""
    start = threading.Barrier(len(kinds))
    outcomes: list[str] = []
    lock = threading.Lock()

    def attempt(kind: str) -> None:
        try:
            outcome = validate_once(base_url, kind, ticket, start)
        except Exception as exc:  # a transport error is an outcome too
            outcome = repr(exc)
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=attempt, args=(kind,)) for kind in kinds]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return Counter(outcomes)


ENDPOINTS = [
    "/serviceValidate",
    "/proxyValidate",
    "/p3/serviceValidate",
    "/p3/proxyValidate",
    "/validate",
    "/samlValidate",
]


def test_a_ticket_validates_exactly_once_under_concurrent_attempts(server_url, browser):
    tickets = [login(browser, SERVICE, USER, PASSWORD)]
    tickets += [sso_ticket(browser, SERVICE) for _ in range(ROUNDS - 1)]
    for round_number, ticket in enumerate(tickets):
        if round_number % 2 == 0:
            kinds = ["/serviceValidate"] * CONCURRENCY
        else:  # every validation endpoint racing for the same ticket
            kinds = [ENDPOINTS[i % len(ENDPOINTS)] for i in range(CONCURRENCY)]
        outcomes = race(server_url, ticket, kinds)
        assert sum(outcomes.values()) == CONCURRENCY, outcomes
        assert outcomes["success"] == 1, (round_number, outcomes)
        failures = set(outcomes) - {"success"}
        assert failures <= {"INVALID_TICKET", "no", "saml failure"}, (round_number, outcomes)


def test_raw_bytes_on_the_wire_never_break_the_server(server_url, browser):
    """What no HTTP client library would send: raw non-UTF-8 and NUL bytes in the target."""
    ticket = login(browser, SERVICE, USER, PASSWORD)
    targets = [
        b"/serviceValidate?service=\xff\xfe&ticket=" + ticket.encode(),
        b"/p3/serviceValidate?service=https://app.test/cas/&ticket=ST-\xc3\x28",
        b"/proxyValidate?ticket=%00\x00&service=%00",
        b"/validate?service=\x80\x81&ticket=\xed\xa0\x80",
        b"/proxy?pgt=\xff&targetService=\xfe",
        b"/samlValidate?TARGET=\xff",
        b"/serviceValidate?" + b"%" * 3000,
    ]
    for target in targets:
        for method in (b"GET", b"POST"):
            status, body = raw_request(server_url, method, target)
            assert status < 500, (target, status, body[:500])
            assert b"Traceback" not in body, body[:2000]
    # The server still validates after all that.
    answer = browser.get("/serviceValidate", params={"service": SERVICE, "ticket": ticket})
    assert f"<cas:user>{USER}</cas:user>" in answer.text


def raw_request(base_url: str, method: bytes, target: bytes) -> tuple[int, bytes]:
    """Send one request as raw bytes; returns (status, body)."""
    port = int(base_url.rstrip("/").rsplit(":", 1)[1])
    with socket.create_connection((LOOPBACK, port), timeout=10) as connection:
        connection.sendall(
            method + b" " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Length: 0\r\nConnection: close\r\n\r\n"
        )
        data = b""
        while chunk := connection.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body
