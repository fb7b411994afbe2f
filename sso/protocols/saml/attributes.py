"""Attributes released to SAML service providers: names on the wire, values, release policy.

SAML 2.0 attributes go out under their ``urn:oid`` names with the ``uri`` NameFormat and
their LDAP name as FriendlyName, as the eduPerson (REFEDS) and SupAnn (RENATER) SAML profiles
and Shibboleth's default attribute-map do. The map is ours, shipped here, rather than
pysaml2's ``saml_uri`` map, which has no SupAnn names.
"""

from __future__ import annotations

from collections.abc import Iterable

from saml2.attribute_converter import AttributeConverter

NAME_FORMAT_URI = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"
SUBJECT_ID = "urn:oasis:names:tc:SAML:attribute:subject-id"
PAIRWISE_ID = "urn:oasis:names:tc:SAML:attribute:pairwise-id"

# LDAP name -> SAML 2.0 name.
SAML_NAMES: dict[str, str] = {
    "uid": "urn:oid:0.9.2342.19200300.100.1.1",
    "mail": "urn:oid:0.9.2342.19200300.100.1.3",
    "cn": "urn:oid:2.5.4.3",
    "sn": "urn:oid:2.5.4.4",
    "givenName": "urn:oid:2.5.4.42",
    "title": "urn:oid:2.5.4.12",
    "displayName": "urn:oid:2.16.840.1.113730.3.1.241",
    "eduPersonAffiliation": "urn:oid:1.3.6.1.4.1.5923.1.1.1.1",
    "eduPersonPrimaryAffiliation": "urn:oid:1.3.6.1.4.1.5923.1.1.1.5",
    "eduPersonPrincipalName": "urn:oid:1.3.6.1.4.1.5923.1.1.1.6",
    "eduPersonEntitlement": "urn:oid:1.3.6.1.4.1.5923.1.1.1.7",
    "eduPersonScopedAffiliation": "urn:oid:1.3.6.1.4.1.5923.1.1.1.9",
    "schacHomeOrganization": "urn:oid:1.3.6.1.4.1.25178.1.2.9",
    "supannListeRouge": "urn:oid:1.3.6.1.4.1.7135.1.2.1.1",
    "supannCivilite": "urn:oid:1.3.6.1.4.1.7135.1.2.1.4",
    "supannEntiteAffectation": "urn:oid:1.3.6.1.4.1.7135.1.2.1.8",
    "supannEtablissement": "urn:oid:1.3.6.1.4.1.7135.1.2.1.14",
    "supannAliasLogin": "urn:oid:1.3.6.1.4.1.7135.1.2.1.20",
    "supannRole": "urn:oid:1.3.6.1.4.1.7135.1.2.1.21",
    "supannEmpCorps": "urn:oid:1.3.6.1.4.1.7135.1.2.1.35",
    # SAML V2.0 Subject Identifier Attributes Profile: the names are the URNs themselves.
    "subject-id": SUBJECT_ID,
    "pairwise-id": PAIRWISE_ID,
}

# eduPerson affiliations (eduPerson 202208, 2.2.1); ours are mapped onto them when scoping.
EDUPERSON_AFFILIATIONS = frozenset(
    {"faculty", "student", "staff", "alum", "member", "affiliate", "employee", "library-walk-in"}
)
# Our import's affiliations that are not eduPerson values (the academies' vocabulary).
AFFILIATION_ALIASES = {"teacher": "faculty", "enseignant": "faculty", "researcher": "faculty"}
# Affiliations that imply "member" (eduPerson 2.2.1: faculty, staff, student, employee).
MEMBER_AFFILIATIONS = frozenset({"faculty", "staff", "student", "employee"})


def attribute_converter() -> AttributeConverter:
    """pysaml2's converter between our LDAP names and the SAML 2.0 names above."""
    converter = AttributeConverter(NAME_FORMAT_URI)
    converter.from_dict(
        {
            "identifier": NAME_FORMAT_URI,
            "to": dict(SAML_NAMES),
            "fro": {saml: ldap for ldap, saml in SAML_NAMES.items()},
        }
    )
    return converter


def _affiliations(values: Iterable[str]) -> list[str]:
    result: list[str] = []
    for value in values:
        affiliation = AFFILIATION_ALIASES.get(value.lower(), value.lower())
        if affiliation in EDUPERSON_AFFILIATIONS and affiliation not in result:
            result.append(affiliation)
    if any(a in MEMBER_AFFILIATIONS for a in result) and "member" not in result:
        result.append("member")
    return result


def derived_attributes(attributes: dict[str, list[str]], scope: str) -> dict[str, list[str]]:
    """The account's attributes plus those computed for SAML: scoped identifiers
    (eduPersonPrincipalName, subject-id as ``uid@scope``), eduPerson affiliations, the SupAnn
    login alias. Values the account already carries are kept."""
    derived = {name: list(values) for name, values in attributes.items()}
    uid = (attributes.get("uid") or [""])[0]
    affiliations = _affiliations(attributes.get("eduPersonAffiliation", []))
    computed: dict[str, list[str]] = {
        "eduPersonAffiliation": affiliations,
        "eduPersonScopedAffiliation": [f"{a}@{scope}" for a in affiliations],
        "schacHomeOrganization": [scope],
    }
    if affiliations:
        computed["eduPersonPrimaryAffiliation"] = [affiliations[0]]
    if uid:
        computed["eduPersonPrincipalName"] = [f"{uid}@{scope}"]
        computed["subject-id"] = [f"{uid}@{scope}"]
        computed["supannAliasLogin"] = [uid]
    if "cn" not in derived and "displayName" in derived:
        computed["cn"] = derived["displayName"]
    for name, values in computed.items():
        if values and (name == "eduPersonAffiliation" or name not in derived):
            derived[name] = values
    return {name: values for name, values in derived.items() if values}


def released(attributes: dict[str, list[str]], allowed: Iterable[str]) -> dict[str, list[str]]:
    """Only the attributes the SP's release policy allows ("*": all), and only those with a
    SAML name (an attribute without one could not be sent under a name the SP can trust)."""
    allowed = set(allowed)
    return {
        name: values
        for name, values in attributes.items()
        if ("*" in allowed or name in allowed) and name in SAML_NAMES
    }
