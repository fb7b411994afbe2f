"""CAS conformance: single logout (CAS Protocol Specification 3.0.3, 2.3.3 and Appendix C).

The services' logout endpoints are real HTTP servers on loopback. Each test runs the server in
its own ``TestClient`` block: leaving the block shuts the server down, which waits for the
logout requests under way, so "nothing was sent" can be asserted without sleeping.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from contextlib import ExitStack
from urllib.parse import quote
from xml.etree import ElementTree

import pytest
from fastapi.testclient import TestClient

from sso.app import create_app
from tests.conftest import BASE_URL
from tests.support.cas import login, saml_request, sso_ticket, success_body, validate
from tests.support.ports import LOOPBACK, free_port
from tests.support.recorder import RecordingServer

USER = "jdupont"
PASSWORD = "correct horse battery staple"

SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
LOGOUT_REQUEST = re.compile(
    f'<samlp:LogoutRequest xmlns:samlp="{SAMLP}" ID="[A-Za-z_][A-Za-z0-9_.-]*" Version="2.0"'
    r' IssueInstant="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z">'
    f'<saml:NameID xmlns:saml="{SAML}">@NOT_USED@</saml:NameID>'
    "<samlp:SessionIndex>(ST-[A-Za-z0-9-]+)</samlp:SessionIndex></samlp:LogoutRequest>"
)


class HangingServer:
    """Accepts connections and reads the request, but never answers until stopped."""

    def __init__(self) -> None:
        self._listener = socket.create_server((LOOPBACK, 0))
        self.port = self._listener.getsockname()[1]
        self.received = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        try:
            connection, _ = self._listener.accept()
        except OSError:
            return
        with connection:
            connection.settimeout(10)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = connection.recv(4096)
                if not chunk:
                    return
                data += chunk
            self.received.set()
            self._stop.wait(10)

    def __enter__(self) -> HangingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._listener.close()
        self._thread.join(5)


@pytest.fixture
def browser(settings):
    """The user's browser on a server of its own (shut down, and drained, on leaving)."""
    return TestClient(create_app(settings), base_url=BASE_URL.rstrip("/"), follow_redirects=False)


@pytest.fixture
def account(add_account):
    return add_account(USER, PASSWORD)


def logout_requests(server: RecordingServer) -> list[tuple[str, str]]:
    """(SessionIndex, document) of every logout request a service received, checked."""
    found = []
    for request in server.requests:
        assert request.method == "POST"
        assert request.headers["content-type"] == "application/x-www-form-urlencoded"
        assert list(request.form) == ["logoutRequest"], request.form
        (document,) = request.form["logoutRequest"]
        match = LOGOUT_REQUEST.fullmatch(document)
        assert match is not None, document
        # What phpCAS does: a text regex on the literal samlp: prefix, after url-decoding the
        # field once more (so the document must hold neither "+" nor "%").
        phpcas = re.search("<samlp:SessionIndex>(.*)</samlp:SessionIndex>", document)
        assert phpcas is not None and phpcas.group(1) == match.group(1)
        assert "+" not in document and "%" not in document
        root = ElementTree.fromstring(document)
        assert root.tag == f"{{{SAMLP}}}LogoutRequest"
        assert root.find(f"{{{SAML}}}NameID").text == "@NOT_USED@"
        found.append((match.group(1), document))
    return found


def test_logout_notifies_every_service_that_validated_a_ticket(account, add_service, browser):
    with ExitStack() as stack:
        servers = {
            name: stack.enter_context(RecordingServer())
            for name in ("a", "b", "opted_out", "unvalidated", "saml", "failing")
        }
        servers["failing"].status = 500
        hanging = stack.enter_context(HangingServer())
        closed_port = free_port()
        services = {
            "a": add_service("https://a.test/", logout_url=servers["a"].url_for("/slo")),
            # The logout URL keeps its own query string.
            "b": add_service("https://b.test/", logout_url=servers["b"].url_for("/cas?app=b")),
            "opted_out": add_service(
                "https://opted-out.test/",
                logout_url=servers["opted_out"].url_for("/slo"),
                single_logout=False,
            ),
            "unvalidated": add_service(
                "https://unvalidated.test/", logout_url=servers["unvalidated"].url_for("/slo")
            ),
            "saml": add_service("https://saml.test/", logout_url=servers["saml"].url_for("/slo")),
            "failing": add_service(
                "https://failing.test/", logout_url=servers["failing"].url_for("/slo")
            ),
            "closed": add_service(
                "https://closed.test/", logout_url=f"http://{LOOPBACK}:{closed_port}/slo"
            ),
            "hanging": add_service(
                "https://hanging.test/", logout_url=f"http://{LOOPBACK}:{hanging.port}/slo"
            ),
        }
        with browser:
            first = login(browser, services["a"].pattern, USER, PASSWORD)
            tickets = {"a": [first, sso_ticket(browser, services["a"].pattern)]}
            for name in ("b", "opted_out", "unvalidated", "saml", "failing", "closed", "hanging"):
                tickets[name] = [sso_ticket(browser, services[name].pattern)]
            for name, service in services.items():
                if name in ("unvalidated", "saml"):
                    continue
                for ticket in tickets[name]:
                    answer = validate(browser, "/serviceValidate", service.pattern, ticket)
                    assert answer.text == success_body(USER)
            target = quote(services["saml"].pattern, safe="")
            saml = browser.post(
                f"/samlValidate?TARGET={target}", content=saml_request(tickets["saml"][0])
            )
            assert "<saml:NameIdentifier>" in saml.text

            started = time.monotonic()
            answer = browser.get("/logout")
            elapsed = time.monotonic() - started
            assert answer.status_code == 200
            assert "TGC=" in answer.headers["set-cookie"]
            # Fire and forget (2.3.3.1): one service that never answers, one that fails and
            # one that is down do not hold the user's logout back...
            assert elapsed < 3.0, elapsed  # the back channel would wait 5 s
            assert hanging.received.wait(5), "the hanging service was never called"
            # ...nor the other services' logout requests.
            for name in ("a", "b", "saml", "failing"):
                servers[name].wait_for(timeout=5)
            # The session and the ticket that was never validated are gone.
            left = tickets["unvalidated"][0]
            unvalidated = services["unvalidated"].pattern
            assert "INVALID_TICKET" in validate(browser, "/serviceValidate", unvalidated, left).text
            hanging.__exit__(None, None, None)  # let the server shut down without waiting

    # The server has shut down: every logout request has been sent.
    a = logout_requests(servers["a"])
    assert sorted(index for index, _ in a) == sorted(tickets["a"])
    assert all(r.path == "/slo" for r in servers["a"].requests)
    assert [index for index, _ in logout_requests(servers["b"])] == tickets["b"]
    (b_request,) = servers["b"].requests
    assert (b_request.path, b_request.query) == ("/cas", {"app": ["b"]})
    assert [index for index, _ in logout_requests(servers["saml"])] == tickets["saml"]
    assert [index for index, _ in logout_requests(servers["failing"])] == tickets["failing"]
    # Opted out, or never validated its ticket: nothing.
    assert servers["opted_out"].requests == []
    assert servers["unvalidated"].requests == []


def test_without_logout_url_the_service_url_itself_is_told(account, add_service, browser):
    with RecordingServer() as app:
        service = app.url_for("/app/?next=/home")
        add_service(service)
        with browser:
            ticket = login(browser, service, USER, PASSWORD)
            assert validate(browser, "/serviceValidate", service, ticket).text == (
                success_body(USER)
            )
            browser.get("/logout")
        ((index, _),) = logout_requests(app)
        assert index == ticket
        (request,) = app.requests
        assert (request.path, request.query) == ("/app/", {"next": ["/home"]})


def test_only_the_services_of_the_ending_session_are_told(account, add_service, browser):
    with RecordingServer() as app:
        service = add_service("https://app.test/", logout_url=app.url_for("/slo")).pattern
        with browser:
            mine = login(browser, service, USER, PASSWORD)
            validate(browser, "/serviceValidate", service, mine)
            my_cookies = dict(browser.cookies)
            browser.cookies.clear()
            theirs = login(browser, service, USER, PASSWORD)  # another browser, same person
            validate(browser, "/serviceValidate", service, theirs)
            browser.cookies.clear()
            browser.cookies.update(my_cookies)
            browser.get("/logout")
            browser.get("/logout")  # no session any more: nobody to tell
        assert [index for index, _ in logout_requests(app)] == [mine]


def test_a_failed_validation_joins_no_service_to_the_session(account, add_service, browser):
    with RecordingServer() as app, RecordingServer() as other:
        service = add_service("https://app.test/", logout_url=app.url_for("/slo")).pattern
        add_service("https://other.test/", logout_url=other.url_for("/slo"))
        with browser:
            ticket = login(browser, service, USER, PASSWORD)
            answer = validate(browser, "/serviceValidate", "https://other.test/", ticket)
            assert "INVALID_SERVICE" in answer.text
            answer = validate(browser, "/serviceValidate", service, ticket)
            assert "INVALID_TICKET" in answer.text
            browser.get("/logout")
        assert app.requests == [] and other.requests == []


def test_the_logout_request_goes_to_the_url_the_ticket_was_issued_for(
    account, add_service, browser
):
    with RecordingServer() as app:
        service = app.url_for("/app/")
        add_service(service)
        with browser:
            ticket = login(browser, service, USER, PASSWORD)
            # Validated under another spelling of the same service (2.2.1 / Apereo matching).
            other_spelling = service.replace("/app/", "/APP/").upper()
            answer = validate(browser, "/serviceValidate", other_spelling, ticket)
            assert answer.text == success_body(USER)
            browser.get("/logout")
        assert [index for index, _ in logout_requests(app)] == [ticket]
        assert app.requests[0].path == "/app/"
