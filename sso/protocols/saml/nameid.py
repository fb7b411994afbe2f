"""NameIDs (SAML core 8.3): which format an SP gets, and the persistent values in the database."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import IntegrityError

from sso.protocols.saml.errors import InvalidNameIdPolicy
from sso.protocols.saml.models import PersistentNameIdRow

TRANSIENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"
PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
EMAIL = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
UNSPECIFIED = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"
SUPPORTED = (TRANSIENT, PERSISTENT, EMAIL, UNSPECIFIED)


@dataclass(frozen=True)
class NameIdChoice:
    """What the SP asked for in its NameIDPolicy (absent fields: None)."""

    format: str | None = None
    allow_create: bool = True
    sp_name_qualifier: str | None = None


@dataclass(frozen=True)
class IssuedNameId:
    """The NameID that goes into the assertion."""

    value: str
    format: str
    name_qualifier: str | None
    sp_name_qualifier: str | None


def choose_format(requested: str | None, override: str | None, listed: Sequence[str]) -> str:
    """The NameID format for one response.

    An explicit request wins (core 3.4.1.1) when we support it; "unspecified" or no request
    leaves the choice to us: the administrator's per-SP setting, else the first supported
    format the SP lists in its metadata, else transient, as Shibboleth does.
    """
    if requested and requested != UNSPECIFIED:
        if requested not in SUPPORTED:
            raise InvalidNameIdPolicy(f"NameID format {requested} is not supported")
        return requested
    if override in SUPPORTED and override != UNSPECIFIED:
        return override
    for listed_format in listed:
        if listed_format in SUPPORTED and listed_format != UNSPECIFIED:
            return listed_format
    return TRANSIENT


class NameIds:
    """Issues NameIDs; persistent ones are stored, random and pairwise per SP."""

    def __init__(self, engine: Engine, idp_entity_id: str) -> None:
        self._engine = engine
        self._idp = idp_entity_id

    def persistent_value(self, sp_entity_id: str, subject: str, *, create: bool = True) -> str:
        """The person's persistent identifier at this SP, created on first use."""
        table = PersistentNameIdRow.__table__
        query = select(table.c.value).where(
            table.c.sp_entity_id == sp_entity_id, table.c.subject == subject
        )
        with self._engine.connect() as conn:
            value = conn.scalar(query)
        if value is not None or not create:
            if value is None:
                raise InvalidNameIdPolicy(
                    "no persistent identifier exists and AllowCreate is false"
                )
            return value
        try:
            with self._engine.begin() as conn:
                conn.execute(
                    insert(table).values(
                        sp_entity_id=sp_entity_id, subject=subject, value=secrets.token_hex(20)
                    )
                )
        except IntegrityError:
            pass  # another worker created it at the same moment: theirs is the one
        with self._engine.connect() as conn:
            return conn.scalar(query)

    def issue(
        self,
        name_format: str,
        sp_entity_id: str,
        subject: str,
        attributes: dict[str, list[str]],
        choice: NameIdChoice,
    ) -> IssuedNameId:
        """The NameID of ``subject`` for ``sp_entity_id`` in ``name_format``."""
        if choice.sp_name_qualifier not in (None, "", sp_entity_id):
            # SPNameQualifier naming an affiliation: we define none (core 3.4.1.1).
            raise InvalidNameIdPolicy("SPNameQualifier names no affiliation we know")
        if name_format == EMAIL:
            mails = attributes.get("mail") or []
            if not mails:
                raise InvalidNameIdPolicy("this account has no e-mail address")
            return IssuedNameId(mails[0], EMAIL, None, None)
        if name_format == PERSISTENT:
            value = self.persistent_value(sp_entity_id, subject, create=choice.allow_create)
            return IssuedNameId(value, PERSISTENT, self._idp, sp_entity_id)
        # Transient: a new random value each time, meaningful only within this session.
        return IssuedNameId("_" + secrets.token_hex(20), TRANSIENT, self._idp, sp_entity_id)
