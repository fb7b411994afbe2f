"""CAS conformance: SAML 1.1 validation, ``/samlValidate`` (CAS Protocol Specification 3.0.3, 4.2).

A failure must never carry a ``NameIdentifier``: phpCAS takes its mere presence for success.
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import quote
from xml.etree import ElementTree

import pytest

from tests.support.cas import SAML_TYPE, login, no_stack_trace, saml_request, sso_ticket

USER = "jdupont"
PASSWORD = "correct horse battery staple"
APP = "https://app.test/cas/"
OTHER = "https://other.test/"
PLAIN_HTTP = "http://intranet.test/app"

NS = {
    "soap": "http://schemas.xmlsoap.org/soap/envelope/",
    "samlp": "urn:oasis:names:tc:SAML:1.0:protocol",
    "saml": "urn:oasis:names:tc:SAML:1.0:assertion",
}
CAS_ATTRIBUTES = "http://www.ja-sig.org/products/cas/"


@pytest.fixture
def cas(client, add_account, add_service):
    add_account(USER, PASSWORD, email="jeanne.dupont@ac.test", memberOf="teachers;maths")
    add_service(APP, released_attributes=["mail", "memberOf"])
    add_service(OTHER)
    add_service(PLAIN_HTTP, released_attributes=["*"])
    return client


def saml_validate(client, target, body, **headers):
    url = "/samlValidate" if target is None else f"/samlValidate?TARGET={quote(target, safe='')}"
    answer = client.post(url, content=body, headers={"Content-Type": "text/xml"} | headers)
    no_stack_trace(answer)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == SAML_TYPE
    return answer


def saml_response(answer):
    envelope = ElementTree.fromstring(answer.content)
    assert envelope.tag == f"{{{NS['soap']}}}Envelope"
    response = envelope.find("soap:Body/samlp:Response", NS)
    assert response is not None, answer.text
    return response


def saml_failure(answer) -> str:
    """The ``CODE: message`` of a denial; asserts it says nothing about anybody."""
    assert "NameIdentifier" not in answer.text, answer.text
    assert "<saml:Assertion" not in answer.text, answer.text
    response = saml_response(answer)
    assert response.get("MajorVersion") == "1" and response.get("MinorVersion") == "1"
    code = response.find("samlp:Status/samlp:StatusCode", NS).get("Value")
    assert code == "samlp:RequestDenied", answer.text
    return response.find("samlp:Status/samlp:StatusMessage", NS).text


def parse_instant(value: str) -> dt.datetime:
    assert value.endswith("Z"), value
    return dt.datetime.fromisoformat(value[:-1] + "+00:00")


def test_success(cas):
    ticket = login(cas, APP, USER, PASSWORD)
    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    answer = saml_validate(cas, APP, saml_request(ticket, request_id="_req-42"))
    response = saml_response(answer)
    assert response.get("Recipient") == APP
    assert response.get("InResponseTo") == "_req-42"
    assert response.find("samlp:Status/samlp:StatusCode", NS).get("Value") == "samlp:Success"
    assertion = response.find("saml:Assertion", NS)
    assert assertion.get("Issuer") == "https://sso.test"
    assert (assertion.get("MajorVersion"), assertion.get("MinorVersion")) == ("1", "1")
    conditions = assertion.find("saml:Conditions", NS)
    not_before = parse_instant(conditions.get("NotBefore"))
    assert before <= not_before <= dt.datetime.now(dt.UTC)
    assert parse_instant(conditions.get("NotOnOrAfter")) > not_before
    audience = conditions.find("saml:AudienceRestrictionCondition/saml:Audience", NS)
    assert audience.text == APP

    statement = assertion.find("saml:AttributeStatement", NS)
    subject = statement.find("saml:Subject", NS)
    assert subject.find("saml:NameIdentifier", NS).text == USER
    method = subject.find("saml:SubjectConfirmation/saml:ConfirmationMethod", NS).text
    assert method == "urn:oasis:names:tc:SAML:1.0:cm:artifact"
    attributes = [
        (a.get("AttributeNamespace"), a.get("AttributeName"))
        + tuple(v.text for v in a.findall("saml:AttributeValue", NS))
        for a in statement.findall("saml:Attribute", NS)
    ]
    # Only the release policy's attributes, each value its own AttributeValue.
    assert attributes == [
        (CAS_ATTRIBUTES, "mail", "jeanne.dupont@ac.test"),
        (CAS_ATTRIBUTES, "memberOf", "teachers", "maths"),
    ]
    authentication = assertion.find("saml:AuthenticationStatement", NS)
    assert authentication.get("AuthenticationMethod") == "urn:oasis:names:tc:SAML:1.0:am:password"
    assert before <= parse_instant(authentication.get("AuthenticationInstant"))
    name = authentication.find("saml:Subject/saml:NameIdentifier", NS).text
    assert name == USER


def test_a_request_without_request_id_is_answered_without_in_response_to(cas):
    ticket = login(cas, APP, USER, PASSWORD)
    body = saml_request(ticket).replace(' RequestID="_192.168.16.51.1024506224022"', "")
    response = saml_response(saml_validate(cas, APP, body))
    assert response.get("InResponseTo") is None
    assert response.find("saml:Assertion", NS) is not None


def test_an_artifact_surrounded_by_whitespace_validates(cas):
    ticket = login(cas, APP, USER, PASSWORD)
    answer = saml_validate(cas, APP, saml_request(f"\n\t {ticket} \n"))
    assert f"<saml:NameIdentifier>{USER}</saml:NameIdentifier>" in answer.text


def test_a_service_without_release_policy_gets_no_attribute_statement(cas):
    ticket = login(cas, OTHER, USER, PASSWORD)
    assertion = saml_response(saml_validate(cas, OTHER, saml_request(ticket))).find(
        "saml:Assertion", NS
    )
    assert assertion.find("saml:AttributeStatement", NS) is None
    subject = assertion.find("saml:AuthenticationStatement/saml:Subject/saml:NameIdentifier", NS)
    assert subject.text == USER


def test_no_attribute_is_released_to_a_non_ssl_target(cas):
    """Section 4.2.1: "SAML attributes MUST NOT be released to a non-SSL site"."""
    ticket = login(cas, PLAIN_HTTP, USER, PASSWORD)
    answer = saml_validate(cas, PLAIN_HTTP, saml_request(ticket))
    assertion = saml_response(answer).find("saml:Assertion", NS)
    assert assertion.find("saml:AttributeStatement", NS) is None
    assert "jeanne.dupont@ac.test" not in answer.text
    subject = assertion.find("saml:AuthenticationStatement/saml:Subject/saml:NameIdentifier", NS)
    assert subject.text == USER


def test_replay_wrong_target_and_missing_target(cas):
    ticket = login(cas, APP, USER, PASSWORD)
    assert "NameIdentifier" in saml_validate(cas, APP, saml_request(ticket)).text
    message = saml_failure(saml_validate(cas, APP, saml_request(ticket)))
    assert message == f"INVALID_TICKET: Ticket {ticket!r} not recognized"

    ticket = sso_ticket(cas, APP)
    message = saml_failure(saml_validate(cas, OTHER, saml_request(ticket)))
    assert message.startswith("INVALID_SERVICE: ")
    # Spent by the attempt with the wrong TARGET.
    assert saml_failure(saml_validate(cas, APP, saml_request(ticket))).startswith("INVALID_TICKET")

    ticket = sso_ticket(cas, APP)
    assert saml_failure(saml_validate(cas, None, saml_request(ticket))).startswith(
        "INVALID_REQUEST: "
    )
    repeated = f"/samlValidate?TARGET={quote(APP)}&TARGET={quote(APP)}"
    answer = cas.post(repeated, content=saml_request(ticket))
    assert saml_failure(answer).startswith("INVALID_REQUEST: ")
    # Neither was a validation attempt.
    assert "NameIdentifier" in saml_validate(cas, APP, saml_request(ticket)).text


def test_the_failure_echoes_the_request_id(cas):
    response = saml_response(saml_validate(cas, APP, saml_request("ST-unknown", "_abc")))
    assert response.get("InResponseTo") == "_abc"


def test_only_post_is_allowed(cas):
    ticket = login(cas, APP, USER, PASSWORD)
    for method in ("GET", "PUT", "DELETE"):
        answer = cas.request(method, f"/samlValidate?TARGET={quote(APP)}&ticket={ticket}")
        assert answer.status_code == 405
        assert answer.headers["allow"] == "POST"
        assert "NameIdentifier" not in answer.text
        no_stack_trace(answer)
    # The ticket was not touched.
    assert "NameIdentifier" in saml_validate(cas, APP, saml_request(ticket)).text


_XXE = (
    '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    '<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/">'
    '<SOAP-ENV:Body><samlp:Request xmlns:samlp="urn:oasis:names:tc:SAML:1.0:protocol">'
    "<samlp:AssertionArtifact>&x;</samlp:AssertionArtifact>"
    "</samlp:Request></SOAP-ENV:Body></SOAP-ENV:Envelope>"
)
_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
        for i in range(1, 10)
    )
    + "]><lolz>&lol9;</lolz>"
)
_BAD_BODIES = {
    "empty": b"",
    "blank": b" \r\n\t ",
    "garbage": b"this is not xml at all",
    "binary": bytes(range(256)) * 4,
    "nul": b"\x00" * 1000,
    "truncated": saml_request("ST-x").encode()[:-20],
    "xxe": _XXE.encode(),
    "billion laughs": _LAUGHS.encode(),
    "external dtd": b'<!DOCTYPE r SYSTEM "http://127.0.0.1:1/x.dtd"><r/>',
    "parameter entity": b'<!DOCTYPE r [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]><r/>',
    "not soap": b'<samlp:Request xmlns:samlp="urn:oasis:names:tc:SAML:1.0:protocol"/>',
    "soap 1.2": saml_request("ST-x")
    .replace("http://schemas.xmlsoap.org/soap/envelope/", "http://www.w3.org/2003/05/soap-envelope")
    .encode(),
    "saml 2": saml_request("ST-x").replace("1.0:protocol", "2.0:protocol").encode(),
    "no artifact": saml_request("ST-x")
    .replace("<samlp:AssertionArtifact>ST-x</samlp:AssertionArtifact>", "")
    .encode(),
    "empty artifact": saml_request("").encode(),
    "two artifacts": saml_request(
        "ST-a</samlp:AssertionArtifact><samlp:AssertionArtifact>ST-b"
    ).encode(),
    "nested artifact": saml_request("<x>ST-a</x>").encode(),
    "latin-1 bytes": saml_request("ST-\xe9").encode("latin-1"),
    "utf-16": saml_request("ST-x").encode("utf-16"),
    "oversized": saml_request("ST-" + "a" * 70_000).encode(),
    "huge": b"<a>" + b"x" * 2_000_000 + b"</a>",
}


@pytest.mark.parametrize("settings_overrides", [{"service_ticket_lifetime": 60}])
def test_bad_bodies_get_a_saml_failure_never_a_500(cas):
    ticket = login(cas, APP, USER, PASSWORD)
    for name, body in _BAD_BODIES.items():
        answer = saml_validate(cas, APP, body)
        message = saml_failure(answer)
        assert message.startswith(("INVALID_REQUEST: ", "INVALID_TICKET: ")), (name, message)
        assert "root:" not in answer.text, name  # nothing read from /etc/passwd
        assert "lollol" not in answer.text, name
    # A body streamed in chunks, without Content-Length, is cut off all the same.
    chunks = (b"<a>" + b"x" * 65_536 for _ in range(64))
    answer = cas.post(f"/samlValidate?TARGET={quote(APP)}", content=chunks)
    assert answer.status_code == 200
    assert saml_failure(answer).startswith("INVALID_REQUEST: ")
    # None of this disturbed the ticket the user holds.
    assert "NameIdentifier" in saml_validate(cas, APP, saml_request(ticket)).text
