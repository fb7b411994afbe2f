"""Driving the CAS endpoints the way a relying party does, and reading their exact answers.

Used by the CAS conformance flows (``tests/flows/test_cas_*.py``). Everything goes over HTTP
(an in-process ``TestClient`` or a real ``httpx.Client``); nothing here reaches into ``sso``.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit
from xml.etree import ElementTree

import httpx

from tests.support.login_form import submit_login

CAS_NAMESPACE = "http://www.yale.edu/tp/cas"
XML_TYPE = "application/xml; charset=utf-8"
JSON_TYPE = "application/json"
TEXT_TYPE = "text/plain; charset=utf-8"
SAML_TYPE = "text/xml; charset=utf-8"

# Section 3.1.1 / 3.2.1 / 3.7: prefix, then only A-Z a-z 0-9 and "-".
TICKET_FORMAT = re.compile(r"^(ST|PT)-[A-Za-z0-9-]+$")

VALIDATION_ENDPOINTS = (
    "/serviceValidate",
    "/proxyValidate",
    "/p3/serviceValidate",
    "/p3/proxyValidate",
)
"""The four endpoints answering ``cas:serviceResponse`` (sections 2.5, 2.6, 2.8, 2.9)."""

_OPEN = '<cas:serviceResponse xmlns:cas="http://www.yale.edu/tp/cas">'
_CLOSE = "</cas:serviceResponse>\n"
_FAILURE = re.compile(
    re.escape(_OPEN)
    + r'<cas:(authenticationFailure|proxyFailure) code="([A-Z_]+)">([^<]*)</cas:\1>'
    + re.escape(_CLOSE),
    re.DOTALL,
)


def ticket_in(response: httpx.Response) -> str:
    """The ``ticket`` of a /login redirect back to the service."""
    assert response.status_code == 302, (response.status_code, response.text[:500])
    tickets = parse_qs(urlsplit(response.headers["location"]).query).get("ticket")
    assert tickets and len(tickets) == 1, response.headers["location"]
    return tickets[0]


def login(client: httpx.Client, service: str, identifier: str, password: str) -> str:
    """A fresh login (password typed on our form) for ``service``; returns its ST."""
    page = client.get("/login", params={"service": service})
    assert page.status_code == 200, (page.status_code, page.text[:500])
    return ticket_in(submit_login(client, page, identifier, password))


def sso_ticket(client: httpx.Client, service: str) -> str:
    """An ST from the existing SSO session (no credentials): not from a new login."""
    return ticket_in(client.get("/login", params={"service": service}))


def validate(
    client: httpx.Client, endpoint: str, service: str | None, ticket: str | None, **params: str
) -> httpx.Response:
    """GET a validation endpoint with ``service``/``ticket`` (left out when None)."""
    query = {k: v for k, v in (("service", service), ("ticket", ticket)) if v is not None}
    response = client.get(endpoint, params=query | params)
    assert response.status_code == 200, (endpoint, response.status_code, response.text[:500])
    return response


def success_body(
    user: str,
    attributes: str | None = None,
    pgt_iou: str | None = None,
    proxies: list[str] | None = None,
) -> str:
    """The exact ``cas:authenticationSuccess`` document (compact, as the server writes it).

    ``attributes`` is the inner XML of ``cas:attributes`` (None: no attributes block).
    """
    body = f"{_OPEN}<cas:authenticationSuccess><cas:user>{user}</cas:user>"
    if attributes is not None:
        body += f"<cas:attributes>{attributes}</cas:attributes>"
    if pgt_iou is not None:
        body += f"<cas:proxyGrantingTicket>{pgt_iou}</cas:proxyGrantingTicket>"
    if proxies:
        body += "<cas:proxies>" + "".join(f"<cas:proxy>{p}</cas:proxy>" for p in proxies)
        body += "</cas:proxies>"
    return body + f"</cas:authenticationSuccess>{_CLOSE}"


def failure(response: httpx.Response, element: str = "authenticationFailure") -> tuple[str, str]:
    """``(code, description)`` of an XML failure; asserts the document's exact shape."""
    assert response.headers["content-type"] == XML_TYPE, response.headers
    match = _FAILURE.fullmatch(response.text)
    assert match is not None, response.text
    assert match.group(1) == element, response.text
    ElementTree.fromstring(response.text)  # well-formed whatever the message holds
    return match.group(2), match.group(3)


def failure_code(response: httpx.Response, element: str = "authenticationFailure") -> str:
    """The ``code`` of an XML failure (shape asserted as in :func:`failure`)."""
    return failure(response, element)[0]


def json_failure(response: httpx.Response) -> tuple[str, str]:
    """``(code, description)`` of a JSON failure (section 2.5.2 / 2.7.2 shape, exactly)."""
    assert response.headers["content-type"] == JSON_TYPE, response.headers
    document = response.json()
    assert list(document) == ["serviceResponse"], document
    assert list(document["serviceResponse"]) == ["authenticationFailure"], document
    failed = document["serviceResponse"]["authenticationFailure"]
    assert list(failed) == ["code", "description"], document
    return failed["code"], failed["description"]


def proxy_ticket(client: httpx.Client, pgt: str, target: str, **params: str) -> httpx.Response:
    """GET /proxy for ``target`` with ``pgt``."""
    response = client.get("/proxy", params={"pgt": pgt, "targetService": target} | params)
    assert response.status_code == 200, (response.status_code, response.text[:500])
    return response


_PROXY_SUCCESS = re.compile(
    re.escape(_OPEN)
    + r"<cas:proxySuccess><cas:proxyTicket>([^<]*)</cas:proxyTicket></cas:proxySuccess>"
    + re.escape(_CLOSE)
)


def proxy_success(response: httpx.Response) -> str:
    """The PT of an exact ``cas:proxySuccess`` document (section 2.7.2)."""
    assert response.headers["content-type"] == XML_TYPE, response.headers
    match = _PROXY_SUCCESS.fullmatch(response.text)
    assert match is not None, response.text
    return match.group(1)


def saml_request(artifact: str, request_id: str = "_192.168.16.51.1024506224022") -> str:
    """The SOAP envelope of section 4.2.4 around a SAML 1.1 ``samlp:Request``."""
    return (
        '<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/">'
        "<SOAP-ENV:Header/><SOAP-ENV:Body>"
        '<samlp:Request xmlns:samlp="urn:oasis:names:tc:SAML:1.0:protocol" MajorVersion="1"'
        f' MinorVersion="1" RequestID="{request_id}" IssueInstant="2002-06-19T17:03:44.022Z">'
        f"<samlp:AssertionArtifact>{artifact}</samlp:AssertionArtifact>"
        "</samlp:Request></SOAP-ENV:Body></SOAP-ENV:Envelope>"
    )


def no_stack_trace(response: httpx.Response) -> None:
    """Assert an answer is neither a server error nor a leak of Python internals."""
    assert response.status_code < 500, (response.status_code, response.text[:500])
    for leak in ("Traceback", 'File "', "Exception", "sqlalchemy", "psycopg", "sqlite3"):
        assert leak not in response.text, (leak, response.text[:2000])
