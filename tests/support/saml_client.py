"""A pysaml2 service provider inside the test process, for flow tests that drive our IdP over
the ``client`` fixture: it writes real AuthnRequests and checks our Responses with the
``xmlsec1`` program, an implementation independent of our in-process signing."""

from __future__ import annotations

import base64
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.client import Saml2Client
from saml2.config import SPConfig
from saml2.metadata import entity_descriptor
from saml2.sigver import get_xmlsec_binary
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

from tests.support.login_form import read_form
from tests.support.saml_sp import key_pair


@dataclass
class TestSp:
    """One SP: its config, client, metadata, and the requests it has outstanding."""

    __test__ = False

    entity_id: str
    client: Saml2Client
    metadata_xml: str
    outstanding: dict[str, str] = field(default_factory=dict)

    @property
    def acs_url(self) -> str:
        return self.entity_id.rsplit("/", 1)[0] + "/acs"

    def login_url(self, idp_entity_id: str, *, relay_state: str = "", **options: Any) -> str:
        """A Redirect-binding AuthnRequest URL (pysaml2 signs it when the SP is so set)."""
        request_id, info = self.client.prepare_for_authenticate(
            entityid=idp_entity_id,
            relay_state=relay_state,
            binding=BINDING_HTTP_REDIRECT,
            sigalg=SIG_RSA_SHA256,
            digest_alg=DIGEST_SHA256,
            **options,
        )
        self.outstanding[request_id] = "/"
        return dict(info["headers"])["Location"]

    def post_request(self, idp_entity_id: str, *, relay_state: str = "", **options: Any):
        """A POST-binding AuthnRequest: (the IdP's URL, the form's fields)."""
        request_id, info = self.client.prepare_for_authenticate(
            entityid=idp_entity_id,
            relay_state=relay_state,
            binding=BINDING_HTTP_POST,
            sigalg=SIG_RSA_SHA256,
            digest_alg=DIGEST_SHA256,
            **options,
        )
        self.outstanding[request_id] = "/"
        return read_form(info["data"], form_id=None)

    def read_response(self, saml_response: str, *, unsolicited: bool = False):
        """pysaml2's verdict on a Response: an AuthnResponse, or its exception raised."""
        return self.client.parse_authn_request_response(
            saml_response,
            BINDING_HTTP_POST,
            outstanding=None if unsolicited else self.outstanding,
        )


def saml_form(html: str) -> tuple[str, dict[str, str]]:
    """The auto-submitted form our IdP answers with: (its action, its fields)."""
    return read_form(html, form_id=None)


def redirect_message(location: str) -> bytes:
    """The XML a Redirect-binding URL carries."""
    query = parse_qs(urlsplit(location).query)
    value = (query.get("SAMLRequest") or query["SAMLResponse"])[0]
    return zlib.decompress(base64.b64decode(value), -15)


def make_sp(
    directory: Path,
    idp_metadata: str,
    *,
    entity_id: str = "https://sp.test/metadata",
    sign_requests: bool = False,
    encryption: bool = False,
    name_id_format: str | None = None,
    extra_entity_attributes: list[dict[str, Any]] | None = None,
) -> TestSp:
    """A pysaml2 SP that trusts ``idp_metadata`` (our IdP's)."""
    directory.mkdir(parents=True, exist_ok=True)
    key, cert = key_pair("sp.test").write(directory, "sp")
    base = entity_id.rsplit("/", 1)[0]
    idp_file = directory / "idp.xml"
    idp_file.write_text(idp_metadata)
    sp_settings: dict[str, Any] = {
        "endpoints": {
            "assertion_consumer_service": [(base + "/acs", BINDING_HTTP_POST)],
            "single_logout_service": [(base + "/slo", BINDING_HTTP_REDIRECT)],
        },
        "authn_requests_signed": sign_requests,
        "logout_requests_signed": True,
        "want_assertions_signed": True,
        "want_response_signed": True,
        "allow_unsolicited": True,
        "signing_algorithm": SIG_RSA_SHA256,
        "digest_algorithm": DIGEST_SHA256,
    }
    if name_id_format:
        sp_settings["name_id_format"] = [name_id_format]
    config: dict[str, Any] = {
        "entityid": entity_id,
        "key_file": str(key),
        "cert_file": str(cert),
        "xmlsec_binary": get_xmlsec_binary(),
        "metadata": {"local": [str(idp_file)]},
        "service": {"sp": sp_settings},
        "allow_unknown_attributes": True,
    }
    if encryption:
        config["encryption_keypairs"] = [{"key_file": str(key), "cert_file": str(cert)}]
    if extra_entity_attributes:
        config["entity_attributes"] = extra_entity_attributes
    sp_config = SPConfig()
    sp_config.load(config)
    metadata = str(entity_descriptor(sp_config))
    return TestSp(entity_id=entity_id, client=Saml2Client(config=sp_config), metadata_xml=metadata)


def logout_request(
    sp: TestSp,
    *,
    name_id: Any,
    session_index: str,
    binding: str = BINDING_HTTP_REDIRECT,
    sign: bool = True,
    relay_state: str = "",
    destination: str = "https://sso.test/saml/slo/redirect",
) -> Any:
    """An SP's LogoutRequest: a URL (Redirect) or (URL, fields) (POST), signed unless told."""
    client = sp.client
    post = binding == BINDING_HTTP_POST
    _, request = client.create_logout_request(
        destination,
        "https://sso.test/saml/metadata",
        name_id=name_id,
        session_indexes=[session_index],
        sign=sign and post,
        sign_alg=SIG_RSA_SHA256,
        digest_alg=DIGEST_SHA256,
    )
    info = client.apply_binding(
        binding,
        str(request),
        destination,
        relay_state=relay_state,
        sign=sign and not post,
        sigalg=SIG_RSA_SHA256,
    )
    if post:
        return read_form(info["data"], form_id=None)
    return dict(info["headers"])["Location"]
