"""Our identity provider as pysaml2 sees it: its configuration, its crypto, the SPs it knows.

pysaml2 writes our metadata and stands for the crypto backend interface (in-process by
default, ``xmlsec1`` on request). The SPs' messages are read by sso.protocols.saml.requests
and ours built by sso.protocols.saml.messages, with lxml. What pysaml2 keeps in memory by
default lives elsewhere here: SP metadata comes from the database registry, persistent NameIDs
and seen message IDs are tables (sso.protocols.saml.models).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.config import IdPConfig
from saml2.metadata import entity_descriptor, sign_entity_descriptor
from saml2.server import Server
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

from sso.config import Settings
from sso.protocols.saml.attributes import attribute_converter
from sso.protocols.saml.crypto import install, make_crypto_backend
from sso.protocols.saml.nameid import SUPPORTED
from sso.security.keys import SigningKeys

SSO_REDIRECT = "saml/sso/redirect"
SSO_POST = "saml/sso/post"
SLO_REDIRECT = "saml/slo/redirect"
SLO_POST = "saml/slo/post"
METADATA = "saml/metadata"


def idp_entity_id(settings: Settings) -> str:
    """Our entityID: the setting, else the metadata URL (Shibboleth's habit of a resolvable ID)."""
    return settings.saml_entity_id or settings.url(METADATA)


def idp_scope(settings: Settings) -> str:
    """The scope of ePPN and scoped affiliations: the setting, else our public host name."""
    return settings.saml_scope or (urlsplit(settings.base_url).hostname or "localhost")


def _config(settings: Settings, keys: SigningKeys) -> IdPConfig:
    endpoints = {
        "single_sign_on_service": [
            (settings.url(SSO_REDIRECT), BINDING_HTTP_REDIRECT),
            (settings.url(SSO_POST), BINDING_HTTP_POST),
        ],
        "single_logout_service": [
            (settings.url(SLO_REDIRECT), BINDING_HTTP_REDIRECT),
            (settings.url(SLO_POST), BINDING_HTTP_POST),
        ],
    }
    ui_info: dict = {"display_name": [{"text": settings.saml_name, "lang": "fr"}]}
    if settings.saml_logo_url:
        ui_info["logo"] = {"text": settings.saml_logo_url, "width": "80", "height": "60"}
    config = {
        "entityid": idp_entity_id(settings),
        # pysaml2 would look for the xmlsec1 program at start for its default backend; ours is
        # installed right after (sso.protocols.saml.crypto), so name the one that needs nothing.
        "crypto_backend": "XMLSecurity",
        "key_file": str(keys.key_file),
        "cert_file": str(keys.cert_file),
        "encryption_keypairs": [{"key_file": str(keys.key_file), "cert_file": str(keys.cert_file)}],
        "additional_cert_files": [str(keys.next_cert_file)] if keys.next_cert_file else None,
        "valid_for": settings.saml_metadata_valid_days * 24,
        "accepted_time_diff": 180,
        "allow_unknown_attributes": True,
        "service": {
            "idp": {
                "name": settings.saml_name,
                "endpoints": endpoints,
                "name_id_format": list(SUPPORTED),
                # Checked by us (requests.py), not by pysaml2, which would refuse every
                # Redirect-binding signature (it wants them passed in, and checks them over
                # re-encoded values); metadata_document publishes the setting.
                "want_authn_requests_signed": False,
                "scope": [idp_scope(settings)],
                "ui_info": ui_info,
                "signing_algorithm": SIG_RSA_SHA256,
                "digest_algorithm": DIGEST_SHA256,
                "subject_data": ("dict", None),
            }
        },
    }
    idp_config = IdPConfig()
    idp_config.load(config)
    idp_config.attribute_converters = [attribute_converter()]
    return idp_config


class IdentityProvider:
    """One worker's pysaml2 Server, with our keys and backend, and the SPs loaded into it."""

    def __init__(self, settings: Settings, keys: SigningKeys) -> None:
        self.settings = settings
        self.keys = keys
        self.entity_id = idp_entity_id(settings)
        self.scope = idp_scope(settings)
        config = _config(settings, keys)
        self.server = Server(config=config)
        self.crypto = make_crypto_backend(settings.saml_crypto_backend)
        install(self.server, self.crypto)
        self._metadata: tuple[float, bytes] | None = None

    def metadata_document(self, now: float) -> bytes:
        """Our metadata (SAML metadata 2.4.3), signed when the setting says so; rebuilt hourly,
        so that validUntil moves forward."""
        cached = self._metadata
        if cached is not None and now - cached[0] < 3600:
            return cached[1]
        descriptor = entity_descriptor(self.server.config)
        descriptor.cache_duration = "PT1H"
        idpsso = descriptor.idpsso_descriptor
        if idpsso is not None:
            idpsso.want_authn_requests_signed = str(
                self.settings.saml_require_signed_requests
            ).lower()
        if self.settings.saml_sign_metadata:
            signed = sign_entity_descriptor(
                descriptor, None, self.server.sec, sign_alg=SIG_RSA_SHA256, digest_alg=DIGEST_SHA256
            )[1]
            document = signed.encode("utf-8") if isinstance(signed, str) else signed
        else:
            document = descriptor.to_string()
        self._metadata = (now, document)
        return document
