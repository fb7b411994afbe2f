"""The SAML side's long-lived objects of one worker, kept on ``app.state.saml``."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from starlette.requests import Request

from sso.config import Settings
from sso.protocols.saml.idp import IdentityProvider, idp_scope
from sso.protocols.saml.nameid import NameIds
from sso.protocols.saml.replay import SeenMessages
from sso.security.keys import SigningKeys
from sso.services.saml_registry import SamlSpRegistry


@dataclass
class SamlState:
    """Our IdP, its SP registry, its NameIDs and its replay cache."""

    idp: IdentityProvider
    registry: SamlSpRegistry
    name_ids: NameIds
    seen: SeenMessages


def saml_state(request: Request) -> SamlState:
    """The SAML state of the application serving ``request``."""
    return request.app.state.saml


def build_saml_state(settings: Settings, engine: Engine, registry: SamlSpRegistry) -> SamlState:
    """The SAML state of one worker: keys read (or made at first start), pysaml2 set up."""
    keys = SigningKeys.load_or_create(
        settings.var_dir,
        settings.saml_key_file,
        settings.saml_cert_file,
        settings.saml_next_cert_file,
        common_name=idp_scope(settings),
        key_size=settings.saml_key_size,
    )
    idp = IdentityProvider(settings, keys)
    return SamlState(
        idp=idp,
        registry=registry,
        name_ids=NameIds(engine, idp.entity_id),
        seen=SeenMessages(engine),
    )
