"""A demo SAML service provider ("Bibliothèque numérique"), served only in demo mode.

It behaves like a real, if small, SP of our IdP: it fetches our metadata over HTTP for the
IdP's certificate, sends AuthnRequests by the Redirect binding, checks the signed Response
it receives at its ACS (signatures of the Response and the assertion, status, destination,
audience, InResponseTo, validity), shows the NameID and attributes, and accepts front-channel
LogoutRequests signed by the IdP. Deliberately written without pysaml2: a second, independent
reading of what our IdP sends. Its sessions live in process memory (demo mode: one worker).
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets
import zlib
from urllib.parse import quote, unquote_plus

import httpx
from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from sso.config import Settings
from sso.login.runtime import Runtime, RuntimeDep
from sso.security import query_signature, xmldsig

router = APIRouter()

NAME = "Bibliothèque numérique (démo SAML)"
PATH = "demo/saml-sp"
_COOKIE = "demo_saml_sp"
_REQUEST_COOKIE = "demo_saml_request"
_NS = {
    "md": "urn:oasis:names:tc:SAML:2.0:metadata",
    "ds": "http://www.w3.org/2000/09/xmldsig#",
    "samlp": "urn:oasis:names:tc:SAML:2.0:protocol",
    "saml": "urn:oasis:names:tc:SAML:2.0:assertion",
}
SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
# demo session id -> (NameID, attributes by FriendlyName)
_sessions: dict[str, tuple[str, dict[str, list[str]]]] = {}
_idp_certificate: dict[str, bytes] = {}


def entity_id(settings: Settings) -> str:
    """The demo SP's entityID (its metadata URL)."""
    return settings.url(f"{PATH}/metadata")


def metadata(settings: Settings) -> str:
    """The demo SP's metadata: one HTTP-POST ACS, one HTTP-Redirect SLO endpoint."""
    base = settings.url(PATH)
    return f"""<md:EntityDescriptor xmlns:md="{_NS["md"]}" entityID="{entity_id(settings)}">
  <md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"
      WantAssertionsSigned="true">
    <md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
        Location="{base}/slo"/>
    <md:NameIDFormat>urn:oasis:names:tc:SAML:2.0:nameid-format:persistent</md:NameIDFormat>
    <md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
        Location="{base}/acs" index="0" isDefault="true"/>
  </md:SPSSODescriptor>
</md:EntityDescriptor>
"""


def _instant(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


async def _idp_cert(runtime: Runtime) -> bytes:
    """The IdP's signing certificate, read once from its metadata, as an SP configures it."""
    if "pem" not in _idp_certificate:
        async with httpx.AsyncClient(timeout=10) as client:
            answer = await client.get(runtime.settings.url("saml/metadata"))
        root = xmldsig.parse(answer.content)
        text = root.xpath(
            "//md:IDPSSODescriptor/md:KeyDescriptor[not(@use) or @use='signing']"
            "//ds:X509Certificate/text()",
            namespaces=_NS,
        )[0]
        body = "".join(str(text).split())
        _idp_certificate["pem"] = (
            "-----BEGIN CERTIFICATE-----\n" + body + "\n-----END CERTIFICATE-----\n"
        ).encode()
    return _idp_certificate["pem"]


@router.get(f"/{PATH}/metadata")
async def demo_sp_metadata(runtime: RuntimeDep) -> Response:
    """What an administrator registers (``sso demo`` does it)."""
    return Response(metadata(runtime.settings), media_type="application/samlmetadata+xml")


@router.get(f"/{PATH}")
async def demo_sp_home(request: Request, runtime: RuntimeDep) -> Response:
    """Show the session, or start one: an AuthnRequest to our IdP by the Redirect binding."""
    session = _sessions.get(request.cookies.get(_COOKIE, ""))
    settings = runtime.settings
    if session is None:
        request_id = "_" + secrets.token_hex(16)
        authn_request = (
            f'<samlp:AuthnRequest xmlns:samlp="{_NS["samlp"]}" xmlns:saml="{_NS["saml"]}"'
            f' ID="{request_id}" Version="2.0" IssueInstant="{_instant(dt.datetime.now(dt.UTC))}"'
            f' Destination="{settings.url("saml/sso/redirect")}"'
            f' AssertionConsumerServiceURL="{settings.url(PATH)}/acs">'
            f"<saml:Issuer>{entity_id(settings)}</saml:Issuer></samlp:AuthnRequest>"
        ).encode()
        compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
        encoded = base64.b64encode(compressor.compress(authn_request) + compressor.flush())
        url = settings.url("saml/sso/redirect") + "?SAMLRequest=" + quote(encoded, safe="")
        response = RedirectResponse(url, status_code=302)
        response.set_cookie(
            _REQUEST_COOKIE, request_id, httponly=True, samesite="lax", path=settings.base_path
        )
        return response
    name_id, attributes = session
    return runtime.pages.render(
        request,
        "demo.html",
        platform=NAME,
        user=name_id,
        attributes=attributes,
        raw=None,
        logout_url=settings.url("logout"),
        other=[("Webmail (démo)", settings.url("demo/webmail"))],
    )


def _read_response(
    document: bytes, cert: bytes, settings: Settings, request_id: str
) -> tuple[str, dict[str, list[str]]]:
    """What an SP checks before believing a Response (SAML profiles 4.1.4.3)."""
    response = xmldsig.verify(document, [cert], element_tag=f"{{{_NS['samlp']}}}Response")
    # The assertion read is the one the verified Response holds, itself verified by its ID.
    child = response.find("saml:Assertion", _NS)
    if child is None:
        raise ValueError("the Response holds no assertion")
    assertion = xmldsig.verify(document, [cert], element_id=child.get("ID"))
    status = response.find("samlp:Status/samlp:StatusCode", _NS)
    if status is None or status.get("Value") != SUCCESS:
        raise ValueError(f"the IdP answered {status.get('Value') if status is not None else '?'}")
    if response.get("Destination") != settings.url(PATH) + "/acs":
        raise ValueError("the Response is meant for another ACS")
    if response.get("InResponseTo") not in (None, request_id):
        raise ValueError("the Response answers another request")
    audience = assertion.findtext(
        "saml:Conditions/saml:AudienceRestriction/saml:Audience", None, _NS
    )
    if audience != entity_id(settings):
        raise ValueError("the assertion is meant for another SP")
    not_after = assertion.find("saml:Conditions", _NS).get("NotOnOrAfter", "")
    if not_after <= _instant(dt.datetime.now(dt.UTC)):
        raise ValueError("the assertion has expired")
    name_id = assertion.findtext("saml:Subject/saml:NameID", "", _NS)
    attributes: dict[str, list[str]] = {}
    for attribute in assertion.iterfind("saml:AttributeStatement/saml:Attribute", _NS):
        name = attribute.get("FriendlyName") or attribute.get("Name", "")
        attributes[name] = [v.text or "" for v in attribute.iterfind("saml:AttributeValue", _NS)]
    return name_id, attributes


@router.post(f"/{PATH}/acs")
async def demo_sp_acs(request: Request, runtime: RuntimeDep) -> Response:
    """The ACS: a checked Response opens a demo session."""
    form = await request.form()
    try:
        document = base64.b64decode(str(form.get("SAMLResponse", "")))
        name_id, attributes = _read_response(
            document,
            await _idp_cert(runtime),
            runtime.settings,
            request.cookies.get(_REQUEST_COOKIE, ""),
        )
    except (ValueError, xmldsig.XmlSecurityError) as exc:
        return runtime.pages.render(
            request,
            "demo.html",
            status_code=401,
            platform=NAME,
            user=None,
            attributes={},
            raw=str(exc),
            login_url=runtime.settings.url(PATH),
        )
    session_id = secrets.token_urlsafe(24)
    _sessions[session_id] = (name_id, attributes)
    response = RedirectResponse(runtime.settings.url(PATH), status_code=302)
    response.set_cookie(
        _COOKIE, session_id, httponly=True, samesite="lax", path=runtime.settings.base_path
    )
    response.delete_cookie(_REQUEST_COOKIE, path=runtime.settings.base_path)
    return response


@router.get(f"/{PATH}/slo")
async def demo_sp_slo(request: Request, runtime: RuntimeDep) -> Response:
    """Front-channel logout from the IdP: a signed LogoutRequest ends the demo session."""
    raw = dict(part.split("=", 1) for part in request.url.query.split("&") if "=" in part)
    octets = "&".join(f"{k}={raw[k]}" for k in ("SAMLRequest", "RelayState", "SigAlg") if k in raw)
    signature = base64.b64decode(unquote_plus(raw.get("Signature", "")))
    algorithm = unquote_plus(raw.get("SigAlg", ""))
    if not query_signature.verify(
        octets.encode(), signature, algorithm, [await _idp_cert(runtime)]
    ):
        return Response("unsigned logout request refused", status_code=400)
    xml = zlib.decompressobj(-15).decompress(
        base64.b64decode(unquote_plus(raw["SAMLRequest"])), 65536
    )
    name_id = xmldsig.parse(xml).findtext("saml:NameID", "", _NS)
    for session_id, (session_name_id, _) in list(_sessions.items()):
        if session_name_id == name_id:
            del _sessions[session_id]
    return Response("logged out", media_type="text/plain")
