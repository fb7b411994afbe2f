"""Which of our attributes a SAML SP may receive: its release policy, plus the REFEDS Research
and Scholarship bundle when it carries that entity category.

REFEDS R&S (https://refeds.org/category/research-and-scholarship, "Attribute Release"): a
shared user identifier (eduPersonPrincipalName), a person name (displayName, givenName, sn),
an email address (mail) and, optionally, eduPersonScopedAffiliation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sso.services.saml_metadata import RESEARCH_AND_SCHOLARSHIP

if TYPE_CHECKING:
    from sso.services.saml_registry import SamlServiceProvider

ALL_ATTRIBUTES = "*"
# Our attribute names (LDAP style) a release policy may list; sso.protocols.saml.attributes
# gives each its SAML name. subject-id and pairwise-id are not here: they follow the SP's
# subject-id requirement in its metadata, not a release list.
RELEASABLE_ATTRIBUTES = frozenset(
    {
        "uid",
        "mail",
        "cn",
        "givenName",
        "sn",
        "displayName",
        "title",
        "eduPersonAffiliation",
        "eduPersonPrimaryAffiliation",
        "eduPersonPrincipalName",
        "eduPersonScopedAffiliation",
        "eduPersonEntitlement",
        "schacHomeOrganization",
        "supannEtablissement",
        "supannEntiteAffectation",
        "supannAliasLogin",
        "supannListeRouge",
        "supannCivilite",
        "supannRole",
        "supannEmpCorps",
    }
)
RESEARCH_AND_SCHOLARSHIP_BUNDLE = frozenset(
    {
        "eduPersonPrincipalName",
        "mail",
        "displayName",
        "givenName",
        "sn",
        "eduPersonScopedAffiliation",
    }
)


def unknown_attributes(names: list[str]) -> list[str]:
    """The names of a release list that are neither ours nor ``*`` (typos, SAML names...)."""
    return [n for n in names if n != ALL_ATTRIBUTES and n not in RELEASABLE_ATTRIBUTES]


def release_for(sp: SamlServiceProvider) -> set[str]:
    """The attribute names ``sp`` may receive: nothing beyond its policy, but the R&S bundle
    when its metadata carries the R&S category (``*`` stands for every releasable name)."""
    policy = set(sp.released_attributes)
    names = set(RELEASABLE_ATTRIBUTES) if ALL_ATTRIBUTES in policy else policy
    if RESEARCH_AND_SCHOLARSHIP in sp.metadata.entity_categories:
        names |= RESEARCH_AND_SCHOLARSHIP_BUNDLE
    return names & RELEASABLE_ATTRIBUTES


def release(sp: SamlServiceProvider, attributes: dict[str, list[str]]) -> dict[str, list[str]]:
    """The attributes of one person that go to ``sp``: only released names, only with values."""
    allowed = release_for(sp)
    return {name: values for name, values in attributes.items() if name in allowed and values}
