"""A SAML 2.0 service provider built on Lasso (the library of mod_auth_mellon), for interop tests.

Lasso's Python binding is a Debian package (``python3-lasso``), so this program runs with the
system interpreter, ``/usr/bin/python3``, not the project's venv, and uses the standard
library only::

    /usr/bin/python3 tests/interop/saml/lasso_sp.py --port 9002 \
        --entity-id http://127.0.0.1:9002/metadata --idp-metadata idp.xml \
        --key sp.key --cert sp.pem --sign-requests --encryption --metadata-out sp.xml

Same pages and session JSON as ``pysaml2_sp.py``: ``/login``, ``/acs``, ``/`` and ``/whoami``,
``/logout``, ``/slo``, ``/metadata``. Lasso does not write metadata: ours is composed here,
and Lasso reads it back as its own description. Lasso checks signatures (messages, assertions,
Redirect-binding query strings) and decrypts assertions itself; a session's ``attributes``
come from our own table of OIDs (falling back to the FriendlyName the IdP sent), so a wrong
OID shows as a wrong name here too.
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import logging
import secrets
import ssl
import sys
import threading
import time
import urllib.request
import xml.etree.ElementTree as ET  # noqa: S405 - the messages were parsed by Lasso first
import zlib
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import lasso

log = logging.getLogger("lasso_sp")

SAML_NS = "urn:oasis:names:tc:SAML:2.0:assertion"
SAMLP_NS = "urn:oasis:names:tc:SAML:2.0:protocol"
DS_NS = "http://www.w3.org/2000/09/xmldsig#"
XENC_NS = "http://www.w3.org/2001/04/xmlenc#"
NS = {"saml": SAML_NS, "samlp": SAMLP_NS, "ds": DS_NS, "xenc": XENC_NS}
SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
HTTP_METHODS = {"redirect": lasso.HTTP_METHOD_REDIRECT, "post": lasso.HTTP_METHOD_POST}
REPLAY_MEMORY_SECONDS = 3600

# The attribute names an SP of an education federation knows (eduPerson, inetOrgPerson, SCHAC,
# SupAnn's schema OIDs 1.3.6.1.4.1.7135.1.2.1.n), kept here rather than taken from the
# FriendlyName the IdP chose.
OID_NAMES = {
    "urn:oid:0.9.2342.19200300.100.1.1": "uid",
    "urn:oid:0.9.2342.19200300.100.1.3": "mail",
    "urn:oid:2.5.4.3": "cn",
    "urn:oid:2.5.4.4": "sn",
    "urn:oid:2.5.4.42": "givenName",
    "urn:oid:2.16.840.1.113730.3.1.241": "displayName",
    "urn:oid:2.5.4.10": "o",
    "urn:oid:2.5.4.11": "ou",
    "urn:oid:2.5.4.12": "title",
    "urn:oid:2.5.4.20": "telephoneNumber",
    "urn:oid:1.3.6.1.4.1.5923.1.1.1.1": "eduPersonAffiliation",
    "urn:oid:1.3.6.1.4.1.5923.1.1.1.5": "eduPersonPrimaryAffiliation",
    "urn:oid:1.3.6.1.4.1.5923.1.1.1.6": "eduPersonPrincipalName",
    "urn:oid:1.3.6.1.4.1.5923.1.1.1.7": "eduPersonEntitlement",
    "urn:oid:1.3.6.1.4.1.5923.1.1.1.9": "eduPersonScopedAffiliation",
    "urn:oid:1.3.6.1.4.1.5923.1.1.1.10": "eduPersonTargetedID",
    "urn:oid:1.3.6.1.4.1.5923.1.1.1.11": "eduPersonAssurance",
    "urn:oid:1.3.6.1.4.1.5923.1.1.1.13": "eduPersonUniqueId",
    "urn:oid:1.3.6.1.4.1.5923.1.1.1.16": "eduPersonOrcid",
    "urn:oid:1.3.6.1.4.1.5923.1.5.1.1": "isMemberOf",
    "urn:oid:1.2.840.113556.1.2.102": "memberOf",
    "urn:oid:1.3.6.1.4.1.25178.1.2.9": "schacHomeOrganization",
    "urn:oasis:names:tc:SAML:attribute:subject-id": "subject-id",
    "urn:oasis:names:tc:SAML:attribute:pairwise-id": "pairwise-id",
    "urn:oid:1.3.6.1.4.1.7135.1.2.1.1": "supannListeRouge",
    "urn:oid:1.3.6.1.4.1.7135.1.2.1.2": "supannActivite",
    "urn:oid:1.3.6.1.4.1.7135.1.2.1.3": "supannOrganisme",
    "urn:oid:1.3.6.1.4.1.7135.1.2.1.4": "supannCivilite",
    "urn:oid:1.3.6.1.4.1.7135.1.2.1.5": "supannAffectation",
    "urn:oid:1.3.6.1.4.1.7135.1.2.1.6": "supannCodeEntite",
    "urn:oid:1.3.6.1.4.1.7135.1.2.1.7": "supannCodeEntiteParent",
    "urn:oid:1.3.6.1.4.1.7135.1.2.1.8": "supannEntiteAffectation",
    "urn:oid:1.3.6.1.4.1.7135.1.2.1.9": "supannCodeINE",
    "urn:oid:1.3.6.1.4.1.7135.1.2.1.10": "supannEtuId",
    "urn:oid:1.3.6.1.4.1.7135.1.2.1.11": "supannEmpId",
    "urn:oid:1.3.6.1.4.1.7135.1.2.1.12": "supannAutreTelephone",
    "urn:oid:1.3.6.1.4.1.7135.1.2.1.13": "supannEntiteAffectationPrincipale",
    "urn:oid:1.3.6.1.4.1.7135.1.2.1.14": "supannEtablissement",
    "urn:oid:1.3.6.1.4.1.7135.1.2.1.15": "supannMailPerso",
    "urn:oid:1.3.6.1.4.1.7135.1.2.1.16": "supannTypeEntite",
    "urn:oid:1.3.6.1.4.1.7135.1.2.1.20": "supannAliasLogin",
    "urn:oid:1.3.6.1.4.1.7135.1.2.1.21": "supannRole",
    "urn:oid:1.3.6.1.4.1.7135.1.2.1.23": "supannRoleGenerique",
    "urn:oid:1.3.6.1.4.1.7135.1.2.1.34": "supannAutreMail",
    "urn:oid:1.3.6.1.4.1.7135.1.2.1.35": "supannEmpCorps",
    "urn:oid:1.3.6.1.4.1.7135.1.2.1.37": "supannRefId",
}

METADATA = """<?xml version="1.0" encoding="UTF-8"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata"
    xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{entity_id}">
  <md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"
      AuthnRequestsSigned="{sign_requests}" WantAssertionsSigned="{want_assertions_signed}">
{key_descriptors}
    <md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
        Location="{base}/slo"/>
    <md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
        Location="{base}/slo"/>
    <md:NameIDFormat>{name_id_format}</md:NameIDFormat>
    <md:AssertionConsumerService index="0" isDefault="true"
        Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="{base}/acs"/>
  </md:SPSSODescriptor>
</md:EntityDescriptor>
"""
KEY_DESCRIPTOR = """    <md:KeyDescriptor use="{use}">
      <ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data>
      </ds:KeyInfo>
    </md:KeyDescriptor>"""
POST_FORM = """<!DOCTYPE html>
<html><head><title>SAML</title></head>
<body onload="document.forms[0].submit()">
<form method="post" action="{action}">
<input type="hidden" name="{field}" value="{value}"/>
{relay}<noscript><input type="submit" value="Continue"/></noscript>
</form></body></html>
"""


class SamlError(Exception):
    """A message from the IdP that we refuse; rendered as 400 JSON."""

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.details = details


def lasso_message(exc: Exception) -> str:
    """Lasso's own words for an error, with its code."""
    code = getattr(exc, "code", None)
    return f"{type(exc).__name__} ({code}): {exc}" if code is not None else f"{exc}"


def certificate_base64(pem: str) -> str:
    lines = [line.strip() for line in pem.strip().splitlines()]
    return "".join(line for line in lines if line and not line.startswith("-----"))


def make_metadata(args: argparse.Namespace, base: str) -> str:
    cert = certificate_base64(Path(args.cert).read_text())
    uses = ["signing"] + (["encryption"] if args.encryption else [])
    return METADATA.format(
        entity_id=html.escape(args.entity_id),
        base=base,
        sign_requests=str(args.sign_requests).lower(),
        want_assertions_signed=str(args.want_assertions_signed).lower(),
        key_descriptors="\n".join(KEY_DESCRIPTOR.format(use=u, cert=cert) for u in uses),
        name_id_format=args.name_id_format,
    )


def fetch_metadata(source: str, ca: str | None, target: Path) -> Path:
    if not source.startswith(("http://", "https://")):
        return Path(source)
    context = ssl.create_default_context(cafile=ca) if ca else None
    with urllib.request.urlopen(source, context=context, timeout=10) as answer:  # noqa: S310
        target.write_bytes(answer.read())
    return target


def decode_post(message: str) -> ET.Element:
    return ET.fromstring(base64.b64decode(message))  # noqa: S314


def decode_redirect(message: str) -> ET.Element:
    return ET.fromstring(zlib.decompress(base64.b64decode(message), -15))  # noqa: S314


def algorithms(root: ET.Element, path: str) -> list[str]:
    return sorted({e.get("Algorithm", "") for e in root.iterfind(path, NS)})


def status_of(root: ET.Element) -> tuple[str | None, str | None, str | None]:
    top = root.find("samlp:Status/samlp:StatusCode", NS)
    sub = root.find("samlp:Status/samlp:StatusCode/samlp:StatusCode", NS)
    message = root.find("samlp:Status/samlp:StatusMessage", NS)
    return (
        top.get("Value") if top is not None else None,
        sub.get("Value") if sub is not None else None,
        message.text if message is not None else None,
    )


class Sessions:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[str, dict[str, Any]] = {}

    def open(self, info: dict[str, Any]) -> str:
        session_id = secrets.token_urlsafe(24)
        with self._lock:
            self._by_id[session_id] = info
        return session_id

    def get(self, session_id: str | None) -> dict[str, Any] | None:
        with self._lock:
            return self._by_id.get(session_id or "")

    def drop(self, session_id: str | None) -> dict[str, Any] | None:
        with self._lock:
            return self._by_id.pop(session_id or "", None)

    def of_subject(self, name_id: str, session_indexes: list[str]) -> list[str]:
        with self._lock:
            return [
                key
                for key, info in self._by_id.items()
                if info["name_id"] == name_id
                and (not session_indexes or info["session_index"] in session_indexes)
            ]


class App:
    def __init__(self, args: argparse.Namespace, base: str, sp_metadata: Path, idp: Path) -> None:
        self.args = args
        self.base = base
        self.cookie_name = f"lassosp{args.port}"
        self.metadata_xml = sp_metadata.read_text(encoding="utf-8")
        self.server = lasso.Server(str(sp_metadata), args.key, None, args.cert)
        # Lasso signs with RSA-SHA1 unless told otherwise.
        self.server.signatureMethod = lasso.SIGNATURE_METHOD_RSA_SHA256
        if args.encryption:
            self.server.setEncryptionPrivateKey(args.key)
        self.server.addProvider(lasso.PROVIDER_ROLE_IDP, str(idp))
        self.idp = next(iter(self.server.providers.keys()))
        self.sessions = Sessions()
        # Lasso objects are not meant to be shared across threads: one message at a time.
        self.lock = threading.RLock()
        self.outstanding_authn: dict[str, str] = {}
        self.outstanding_logout: dict[str, dict[str, Any]] = {}
        self.seen_assertions: dict[str, float] = {}

    # -- SSO ---------------------------------------------------------------------------------
    def authn_request(self, method: int, relay: str, force: bool, passive: bool) -> lasso.Login:
        with self.lock:
            login = lasso.Login(self.server)
            login.initAuthnRequest(self.idp, method)
            request = login.request
            request.protocolBinding = lasso.SAML2_METADATA_BINDING_POST
            request.nameIdPolicy.format = self.args.name_id_format
            request.nameIdPolicy.allowCreate = True
            if force:
                request.forceAuthn = True
            if passive:
                request.isPassive = True
            if relay:
                login.msgRelayState = relay
            login.setSignatureHint(
                lasso.PROFILE_SIGNATURE_HINT_FORCE
                if self.args.sign_requests
                else lasso.PROFILE_SIGNATURE_HINT_FORBID
            )
            login.buildAuthnRequestMsg()
            self.outstanding_authn[request.id] = relay
            log.info("AuthnRequest %s (force=%s passive=%s)", request.id, force, passive)
            return login

    def consume(self, saml_response: str, relay_state: str) -> dict[str, Any]:
        try:
            root = decode_post(saml_response)
        except Exception as exc:
            raise SamlError(f"not a SAML message: {exc}") from exc
        top, sub, message = status_of(root)
        in_response_to = root.get("InResponseTo")
        with self.lock:
            if in_response_to and in_response_to not in self.outstanding_authn:
                raise SamlError(
                    f"InResponseTo {in_response_to!r} answers no request of ours",
                    status=top,
                    substatus=sub,
                )
            login = lasso.Login(self.server)
            # Verify the signatures that are there and require the one the metadata demands,
            # as mod_auth_mellon does.
            login.setSignatureVerifyHint(lasso.PROFILE_SIGNATURE_VERIFY_HINT_MAYBE)
            try:
                login.processAuthnResponseMsg(saml_response)
            except lasso.Error as exc:
                raise SamlError(
                    lasso_message(exc), status=top, substatus=sub, status_message=message
                ) from exc
            try:
                login.acceptSso()
            except lasso.Error as exc:
                raise SamlError(lasso_message(exc), status=top, substatus=sub) from exc
            if in_response_to:
                self.outstanding_authn.pop(in_response_to, None)
            assertion = login.assertion
            now = time.monotonic()
            for key in [k for k, t in self.seen_assertions.items() if t < now - 3600]:
                del self.seen_assertions[key]
            if assertion.id in self.seen_assertions:
                raise SamlError(f"assertion {assertion.id} was already used (replay)")
            self.seen_assertions[assertion.id] = now
            assertion_xml = ET.fromstring(assertion.dump())  # noqa: S314
            original = assertion.getOriginalXmlnode()
            signed_assertion = root.find("saml:Assertion/ds:Signature", NS) is not None or (
                bool(original) and "SignatureValue" in original
            )
            if self.args.want_assertions_signed and not signed_assertion:
                raise SamlError("the assertion is not signed")
            name_id = login.nameIdentifier
            authn = assertion.authnStatement[0] if assertion.authnStatement else None
            context = None
            if authn is not None and authn.authnContext is not None:
                context = authn.authnContext.authnContextClassRef
            info = {
                "name_id": name_id.content if name_id is not None else None,
                "name_id_format": name_id.format if name_id is not None else None,
                "name_qualifier": name_id.nameQualifier if name_id is not None else None,
                "sp_name_qualifier": name_id.spNameQualifier if name_id is not None else None,
                "session_index": authn.sessionIndex if authn is not None else None,
                "relay_state": relay_state,
                "authn_context": context,
                "authn_instant": authn.authnInstant if authn is not None else None,
                "issuer": assertion.issuer.content if assertion.issuer is not None else None,
                "in_response_to": in_response_to,
                "assertion_id": assertion.id,
                "encrypted": root.find("saml:EncryptedAssertion", NS) is not None,
                "response_signed": root.find("ds:Signature", NS) is not None,
                "assertion_signed": signed_assertion,
                "signature_algorithms": algorithms(root, ".//ds:SignatureMethod")
                + (
                    algorithms(ET.fromstring(original), ".//ds:SignatureMethod")  # noqa: S314
                    if original
                    else []
                ),
                "digest_algorithms": algorithms(root, ".//ds:DigestMethod")
                + (
                    algorithms(ET.fromstring(original), ".//ds:DigestMethod")  # noqa: S314
                    if original
                    else []
                ),
                "encryption_algorithms": algorithms(root, ".//xenc:EncryptionMethod"),
                "logged_in_at": time.time(),
                # Lasso's own record of the session, needed to build a LogoutRequest later.
                "_lasso_session": login.session.dump() if login.session else None,
                "_lasso_identity": login.identity.dump() if login.identity else None,
            }
        info.update(read_attributes(assertion_xml))
        return info

    # -- SLO ---------------------------------------------------------------------------------
    def logout_request(self, session: dict[str, Any], method: int) -> lasso.Logout:
        with self.lock:
            logout = lasso.Logout(self.server)
            logout.setSessionFromDump(session["_lasso_session"])
            if session["_lasso_identity"]:
                logout.setIdentityFromDump(session["_lasso_identity"])
            logout.initRequest(self.idp, method)
            logout.setSignatureHint(lasso.PROFILE_SIGNATURE_HINT_FORCE)
            logout.buildRequestMsg()
            self.outstanding_logout[logout.request.id] = session
            log.info("LogoutRequest %s to %s", logout.request.id, logout.msgUrl.split("?")[0])
            return logout

    def handle_logout_request(self, message: str, query: str | None) -> lasso.Logout:
        """End the sessions the IdP's LogoutRequest names; Lasso builds the LogoutResponse."""
        with self.lock:
            logout = lasso.Logout(self.server)
            # SAML profiles 4.4.3.1: front-channel logout messages must be signed.
            logout.setSignatureVerifyHint(lasso.PROFILE_SIGNATURE_VERIFY_HINT_FORCE)
            try:
                logout.processRequestMsg(query if query is not None else message)
            except lasso.Error as exc:
                raise SamlError(lasso_message(exc)) from exc
            name_id = logout.nameIdentifier.content if logout.nameIdentifier else ""
            request = logout.request
            indexes = list(request.sessionIndexes or ())
            if request.sessionIndex and request.sessionIndex not in indexes:
                indexes.append(request.sessionIndex)
            doomed = self.sessions.of_subject(name_id, indexes)
            if doomed:
                session = self.sessions.get(doomed[0])
                assert session is not None
                logout.setSessionFromDump(session["_lasso_session"])
                if session["_lasso_identity"]:
                    logout.setIdentityFromDump(session["_lasso_identity"])
            try:
                logout.validateRequest()
            except lasso.Error as exc:
                # Unknown principal and the like: the response then carries a failure status.
                log.warning("LogoutRequest not validated: %s", lasso_message(exc))
            else:
                for key in doomed:
                    self.sessions.drop(key)
            log.info(
                "LogoutRequest %s for %s %s: %d session(s) ended",
                request.id,
                name_id,
                indexes,
                len(doomed),
            )
            logout.setSignatureHint(lasso.PROFILE_SIGNATURE_HINT_FORCE)
            logout.buildResponseMsg()
            return logout

    def handle_logout_response(self, message: str, query: str | None) -> dict[str, Any]:
        try:
            root = decode_post(message) if query is None else decode_redirect(message)
        except Exception as exc:
            raise SamlError(f"not a SAML message: {exc}") from exc
        in_response_to = root.get("InResponseTo") or ""
        with self.lock:
            session = self.outstanding_logout.pop(in_response_to, None)
            if session is None:
                raise SamlError(f"LogoutResponse to {in_response_to!r}, which we never sent")
            logout = lasso.Logout(self.server)
            logout.setSignatureVerifyHint(lasso.PROFILE_SIGNATURE_VERIFY_HINT_FORCE)
            logout.setSessionFromDump(session["_lasso_session"])
            error = None
            try:
                logout.processResponseMsg(query if query is not None else message)
            except lasso.Error as exc:
                # Lasso raises on a non-Success status too; the status below tells which.
                error = lasso_message(exc)
        top, sub, status_message = status_of(root)
        if error is not None and top == SUCCESS:
            raise SamlError(error)
        return {
            "logged_out": top == SUCCESS and error is None,
            "status": top,
            "substatus": sub,
            "status_message": status_message,
            "name_id": session["name_id"],
            "in_response_to": in_response_to,
            "signed": query is not None or root.find("ds:Signature", NS) is not None,
            "error": error,
        }


def read_attributes(assertion: ET.Element) -> dict[str, Any]:
    by_name: dict[str, list[str]] = {}
    friendly: dict[str, str] = {}
    named: dict[str, list[str]] = {}
    for attribute in assertion.iterfind("saml:AttributeStatement/saml:Attribute", NS):
        name = attribute.get("Name", "")
        values = [v.text or "" for v in attribute.iterfind("saml:AttributeValue", NS)]
        by_name.setdefault(name, []).extend(values)
        if attribute.get("FriendlyName"):
            friendly[name] = attribute.get("FriendlyName", "")
        key = OID_NAMES.get(name) or attribute.get("FriendlyName") or name
        named.setdefault(key, []).extend(values)
    return {"attributes": named, "attributes_by_name": by_name, "friendly_names": friendly}


def public(info: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in info.items() if not k.startswith("_")}


def make_handler(app: App) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "lasso-sp/1"
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            log.info("%s %s", self.address_string(), format % args)

        def _session_id(self) -> str | None:
            cookies = SimpleCookie()
            try:
                cookies.load(self.headers.get("Cookie", ""))
            except Exception:
                return None
            morsel = cookies.get(app.cookie_name)
            return morsel.value if morsel else None

        def _send(self, status: int, body: bytes, content_type: str, headers: list) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, status: int, data: Any, headers: list | None = None) -> None:
            body = json.dumps(data, ensure_ascii=False).encode("utf-8") + b"\n"
            self._send(status, body, "application/json", headers or [])

        def _cookie(self, value: str, max_age: int | None = None) -> tuple[str, str]:
            cookie = f"{app.cookie_name}={value}; Path=/; HttpOnly; SameSite=Lax"
            if max_age is not None:
                cookie += f"; Max-Age={max_age}"
            return ("Set-Cookie", cookie)

        def _send_profile(self, profile: Any, field: str, headers: list | None = None) -> None:
            """A redirect to ``msgUrl``, or an auto-POST form of ``msgBody`` to it."""
            extra = list(headers or [])
            if not profile.msgBody:
                self._send(303, b"", "text/plain", [("Location", profile.msgUrl), *extra])
                return
            relay = ""
            if profile.msgRelayState:
                relay = (
                    '<input type="hidden" name="RelayState" value="'
                    f'{html.escape(profile.msgRelayState)}"/>\n'
                )
            page = POST_FORM.format(
                action=html.escape(profile.msgUrl),
                field=field,
                value=html.escape(profile.msgBody),
                relay=relay,
            )
            self._send(200, page.encode("utf-8"), "text/html; charset=utf-8", extra)

        def _method(self, query: dict[str, list[str]]) -> int:
            name = (query.get("binding") or ["redirect"])[0]
            if name not in HTTP_METHODS:
                raise SamlError(f"unknown binding {name!r}")
            return HTTP_METHODS[name]

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            try:
                if url.path in ("/", "/whoami"):
                    session = app.sessions.get(self._session_id())
                    if session is None:
                        self._json(401, {"error": "not logged in"})
                    else:
                        self._json(200, public(session))
                elif url.path == "/login":
                    login = app.authn_request(
                        self._method(query),
                        (query.get("relay") or [""])[0],
                        force=(query.get("force") or ["0"])[0] == "1",
                        passive=(query.get("passive") or ["0"])[0] == "1",
                    )
                    self._send_profile(login, "SAMLRequest")
                elif url.path == "/logout":
                    method = self._method(query)
                    session = app.sessions.drop(self._session_id())
                    if session is None:
                        self._json(401, {"error": "not logged in"})
                        return
                    logout = app.logout_request(session, method)
                    self._send_profile(logout, "SAMLRequest", [self._cookie("", max_age=0)])
                elif url.path == "/slo":
                    # Lasso checks a Redirect signature over the query string as received.
                    self._slo({k: v[0] for k, v in query.items()}, url.query)
                elif url.path == "/metadata":
                    self._send(
                        200, app.metadata_xml.encode("utf-8"), "application/samlmetadata+xml", []
                    )
                else:
                    self._json(404, {"error": "not found"})
            except SamlError as exc:
                log.warning("refused: %s %s", exc, exc.details)
                self._json(400, {"error": str(exc), **exc.details})

        def do_POST(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
            try:
                if url.path == "/acs":
                    if "SAMLResponse" not in form:
                        raise SamlError("no SAMLResponse")
                    info = app.consume(form["SAMLResponse"], form.get("RelayState", ""))
                    session_id = app.sessions.open(info)
                    self._json(200, public(info), [self._cookie(session_id)])
                elif url.path == "/slo":
                    self._slo(form, None)
                else:
                    self._json(404, {"error": "not found"})
            except SamlError as exc:
                log.warning("refused: %s %s", exc, exc.details)
                self._json(400, {"error": str(exc), **exc.details})

        def _slo(self, params: dict[str, str], query: str | None) -> None:
            if "SAMLRequest" in params:
                logout = app.handle_logout_request(params["SAMLRequest"], query)
                self._send_profile(logout, "SAMLResponse")
            elif "SAMLResponse" in params:
                self._json(200, app.handle_logout_response(params["SAMLResponse"], query))
            else:
                raise SamlError("neither SAMLRequest nor SAMLResponse")

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--entity-id", help="default: http://HOST:PORT/metadata")
    parser.add_argument("--idp-metadata", required=True, help="a file, or an https URL")
    parser.add_argument("--key", required=True, help="PEM key for signing and decryption")
    parser.add_argument("--cert", required=True, help="its PEM certificate")
    parser.add_argument("--ca", help="CA bundle trusted for the IdP's HTTPS")
    parser.add_argument("--sign-requests", action="store_true", help="sign AuthnRequests")
    parser.add_argument("--want-assertions-signed", action="store_true")
    parser.add_argument("--encryption", action="store_true", help="publish an encryption key")
    parser.add_argument(
        "--name-id-format", default="urn:oasis:names:tc:SAML:2.0:nameid-format:transient"
    )
    parser.add_argument("--metadata-out", help="write our metadata here (default: a temp file)")
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s"
    )
    base = f"http://{args.host}:{args.port}"
    args.entity_id = args.entity_id or base + "/metadata"
    metadata_out = Path(args.metadata_out or f"/tmp/lasso-sp-{args.port}.xml")  # noqa: S108
    metadata_out.write_text(make_metadata(args, base), encoding="utf-8")
    idp = fetch_metadata(args.idp_metadata, args.ca, metadata_out.parent / f"idp-{args.port}.xml")
    app = App(args, base, metadata_out, idp)

    server = ThreadingHTTPServer((args.host, args.port), make_handler(app))
    server.daemon_threads = True
    log.info("serving %s as %s (IdP %s)", base, args.entity_id, app.idp)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
