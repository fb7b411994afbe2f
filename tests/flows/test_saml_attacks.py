"""Hostile SAML messages against the IdP, and the answer each one gets.

Every message we cannot trust (not SAML, a DTD, an unknown SP, an ACS outside metadata, a bad
or missing signature, a replay, a stale IssueInstant...) gets a 400/403 page that says why,
and nothing else: no SAMLResponse posted anywhere (we would be an open redirector), no
session, no row in the replay cache. A request we can trust but not satisfy (an authentication
context we do not have, a NameIDPolicy we cannot meet) gets a signed Response with that status,
posted to the ACS of the SP's metadata.

Hostile messages are written by hand with lxml, zlib and base64 where pysaml2 would not write
them, and signed with the SP's own key (``sso.security.xmldsig.sign``) where a signature is
what is being attacked.
"""

from __future__ import annotations

import base64
import datetime as dt
import gc
import html
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import httpx2._urlparse
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from lxml import etree
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.response import StatusInvalidNameidPolicy, StatusNoAuthnContext
from saml2.saml import AuthnContextClassRef, NameID
from saml2.samlp import NameIDPolicy, RequestedAuthnContext
from sqlalchemy import text
from starlette.testclient import TestClient

from sso.app import create_app
from sso.config import Settings
from sso.db import Base
from sso.protocols.saml.bindings import MAX_ENCODED_BYTES, MAX_XML_BYTES, encode_redirect
from sso.protocols.saml.nameid import EMAIL, PERSISTENT, TRANSIENT
from sso.security import xmldsig
from tests.conftest import BASE_URL, SECRET
from tests.support.login_form import submit_login
from tests.support.saml_client import TestSp, logout_request, make_sp, saml_form

USER, PASSWORD = "cmartin", "Saml-Passw0rd-2026"
IDP = "https://sso.test/saml/metadata"
SSO = {
    BINDING_HTTP_REDIRECT: "https://sso.test/saml/sso/redirect",
    BINDING_HTTP_POST: "https://sso.test/saml/sso/post",
}
SLO = {
    BINDING_HTTP_REDIRECT: "https://sso.test/saml/slo/redirect",
    BINDING_HTTP_POST: "https://sso.test/saml/slo/post",
}
BINDINGS = pytest.mark.parametrize(
    "binding", [BINDING_HTTP_REDIRECT, BINDING_HTTP_POST], ids=["redirect", "post"]
)
SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
ARTIFACT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Artifact"
X509_CONTEXT = "urn:oasis:names:tc:SAML:2.0:ac:classes:X509"
PPT_CONTEXT = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
SP_ID, SIGNED_ID = "https://sp.test/metadata", "https://signed.test/metadata"
EVIL_ACS = "https://evil.test/acs"
BAD_REQUEST = "The sign-in request the application sent is invalid and was refused ("
GENERIC_BAD_REQUEST = "The request received is invalid. Go back to the application and try again."
NOT_REGISTERED = "is not registered with this sign-in service"
TABLES = ("saml_seen_messages", "sso_sessions", "saml_persistent_ids")
_HASHES = {
    xmldsig.RSA_SHA1: hashes.SHA1,
    xmldsig.RSA_SHA256: hashes.SHA256,
    xmldsig.RSA_SHA512: hashes.SHA512,
}

# pysaml2 leaves the temporary files of the SP certificates it verifies with to the garbage
# collector (saml2.sigver.make_temp): harmless here, reported as unraisable when collected.
pytestmark = [
    pytest.mark.filterwarnings("ignore:unclosed file:ResourceWarning"),
    pytest.mark.filterwarnings(
        r"ignore:Exception ignored in. <_io.FileIO name='/tmp/tmp\w+\.pem'"
        ":pytest.PytestUnraisableExceptionWarning"
    ),
]


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(migrated_database, tmp_path_factory) -> Iterator[TestClient]:
    """One app per database for the whole module (the suite's ``client`` builds one per test,
    an IdP key pair included): each test starts from empty tables, no cookies, no cached SP."""
    settings = Settings(
        base_url=BASE_URL,
        secret_key=SECRET,
        database_url=migrated_database,
        var_dir=tmp_path_factory.mktemp("saml-attacks"),
        service_cache_seconds=0,
    )
    app = create_app(settings)
    with TestClient(app, base_url=BASE_URL.rstrip("/"), follow_redirects=False) as test_client:
        test_client.headers["Accept-Language"] = "en"  # pages in English, read here
        yield test_client
    gc.collect()  # pysaml2's leftover files (see pytestmark), while this module's filters apply


def _empty(client: TestClient) -> None:
    runtime = client.app.state.runtime
    with runtime.engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())
    client.cookies.clear()
    client.app.state.saml.registry.invalidate()


@pytest.fixture(autouse=True)
def fresh(client) -> Iterator[None]:
    _empty(client)
    yield
    _empty(client)


@pytest.fixture
def saml(client):
    return client.app.state.saml


@pytest.fixture(scope="module")
def idp_metadata(client) -> str:
    return client.get("/saml/metadata").text


@pytest.fixture
def account(add_account) -> str:
    return add_account(USER, PASSWORD, email="claire.martin@ac-demo.fr")


@dataclass(frozen=True)
class Sp:
    """A test SP with the key it signs with."""

    test_sp: TestSp
    key_pem: bytes
    cert_pem: bytes

    @property
    def entity_id(self) -> str:
        return self.test_sp.entity_id

    @property
    def acs_url(self) -> str:
        return self.test_sp.acs_url


@pytest.fixture(scope="module")
def sp_maker(client, idp_metadata, tmp_path_factory) -> Callable[..., Sp]:
    """SPs made once per module (a key pair and a pysaml2 client each): ``make(name,
    entity_id=None, **make_sp options)``, https://{name}.test/metadata by default."""
    made: dict[tuple, Sp] = {}
    directory = tmp_path_factory.mktemp("sps")

    def make(name: str, *, entity_id: str | None = None, **options) -> Sp:
        key = (name, entity_id, tuple(sorted(options.items())))
        if key not in made:
            entity_id = entity_id or f"https://{name}.test/metadata"
            test_sp = make_sp(directory / name, idp_metadata, entity_id=entity_id, **options)
            made[key] = Sp(
                test_sp,
                (directory / name / "sp.key").read_bytes(),
                (directory / name / "sp.crt").read_bytes(),
            )
        return made[key]

    return make


@pytest.fixture
def new_sp(sp_maker, saml) -> Callable[..., Sp]:
    """``new_sp(name, registered=True, **make_sp options)``: https://{name}.test/metadata."""

    def make(name: str, *, registered: bool = True, **options) -> Sp:
        sp = sp_maker(name, **options)
        if registered:
            saml.registry.add(metadata_xml=sp.test_sp.metadata_xml, released_attributes=["*"])
        return sp

    return make


@pytest.fixture
def sp(new_sp) -> Sp:
    """A registered SP that does not sign its AuthnRequests."""
    return new_sp("sp")


@pytest.fixture
def signed_sp(new_sp) -> Sp:
    """A registered SP whose metadata says AuthnRequestsSigned="true"."""
    return new_sp("signed", sign_requests=True)


def message_of(body: str) -> str:
    """The message of one of our pages."""
    found = re.search(r'<p class="message">(.*?)</p>', body, re.S)
    return found.group(1) if found else body[:1500]


def counts(runtime) -> dict[str, int]:
    with runtime.engine.connect() as conn:
        return {t: conn.scalar(text(f"SELECT COUNT(*) FROM {t}")) for t in TABLES}  # noqa: S608


@pytest.fixture
def refused(runtime) -> Callable[..., str]:
    """Assert that ``page`` is our refusal page naming ``reason``, that nothing went to any
    SP and nothing was stored; the page's text."""

    def check(page, reason: str, *, status: int = 400, seen: int = 0, sessions: int = 0) -> str:
        body = html.unescape(page.text)
        shown = message_of(body)
        assert page.status_code == status, (page.status_code, shown)
        assert (NOT_REGISTERED if status == 403 else BAD_REQUEST) in shown, shown
        assert reason in shown, shown
        # Nothing for any SP: no auto-submitted form, no SAMLResponse, no login page.
        assert 'name="SAMLResponse"' not in body and 'class="autosubmit"' not in body
        assert 'action="https://' not in body and 'id="academic-login"' not in body
        assert "TGC=" not in " ".join(page.headers.get_list("set-cookie"))
        assert counts(runtime) == {
            "saml_seen_messages": seen,
            "sso_sessions": sessions,
            "saml_persistent_ids": 0,
        }
        return body

    return check


# -- building messages -------------------------------------------------------------------------


def instant(delta: dt.timedelta = dt.timedelta()) -> str:
    return (dt.datetime.now(dt.UTC) + delta).strftime("%Y-%m-%dT%H:%M:%SZ")


_ids = iter(range(10**9))


def new_id() -> str:
    return f"_attack{next(_ids):08d}"


def authn_request(
    issuer: str | None = SP_ID,
    *,
    binding: str = BINDING_HTTP_REDIRECT,
    request_id: str | None = None,
    acs: str | None = "",
    issue_instant: str | None = None,
    attributes: str = "",
    children: str = "",
    prolog: str = "",
    root: str = "samlp:AuthnRequest",
    version: str = "2.0",
) -> bytes:
    """An AuthnRequest written by hand; ``acs=""``: the issuer's ACS (https://{host}/acs)."""
    if acs == "" and issuer:
        acs = issuer.rsplit("/", 1)[0] + "/acs"
    acs_attributes = (
        f' AssertionConsumerServiceURL="{acs}" ProtocolBinding="{BINDING_HTTP_POST}"' if acs else ""
    )
    issuer_xml = f"<saml:Issuer>{issuer}</saml:Issuer>" if issuer is not None else ""
    return (
        f'{prolog}<{root} xmlns:samlp="{SAMLP}" xmlns:saml="{SAML}" '
        f'ID="{request_id or new_id()}" Version="{version}" '
        f'IssueInstant="{issue_instant or instant()}" Destination="{SSO[binding]}"'
        f"{acs_attributes}{attributes}>"
        f"{issuer_xml}{children}</{root}>"
    ).encode()


def redirect_query(
    xml: bytes,
    *,
    relay_state: str | None = None,
    key_pem: bytes | None = None,
    sig_alg: str = xmldsig.RSA_SHA256,
    kind: str = "SAMLRequest",
) -> str:
    """A Redirect-binding query string (bindings 3.4.4.1), signed with ``key_pem`` if given."""
    parts = [f"{kind}={quote(encode_redirect(xml), safe='')}"]
    if relay_state is not None:
        parts.append(f"RelayState={quote(relay_state, safe='')}")
    if key_pem is None:
        return "&".join(parts)
    parts.append(f"SigAlg={quote(sig_alg, safe='')}")
    octets = "&".join(parts).encode()
    key = serialization.load_pem_private_key(key_pem, password=None)
    signature = key.sign(octets, padding.PKCS1v15(), _HASHES[sig_alg]())
    return "&".join(parts) + "&Signature=" + quote(base64.b64encode(signature), safe="")


def send(client, xml: bytes, binding: str, *, relay_state: str | None = None, slo: bool = False):
    """An unsigned message by ``binding`` to our SSO (or SLO) endpoint."""
    url = (SLO if slo else SSO)[binding]
    if binding == BINDING_HTTP_REDIRECT:
        return client.get(url + "?" + redirect_query(xml, relay_state=relay_state))
    fields = {"SAMLRequest": base64.b64encode(xml).decode()}
    if relay_state is not None:
        fields["RelayState"] = relay_state
    return client.post(url, data=fields)


def sign_post(xml: bytes, signer: Sp) -> bytes:
    """``xml`` with an enveloped signature over its root by ``signer``'s key."""
    request_id = etree.fromstring(xml).get("ID")
    return xmldsig.sign(xml, signer.key_pem, signer.cert_pem, request_id)


def post(client, xml: bytes, url: str = SSO[BINDING_HTTP_POST], **fields: str):
    return client.post(url, data={"SAMLRequest": base64.b64encode(xml).decode(), **fields})


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")


def is_login_page(page) -> bool:
    return page.status_code == 200 and 'id="academic-login"' in page.text


def no_doctype(xml: bytes) -> bytes:
    return re.sub(rb"^<\?xml[^>]*\?>\s*", b"", xml)


# -- controls: the hand-written messages are good ones until they are spoiled ------------------


@BINDINGS
def test_control_a_hand_written_request_reaches_the_login_page(
    client, sp, runtime, binding
) -> None:
    page = send(client, authn_request(binding=binding), binding)
    assert is_login_page(page), page.text[:1000]
    assert counts(runtime)["saml_seen_messages"] == 1


def test_control_signed_requests_reach_the_login_page(client, signed_sp, runtime) -> None:
    xml = authn_request(SIGNED_ID)
    page = client.get("/saml/sso/redirect?" + redirect_query(xml, key_pem=signed_sp.key_pem))
    assert is_login_page(page), page.text[:1000]
    signed = sign_post(authn_request(SIGNED_ID, binding=BINDING_HTTP_POST), signed_sp)
    assert is_login_page(post(client, signed))


# -- XML: DTDs, entities, comments -------------------------------------------------------------

XXE = (
    '<?xml version="1.0"?>\n'
    '<!DOCTYPE samlp:AuthnRequest [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
)
LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
        for i in range(1, 10)
    )
    + "]>\n"
)


@BINDINGS
@pytest.mark.parametrize(
    ("prolog", "issuer"),
    [
        (XXE, "&xxe;"),
        (LAUGHS, "&lol9;"),
        ("<!DOCTYPE samlp:AuthnRequest>", SP_ID),
        ('<!doctype samlp:AuthnRequest SYSTEM "http://evil.test/saml.dtd">', SP_ID),
    ],
    ids=["xxe", "billion-laughs", "plain-doctype", "external-dtd"],
)
def test_a_dtd_is_refused(client, sp, refused, binding, prolog, issuer) -> None:
    page = send(client, authn_request(issuer, binding=binding, prolog=prolog), binding)
    body = refused(page, "the SAML message carries a DTD, which SAML forbids")
    assert "root:" not in body and "lollol" not in body


@BINDINGS
def test_a_dtd_in_utf16_is_refused_without_resolving_anything(client, sp, refused, binding) -> None:
    """The byte search for "<!DOCTYPE" cannot see UTF-16: the parsers behind it must hold."""
    xml = authn_request(
        binding=binding,
        prolog=XXE.replace('version="1.0"', 'version="1.0" encoding="UTF-16"'),
        children="<samlp:Scoping><samlp:RequesterID>&xxe;</samlp:RequesterID></samlp:Scoping>",
    )
    page = send(client, xml.decode().encode("utf-16"), binding)
    # Refused before parsing: only UTF-8 is read, so no encoding hides a DTD.
    body = refused(page, "the SAML message is not UTF-8")
    assert "root:" not in body


def test_a_plain_doctype_in_utf16_is_refused(client, sp, refused) -> None:
    prolog = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE samlp:AuthnRequest>'
    xml = authn_request(prolog=prolog).decode().encode("utf-16")
    refused(send(client, xml, BINDING_HTTP_REDIRECT), "the SAML message is not UTF-8")


@BINDINGS
def test_a_comment_cutting_the_issuer_is_refused(client, sp, refused, binding) -> None:
    """Its text before the comment, or the whole? Neither: an Issuer is text alone."""
    xml = authn_request(f"{SP_ID}<!-- -->.evil.test", binding=binding)
    refused(send(client, xml, binding), "the SAML message's Issuer must be text alone")


@BINDINGS
def test_two_issuers_are_refused(client, sp, signed_sp, refused, binding) -> None:
    """The first Issuer, or the last? Neither: the unsigned SP's name must not carry a request
    of the SP that signs."""
    xml = authn_request(SP_ID, binding=binding, children=f"<saml:Issuer>{SIGNED_ID}</saml:Issuer>")
    refused(send(client, xml, binding), "the SAML message names more than one Issuer")


@BINDINGS
def test_processing_instructions_change_nothing(client, sp, runtime, binding) -> None:
    """Outside signed content a PI is dropped by both parsers alike: the same SP for both."""
    xml = authn_request(
        "https://sp.test/meta<?x y?>data",
        binding=binding,
        prolog='<?xml-stylesheet href="http://evil.test/x.xsl"?>',
    )
    assert is_login_page(send(client, xml, binding))


# -- encodings and sizes -----------------------------------------------------------------------


def _deflate(data: bytes) -> str:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return base64.b64encode(compressor.compress(data) + compressor.flush()).decode()


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("SAMLRequest=abc", "the SAML message is not valid base64"),
        (
            "SAMLRequest=" + quote(base64.b64encode(authn_request()).decode(), safe=""),
            "the SAML message is not DEFLATE-compressed",
        ),
        ("SAMLRequest=", "the SAML message is not well-formed XML"),
        ("", "no SAMLRequest or SAMLResponse in the request"),
        ("SAMLRequest=" + quote(_deflate(b"<not xml"), safe=""), "not well-formed XML"),
        (
            "SAMLResponse=" + quote(_deflate(b"<x/>"), safe=""),
            "an SSO endpoint takes a SAMLRequest",
        ),
        ("SAMLRequest=a&SAMLRequest=b", "the parameter SAMLRequest is given more than once"),
        ("SAMLRequest=a&SAML%52equest=b", "the parameter SAMLRequest is given more than once"),
        ("SAMLRequest=a&RelayState=1&RelayState=2", "the parameter RelayState is given more"),
        ("SAMLRequest=a&Signature=a&Signature=b", "the parameter Signature is given more"),
        ("SAMLRequest=a&Signature=AAAA", "a Signature without SigAlg"),
        ("SAMLRequest=a&RelayState=" + "r" * 1025, "RelayState is too long"),
    ],
    ids=[
        "not-base64",
        "not-deflate",
        "empty",
        "no-parameter",
        "not-xml",
        "saml-response",
        "twice",
        "twice-encoded",
        "relay-state-twice",
        "signature-twice",
        "signature-without-sigalg",
        "relay-state-too-long",
    ],
)
def test_redirect_binding_refuses_malformed_queries(client, sp, refused, query, reason) -> None:
    refused(client.get("/saml/sso/redirect?" + query), reason)


def test_huge_messages_are_refused(client, sp, refused, monkeypatch) -> None:
    monkeypatch.setattr(httpx2._urlparse, "MAX_URL_LENGTH", 10**7)  # the test client's own cap
    for size in (MAX_ENCODED_BYTES + 4, 3 * MAX_ENCODED_BYTES + 4):
        for endpoint in ("/saml/sso/redirect", "/saml/slo/redirect"):
            page = client.get(f"{endpoint}?SAMLRequest=" + "A" * size)
            refused(page, "the SAML message is too large")
    for endpoint in ("/saml/sso/post", "/saml/slo/post"):
        # Starlette's form parser stops the field first (max_part_size): its 400 page.
        page = client.post(endpoint, data={"SAMLRequest": "A" * (MAX_ENCODED_BYTES + 4)})
        assert page.status_code == 400
        assert message_of(page.text) == GENERIC_BAD_REQUEST
        assert counts(client.app.state.runtime)["saml_seen_messages"] == 0


def test_a_deflate_bomb_is_refused_without_inflating_it(client, sp, refused) -> None:
    xml = authn_request()
    bomb = xml.replace(b"</saml:Issuer>", b"</saml:Issuer>" + b" " * (16 * MAX_XML_BYTES))
    value = _deflate(bomb)
    assert len(value) < 8 * 1024  # a few KiB, 4 MiB once inflated
    page = client.get("/saml/sso/redirect?SAMLRequest=" + quote(value, safe=""))
    refused(page, "the SAML message inflates beyond what any SAML message needs")


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"SAMLRequest": "abc"}, "the SAML message is not valid base64"),
        ({"SAMLRequest": ""}, "no SAMLRequest"),
        ({"RelayState": "x"}, "no SAMLRequest"),
        ({"SAMLResponse": "PHgvPg=="}, "an SSO endpoint takes a SAMLRequest"),
        ({"SAMLRequest": "PG5vdCB4bWw="}, "the SAML message is not well-formed XML"),
        (
            # Deflated bytes are refused as not UTF-8 (a NUL among them) or as not XML.
            {"SAMLRequest": _deflate(authn_request(binding=BINDING_HTTP_POST))},
            "the SAML message is not ",
        ),
        (
            {"SAMLRequest": base64.b64encode(authn_request()).decode(), "RelayState": "r" * 1025},
            "RelayState is too long",
        ),
    ],
    ids=[
        "not-base64",
        "empty",
        "missing",
        "saml-response",
        "not-xml",
        "deflated",
        "relay-state-too-long",
    ],
)
def test_post_binding_refuses_malformed_forms(client, sp, refused, fields, reason) -> None:
    refused(client.post("/saml/sso/post", data=fields), reason)


def test_post_binding_refuses_a_repeated_field(client, sp, refused) -> None:
    first = base64.b64encode(authn_request(binding=BINDING_HTTP_POST)).decode()
    second = base64.b64encode(authn_request(binding=BINDING_HTTP_POST)).decode()
    page = client.post(
        "/saml/sso/post",
        content=f"SAMLRequest={quote(first)}&SAMLRequest={quote(second)}",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    refused(page, "more than once")


def test_post_binding_refuses_a_file_upload_or_too_many_fields(client, sp, runtime) -> None:
    """Starlette's form parser refuses them (max_files=0, max_fields=8): its 400 page."""
    encoded = base64.b64encode(authn_request(binding=BINDING_HTTP_POST))
    upload = client.post("/saml/sso/post", files={"SAMLRequest": ("r.xml", encoded)})
    many = client.post(
        "/saml/sso/post",
        data={"SAMLRequest": encoded.decode(), **{f"f{i}": "x" for i in range(9)}},
    )
    for page in (upload, many):
        assert page.status_code == 400, page.text[:500]
        assert message_of(page.text) == GENERIC_BAD_REQUEST
    assert counts(runtime)["saml_seen_messages"] == 0


# -- what the message is -----------------------------------------------------------------------


@BINDINGS
@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"root": "samlp:Response"}, "unexpected SAML message Response"),
        ({"root": "saml:Assertion"}, "unexpected SAML message Assertion"),
        ({"root": "samlp:LogoutRequest"}, "the AuthnRequest was refused: this is a LogoutRequest"),
        ({"issuer": None}, "the SAML message names no Issuer"),
        ({"issuer": "  "}, "the SAML message names no Issuer"),
        (
            {
                "issuer": None,
                "children": f"<samlp:Extensions><saml:Issuer>{SP_ID}</saml:Issuer>"
                "</samlp:Extensions>",
            },
            "the SAML message names no Issuer",
        ),
        ({"version": "1.0"}, "the AuthnRequest was refused: version 1.0 is not 2.0"),
    ],
    ids=[
        "response",
        "assertion",
        "logout-request",
        "no-issuer",
        "blank-issuer",
        "nested-issuer",
        "version-1",
    ],
)
def test_what_is_not_an_authn_request_is_refused(
    client, sp, refused, binding, kwargs, reason
) -> None:
    xml = authn_request(binding=binding, **{"issuer": SP_ID, **kwargs})
    refused(send(client, xml, binding), reason)


@BINDINGS
def test_a_destination_that_is_not_us_is_refused(client, sp, refused, binding) -> None:
    xml = authn_request(binding=binding).replace(
        SSO[binding].encode(), b"https://other-idp.test/sso"
    )
    refused(send(client, xml, binding), "the AuthnRequest was refused: its Destination is not")


# -- which SP ----------------------------------------------------------------------------------


@BINDINGS
def test_an_unknown_sp_is_refused(client, sp, refused, binding) -> None:
    xml = authn_request("https://stranger.test/metadata", binding=binding)
    page = send(client, xml, binding)
    refused(page, "https://stranger.test/metadata is not a registered service provider", status=403)


@pytest.mark.parametrize("status", ["pending", "rejected"])
@BINDINGS
def test_a_pending_or_rejected_sp_is_refused(
    client, saml, new_sp, refused, binding, status
) -> None:
    waiting = new_sp("waiting", registered=False)
    saml.registry.register(metadata_xml=waiting.test_sp.metadata_xml, contact="ops@waiting.test")
    if status == "rejected":
        saml.registry.reject(waiting.entity_id)
    page = send(client, authn_request(waiting.entity_id, binding=binding), binding)
    refused(page, f"{waiting.entity_id} is not a registered service provider", status=403)


# -- where the answer would go -----------------------------------------------------------------


@BINDINGS
@pytest.mark.parametrize(
    "acs",
    [
        EVIL_ACS,
        "https://sp.test/acs/",
        "https://sp.test/acs?next=https://evil.test/acs",
        "https://sp.test/acs#evil",
        "https://SP.test/acs",
        "http://sp.test/acs",
        "https://sp.test.evil.test/acs",
        "https://sp.test/slo",  # a URL of its metadata, but not an ACS
    ],
)
def test_an_acs_url_not_in_metadata_is_refused(client, sp, refused, binding, acs) -> None:
    page = send(client, authn_request(binding=binding, acs=acs), binding)
    body = refused(page, "the AssertionConsumerServiceURL is not in the SP's metadata")
    assert 'action="' not in body


@BINDINGS
def test_an_acs_index_not_in_metadata_is_refused(client, sp, refused, binding) -> None:
    xml = authn_request(binding=binding, acs=None, attributes=' AssertionConsumerServiceIndex="7"')
    refused(send(client, xml, binding), "the AssertionConsumerServiceIndex is not in the SP's")


@BINDINGS
def test_an_artifact_protocol_binding_is_refused(client, sp, refused, binding) -> None:
    xml = authn_request(binding=binding).replace(BINDING_HTTP_POST.encode(), ARTIFACT.encode())
    refused(send(client, xml, binding), f"responses are sent by HTTP-POST only, not {ARTIFACT}")


# -- signed AuthnRequests: Redirect binding ----------------------------------------------------


@BINDINGS
def test_an_unsigned_request_from_a_signing_sp_is_refused(
    client, signed_sp, refused, binding
) -> None:
    page = send(client, authn_request(SIGNED_ID, binding=binding), binding)
    refused(page, "this SP must sign its AuthnRequests, and this one is not signed")


def _tamper_request(query: str) -> str:
    evil = authn_request(SIGNED_ID, acs=EVIL_ACS)
    value = quote(encode_redirect(evil), safe="")
    return re.sub(r"SAMLRequest=[^&]*", lambda _: "SAMLRequest=" + value, query)


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (_tamper_request, "the AuthnRequest's signature does not verify"),
        (lambda q: q.replace("RelayState=a", "RelayState=b"), "signature does not verify"),
        (lambda q: re.sub(r"RelayState=a&", "", q), "signature does not verify"),
        (lambda q: q.replace("SigAlg=", "RelayState=b&SigAlg=", 1), "given more than once"),
        (
            lambda q: q.replace("rsa-sha256", "rsa-sha512"),
            "the AuthnRequest's signature does not verify",
        ),
        (lambda q: q.replace("rsa-sha256", "rsa-sha1"), "rsa-sha1 is not accepted"),
        (
            lambda q: q.replace("xmldsig-more%23rsa-sha256", "xmldsig%23dsa-sha1"),
            "is not accepted",
        ),
        (lambda q: re.sub(r"&Signature=[^&]*", "", q), "must sign its AuthnRequests"),
        (lambda q: re.sub(r"&SigAlg=[^&]*", "", q), "a Signature without SigAlg"),
        (lambda q: re.sub(r"Signature=[^&]*", "Signature=AAAA", q), "does not verify"),
    ],
    ids=[
        "saml-request",
        "relay-state",
        "relay-state-removed",
        "relay-state-added",
        "sigalg-sha512",
        "sigalg-sha1-label",
        "sigalg-dsa",
        "signature-removed",
        "sigalg-removed",
        "signature-garbage",
    ],
)
def test_a_tampered_redirect_signature_is_refused(
    client, signed_sp, refused, tamper, reason
) -> None:
    xml = authn_request(SIGNED_ID)
    query = redirect_query(xml, relay_state="a", key_pem=signed_sp.key_pem)
    refused(client.get("/saml/sso/redirect?" + tamper(query)), reason)


def test_rsa_sha1_is_refused(client, signed_sp, refused) -> None:
    query = redirect_query(
        authn_request(SIGNED_ID), key_pem=signed_sp.key_pem, sig_alg=xmldsig.RSA_SHA1
    )
    page = client.get("/saml/sso/redirect?" + query)
    refused(page, "signature algorithm http://www.w3.org/2000/09/xmldsig#rsa-sha1 is not accepted")


def test_a_redirect_request_signed_by_another_key_is_refused(
    client, signed_sp, new_sp, refused
) -> None:
    other = new_sp("other")  # registered too: its key is trusted, but only for itself
    query = redirect_query(authn_request(SIGNED_ID), key_pem=other.key_pem)
    refused(client.get("/saml/sso/redirect?" + query), "the AuthnRequest's signature does not")


def test_a_bad_signature_is_refused_even_when_the_sp_need_not_sign(
    client, sp, new_sp, refused
) -> None:
    other = new_sp("other")
    query = redirect_query(authn_request(SP_ID), key_pem=other.key_pem)
    refused(client.get("/saml/sso/redirect?" + query), "the AuthnRequest's signature does not")


# -- signed AuthnRequests: POST binding, enveloped signatures ----------------------------------


def _signed_post_request(signed_sp: Sp, request_id: str = "_signed1", **kwargs) -> bytes:
    xml = authn_request(SIGNED_ID, binding=BINDING_HTTP_POST, request_id=request_id, **kwargs)
    return sign_post(xml, signed_sp)


def _root_signature(signed: bytes) -> etree._Element:
    return etree.fromstring(signed).find(f"{{{xmldsig.DSIG_NS}}}Signature")


def _wrapped_in_extensions(signed: bytes, signature: etree._Element | None, root_id: str) -> bytes:
    """An evil AuthnRequest (another ACS) as the root, carrying the signed original inside
    its Extensions, with ``signature`` (if any) as its own."""
    evil = etree.fromstring(
        authn_request(
            SIGNED_ID,
            binding=BINDING_HTTP_POST,
            request_id=root_id,
            acs=EVIL_ACS,
            children="<samlp:Extensions/>",
        )
    )
    evil.find(f"{{{SAMLP}}}Extensions").append(etree.fromstring(signed))
    if signature is not None:
        evil.find(f"{{{SAML}}}Issuer").addnext(signature)
    return etree.tostring(evil)


def _moved_signature(signed: bytes, root_id: str) -> bytes:
    original = etree.fromstring(signed)
    signature = original.find(f"{{{xmldsig.DSIG_NS}}}Signature")
    original.remove(signature)
    return _wrapped_in_extensions(etree.tostring(original), signature, root_id)


def _altered(signed: bytes) -> bytes:
    return signed.replace(
        b'AssertionConsumerServiceURL="https://signed.test/acs"',
        f'AssertionConsumerServiceURL="{EVIL_ACS}"'.encode(),
    )


def _comment_in_issuer(signed: bytes) -> bytes:
    return signed.replace(
        b"signed.test/metadata</saml:Issuer>", b"signed.test/metadata<!-- wrapped --></saml:Issuer>"
    )


def _pi_in_issuer(signed: bytes) -> bytes:
    return signed.replace(
        b"signed.test/metadata</saml:Issuer>", b"signed.test/metadata<?evil x?></saml:Issuer>"
    )


def _other_key(signed_sp: Sp, other: Sp) -> bytes:
    xml = authn_request(SIGNED_ID, binding=BINDING_HTTP_POST, request_id="_signed1")
    return xmldsig.sign(xml, other.key_pem, other.cert_pem, "_signed1")


@pytest.mark.parametrize(
    ("attack", "reason"),
    [
        (
            lambda s, o: _altered(_signed_post_request(s)),
            "the AuthnRequest's signature does not verify",
        ),
        (
            lambda s, o: _comment_in_issuer(_signed_post_request(s)),
            "the SAML message's Issuer must be text alone",
        ),
        (
            lambda s, o: _pi_in_issuer(_signed_post_request(s)),
            "the AuthnRequest's signature does not verify",
        ),
        (lambda s, o: _other_key(s, o), "the AuthnRequest's signature does not verify"),
        (
            lambda s, o: _wrapped_in_extensions(_signed_post_request(s), None, "_evil"),
            "this SP must sign its AuthnRequests, and this one is not signed",
        ),
        (
            lambda s, o: _moved_signature(_signed_post_request(s), "_evil"),
            "the AuthnRequest's signature does not verify",
        ),
        (
            lambda s, o: _moved_signature(_signed_post_request(s), "_signed1"),
            "the AuthnRequest's signature does not verify",
        ),
        (
            lambda s, o: _wrapped_in_extensions(
                _signed_post_request(s), _root_signature(_signed_post_request(s)), "_signed1"
            ),
            "the AuthnRequest's signature does not verify",
        ),
    ],
    ids=[
        "altered-after-signing",
        "comment-after-signing",
        "pi-after-signing",
        "signed-by-another-sp",
        "wrapped-unsigned-root",
        "wrapped-signature-moved-to-root",
        "wrapped-duplicate-id",
        "wrapped-duplicate-id-two-signatures",
    ],
)
def test_a_tampered_or_wrapped_post_signature_is_refused(
    client, signed_sp, new_sp, refused, attack, reason
) -> None:
    other = new_sp("other")
    xml = attack(signed_sp, other)
    body = refused(post(client, xml), reason)
    assert EVIL_ACS not in body.split("(", 1)[0]


# -- replays and time --------------------------------------------------------------------------


def test_a_replayed_signed_redirect_request_is_refused(client, signed_sp, refused) -> None:
    query = redirect_query(authn_request(SIGNED_ID), key_pem=signed_sp.key_pem)
    assert is_login_page(client.get("/saml/sso/redirect?" + query))
    again = client.get("/saml/sso/redirect?" + query)
    refused(again, "this AuthnRequest was already received: a replay", seen=1)


def test_a_replayed_signed_post_request_is_refused(client, signed_sp, refused) -> None:
    signed = _signed_post_request(signed_sp)
    assert is_login_page(post(client, signed))
    refused(post(client, signed), "this AuthnRequest was already received: a replay", seen=1)


def test_a_request_id_replayed_across_bindings_is_refused(client, sp, refused) -> None:
    assert is_login_page(send(client, authn_request(request_id="_same"), BINDING_HTTP_REDIRECT))
    xml = authn_request(request_id="_same", binding=BINDING_HTTP_POST)
    refused(send(client, xml, BINDING_HTTP_POST), "already received: a replay", seen=1)


def test_refused_requests_leave_the_replay_cache_alone(client, signed_sp, refused) -> None:
    """An attacker who sees an ID cannot burn it by sending garbage under it first."""
    xml = authn_request(SIGNED_ID, request_id="_precious")
    genuine = redirect_query(xml, relay_state="a", key_pem=signed_sp.key_pem)
    refused(
        client.get("/saml/sso/redirect?" + genuine.replace("RelayState=a", "RelayState=b")),
        "signature does not verify",
    )
    evil = authn_request(SIGNED_ID, request_id="_precious", acs=EVIL_ACS)
    refused(
        client.get("/saml/sso/redirect?" + redirect_query(evil, key_pem=signed_sp.key_pem)),
        "the AssertionConsumerServiceURL is not in the SP's metadata",
    )
    refused(
        send(client, authn_request(SIGNED_ID, request_id="_precious"), BINDING_HTTP_REDIRECT),
        "must sign its AuthnRequests",
    )
    assert is_login_page(client.get("/saml/sso/redirect?" + genuine))


@BINDINGS
@pytest.mark.parametrize(
    "delta",
    [dt.timedelta(hours=-1), dt.timedelta(minutes=-9), dt.timedelta(hours=1), dt.timedelta(days=2)],
    ids=["an-hour-old", "nine-minutes-old", "an-hour-ahead", "two-days-ahead"],
)
def test_a_stale_or_future_issue_instant_is_refused(client, sp, refused, binding, delta) -> None:
    xml = authn_request(binding=binding, issue_instant=instant(delta))
    refused(send(client, xml, binding), "the AuthnRequest is too old, or comes from the future")


@BINDINGS
def test_an_issue_instant_that_is_no_date_is_refused(client, sp, refused, binding) -> None:
    xml = authn_request(binding=binding, issue_instant="yesterday")
    refused(send(client, xml, binding), "the AuthnRequest's IssueInstant is not a date")


# -- requests we trust but cannot satisfy: a status to the SP's ACS ----------------------------


def _status_page(page, sp: Sp) -> str:
    assert page.status_code == 200, page.text[:1000]
    assert 'id="academic-login"' not in page.text
    action, fields = saml_form(page.text)
    assert action == sp.acs_url
    return fields["SAMLResponse"]


@pytest.mark.parametrize(
    ("comparison", "ref"),
    [("exact", X509_CONTEXT), ("minimum", X509_CONTEXT), ("better", PPT_CONTEXT)],
)
@BINDINGS
def test_an_authn_context_we_cannot_meet_answers_no_authn_context(
    client, sp, runtime, binding, comparison, ref
) -> None:
    context = RequestedAuthnContext(
        authn_context_class_ref=[AuthnContextClassRef(text=ref)], comparison=comparison
    )
    if binding == BINDING_HTTP_REDIRECT:
        page = client.get(_path(sp.test_sp.login_url(IDP, requested_authn_context=context)))
    else:
        action, fields = sp.test_sp.post_request(IDP, requested_authn_context=context)
        page = client.post(_path(action), data=fields)
    with pytest.raises(StatusNoAuthnContext):
        sp.test_sp.read_response(_status_page(page, sp))
    assert counts(runtime) == {"saml_seen_messages": 1, "sso_sessions": 0, "saml_persistent_ids": 0}


def _log_in(client, url: str):
    page = client.get(_path(url))
    assert is_login_page(page), page.text[:1000]
    return submit_login(client, page, USER, PASSWORD)


def test_persistent_without_allow_create_for_a_first_time_user(
    client, sp, account, runtime
) -> None:
    policy = NameIDPolicy(format=PERSISTENT, allow_create="false")
    page = _log_in(client, sp.test_sp.login_url(IDP, name_id_policy=policy))
    with pytest.raises(StatusInvalidNameidPolicy):
        sp.test_sp.read_response(_status_page(page, sp))
    assert counts(runtime)["saml_persistent_ids"] == 0
    (session_id,) = runtime.sessions.sessions_of(USER)
    assert runtime.sessions.logout_targets(session_id) == []  # nothing was issued to the SP


def test_email_name_id_for_an_account_without_mail(client, sp, add_account, runtime) -> None:
    add_account(USER, PASSWORD)
    page = _log_in(client, sp.test_sp.login_url(IDP, name_id_policy=NameIDPolicy(format=EMAIL)))
    with pytest.raises(StatusInvalidNameidPolicy):
        sp.test_sp.read_response(_status_page(page, sp))
    (session_id,) = runtime.sessions.sessions_of(USER)
    assert runtime.sessions.logout_targets(session_id) == []


def test_a_foreign_sp_name_qualifier_answers_invalid_name_id_policy(client, sp, account) -> None:
    policy = NameIDPolicy(format=TRANSIENT, sp_name_qualifier="https://affiliation.test/")
    page = _log_in(client, sp.test_sp.login_url(IDP, name_id_policy=policy))
    with pytest.raises(StatusInvalidNameidPolicy):
        sp.test_sp.read_response(_status_page(page, sp))


def test_an_unsupported_name_id_format_answers_invalid_name_id_policy(client, sp, account) -> None:
    kerberos = "urn:oasis:names:tc:SAML:2.0:nameid-format:kerberos"
    page = _log_in(client, sp.test_sp.login_url(IDP, name_id_policy=NameIDPolicy(format=kerberos)))
    with pytest.raises(StatusInvalidNameidPolicy):
        sp.test_sp.read_response(_status_page(page, sp))


# -- Single Logout -----------------------------------------------------------------------------


def _sign_in(client, sp: Sp):
    page = _log_in(client, sp.test_sp.login_url(IDP))
    return sp.test_sp.read_response(saml_form(page.text)[1]["SAMLResponse"])


def _send_logout(client, sp: Sp, binding: str, answer=None, *, sign: bool = True):
    name_id = answer.name_id if answer else NameID(text="_someone", format=TRANSIENT)
    index = answer.assertion.authn_statement[0].session_index if answer else "_index"
    request = logout_request(
        sp.test_sp,
        name_id=name_id,
        session_index=index,
        binding=binding,
        sign=sign,
        destination=SLO[binding],
    )
    if binding == BINDING_HTTP_POST:
        action, fields = request
        return client.post(_path(action), data=fields)
    return client.get(_path(request))


@BINDINGS
def test_an_unsigned_logout_request_is_refused_and_ends_nothing(
    client, sp, account, runtime, refused, binding
) -> None:
    answer = _sign_in(client, sp)
    seen = counts(runtime)["saml_seen_messages"]
    page = _send_logout(client, sp, binding, answer, sign=False)
    refused(page, "a LogoutRequest must be signed", seen=seen, sessions=1)
    assert runtime.sessions.sessions_of(USER)


@BINDINGS
def test_a_logout_request_signed_by_another_key_is_refused(
    client, sp, account, runtime, sp_maker, refused, binding
) -> None:
    answer = _sign_in(client, sp)
    seen = counts(runtime)["saml_seen_messages"]
    impostor = sp_maker("impostor", entity_id=sp.entity_id)  # same entityID, another key
    page = _send_logout(client, impostor, binding, answer)
    refused(page, "the LogoutRequest's signature does not verify", seen=seen, sessions=1)
    assert runtime.sessions.sessions_of(USER)


@BINDINGS
def test_a_logout_request_from_an_unknown_sp_is_refused(client, new_sp, refused, binding) -> None:
    stranger = new_sp("stranger", registered=False)
    page = _send_logout(client, stranger, binding)
    refused(page, "https://stranger.test/metadata is not a registered service provider", status=403)


@BINDINGS
@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"garbage", "the SAML message is not well-formed XML"),
        (
            XXE.encode() + b"<samlp:LogoutRequest xmlns:samlp='" + SAMLP.encode() + b"'/>",
            "the SAML message carries a DTD, which SAML forbids",
        ),
        (authn_request(), "the LogoutRequest was refused"),
        (authn_request(root="samlp:ArtifactResolve"), "unexpected SAML message ArtifactResolve"),
    ],
    ids=["not-xml", "xxe", "authn-request", "artifact-resolve"],
)
def test_slo_refuses_garbage(client, sp, refused, binding, payload, reason) -> None:
    refused(send(client, payload, binding, slo=True), reason)


@pytest.mark.parametrize(
    ("method", "kwargs", "reason"),
    [
        ("get", {"url": "/saml/slo/redirect?SAMLRequest=abc"}, "not valid base64"),
        ("get", {"url": "/saml/slo/redirect"}, "no SAMLRequest or SAMLResponse in the request"),
        ("get", {"url": "/saml/slo/redirect?SAMLRequest=a&SAMLRequest=b"}, "more than once"),
        ("post", {"url": "/saml/slo/post", "data": {"SAMLRequest": "abc"}}, "not valid base64"),
        ("post", {"url": "/saml/slo/post", "data": {}}, "no SAMLRequest or SAMLResponse"),
    ],
    ids=[
        "redirect-not-base64",
        "redirect-nothing",
        "redirect-twice",
        "post-not-base64",
        "post-nothing",
    ],
)
def test_slo_refuses_malformed_transport(client, sp, refused, method, kwargs, reason) -> None:
    refused(getattr(client, method)(**kwargs), reason)


@BINDINGS
def test_a_logout_response_we_did_not_ask_for_changes_nothing(
    client, sp, account, runtime, binding
) -> None:
    _sign_in(client, sp)
    if binding == BINDING_HTTP_REDIRECT:
        page = client.get("/saml/slo/redirect?SAMLResponse=garbage")
    else:
        page = client.post("/saml/slo/post", data={"SAMLResponse": "garbage"})
    assert page.status_code == 200
    assert "TGC=" not in " ".join(page.headers.get_list("set-cookie"))
    assert runtime.sessions.sessions_of(USER)
