"""SP metadata: what is read from real-looking documents, and every refusal with its reason."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from sso.errors import SsoError
from sso.services.saml_metadata import (
    RESEARCH_AND_SCHOLARSHIP,
    SpMetadataError,
    parse_duration,
    parse_sp_metadata,
)
from tests.support.saml_sp import (
    POST,
    REDIRECT,
    RS,
    key_pair,
    pysaml2_metadata,
    shibboleth_metadata,
    signed,
)

NOW = dt.datetime(2026, 12, 3, 12, 0, tzinfo=dt.UTC)


def refused(document: str | bytes, code: str, **options: object) -> str:
    with pytest.raises(SpMetadataError) as caught:
        parse_sp_metadata(document, **options)  # type: ignore[arg-type]
    assert caught.value.code == code, caught.value.message
    return caught.value.message


# -- what is read --------------------------------------------------------------------------


def test_metadata_generated_by_pysaml2(tmp_path: Path) -> None:
    metadata = parse_sp_metadata(pysaml2_metadata(tmp_path))

    assert metadata.entity_id == "https://sp.pysaml2.test/metadata"
    assert [(a.binding, a.location, a.index) for a in metadata.assertion_consumer_services] == [
        (POST, "https://sp.pysaml2.test/acs/post", 1)
    ]
    assert [(s.binding, s.location) for s in metadata.single_logout_services] == [
        (REDIRECT, "https://sp.pysaml2.test/slo")
    ]
    assert metadata.authn_requests_signed and metadata.want_assertions_signed
    assert metadata.name_id_formats == ("urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",)
    assert len(metadata.signing_certs) == 1 and len(metadata.encryption_certs) == 1
    assert metadata.signing_certs[0].startswith("-----BEGIN CERTIFICATE-----\n")
    assert [a.friendly_name for a in metadata.requested_attributes] == ["mail"]
    assert metadata.requested_attributes[0].required
    # No mdui:DisplayName: the organisation's display name stands in.
    assert metadata.display_name("fr") == "pysaml2 test organisation"
    assert not metadata.signed and metadata.valid_until is None


def test_shibboleth_style_metadata() -> None:
    keys = key_pair()
    metadata = parse_sp_metadata(
        shibboleth_metadata(
            keys=keys,
            categories=(RS, "http://refeds.org/category/code-of-conduct"),
            subject_id="pairwise-id",
            cache_duration="PT6H",
            valid_until=NOW + dt.timedelta(days=7),
        ),
        now=NOW,
    )

    assert metadata.entity_id == "https://sp.univ-test.fr/shibboleth"
    assert metadata.display_names == {"fr": "Plateforme de test", "en": "Test platform"}
    assert metadata.display_name("en") == "Test platform"
    assert metadata.display_name("de") == "Test platform"  # English when the language lacks
    assert metadata.organization_names == {"fr": "Université de test"}
    assert [a.index for a in metadata.assertion_consumer_services] == [1, 2]
    assert metadata.default_acs().binding == POST
    # A KeyDescriptor without use="..." serves signing and encryption (metadata 2.4.1.1).
    assert metadata.signing_certs == metadata.encryption_certs
    assert keys.cert_base64[:40] in metadata.signing_certs[0].replace("\n", "")
    assert metadata.entity_categories[0] == RESEARCH_AND_SCHOLARSHIP
    assert metadata.research_and_scholarship
    assert metadata.subject_id_requirement == "pairwise-id"
    assert metadata.cache_duration == dt.timedelta(hours=6)
    assert metadata.valid_until == NOW + dt.timedelta(days=7)
    assert not metadata.authn_requests_signed


def test_entities_descriptor_holding_one_entity_accepted() -> None:
    inner = shibboleth_metadata().split("?>", 1)[1]
    wrapped = (
        '<md:EntitiesDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" '
        f'validUntil="2026-12-04T00:00:00Z">{inner}</md:EntitiesDescriptor>'
    )

    metadata = parse_sp_metadata(wrapped, now=NOW)

    assert metadata.entity_id == "https://sp.univ-test.fr/shibboleth"
    assert metadata.valid_until == dt.datetime(2026, 12, 4, tzinfo=dt.UTC)  # from the wrapper


def test_default_acs_follows_is_default() -> None:
    document = shibboleth_metadata().replace('index="2"', 'index="2" isDefault="true"')

    assert parse_sp_metadata(document).default_acs().index == 2


def test_http_acs_on_loopback_allowed_for_tests_and_demo() -> None:
    document = shibboleth_metadata(acs="http://127.0.0.1:8081/Shibboleth.sso/SAML2/POST")

    assert parse_sp_metadata(document).default_acs().location.startswith("http://127.0.0.1")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PT6H", dt.timedelta(hours=6)),
        ("P1D", dt.timedelta(days=1)),
        ("P1DT12H30M", dt.timedelta(days=1, hours=12, minutes=30)),
        ("PT90.5S", dt.timedelta(seconds=90.5)),
        ("P1W", dt.timedelta(days=7)),
    ],
)
def test_durations(text: str, expected: dt.timedelta) -> None:
    assert parse_duration(text) == expected


# -- refusals ------------------------------------------------------------------------------


def test_errors_are_sso_errors() -> None:
    assert issubclass(SpMetadataError, SsoError)


@pytest.mark.parametrize("document", ["", "this is not XML", "<md:EntityDescriptor", "{}"])
def test_not_xml(document: str) -> None:
    assert "not well-formed XML" in refused(document, "not_xml")


def test_external_entity_refused() -> None:
    xxe = (
        '<?xml version="1.0"?><!DOCTYPE md [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
        '<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" '
        'entityID="&xxe;"/>'
    )

    assert refused(xxe, "doctype") == "the metadata carries a DOCTYPE, which SAML forbids"


def test_billion_laughs_refused() -> None:
    entities = '<!ENTITY lol "lol">' + "".join(
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10 if i else "&lol;" * 10}">' for i in range(9)
    )
    bomb = f"<!DOCTYPE lolz [{entities}]><lolz>&lol8;</lolz>"

    assert "DOCTYPE" in refused(bomb, "doctype")


def test_doctype_hidden_in_utf16_refused() -> None:
    document = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE x><x/>'.encode("utf-16")

    assert "DOCTYPE" in refused(document, "doctype")


@pytest.mark.parametrize(
    ("document", "named"),
    [
        ("<html><body>Not found</body></html>", "'html'"),
        ('<EntityDescriptor entityID="https://x/"/>', "'EntityDescriptor'"),  # no namespace
        (
            '<md:IDPSSODescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata"/>',
            "'IDPSSODescriptor'",
        ),
    ],
)
def test_wrong_root(document: str, named: str) -> None:
    message = refused(document, "wrong_root")

    assert named in message and "not md:EntityDescriptor" in message


def test_entities_descriptor_with_two_entities_refused() -> None:
    one = shibboleth_metadata().split("?>", 1)[1]
    two = shibboleth_metadata("https://other.test/sp").split("?>", 1)[1]
    document = (
        '<md:EntitiesDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata">'
        f"{one}{two}</md:EntitiesDescriptor>"
    )

    assert "exactly one EntityDescriptor here, not 2" in refused(document, "wrong_root")


def test_identity_provider_metadata_refused() -> None:
    document = (
        '<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" '
        'entityID="https://idp.test/idp"><md:IDPSSODescriptor '
        'protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"/>'
        "</md:EntityDescriptor>"
    )

    assert "no SPSSODescriptor" in refused(document, "no_sp")


def test_saml1_only_sp_refused() -> None:
    document = shibboleth_metadata().replace(
        "urn:oasis:names:tc:SAML:2.0:protocol urn:oasis:names:tc:SAML:1.1:protocol",
        "urn:oasis:names:tc:SAML:1.1:protocol",
    )

    assert "supports SAML 2.0" in refused(document, "no_sp")


def test_no_entity_id_refused() -> None:
    document = shibboleth_metadata().replace('entityID="https://sp.univ-test.fr/shibboleth"', "")

    assert refused(document, "no_entity_id") == "the EntityDescriptor has no entityID"


def test_no_assertion_consumer_service_refused() -> None:
    message = refused(shibboleth_metadata(acs=None), "no_acs")

    assert message == "the SPSSODescriptor has no AssertionConsumerService"


@pytest.mark.parametrize(
    "acs", ["http://sp.univ-test.fr/Shibboleth.sso/SAML2/POST", "javascript:alert(1)//POST"]
)
def test_acs_not_https_refused(acs: str) -> None:
    message = refused(shibboleth_metadata(acs=acs), "acs_not_https")

    assert message == f"the AssertionConsumerService {acs!r} is not an https:// URL"


def test_expired_metadata_refused() -> None:
    document = shibboleth_metadata(valid_until=NOW - dt.timedelta(minutes=1))

    message = refused(document, "expired", now=NOW)

    assert message == "the metadata expired on 2026-12-03T11:59:00+00:00 (validUntil)"
    # A stored copy is read without the check; its user looks at valid_until itself.
    assert parse_sp_metadata(document, now=NOW, check_expiry=False).valid_until < NOW


def test_oversized_metadata_refused() -> None:
    document = shibboleth_metadata()

    assert "larger than 1000 bytes" in refused(document, "too_large", max_bytes=1000)


def test_bad_subject_id_requirement_refused() -> None:
    document = shibboleth_metadata(subject_id="everything")

    assert "'everything' is not one of subject-id, pairwise-id, any, none" in refused(
        document, "bad_subject_id"
    )


def test_bad_cache_duration_refused() -> None:
    assert "is not an xs:duration" in refused(
        shibboleth_metadata(cache_duration="6 hours"), "bad_value"
    )


def test_bad_acs_index_refused() -> None:
    document = shibboleth_metadata().replace('index="1"', 'index="one"')

    assert "index is not a number" in refused(document, "bad_endpoint")


# -- signatures ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def federation() -> object:
    """The key that signs the metadata (an SP's own, or its federation's)."""
    return key_pair("federation.test")


def test_signed_metadata_accepted_with_its_certificate(federation) -> None:  # noqa: ANN001
    document = signed(shibboleth_metadata(), federation)

    metadata = parse_sp_metadata(document, signing_cert=federation.cert_pem)

    assert metadata.signed and metadata.entity_id == "https://sp.univ-test.fr/shibboleth"


def test_unsigned_metadata_refused_when_a_signature_is_required(federation) -> None:  # noqa: ANN001
    message = refused(shibboleth_metadata(), "unsigned", signing_cert=federation.cert_pem)

    assert message == "the metadata is not signed, and a signature is required for this SP"


def test_metadata_signed_by_another_key_refused(federation) -> None:  # noqa: ANN001
    document = signed(shibboleth_metadata(), key_pair("attacker.test"))

    message = refused(document, "bad_signature", signing_cert=federation.cert_pem)

    assert message.startswith("the metadata signature is not valid with the required certificate")


def test_metadata_changed_after_signing_refused(federation) -> None:  # noqa: ANN001
    document = signed(shibboleth_metadata(), federation).replace(
        "Shibboleth.sso/SAML2/POST", "Shibboleth.sso/SAML2/EVIL"
    )

    refused(document, "bad_signature", signing_cert=federation.cert_pem)


def test_signature_wrapping_reads_only_the_verified_element(federation) -> None:  # noqa: ANN001
    """A signed entity moved inside an evil wrapper: the signature no longer covers the root."""
    good = signed(shibboleth_metadata(), federation)
    assert not good.startswith("<?xml")
    evil = (
        '<md:EntitiesDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata">'
        f"{good}</md:EntitiesDescriptor>"
    )

    refused(evil, "unsigned", signing_cert=federation.cert_pem)
