"""A SAML 2.0 service provider built on pysaml2's ``Saml2Client``, for the interop tests.

Run it in its own process::

    python tests/interop/saml/pysaml2_sp.py --port 9001 --entity-id http://127.0.0.1:9001/sp \
        --idp-metadata idp.xml --key sp.key --cert sp.pem --ca ca.pem \
        --sign-requests --want-assertions-signed --encryption --metadata-out sp.xml

Pages (under ``http://HOST:PORT``):

- ``GET /login?binding=redirect|post&force=1&passive=1&relay=X``: send an AuthnRequest to the
  IdP (a redirect, or an auto-submitting form), ForceAuthn / IsPassive when asked.
- ``POST /acs``: the IdP's Response (HTTP-POST), checked by pysaml2 and by a replay cache of
  assertion IDs (pysaml2 has none); opens a session (cookie) and answers the session's JSON.
  A Response that cannot be used gets 400 ``{"error": "<pysaml2's message>", "status": ...}``.
- ``GET /`` or ``/whoami``: the session as JSON, 401 ``{"error": "not logged in"}`` without one.
- ``GET /logout?binding=redirect|post``: SP-initiated single logout; the local session ends.
- ``GET|POST /slo``: the IdP's LogoutRequest (the named sessions end, a signed LogoutResponse
  goes back over the same binding) or its LogoutResponse to our own LogoutRequest.
- ``GET /metadata``: our metadata (also written to ``--metadata-out`` before serving).

Session JSON: ``name_id``, ``name_id_format``, ``attributes`` (by the friendly names of
pysaml2's own attribute maps, so a wrong OID shows as a wrong name), ``attributes_by_name``
(by the Name the IdP sent, urn:oid:...), ``friendly_names`` (Name -> FriendlyName as sent),
``session_index``, ``relay_state``, ``authn_context``, ``authn_instant``, ``issuer``,
``in_response_to``, ``assertion_id``, ``encrypted``, ``response_signed``, ``assertion_signed``,
``signature_algorithms``, ``digest_algorithms``, ``encryption_algorithms``.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import secrets
import ssl
import sys
import threading
import time
import urllib.request
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote_plus, urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from lxml import etree
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, xmldsig
from saml2.client import Saml2Client
from saml2.config import SPConfig
from saml2.metadata import create_metadata_string
from saml2.s_utils import success_status_factory
from saml2.saml import NameID

log = logging.getLogger("pysaml2_sp")

BINDINGS = {"redirect": BINDING_HTTP_REDIRECT, "post": BINDING_HTTP_POST}
NS = {
    "samlp": "urn:oasis:names:tc:SAML:2.0:protocol",
    "saml": "urn:oasis:names:tc:SAML:2.0:assertion",
    "ds": "http://www.w3.org/2000/09/xmldsig#",
    "xenc": "http://www.w3.org/2001/04/xmlenc#",
}
# Redirect-binding signatures we accept from the IdP; RSA-SHA1 is refused on purpose, an IdP
# that still signs with it should fail here.
REDIRECT_SIG_HASHES: dict[str, hashes.HashAlgorithm] = {
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256": hashes.SHA256(),
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384": hashes.SHA384(),
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512": hashes.SHA512(),
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256": hashes.SHA256(),
}
# An assertion is remembered for replay checks at least this long (its NotOnOrAfter bounds
# its use anyway, and the IdP's default lifetime is 5 minutes).
REPLAY_MEMORY_SECONDS = 3600


class SamlError(Exception):
    """A message from the IdP that we refuse; rendered as 400 JSON."""

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.details = details


class Sessions:
    """In-memory sessions keyed by a random cookie value."""

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

    def drop_subject(self, name_id: str, session_indexes: list[str]) -> int:
        """End the sessions of ``name_id`` (only those of ``session_indexes`` if any)."""
        with self._lock:
            doomed = [
                key
                for key, info in self._by_id.items()
                if info["name_id"] == name_id
                and (not session_indexes or info["session_index"] in session_indexes)
            ]
            for key in doomed:
                del self._by_id[key]
            return len(doomed)


class ReplayCache:
    """Assertion IDs already consumed (pysaml2 keeps none, SAML profiles 4.1.4.5 asks one)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[str, float] = {}

    def first_use(self, assertion_id: str) -> bool:
        now = time.monotonic()
        with self._lock:
            for key in [k for k, t in self._seen.items() if t < now - REPLAY_MEMORY_SECONDS]:
                del self._seen[key]
            if assertion_id in self._seen:
                return False
            self._seen[assertion_id] = now
            return True


def build_config(args: argparse.Namespace, base_url: str, idp_metadata: Path) -> SPConfig:
    sp: dict[str, Any] = {
        "endpoints": {
            "assertion_consumer_service": [(base_url + "/acs", BINDING_HTTP_POST)],
            "single_logout_service": [
                (base_url + "/slo", BINDING_HTTP_REDIRECT),
                (base_url + "/slo", BINDING_HTTP_POST),
            ],
        },
        "authn_requests_signed": args.sign_requests,
        "want_assertions_signed": args.want_assertions_signed,
        "want_response_signed": args.want_response_signed,
        # IdP-initiated SSO is unsolicited; responses to our own requests are still matched
        # against the outstanding request IDs by the ACS below.
        "allow_unsolicited": True,
        # SAML profiles 4.4.3: front-channel logout messages must be signed.
        "logout_requests_signed": True,
        "logout_responses_signed": True,
    }
    if args.name_id_format:
        sp["name_id_format"] = [args.name_id_format]
        sp["name_id_policy_format"] = args.name_id_format
    conf: dict[str, Any] = {
        "entityid": args.entity_id,
        "name": f"pysaml2 SP {args.port}",
        "service": {"sp": sp},
        "metadata": {"local": [str(idp_metadata)]},
        "key_file": args.key,
        "cert_file": args.cert,
        "xmlsec_binary": args.xmlsec1,
        "crypto_backend": "xmlsec1",
        # pysaml2 still defaults to RSA-SHA1 / SHA1.
        "signing_algorithm": xmldsig.SIG_RSA_SHA256,
        "digest_algorithm": xmldsig.DIGEST_SHA256,
        "accepted_time_diff": 60,
        "delete_tmpfiles": True,
    }
    if args.ca:
        conf["ca_certs"] = args.ca
    if args.encryption:
        # Published as <KeyDescriptor use="encryption"> and used to decrypt assertions.
        conf["encryption_keypairs"] = [{"key_file": args.key, "cert_file": args.cert}]
    config = SPConfig()
    config.load(conf)
    return config


def use_inprocess_crypto(client: Saml2Client) -> str:
    """Swap in our own in-process backend when it exists; xmlsec1 (independent) otherwise."""
    try:
        from sso.protocols.saml import crypto  # type: ignore[import-not-found]
    except ImportError as exc:
        log.warning("in-process crypto backend not available (%s); using xmlsec1", exc)
        return "xmlsec1"
    backend = crypto.make_crypto_backend("inprocess")
    install = getattr(crypto, "install", None)
    if install is not None:
        install(client, backend)  # also reaches the metadata store's security context
    else:
        client.sec.crypto = backend
    return "inprocess"


def fetch_metadata(source: str, ca: str | None, target: Path) -> Path:
    """The IdP metadata as a file: ``source`` itself, or downloaded from an https URL."""
    if not source.startswith(("http://", "https://")):
        return Path(source)
    context = ssl.create_default_context(cafile=ca) if ca else None
    with urllib.request.urlopen(source, context=context, timeout=10) as answer:  # noqa: S310
        target.write_bytes(answer.read())
    return target


def decode_xml(text: str) -> etree._Element:
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    return etree.fromstring(base64.b64decode(text), parser)


def algorithms(root: etree._Element, xpath: str) -> list[str]:
    return sorted({str(a) for a in root.xpath(xpath, namespaces=NS)})


def status_of(root: etree._Element) -> tuple[str | None, str | None, str | None]:
    """(top-level status code, second-level code, message) of a SAML response."""
    codes = root.xpath("samlp:Status/samlp:StatusCode", namespaces=NS)
    top = codes[0].get("Value") if codes else None
    sub = root.xpath("samlp:Status/samlp:StatusCode/samlp:StatusCode/@Value", namespaces=NS)
    message = root.xpath("samlp:Status/samlp:StatusMessage/text()", namespaces=NS)
    return top, (str(sub[0]) if sub else None), (str(message[0]) if message else None)


def strong_algorithms_only(metadata: bytes) -> str:
    """Our metadata without the MD5/SHA-1/RIPEMD/DSA methods pysaml2 advertises (alg:*)."""
    root = etree.fromstring(metadata)
    for element in root.xpath(
        "md:Extensions/alg:DigestMethod | md:Extensions/alg:SigningMethod",
        namespaces={
            "md": "urn:oasis:names:tc:SAML:2.0:metadata",
            "alg": "urn:oasis:names:tc:SAML:metadata:algsupport",
        },
    ):
        algorithm = element.get("Algorithm", "")
        if any(weak in algorithm for weak in ("md5", "sha1", "ripemd160", "sha224", "#dsa-")):
            element.getparent().remove(element)
    return etree.tostring(root, encoding="unicode")


def raw_query_params(query: str) -> dict[str, str]:
    """Query parameters still URL-encoded, as the Redirect binding signs them (3.4.4.1)."""
    params: dict[str, str] = {}
    for part in query.split("&"):
        name, _, value = part.partition("=")
        params.setdefault(unquote_plus(name), value)
    return params


class App:
    def __init__(self, args: argparse.Namespace, client: Saml2Client, base_url: str) -> None:
        self.args = args
        self.client = client
        self.base_url = base_url
        self.cookie_name = f"pysaml2sp{args.port}"
        self.sessions = Sessions()
        self.replays = ReplayCache()
        self._lock = threading.Lock()
        # AuthnRequest ID -> RelayState; LogoutRequest ID -> name_id (pysaml2 leaves the
        # caller to keep them, and never deletes matched entries itself).
        self.outstanding_authn: dict[str, str] = {}
        self.outstanding_logout: dict[str, str] = {}
        idps = list(client.metadata.with_descriptor("idpsso"))
        if len(idps) != 1:
            raise SystemExit(f"expected one IdP in the metadata, found {idps}")
        self.idp = idps[0]
        self.metadata_xml = strong_algorithms_only(
            create_metadata_string(None, config=client.config, valid=None, sign=False)
        )

    # -- SSO ---------------------------------------------------------------------------------
    def authn_request(self, binding: str, relay: str, force: bool, passive: bool) -> dict:
        extra: dict[str, str] = {}
        if force:
            extra["force_authn"] = "true"
        if passive:
            extra["is_passive"] = "true"
        request_id, info = self.client.prepare_for_authenticate(
            entityid=self.idp,
            relay_state=relay,
            binding=binding,
            sign=self.args.sign_requests,
            sigalg=xmldsig.SIG_RSA_SHA256,
            digest_alg=xmldsig.DIGEST_SHA256,
            response_binding=BINDING_HTTP_POST,
            **extra,
        )
        with self._lock:
            self.outstanding_authn[request_id] = relay
        log.info(
            "AuthnRequest %s over %s (force=%s passive=%s)", request_id, binding, force, passive
        )
        return info

    def consume(self, saml_response: str, relay_state: str) -> dict[str, Any]:
        """Check the IdP's Response; the session's information, or SamlError."""
        try:
            root = decode_xml(saml_response)
        except Exception as exc:
            raise SamlError(f"not a SAML message: {exc}") from exc
        top, sub, message = status_of(root)
        in_response_to = root.get("InResponseTo")
        with self._lock:
            outstanding = dict(self.outstanding_authn)
        if in_response_to and in_response_to not in outstanding:
            # pysaml2 lets any InResponseTo through once allow_unsolicited is on.
            raise SamlError(
                f"InResponseTo {in_response_to!r} answers no request of ours",
                status=top,
                substatus=sub,
            )
        try:
            response = self.client.parse_authn_request_response(
                saml_response, BINDING_HTTP_POST, outstanding=outstanding
            )
        except Exception as exc:
            raise SamlError(
                f"{type(exc).__name__}: {exc}", status=top, substatus=sub, status_message=message
            ) from exc
        if response is None:
            raise SamlError("pysaml2 returned no response", status=top, substatus=sub)
        if in_response_to:
            with self._lock:
                self.outstanding_authn.pop(in_response_to, None)
        assertion = response.assertion
        if not self.replays.first_use(assertion.id):
            raise SamlError(f"assertion {assertion.id} was already used (replay)")

        by_name: dict[str, list[str]] = {}
        friendly: dict[str, str] = {}
        for statement in assertion.attribute_statement:
            for attribute in statement.attribute:
                values = [v.text or "" for v in attribute.attribute_value]
                by_name.setdefault(attribute.name, []).extend(values)
                if attribute.friendly_name:
                    friendly[attribute.name] = attribute.friendly_name
        authn = assertion.authn_statement[0] if assertion.authn_statement else None
        context = None
        if authn is not None and authn.authn_context.authn_context_class_ref is not None:
            context = authn.authn_context.authn_context_class_ref.text
        name_id = response.name_id
        decrypted = etree.fromstring(str(assertion).encode("utf-8"))
        return {
            "name_id": name_id.text if name_id is not None else None,
            "name_id_format": name_id.format if name_id is not None else None,
            "name_qualifier": name_id.name_qualifier if name_id is not None else None,
            "sp_name_qualifier": name_id.sp_name_qualifier if name_id is not None else None,
            "attributes": {k: list(v) for k, v in response.ava.items()},
            "attributes_by_name": by_name,
            "friendly_names": friendly,
            "session_index": authn.session_index if authn is not None else None,
            "relay_state": relay_state,
            "authn_context": context,
            "authn_instant": authn.authn_instant if authn is not None else None,
            "issuer": response.issuer(),
            "in_response_to": in_response_to,
            "assertion_id": assertion.id,
            "encrypted": bool(root.xpath("saml:EncryptedAssertion", namespaces=NS)),
            "response_signed": bool(root.xpath("ds:Signature", namespaces=NS)),
            "assertion_signed": assertion.signature is not None,
            "signature_algorithms": algorithms(root, "//ds:SignatureMethod/@Algorithm")
            + algorithms(decrypted, "//ds:SignatureMethod/@Algorithm"),
            "digest_algorithms": algorithms(root, "//ds:DigestMethod/@Algorithm")
            + algorithms(decrypted, "//ds:DigestMethod/@Algorithm"),
            "encryption_algorithms": algorithms(root, "//xenc:EncryptionMethod/@Algorithm"),
            "logged_in_at": time.time(),
        }

    # -- SLO ---------------------------------------------------------------------------------
    def logout_request(self, session: dict[str, Any], binding: str) -> dict:
        destination = self.slo_location(binding)
        name_id = NameID(
            text=session["name_id"],
            format=session["name_id_format"],
            name_qualifier=session["name_qualifier"],
            sp_name_qualifier=session["sp_name_qualifier"],
        )
        sign_post = binding == BINDING_HTTP_POST
        request_id, request = self.client.create_logout_request(
            destination,
            self.idp,
            name_id=name_id,
            session_indexes=[session["session_index"]] if session["session_index"] else None,
            sign=sign_post,
            sign_alg=xmldsig.SIG_RSA_SHA256,
            digest_alg=xmldsig.DIGEST_SHA256,
        )
        with self._lock:
            self.outstanding_logout[request_id] = session["name_id"]
        log.info("LogoutRequest %s over %s to %s", request_id, binding, destination)
        return self.client.apply_binding(
            binding,
            str(request),
            destination,
            relay_state="",
            sign=not sign_post,
            sigalg=xmldsig.SIG_RSA_SHA256,
        )

    def slo_location(self, binding: str) -> str:
        services = self.client.metadata.single_logout_service(self.idp, binding, "idpsso")
        if not services:
            raise SamlError(f"the IdP metadata has no SingleLogoutService for {binding}")
        return services[0]["location"]

    def check_redirect_signature(self, query: str, kind: str, issuer: str | None) -> None:
        """Verify a Redirect-binding signature over the octets as received (bindings 3.4.4.1)."""
        raw = raw_query_params(query)
        if "Signature" not in raw or "SigAlg" not in raw:
            raise SamlError(f"unsigned {kind} over HTTP-Redirect")
        sigalg = unquote_plus(raw["SigAlg"])
        algorithm = REDIRECT_SIG_HASHES.get(sigalg)
        if algorithm is None:
            raise SamlError(f"SigAlg {sigalg} refused")
        names = [kind] + (["RelayState"] if "RelayState" in raw else []) + ["SigAlg"]
        signed = "&".join(f"{n}={raw[n]}" for n in names).encode("ascii")
        signature = base64.b64decode(unquote_plus(raw["Signature"]))
        for _name, cert in self.client.metadata.certs(issuer or self.idp, "idpsso", "signing"):
            key = x509.load_der_x509_certificate(base64.b64decode(cert)).public_key()
            try:
                if isinstance(key, rsa.RSAPublicKey):
                    key.verify(signature, signed, padding.PKCS1v15(), algorithm)
                elif isinstance(key, ec.EllipticCurvePublicKey):
                    key.verify(signature, signed, ec.ECDSA(algorithm))
                else:
                    continue
                return
            except InvalidSignature:
                continue
        raise SamlError(f"the {kind}'s Redirect signature does not verify with the IdP's keys")

    def handle_logout_request(
        self, message: str, binding: str, relay_state: str, query: str
    ) -> dict:
        """End the sessions a LogoutRequest names; the LogoutResponse to send back."""
        try:
            xml = self.client.unravel(message, binding, "LogoutRequest")
            root = etree.fromstring(xml.encode("utf-8") if isinstance(xml, str) else xml)
        except Exception as exc:
            raise SamlError(f"not a SAML message: {exc}") from exc
        issuer = root.findtext("saml:Issuer", namespaces=NS)
        if binding == BINDING_HTTP_REDIRECT:
            self.check_redirect_signature(query, "SAMLRequest", issuer)
        elif not root.xpath("ds:Signature", namespaces=NS):
            raise SamlError("unsigned LogoutRequest over HTTP-POST")
        try:
            request = self.client.parse_logout_request(message, binding)
        except Exception as exc:
            raise SamlError(f"{type(exc).__name__}: {exc}") from exc
        if request is None:
            raise SamlError("pysaml2 refused the LogoutRequest")
        name_id = request.message.name_id.text if request.message.name_id is not None else ""
        indexes = [s.text for s in request.message.session_index or []]
        dropped = self.sessions.drop_subject(name_id, indexes)
        log.info(
            "LogoutRequest %s for %s %s: %d session(s) ended",
            request.message.id,
            name_id,
            indexes,
            dropped,
        )
        sign_post = binding == BINDING_HTTP_POST
        response = self.client.create_logout_response(
            request.message,
            bindings=[binding],
            status=success_status_factory(),
            sign=sign_post,
            sign_alg=xmldsig.SIG_RSA_SHA256,
            digest_alg=xmldsig.DIGEST_SHA256,
        )
        args = self.client.response_args(request.message, [binding])
        return self.client.apply_binding(
            args["binding"],
            str(response),
            args["destination"],
            relay_state,
            response=True,
            sign=not sign_post,
            sigalg=xmldsig.SIG_RSA_SHA256,
        )

    def handle_logout_response(self, message: str, binding: str, query: str) -> dict[str, Any]:
        try:
            xml = self.client.unravel(message, binding, "LogoutResponse")
            root = etree.fromstring(xml.encode("utf-8") if isinstance(xml, str) else xml)
        except Exception as exc:
            raise SamlError(f"not a SAML message: {exc}") from exc
        issuer = root.findtext("saml:Issuer", namespaces=NS)
        if binding == BINDING_HTTP_REDIRECT:
            self.check_redirect_signature(query, "SAMLResponse", issuer)
        try:
            response = self.client.parse_logout_request_response(message, binding)
        except Exception as exc:
            raise SamlError(f"{type(exc).__name__}: {exc}") from exc
        if response is None:
            raise SamlError("pysaml2 refused the LogoutResponse")
        in_response_to = response.response.in_response_to
        with self._lock:
            name_id = self.outstanding_logout.pop(in_response_to, None)
        if name_id is None:
            raise SamlError(f"LogoutResponse to {in_response_to!r}, which we never sent")
        top, sub, status_message = status_of(root)
        return {
            "logged_out": top == "urn:oasis:names:tc:SAML:2.0:status:Success",
            "status": top,
            "substatus": sub,
            "status_message": status_message,
            "name_id": name_id,
            "in_response_to": in_response_to,
            "signed": binding == BINDING_HTTP_REDIRECT
            or bool(root.xpath("ds:Signature", namespaces=NS)),
        }


def make_handler(app: App) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "pysaml2-sp/1"
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

        def _binding_page(self, info: dict, headers: list | None = None) -> None:
            """Send what pysaml2's apply_binding built: a redirect or an auto-POST form."""
            extra = list(headers or [])
            if info["method"] == "GET":
                location = dict(info["headers"])["Location"]
                self._send(303, b"", "text/plain", [("Location", location), *extra])
            else:
                self._send(200, info["data"].encode("utf-8"), "text/html; charset=utf-8", extra)

        def _binding(self, query: dict[str, list[str]]) -> str:
            name = (query.get("binding") or ["redirect"])[0]
            if name not in BINDINGS:
                raise SamlError(f"unknown binding {name!r}")
            return BINDINGS[name]

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            try:
                if url.path in ("/", "/whoami"):
                    session = app.sessions.get(self._session_id())
                    if session is None:
                        self._json(401, {"error": "not logged in"})
                    else:
                        self._json(200, session)
                elif url.path == "/login":
                    info = app.authn_request(
                        self._binding(query),
                        (query.get("relay") or [""])[0],
                        force=(query.get("force") or ["0"])[0] == "1",
                        passive=(query.get("passive") or ["0"])[0] == "1",
                    )
                    self._binding_page(info)
                elif url.path == "/logout":
                    binding = self._binding(query)
                    session = app.sessions.drop(self._session_id())
                    if session is None:
                        self._json(401, {"error": "not logged in"})
                        return
                    info = app.logout_request(session, binding)
                    self._binding_page(info, [self._cookie("", max_age=0)])
                elif url.path == "/slo":
                    self._slo({k: v[0] for k, v in query.items()}, BINDING_HTTP_REDIRECT, url.query)
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
                    self._json(200, info, [self._cookie(session_id)])
                elif url.path == "/slo":
                    self._slo(form, BINDING_HTTP_POST, "")
                else:
                    self._json(404, {"error": "not found"})
            except SamlError as exc:
                log.warning("refused: %s %s", exc, exc.details)
                self._json(400, {"error": str(exc), **exc.details})

        def _slo(self, params: dict[str, str], binding: str, query: str) -> None:
            relay_state = params.get("RelayState", "")
            if "SAMLRequest" in params:
                info = app.handle_logout_request(params["SAMLRequest"], binding, relay_state, query)
                self._binding_page(info)
            elif "SAMLResponse" in params:
                result = app.handle_logout_response(params["SAMLResponse"], binding, query)
                self._json(200, result)
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
    parser.add_argument(
        "--no-want-response-signed",
        dest="want_response_signed",
        action="store_false",
        help="accept a Response whose only signature is on the assertion",
    )
    parser.add_argument("--encryption", action="store_true", help="publish an encryption key")
    parser.add_argument("--name-id-format", help="NameIDPolicy Format to ask for")
    parser.add_argument("--metadata-out", help="write our metadata here before serving")
    parser.add_argument("--crypto", choices=["xmlsec1", "inprocess"], default="xmlsec1")
    parser.add_argument("--xmlsec1", default="/usr/bin/xmlsec1")
    parser.add_argument("--debug", action="store_true", help="log pysaml2 at DEBUG")
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s"
    )
    logging.getLogger("saml2").setLevel(logging.DEBUG if args.debug else logging.WARNING)

    base_url = f"http://{args.host}:{args.port}"
    args.entity_id = args.entity_id or base_url + "/metadata"
    work = Path(args.metadata_out).parent if args.metadata_out else Path(".")
    idp_metadata = fetch_metadata(args.idp_metadata, args.ca, work / f"idp-{args.port}.xml")
    client = Saml2Client(config=build_config(args, base_url, idp_metadata))
    crypto = use_inprocess_crypto(client) if args.crypto == "inprocess" else "xmlsec1"
    app = App(args, client, base_url)
    if args.metadata_out:
        Path(args.metadata_out).write_text(app.metadata_xml, encoding="utf-8")

    server = ThreadingHTTPServer((args.host, args.port), make_handler(app))
    server.daemon_threads = True
    log.info("serving %s as %s (IdP %s, crypto %s)", base_url, args.entity_id, app.idp, crypto)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
