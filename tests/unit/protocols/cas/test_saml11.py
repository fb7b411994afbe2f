"""/samlValidate (CAS Protocol Specification 3.0.3, section 4.2): request parsing and responses."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit
from xml.etree import ElementTree

import pytest
import requests
from cas import CASClientWithSAMLV1
from lxml import etree

from sso.protocols.cas.errors import CasError, InvalidRequest
from sso.protocols.cas.saml11 import (
    AUTHN_METHOD_PASSWORD,
    CAS_ATTRIBUTE_NAMESPACE,
    CONFIRMATION_METHOD_ARTIFACT,
    MAX_REQUEST_BYTES,
    SAML_MEDIA_TYPE,
    SamlRequest,
    parse_saml_request,
    read_saml_request,
    render_saml_failure,
    render_saml_success,
)

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
SAMLP = "urn:oasis:names:tc:SAML:1.0:protocol"
SAML = "urn:oasis:names:tc:SAML:1.0:assertion"
NS = {"soap": SOAP, "samlp": SAMLP, "saml": SAML}
NOW = datetime(2024, 5, 6, 7, 8, 9, 250000, tzinfo=UTC)
TICKET = "ST-1-u4hrm3td92cLxpCvrjylcasexamplecom"
SERVICE = "https://some-service.example.com/app/?next=/a&b=1"
HOSTILE = "<b>&amp; \"double\" 'single' ]]> <!-- -->"

# Section 4.2.4's example request.
SPEC_REQUEST = f"""<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/">
\t<SOAP-ENV:Header/>
\t<SOAP-ENV:Body>
\t\t<samlp:Request xmlns:samlp="urn:oasis:names:tc:SAML:1.0:protocol" MajorVersion="1"
 MinorVersion="1" RequestID="_192.168.16.51.1024506224022" IssueInstant="2002-06-19T17:03:44.022Z">
\t\t\t<samlp:AssertionArtifact>{TICKET}</samlp:AssertionArtifact>
\t\t</samlp:Request>
\t</SOAP-ENV:Body>
</SOAP-ENV:Envelope>""".encode()

# What phpCAS 1.6 posts (its SAML_SOAP_ENV ... constants, one line, fixed RequestID).
PHPCAS_REQUEST = (
    '<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/">'
    "<SOAP-ENV:Header/><SOAP-ENV:Body>"
    '<samlp:Request xmlns:samlp="urn:oasis:names:tc:SAML:1.0:protocol"  MajorVersion="1"'
    ' MinorVersion="1" RequestID="_192.168.16.51.1024506224022"'
    ' IssueInstant="2002-06-19T17:03:44.022Z">'
    f"<samlp:AssertionArtifact>{TICKET}</samlp:AssertionArtifact>"
    "</samlp:Request></SOAP-ENV:Body></SOAP-ENV:Envelope>"
).encode()


def envelope(inner: str, *, soap: str = SOAP, body_tag: str = "Body") -> bytes:
    return (
        f'<S:Envelope xmlns:S="{soap}"><S:Header/><S:{body_tag}>{inner}</S:{body_tag}></S:Envelope>'
    ).encode()


def saml_request(inner: str, attributes: str = 'MajorVersion="1" MinorVersion="1"') -> bytes:
    return envelope(f'<samlp:Request xmlns:samlp="{SAMLP}" {attributes}>{inner}</samlp:Request>')


def artifact(ticket: str = TICKET) -> str:
    return f"<samlp:AssertionArtifact>{ticket}</samlp:AssertionArtifact>"


# --- parsing (sections 4.2.2 - 4.2.4) -----------------------------------------------------


def test_reads_the_spec_example() -> None:
    assert read_saml_request(SPEC_REQUEST) == SamlRequest(
        artifact=TICKET, request_id="_192.168.16.51.1024506224022"
    )
    assert parse_saml_request(SPEC_REQUEST) == TICKET


def test_reads_what_phpcas_sends() -> None:
    assert read_saml_request(PHPCAS_REQUEST).artifact == TICKET


def test_reads_what_python_cas_sends() -> None:
    body = CASClientWithSAMLV1.get_saml_assertion(TICKET)
    assert body.startswith(b"<?xml")
    request = read_saml_request(body)
    assert request.artifact == TICKET
    assert request.request_id is not None  # a UUID, which may start with a digit


def test_artifact_whitespace_is_trimmed_and_request_id_optional() -> None:
    request = read_saml_request(saml_request(artifact(f"\n   {TICKET}\t\n")))
    assert request == SamlRequest(artifact=TICKET, request_id=None)


def test_body_at_the_size_limit_is_read() -> None:
    body = SPEC_REQUEST
    body += b" " * (MAX_REQUEST_BYTES - len(body))
    assert len(body) == MAX_REQUEST_BYTES
    assert parse_saml_request(body) == TICKET


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/"><S:Body>
<samlp:Request xmlns:samlp="urn:oasis:names:tc:SAML:1.0:protocol">
<samlp:AssertionArtifact>&lol4;</samlp:AssertionArtifact></samlp:Request></S:Body></S:Envelope>"""

XXE_FILE = b"""<?xml version="1.0"?>
<!DOCTYPE S:Envelope [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/"><S:Body>
<samlp:Request xmlns:samlp="urn:oasis:names:tc:SAML:1.0:protocol">
<samlp:AssertionArtifact>&xxe;</samlp:AssertionArtifact></samlp:Request></S:Body></S:Envelope>"""

XXE_PARAMETER = b"""<?xml version="1.0"?>
<!DOCTYPE S:Envelope [<!ENTITY % remote SYSTEM "http://127.0.0.1:9/evil.dtd"> %remote;]>
<S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/"/>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE S:Envelope SYSTEM "http://127.0.0.1:9/soap.dtd">
<S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/"/>"""

PLAIN_DTD = b"<!DOCTYPE x []>" + SPEC_REQUEST


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        pytest.param(b"", "empty", id="empty"),
        pytest.param(b"  \r\n\t ", "empty", id="blank"),
        pytest.param(b"ticket=ST-1", "well-formed", id="form-data"),
        pytest.param(b"\x00\xff\xfe garbage \x89PNG", "well-formed", id="binary"),
        pytest.param(SPEC_REQUEST[:-20], "well-formed", id="truncated"),
        pytest.param(b"<a><b></a></b>", "well-formed", id="mismatched-tags"),
        pytest.param(SPEC_REQUEST + b"<second/>", "well-formed", id="two-roots"),
        pytest.param(
            SPEC_REQUEST + b" " * (MAX_REQUEST_BYTES - len(SPEC_REQUEST) + 1),
            "larger",
            id="one-byte-too-large",
        ),
        pytest.param(b"<a>" + b"x" * (10 * MAX_REQUEST_BYTES) + b"</a>", "larger", id="huge"),
        pytest.param(BILLION_LAUGHS, "DTD", id="billion-laughs"),
        pytest.param(XXE_FILE, "DTD", id="xxe-file"),
        pytest.param(XXE_PARAMETER, "DTD", id="xxe-parameter-entity"),
        pytest.param(EXTERNAL_DTD, "DTD", id="external-dtd"),
        pytest.param(PLAIN_DTD, "DTD", id="empty-internal-dtd"),
    ],
)
def test_refuses_bodies_that_are_not_safe_xml(body: bytes, reason: str) -> None:
    with pytest.raises(InvalidRequest, match=reason) as caught:
        parse_saml_request(body)
    assert caught.value.code == "INVALID_REQUEST"
    assert isinstance(caught.value, CasError)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        pytest.param(
            envelope(
                f'<samlp:Request xmlns:samlp="{SAMLP}">{artifact()}</samlp:Request>',
                soap="http://www.w3.org/2003/05/soap-envelope",
            ),
            "SOAP 1.1",
            id="soap-1.2-envelope",
        ),
        pytest.param(
            f'<samlp:Request xmlns:samlp="{SAMLP}">{artifact()}</samlp:Request>'.encode(),
            "SOAP 1.1",
            id="bare-saml-request",
        ),
        pytest.param(
            (
                f'<Envelope><Body><Request xmlns="{SAMLP}"><AssertionArtifact>{TICKET}'
                "</AssertionArtifact></Request></Body></Envelope>"
            ).encode(),
            "SOAP 1.1",
            id="envelope-without-namespace",
        ),
        pytest.param(
            f'<S:Envelope xmlns:S="{SOAP}"><S:Header/></S:Envelope>'.encode(),
            "Body",
            id="no-body",
        ),
        pytest.param(
            f'<S:Envelope xmlns:S="{SOAP}"><S:Body/><S:Body/></S:Envelope>'.encode(),
            "Body",
            id="two-bodies",
        ),
        pytest.param(envelope(""), "samlp:Request", id="empty-body"),
        pytest.param(envelope("ST-1"), "samlp:Request", id="text-only-body"),
        pytest.param(
            envelope(
                '<samlp:Request xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol">'
                f"{artifact()}</samlp:Request>"
            ),
            "samlp:Request",
            id="saml2-protocol-namespace",
        ),
        pytest.param(
            envelope(
                f'<samlp:AuthnRequest xmlns:samlp="{SAMLP}">{artifact()}</samlp:AuthnRequest>'
            ),
            "samlp:Request",
            id="wrong-element",
        ),
        pytest.param(
            envelope(
                f'<samlp:Request xmlns:samlp="{SAMLP}">{artifact()}</samlp:Request>'
                f'<samlp:Request xmlns:samlp="{SAMLP}">{artifact("ST-2")}</samlp:Request>'
            ),
            "samlp:Request",
            id="two-requests",
        ),
        pytest.param(
            saml_request(artifact(), 'MajorVersion="2" MinorVersion="0"'),
            "version",
            id="saml-2-version",
        ),
        pytest.param(saml_request(""), "exactly one", id="no-artifact"),
        pytest.param(
            saml_request("<AssertionArtifact>ST-1</AssertionArtifact>"),
            "exactly one",
            id="artifact-without-namespace",
        ),
        pytest.param(
            saml_request(artifact() + artifact("ST-2")), "exactly one", id="two-artifacts"
        ),
        pytest.param(saml_request(f"<x>{artifact()}</x>"), "exactly one", id="nested-artifact"),
        pytest.param(saml_request(artifact("")), "service ticket", id="empty-artifact"),
        pytest.param(saml_request(artifact(" \n ")), "service ticket", id="blank-artifact"),
        pytest.param(
            saml_request(artifact("ST-1<x/>")), "service ticket", id="artifact-with-element"
        ),
    ],
)
def test_refuses_wrong_structure(body: bytes, reason: str) -> None:
    with pytest.raises(InvalidRequest, match=reason):
        parse_saml_request(body)


def test_error_message_is_renderable() -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_saml_request(XXE_FILE)
    root = etree.fromstring(caught.value.render().body.encode())
    assert root[0].get("code") == "INVALID_REQUEST"
    assert "passwd" not in caught.value.message


# --- success (section 4.2.5) --------------------------------------------------------------

ATTRIBUTES = {
    "uid": ["12345"],
    "groupMembership": ["uugid=middleware.staff,ou=Groups,dc=vt,dc=edu", "staff"],
    "longTermAuthenticationRequestTokenUsed": ["false"],
}


def success(**overrides: object) -> str:
    arguments: dict[str, object] = {
        "user": "johnq",
        "attributes": ATTRIBUTES,
        "service": SERVICE,
        "issuer": "sso.example.org",
        "authn_instant": NOW - timedelta(minutes=5),
        "auth_method": AUTHN_METHOD_PASSWORD,
        "now": NOW,
        "lifetime_seconds": 30,
        "in_response_to": "_192.168.16.51.1024506224022",
        "response_id": "_5c94b5431c540365e5a70b2874b75996",
        "assertion_id": "_e5c23ff7a3889e12fa01802a47331653",
    }
    arguments.update(overrides)
    return render_saml_success(**arguments)  # type: ignore[arg-type]


def parse(body: str) -> etree._Element:
    ElementTree.fromstring(body.encode())
    return etree.fromstring(body.encode())


def test_success_document() -> None:
    root = parse(success())
    assert root.tag == f"{{{SOAP}}}Envelope"
    [response] = root.xpath("soap:Body/samlp:Response", namespaces=NS)
    assert response.get("MajorVersion") == "1"
    assert response.get("MinorVersion") == "1"
    assert response.get("ResponseID") == "_5c94b5431c540365e5a70b2874b75996"
    assert response.get("InResponseTo") == "_192.168.16.51.1024506224022"
    assert response.get("IssueInstant") == "2024-05-06T07:08:09.250Z"
    assert response.get("Recipient") == SERVICE
    [status] = response.xpath("samlp:Status/samlp:StatusCode/@Value", namespaces=NS)
    assert status == "samlp:Success"

    [assertion] = response.xpath("saml:Assertion", namespaces=NS)
    assert assertion.get("AssertionID") == "_e5c23ff7a3889e12fa01802a47331653"
    assert assertion.get("Issuer") == "sso.example.org"
    assert assertion.get("IssueInstant") == "2024-05-06T07:08:09.250Z"
    assert (assertion.get("MajorVersion"), assertion.get("MinorVersion")) == ("1", "1")
    assert [etree.QName(child).localname for child in assertion] == [
        "Conditions",
        "AttributeStatement",
        "AuthenticationStatement",
    ]
    [conditions] = assertion.xpath("saml:Conditions", namespaces=NS)
    assert conditions.get("NotBefore") == "2024-05-06T07:08:09.250Z"
    assert conditions.get("NotOnOrAfter") == "2024-05-06T07:08:39.250Z"
    assert conditions.xpath(
        "saml:AudienceRestrictionCondition/saml:Audience/text()", namespaces=NS
    ) == [SERVICE]

    for statement in ("AttributeStatement", "AuthenticationStatement"):
        [subject] = assertion.xpath(f"saml:{statement}/saml:Subject", namespaces=NS)
        assert subject.findtext("saml:NameIdentifier", namespaces=NS) == "johnq"
        assert subject.xpath(
            "saml:SubjectConfirmation/saml:ConfirmationMethod/text()", namespaces=NS
        ) == [CONFIRMATION_METHOD_ARTIFACT]

    attributes = assertion.xpath("saml:AttributeStatement/saml:Attribute", namespaces=NS)
    assert [a.get("AttributeName") for a in attributes] == list(ATTRIBUTES)
    assert {a.get("AttributeNamespace") for a in attributes} == {CAS_ATTRIBUTE_NAMESPACE}
    assert [a.xpath("saml:AttributeValue/text()", namespaces=NS) for a in attributes] == list(
        ATTRIBUTES.values()
    )

    [authn] = assertion.xpath("saml:AuthenticationStatement", namespaces=NS)
    assert authn.get("AuthenticationMethod") == AUTHN_METHOD_PASSWORD
    assert authn.get("AuthenticationInstant") == "2024-05-06T07:03:09.250Z"


def test_success_without_request_id_has_no_in_response_to() -> None:
    root = parse(success(in_response_to=None))
    [response] = root.xpath("//samlp:Response", namespaces=NS)
    assert "InResponseTo" not in response.attrib


def test_success_without_attributes_has_no_attribute_statement() -> None:
    root = parse(success(attributes={"empty": []}))
    assert root.xpath("//saml:AttributeStatement", namespaces=NS) == []
    assert root.xpath("//saml:NameIdentifier/text()", namespaces=NS) == ["johnq"]


def test_bare_string_attribute_is_one_value() -> None:
    root = parse(success(attributes={"mail": "j@example.org"}))
    assert root.xpath("//saml:AttributeValue/text()", namespaces=NS) == ["j@example.org"]


def test_success_escapes_hostile_values() -> None:
    body = success(
        user=HOSTILE,
        service=HOSTILE,
        issuer=HOSTILE,
        attributes={HOSTILE: [HOSTILE, "a\r\nb"]},
        in_response_to=HOSTILE,
    )
    assert "]]>" not in body
    root = parse(body)
    assert root.xpath("//saml:NameIdentifier/text()", namespaces=NS) == [HOSTILE, HOSTILE]
    assert root.xpath("//saml:Audience/text()", namespaces=NS) == [HOSTILE]
    assert root.xpath("//saml:Assertion/@Issuer", namespaces=NS) == [HOSTILE]
    assert root.xpath("//samlp:Response/@Recipient", namespaces=NS) == [HOSTILE]
    assert root.xpath("//samlp:Response/@InResponseTo", namespaces=NS) == [HOSTILE]
    assert root.xpath("//saml:Attribute/@AttributeName", namespaces=NS) == [HOSTILE]
    assert root.xpath("//saml:AttributeValue/text()", namespaces=NS) == [HOSTILE, "a\r\nb"]
    assert root.xpath("//comment()") == []


def test_success_refuses_bad_lifetime_and_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="lifetime"):
        success(lifetime_seconds=0)
    with pytest.raises(ValueError, match="timezone"):
        success(now=datetime(2024, 5, 6, 7, 8, 9))
    with pytest.raises(ValueError, match="timezone"):
        success(authn_instant=datetime(2024, 5, 6, 7, 8, 9))


# --- failure ------------------------------------------------------------------------------


def failure(**overrides: object) -> str:
    arguments: dict[str, object] = {
        "code": "INVALID_TICKET",
        "message": f"Ticket {TICKET} not recognized",
        "response_id": "_f00",
        "in_response_to": "_192.168.16.51.1024506224022",
        "now": NOW,
    }
    arguments.update(overrides)
    return render_saml_failure(**arguments)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("INVALID_TICKET", "samlp:RequestDenied"),
        ("INVALID_SERVICE", "samlp:RequestDenied"),
        ("INVALID_REQUEST", "samlp:RequestDenied"),
        ("INVALID_TICKET_SPEC", "samlp:RequestDenied"),
        ("INTERNAL_ERROR", "samlp:Responder"),
    ],
)
def test_failure_document(code: str, status: str) -> None:
    root = parse(failure(code=code))
    [response] = root.xpath("soap:Body/samlp:Response", namespaces=NS)
    assert response.get("ResponseID") == "_f00"
    assert response.get("InResponseTo") == "_192.168.16.51.1024506224022"
    assert response.get("IssueInstant") == "2024-05-06T07:08:09.250Z"
    assert response.xpath("samlp:Status/samlp:StatusCode/@Value", namespaces=NS) == [status]
    assert response.xpath("samlp:Status/samlp:StatusMessage/text()", namespaces=NS) == [
        f"{code}: Ticket {TICKET} not recognized"
    ]
    assert response.xpath("saml:Assertion", namespaces=NS) == []


def test_failure_never_contains_a_name_identifier() -> None:
    # phpCAS: any element named NameIdentifier, in any namespace, means success.
    body = failure(message="<saml:NameIdentifier>admin</saml:NameIdentifier>" + HOSTILE)
    root = parse(body)
    assert [e for e in root.iter() if etree.QName(e).localname == "NameIdentifier"] == []
    assert root.xpath("//samlp:StatusMessage/text()", namespaces=NS) == [
        "INVALID_TICKET: <saml:NameIdentifier>admin</saml:NameIdentifier>" + HOSTILE
    ]


def test_failure_without_request_id() -> None:
    root = parse(failure(in_response_to=None))
    assert "InResponseTo" not in root.xpath("//samlp:Response", namespaces=NS)[0].attrib


# --- python-cas end to end, against a loopback server using this module -------------------


class _SamlValidateHandler(BaseHTTPRequestHandler):
    server: _SamlValidateServer

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        received = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        target = parse_qs(url.query).get("TARGET", [""])[0]
        self.server.requests.append((url.path, target, received))
        request = read_saml_request(received)
        if request.artifact == "ST-good" and target == SERVICE:
            body = success(in_response_to=request.request_id)
        else:
            body = failure(in_response_to=request.request_id)
        payload = body.encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", SAML_MEDIA_TYPE)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _SamlValidateServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _SamlValidateHandler)
        self.requests: list[tuple[str, str, bytes]] = []


@pytest.fixture
def cas_server() -> Iterator[_SamlValidateServer]:
    server = _SamlValidateServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def http_session() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def python_cas_client(
    server: _SamlValidateServer, session: requests.Session
) -> CASClientWithSAMLV1:
    host, port = server.server_address[:2]
    return CASClientWithSAMLV1(
        service_url=SERVICE, server_url=f"http://{host}:{port}/cas/", session=session
    )


def test_python_cas_saml_client_reads_success(
    cas_server: _SamlValidateServer, http_session: requests.Session
) -> None:
    client = python_cas_client(cas_server, http_session)
    user, attributes, pgt_iou = client.verify_ticket("ST-good")
    assert user == "johnq"
    assert pgt_iou is None
    assert attributes == {
        "uid": "12345",
        "groupMembership": ["uugid=middleware.staff,ou=Groups,dc=vt,dc=edu", "staff"],
        "longTermAuthenticationRequestTokenUsed": "false",
    }
    [(path, target, _)] = cas_server.requests
    assert (path, target) == ("/cas/samlValidate", SERVICE)


def test_python_cas_saml_client_reads_failure(
    cas_server: _SamlValidateServer, http_session: requests.Session
) -> None:
    client = python_cas_client(cas_server, http_session)
    assert client.verify_ticket("ST-unknown") == (None, {}, None)
