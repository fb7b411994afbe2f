"""CAS conformance: proxying (CAS Protocol Specification 3.0.3, 2.5.4, 2.6, 2.7, 3.2-3.4).

The proxy callbacks are real HTTPS servers on loopback (``RecordingServer``) with a certificate
from a throw-away CA; the server trusts that CA only (``ca_bundle``).
"""

from __future__ import annotations

import re
import socket
import threading
from urllib.parse import quote

import pytest

from tests.support.cas import (
    JSON_TYPE,
    TICKET_FORMAT,
    failure,
    failure_code,
    json_failure,
    login,
    proxy_success,
    proxy_ticket,
    saml_request,
    sso_ticket,
    success_body,
    validate,
)
from tests.support.ports import LOOPBACK, free_port
from tests.support.recorder import RecordingServer
from tests.support.tls import make_test_pki

USER = "jdupont"
PASSWORD = "correct horse battery staple"
FRONT = "https://front.test/portal"  # the first proxy: a portal the user logs in to
MIDDLE = "https://middle.test/api"  # a back end that proxies further
BACK = "https://back.test/data"  # the last back end
NO_PT = "https://nopt.test/"  # a registered service that takes no proxy tickets
PLAIN = "https://plain.test/"  # a service without a proxy policy
CALLBACKS = r"https://127\.0\.0\.1:\d+/.*"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_test_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def foreign_pki(tmp_path_factory):
    """A certificate for 127.0.0.1 from a CA the server does not trust."""
    return make_test_pki(tmp_path_factory.mktemp("foreign-pki"))


@pytest.fixture
def settings_overrides(pki):
    return {"ca_bundle": pki.ca_cert}


@pytest.fixture
def callback(pki):
    """The proxies' callback endpoint, over HTTPS, answering 200."""
    with RecordingServer(certfile=pki.server_cert, keyfile=pki.server_key) as server:
        yield server


@pytest.fixture
def cas(client, add_account, add_service):
    add_account(USER, PASSWORD, email="jeanne.dupont@ac.test")
    add_service(FRONT, proxy_callback_pattern=CALLBACKS, released_attributes=["mail"])
    add_service(MIDDLE, proxy_callback_pattern=CALLBACKS)
    add_service(BACK, released_attributes=["mail"])
    add_service(NO_PT, accepts_proxy_tickets=False)
    add_service(PLAIN)
    return client


def pgt_iou_in(response) -> str:
    match = re.search("<cas:proxyGrantingTicket>([^<]*)</cas:proxyGrantingTicket>", response.text)
    assert match is not None, response.text
    return match.group(1)


def obtain_pgt(client, callback, service, ticket, pgt_url, endpoint="/serviceValidate"):
    """Validate with ``pgtUrl``; returns (PGT, IOU, validation answer) after checking the
    callback received both."""
    callback.clear()
    answer = validate(client, endpoint, service, ticket, pgtUrl=pgt_url)
    iou = pgt_iou_in(answer)
    # The callback was called before the answer: it is already recorded.
    assert len(callback.requests) == 1, callback.requests
    request = callback.requests[0]
    assert request.method == "GET"
    assert request.arg("pgtIou") == iou
    return request.arg("pgtId"), iou, answer


# -- 2.5.4, 3.3, 3.4: the callback -----------------------------------------------------------------


def test_callback_gets_pgt_and_iou_and_keeps_its_own_parameters(cas, callback):
    ticket = login(cas, FRONT, USER, PASSWORD)
    pgt_url = callback.url_for("/cas/pgt?client=front&note=a%20b&empty=")
    pgt, iou, answer = obtain_pgt(cas, callback, FRONT, ticket, pgt_url)
    assert answer.text == success_body(USER, pgt_iou=iou)
    request = callback.requests[0]
    assert request.path == "/cas/pgt"
    assert request.query == {
        "client": ["front"],
        "note": ["a b"],
        "empty": [""],
        "pgtId": [pgt],
        "pgtIou": [iou],
    }
    # Section 3.3 / 3.4: prefixes, 3.7 character set, and clients' 64-character limit.
    assert re.fullmatch("PGT-[A-Za-z0-9-]+", pgt) and len(pgt) <= 64, pgt
    assert re.fullmatch("PGTIOU-[A-Za-z0-9-]+", iou) and len(iou) <= 64, iou
    assert iou[7:] not in pgt


def test_cas3_validation_delivers_a_pgt_with_the_attributes(cas, callback):
    ticket = login(cas, FRONT, USER, PASSWORD)
    _, iou, answer = obtain_pgt(
        cas, callback, FRONT, ticket, callback.url_for("/pgt"), endpoint="/p3/serviceValidate"
    )
    assert "<cas:mail>jeanne.dupont@ac.test</cas:mail></cas:attributes>" in answer.text
    assert answer.text.endswith(
        f"<cas:proxyGrantingTicket>{iou}</cas:proxyGrantingTicket>"
        "</cas:authenticationSuccess></cas:serviceResponse>\n"
    )


def test_json_validation_delivers_the_iou(cas, callback):
    ticket = login(cas, FRONT, USER, PASSWORD)
    callback.clear()
    answer = validate(
        cas, "/serviceValidate", FRONT, ticket, pgtUrl=callback.url_for("/pgt"), format="JSON"
    )
    assert answer.headers["content-type"] == JSON_TYPE
    iou = callback.requests[0].arg("pgtIou")
    assert answer.json() == {
        "serviceResponse": {"authenticationSuccess": {"user": USER, "proxyGrantingTicket": iou}}
    }


# -- 2.7 /proxy, 2.6 /proxyValidate: a chain of two proxies ----------------------------------------


def test_chain_of_two_proxies(cas, callback):
    front_url = callback.url_for("/front/pgt")
    middle_url = callback.url_for("/middle/pgt?hop=2")
    ticket = login(cas, FRONT, USER, PASSWORD)
    front_pgt, _, _ = obtain_pgt(cas, callback, FRONT, ticket, front_url)

    # The portal gets a PT for the middle back end, which validates it and proxies further.
    to_middle = proxy_success(proxy_ticket(cas, front_pgt, MIDDLE))
    assert TICKET_FORMAT.match(to_middle) and to_middle.startswith("PT-"), to_middle
    assert 32 <= len(to_middle) <= 256
    middle_pgt, middle_iou, answer = obtain_pgt(
        cas, callback, MIDDLE, to_middle, middle_url, endpoint="/proxyValidate"
    )
    assert answer.text == success_body(USER, pgt_iou=middle_iou, proxies=[front_url])

    # The last back end sees both proxies, the most recently visited first (note in 2.6.2).
    to_back = proxy_success(proxy_ticket(cas, middle_pgt, BACK))
    answer = validate(cas, "/proxyValidate", BACK, to_back)
    assert answer.text == success_body(USER, proxies=[middle_url, front_url])

    to_back = proxy_success(proxy_ticket(cas, middle_pgt, BACK))
    answer = validate(cas, "/p3/proxyValidate", BACK, to_back)
    assert "<cas:mail>jeanne.dupont@ac.test</cas:mail>" in answer.text
    assert "<cas:isFromNewLogin>false</cas:isFromNewLogin>" in answer.text
    assert answer.text.endswith(
        f"</cas:attributes><cas:proxies><cas:proxy>{middle_url}</cas:proxy>"
        f"<cas:proxy>{front_url}</cas:proxy></cas:proxies>"
        "</cas:authenticationSuccess></cas:serviceResponse>\n"
    )

    to_back = proxy_success(proxy_ticket(cas, middle_pgt, BACK))
    answer = validate(cas, "/proxyValidate", BACK, to_back, format="JSON")
    assert answer.json() == {
        "serviceResponse": {
            "authenticationSuccess": {"user": USER, "proxies": [middle_url, front_url]}
        }
    }


def test_the_pgt_is_reusable_and_each_pt_single_use(cas, callback):
    ticket = login(cas, FRONT, USER, PASSWORD)
    pgt, _, _ = obtain_pgt(cas, callback, FRONT, ticket, callback.url_for("/pgt"))
    tickets = [proxy_success(proxy_ticket(cas, pgt, BACK)) for _ in range(3)]
    assert len(set(tickets)) == 3
    for pt in tickets:
        proxies = [callback.url_for("/pgt")]
        assert validate(cas, "/proxyValidate", BACK, pt).text == success_body(USER, proxies=proxies)
        code, description = failure(validate(cas, "/proxyValidate", BACK, pt))
        assert code == "INVALID_TICKET"
        assert description == f"Ticket {pt!r} not recognized"


def test_proxy_json_answers(cas, callback):
    ticket = login(cas, FRONT, USER, PASSWORD)
    pgt, _, _ = obtain_pgt(cas, callback, FRONT, ticket, callback.url_for("/pgt"))
    answer = proxy_ticket(cas, pgt, BACK, format="json")
    assert answer.headers["content-type"] == JSON_TYPE
    pt = answer.json()["serviceResponse"]["proxySuccess"]["proxyTicket"]
    assert answer.json() == {"serviceResponse": {"proxySuccess": {"proxyTicket": pt}}}
    assert TICKET_FORMAT.match(pt)
    # Failures take the shape section 2.7.2 prints.
    code, _ = json_failure(proxy_ticket(cas, pgt, "https://unregistered.test/", format="JSON"))
    assert code == "UNAUTHORIZED_SERVICE"


# -- proxy tickets where they do not belong --------------------------------------------------------


def test_a_proxy_ticket_is_refused_and_burnt_where_only_service_tickets_go(cas, callback):
    ticket = login(cas, FRONT, USER, PASSWORD)
    pgt, _, _ = obtain_pgt(cas, callback, FRONT, ticket, callback.url_for("/pgt"))
    for endpoint in ("/serviceValidate", "/p3/serviceValidate"):
        pt = proxy_success(proxy_ticket(cas, pgt, BACK))
        code, description = failure(validate(cas, endpoint, BACK, pt))
        assert code == "INVALID_TICKET_SPEC"
        assert "proxy ticket" in description.lower()
        assert failure_code(validate(cas, "/proxyValidate", BACK, pt)) == "INVALID_TICKET"
    # CAS 1.0 (section 2.4) never accepts a proxy ticket.
    pt = proxy_success(proxy_ticket(cas, pgt, BACK))
    assert cas.get("/validate", params={"service": BACK, "ticket": pt}).text == "no\n\n"
    assert failure_code(validate(cas, "/proxyValidate", BACK, pt)) == "INVALID_TICKET"
    # Nor does SAML 1.1 validation.
    pt = proxy_success(proxy_ticket(cas, pgt, BACK))
    answer = cas.post(f"/samlValidate?TARGET={quote(BACK, safe='')}", content=saml_request(pt))
    assert "NameIdentifier" not in answer.text
    assert "INVALID_TICKET_SPEC" in answer.text
    assert failure_code(validate(cas, "/proxyValidate", BACK, pt)) == "INVALID_TICKET"


def test_a_proxy_ticket_for_another_service_is_burnt(cas, callback):
    ticket = login(cas, FRONT, USER, PASSWORD)
    pgt, _, _ = obtain_pgt(cas, callback, FRONT, ticket, callback.url_for("/pgt"))
    pt = proxy_success(proxy_ticket(cas, pgt, BACK))
    assert failure_code(validate(cas, "/proxyValidate", MIDDLE, pt)) == "INVALID_SERVICE"
    assert failure_code(validate(cas, "/proxyValidate", BACK, pt)) == "INVALID_TICKET"


# -- 2.7.3 /proxy error codes ----------------------------------------------------------------------


def test_proxy_error_codes(cas, callback):
    ticket = login(cas, FRONT, USER, PASSWORD)
    pgt, _, _ = obtain_pgt(cas, callback, FRONT, ticket, callback.url_for("/pgt"))

    def proxy_failure(query):
        answer = cas.get("/proxy", params=query)
        assert answer.status_code == 200
        return failure(answer, element="proxyFailure")

    for query in ({}, {"pgt": pgt}, {"targetService": BACK}, {"pgt": "", "targetService": BACK}):
        code, description = proxy_failure(query)
        assert code == "INVALID_REQUEST"
        assert description == "'pgt' and 'targetService' parameters are both required"
    for query in (
        [("pgt", pgt), ("pgt", pgt), ("targetService", BACK)],
        [("pgt", pgt), ("targetService", BACK), ("targetService", MIDDLE)],
        {"pgt": pgt, "targetService": BACK + "x" * 5000},
    ):
        assert proxy_failure(query)[0] == "INVALID_REQUEST"
    for target in ("https://unregistered.test/", NO_PT, "not a url", BACK + "\n"):
        code, description = proxy_failure({"pgt": pgt, "targetService": target})
        assert code == "UNAUTHORIZED_SERVICE", target
        assert "not authorized to receive proxy tickets" in description
    # Something that is not a live PGT: unknown, an ST, the IOU, another kind of ticket.
    for not_a_pgt in ("PGT-unknown-0123456789", sso_ticket(cas, FRONT), "PGTIOU-x", "TGT-x"):
        code, _ = proxy_failure({"pgt": not_a_pgt, "targetService": BACK})
        assert code == "INVALID_TICKET", not_a_pgt
    # The PGT is still good after all that.
    assert TICKET_FORMAT.match(proxy_success(proxy_ticket(cas, pgt, BACK)))


# -- 2.5.3: UNAUTHORIZED_SERVICE_PROXY and INVALID_PROXY_CALLBACK ----------------------------------


def test_a_service_without_proxy_policy_gets_no_pgt(cas, callback):
    login(cas, FRONT, USER, PASSWORD)
    for service, pgt_url in (
        (PLAIN, callback.url_for("/pgt")),
        # A proxy policy covers its own callback URLs only.
        (FRONT, f"https://localhost:{callback.port}/pgt"),
        (FRONT, f"https://127.0.0.1.evil.test:{callback.port}/pgt"),
    ):
        ticket = sso_ticket(cas, service)
        code, description = failure(
            validate(cas, "/serviceValidate", service, ticket, pgtUrl=pgt_url)
        )
        assert code == "UNAUTHORIZED_SERVICE_PROXY", (service, pgt_url)
        assert "not authorized to use CAS proxy authentication" in description
        # The validation failed as a whole, and spent the ticket.
        assert failure_code(validate(cas, "/serviceValidate", service, ticket)) == "INVALID_TICKET"
    assert callback.requests == []


def test_a_plain_http_callback_is_refused_without_being_called(cas, add_service):
    add_service("https://anyproxy.test/", proxy_callback_pattern="https?://.*")
    with RecordingServer() as plain_http:
        ticket = login(cas, "https://anyproxy.test/", USER, PASSWORD)
        answer = validate(
            cas, "/serviceValidate", "https://anyproxy.test/", ticket, pgtUrl=plain_http.url
        )
        code, description = failure(answer)
        assert code == "INVALID_PROXY_CALLBACK"
        assert "must use HTTPS" in description
        assert plain_http.requests == []


def test_only_a_200_from_the_callback_earns_a_pgt(cas, callback):
    login(cas, FRONT, USER, PASSWORD)
    for status in (404, 500, 302, 201, 204):
        callback.clear()
        callback.status = status
        ticket = sso_ticket(cas, FRONT)
        answer = validate(cas, "/serviceValidate", FRONT, ticket, pgtUrl=callback.url_for("/pgt"))
        code, description = failure(answer)
        assert code == "INVALID_PROXY_CALLBACK", status
        assert f"answered HTTP {status}" in description
        assert "proxyGrantingTicket" not in answer.text
        # The callback was given a PGT, which never became valid.
        (request,) = callback.requests
        pgt = request.arg("pgtId")
        assert pgt and pgt.startswith("PGT-")
        refused = proxy_ticket(cas, pgt, BACK)
        assert failure_code(refused, element="proxyFailure") == "INVALID_TICKET"
        assert failure_code(validate(cas, "/serviceValidate", FRONT, ticket)) == "INVALID_TICKET"


def test_a_callback_with_a_certificate_from_an_unknown_ca_is_refused(cas, foreign_pki):
    with RecordingServer(
        certfile=foreign_pki.server_cert, keyfile=foreign_pki.server_key
    ) as impostor:
        ticket = login(cas, FRONT, USER, PASSWORD)
        answer = validate(cas, "/serviceValidate", FRONT, ticket, pgtUrl=impostor.url_for("/pgt"))
        code, description = failure(answer)
        assert code == "INVALID_PROXY_CALLBACK"
        assert "could not be reached securely" in description
        # The TLS handshake failed: no request, so no PGT, ever reached it.
        assert impostor.requests == []


def test_an_unreachable_callback_is_refused(cas):
    ticket = login(cas, FRONT, USER, PASSWORD)
    closed = f"https://{LOOPBACK}:{free_port()}/pgt"
    code, _ = failure(validate(cas, "/serviceValidate", FRONT, ticket, pgtUrl=closed))
    assert code == "INVALID_PROXY_CALLBACK"


def test_a_callback_that_is_not_https_at_all_is_refused(cas):
    """A callback that accepts the connection but does not speak TLS."""
    with socket.create_server((LOOPBACK, 0)) as listener:
        port = listener.getsockname()[1]
        ticket = login(cas, FRONT, USER, PASSWORD)
        listener.settimeout(5)

        def answer_garbage():  # plain HTTP in reply to the TLS ClientHello
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            with connection:
                connection.recv(1024)
                connection.sendall(b"HTTP/1.0 200 OK\r\n\r\nnot tls")

        thread = threading.Thread(target=answer_garbage, daemon=True)
        thread.start()
        answer = validate(
            cas, "/serviceValidate", FRONT, ticket, pgtUrl=f"https://{LOOPBACK}:{port}/pgt"
        )
        thread.join(5)
    assert failure_code(answer) == "INVALID_PROXY_CALLBACK"


def test_a_malformed_callback_url_is_an_invalid_callback(cas, add_service):
    add_service("https://anyproxy.test/", proxy_callback_pattern="https://.*")
    login(cas, "https://anyproxy.test/", USER, PASSWORD)
    for pgt_url in (
        "https://127.0.0.1:99999/pgt",
        "https://127.0.0.1:0/pgt",
        "https://127.0.0.1:443/\x7f",
        "https://[::1/pgt",
        "https://xn--zz.test/pgt",
        "https://a..b/pgt",
        "https://" + "a" * 300 + ".test/pgt",
    ):
        ticket = sso_ticket(cas, "https://anyproxy.test/")
        answer = validate(cas, "/serviceValidate", "https://anyproxy.test/", ticket, pgtUrl=pgt_url)
        assert failure_code(answer) == "INVALID_PROXY_CALLBACK", pgt_url


# -- 3.3.1: a PGT dies with the SSO session --------------------------------------------------------


def test_the_pgt_dies_with_the_sso_session(cas, callback):
    ticket = login(cas, FRONT, USER, PASSWORD)
    pgt, _, _ = obtain_pgt(cas, callback, FRONT, ticket, callback.url_for("/pgt"))
    issued_before = proxy_success(proxy_ticket(cas, pgt, BACK))
    assert cas.get("/logout").status_code == 200
    code, _ = failure(proxy_ticket(cas, pgt, BACK), element="proxyFailure")
    assert code == "INVALID_TICKET"
    # A PT issued before the logout dies with it too.
    assert failure_code(validate(cas, "/proxyValidate", BACK, issued_before)) == "INVALID_TICKET"
