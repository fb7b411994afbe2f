"""The SAML SP registry: registration and approval, policy, clashes, the per-worker cache, and
refresh from a real HTTP server on loopback (good, broken, expired, re-signed metadata)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import Engine, update

from sso.db import make_engine, utcnow
from sso.services.saml_metadata import SpMetadataError
from sso.services.saml_models import SamlServiceProviderRow
from sso.services.saml_registry import (
    EntityIdClash,
    SamlSpRegistry,
    SamlSpRegistryError,
    check_metadata_url,
)
from sso.services.saml_release import RESEARCH_AND_SCHOLARSHIP_BUNDLE, release, release_for
from tests.support.saml_sp import (
    RS,
    KeyPair,
    MetadataServer,
    key_pair,
    shibboleth_metadata,
    signed,
)

SP = "https://sp.univ-test.fr/shibboleth"


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5) as client:
        yield client


@pytest.fixture
def registry(engine: Engine, http: httpx.Client) -> SamlSpRegistry:
    return SamlSpRegistry(
        engine, cache_seconds=0, http=http, refresh_seconds=3600, min_refresh_seconds=60
    )


@pytest.fixture
def server() -> Iterator[MetadataServer]:
    with MetadataServer().running() as running:
        yield running


@pytest.fixture(scope="module")
def federation() -> KeyPair:
    return key_pair("federation.test")


# -- registration and approval -------------------------------------------------------------


def test_registration_waits_for_approval(registry: SamlSpRegistry) -> None:
    sp = registry.register(shibboleth_metadata(), contact="admin@univ-test.fr")

    assert (sp.entity_id, sp.status, sp.name) == (SP, "pending", "Plateforme de test")
    assert sp.contact == "admin@univ-test.fr" and sp.released_attributes == []
    assert sp.metadata.entity_id == SP and sp.metadata_url is None
    assert registry.approved(SP) is None

    approved = registry.approve(SP, released_attributes=["uid", "mail"])

    assert approved.status == "approved"
    assert registry.approved(SP).released_attributes == ["uid", "mail"]


def test_rejected_sp_is_never_served_and_keeps_its_entity_id(registry: SamlSpRegistry) -> None:
    registry.register(shibboleth_metadata())

    assert registry.reject(SP).status == "rejected"
    assert registry.approved(SP) is None
    with pytest.raises(EntityIdClash, match="is already registered"):
        registry.register(shibboleth_metadata())
    assert registry.remove(SP) and not registry.remove(SP)
    assert registry.register(shibboleth_metadata()).status == "pending"


def test_entity_id_clash(registry: SamlSpRegistry) -> None:
    registry.add(shibboleth_metadata(), released_attributes=["mail"])

    with pytest.raises(EntityIdClash) as caught:
        registry.register(shibboleth_metadata(display_name="Usurpateur"))
    assert caught.value.code == "clash"
    assert caught.value.message == f"the entityID {SP!r} is already registered"
    with pytest.raises(EntityIdClash):
        registry.add(shibboleth_metadata())
    assert registry.get(SP).name == "Plateforme de test"  # nothing overwritten


def test_administrator_replaces_metadata_keeping_the_policy(registry: SamlSpRegistry) -> None:
    registry.add(shibboleth_metadata(), released_attributes=["mail"], name="Moodle")

    sp = registry.add(shibboleth_metadata(display_name="Nouveau nom"), replace=True)

    assert sp.released_attributes == ["mail"] and sp.name == "Nouveau nom"
    assert sp.metadata.display_names["fr"] == "Nouveau nom"


def test_invalid_metadata_stores_nothing(registry: SamlSpRegistry) -> None:
    with pytest.raises(SpMetadataError):
        registry.register(shibboleth_metadata(acs=None))
    with pytest.raises(SpMetadataError, match="either the metadata or its URL"):
        registry.register()

    assert registry.list() == []


def test_bad_contact_refused(registry: SamlSpRegistry) -> None:
    with pytest.raises(SamlSpRegistryError, match="not an email address"):
        registry.register(shibboleth_metadata(), contact="not an address")


def test_unknown_sp_operations(registry: SamlSpRegistry) -> None:
    for operation in (registry.approve, registry.reject):
        with pytest.raises(SamlSpRegistryError, match="no SAML SP"):
            operation("https://nobody.test/")
    with pytest.raises(SamlSpRegistryError):
        registry.set_policy("https://nobody.test/", ["mail"])


# -- release policy ------------------------------------------------------------------------


def test_policy(registry: SamlSpRegistry) -> None:
    registry.add(shibboleth_metadata())
    persistent = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"

    sp = registry.set_policy(SP, ["uid", "supannEtablissement"], persistent, True)

    assert sp.released_attributes == ["uid", "supannEtablissement"]
    assert (sp.name_id_format, sp.encrypt_assertions) == (persistent, True)
    assert release_for(sp) == {"uid", "supannEtablissement"}
    person = {"uid": ["jdupont"], "mail": ["j@ac.fr"], "supannEtablissement": []}
    assert release(sp, person) == {"uid": ["jdupont"]}  # nothing beyond; no empty values
    with pytest.raises(SamlSpRegistryError, match="unknown attribute"):
        registry.set_policy(SP, ["urn:oid:0.9.2342.19200300.100.1.3"])
    with pytest.raises(SamlSpRegistryError, match="unsupported NameID format"):
        registry.set_policy(SP, ["uid"], "urn:example:whatever")


def test_all_attributes(registry: SamlSpRegistry) -> None:
    sp = registry.add(shibboleth_metadata(), released_attributes=["*"])

    assert {"uid", "mail", "supannAliasLogin", "title"} <= release_for(sp)
    assert "*" not in release_for(sp)


def test_research_and_scholarship_bundle(registry: SamlSpRegistry) -> None:
    sp = registry.add(shibboleth_metadata(categories=(RS,)), released_attributes=["uid"])

    assert release_for(sp) == {"uid"} | RESEARCH_AND_SCHOLARSHIP_BUNDLE
    assert "eduPersonPrincipalName" in release_for(sp)
    plain = registry.add(shibboleth_metadata("https://other.test/sp"), released_attributes=["uid"])
    assert release_for(plain) == {"uid"}


# -- the per-worker cache ------------------------------------------------------------------


def test_approved_is_cached_per_worker(engine: Engine) -> None:
    worker = SamlSpRegistry(engine, cache_seconds=3600)
    admin = SamlSpRegistry(engine, cache_seconds=0)
    admin.register(shibboleth_metadata())
    assert worker.approved(SP) is None

    admin.approve(SP, ["mail"])

    assert worker.approved(SP) is None  # another worker's change: seen after cache_seconds
    worker.invalidate()
    assert worker.approved(SP).released_attributes == ["mail"]
    admin.set_policy(SP, ["uid"])
    assert worker.approved(SP).released_attributes == ["mail"]
    worker.invalidate()
    assert worker.approved(SP).released_attributes == ["uid"]


def test_expired_stored_copy_is_not_served(registry: SamlSpRegistry, engine: Engine) -> None:
    registry.add(shibboleth_metadata(valid_until=utcnow() + dt.timedelta(days=1)))
    assert registry.approved(SP) is not None
    expired = shibboleth_metadata(valid_until=utcnow() - dt.timedelta(seconds=1))
    with engine.begin() as conn:  # as if the day had passed with no refresh
        conn.execute(
            update(SamlServiceProviderRow).values(metadata_xml=expired, updated_at=utcnow())
        )

    assert registry.approved(SP) is None
    assert registry.get(SP).status == "approved"


# -- metadata by URL, and its refresh ------------------------------------------------------


def test_registration_by_url(registry: SamlSpRegistry, server: MetadataServer) -> None:
    server.serve(shibboleth_metadata(cache_duration="PT10M"))
    before = utcnow()

    sp = registry.register(metadata_url=server.url)

    assert sp.metadata_url == server.url and sp.status == "pending"
    assert (
        before + dt.timedelta(minutes=10)
        <= sp.next_refresh_at
        <= utcnow() + dt.timedelta(minutes=10)
    )


def test_public_registration_refuses_private_and_plain_http_urls(
    registry: SamlSpRegistry, server: MetadataServer
) -> None:
    server.serve(shibboleth_metadata())

    with pytest.raises(SpMetadataError, match="must be an https:// URL"):
        registry.register(metadata_url=server.url, public=True)
    with pytest.raises(SpMetadataError, match="non-public address"):
        check_metadata_url("https://127.0.0.1:8443/metadata", public=True)
    with pytest.raises(SpMetadataError, match="non-public address"):
        check_metadata_url("https://[::1]/metadata", public=True)
    with pytest.raises(SpMetadataError, match="not an http"):
        check_metadata_url("file:///etc/passwd", public=False)
    assert server.requests == 0


def test_fetch_failures(registry: SamlSpRegistry, server: MetadataServer) -> None:
    server.serve(b"gone", status=404)
    with pytest.raises(SpMetadataError, match="answered HTTP 404, not 200"):
        registry.register(metadata_url=server.url)
    server.serve(b"<x/>" * 300_000)
    with pytest.raises(SpMetadataError, match="larger than"):
        registry.register(metadata_url=server.url)
    with pytest.raises(SpMetadataError, match="cannot fetch"):
        registry.register(metadata_url="http://127.0.0.1:9/metadata")
    assert registry.list() == []


def _row(engine: Engine) -> SamlServiceProviderRow:
    from sqlalchemy import select

    with engine.connect() as conn:
        return conn.execute(select(SamlServiceProviderRow)).one()


def test_refresh_keeps_the_last_good_copy(
    registry: SamlSpRegistry,
    server: MetadataServer,
    federation: KeyPair,
    engine: Engine,
    caplog: pytest.LogCaptureFixture,
) -> None:
    good = signed(shibboleth_metadata(cache_duration="PT10M"), federation)
    server.serve(good)
    start = utcnow()
    registry.add(
        metadata_url=server.url,
        signing_cert=federation.cert_pem.decode(),
        released_attributes=["uid"],
    )
    assert registry.refresh_due(now=start) == []  # cacheDuration not over
    first_next = _row(engine).next_refresh_at
    assert first_next == pytest.approx(
        start + dt.timedelta(minutes=10), abs=dt.timedelta(seconds=5)
    )

    # Same document: refreshed, nothing changed.
    moment = start + dt.timedelta(minutes=11)
    [report] = registry.refresh_due(now=moment)
    assert report.ok and not report.changed and report.error is None
    assert report.next_refresh_at == moment + dt.timedelta(minutes=10)

    failures = {
        "not_xml": b"<html>maintenance",
        "expired": signed(
            shibboleth_metadata(valid_until=moment, display_name="Expirée"), federation
        ),
        "bad_signature": signed(shibboleth_metadata(display_name="Pirate"), key_pair("evil")),
        "unsigned": shibboleth_metadata(display_name="Sans signature"),
        "entity_id_changed": signed(shibboleth_metadata("https://other.test/sp"), federation),
        "new_category": signed(shibboleth_metadata(categories=(RS,)), federation),
    }
    for number, (code, document) in enumerate(failures.items(), start=1):
        moment = moment + dt.timedelta(hours=1)
        server.serve(document)
        [report] = registry.refresh_due(now=moment)
        assert not report.ok, code
        assert report.next_refresh_at == moment + dt.timedelta(seconds=60)  # retry at the floor
        row = _row(engine)
        assert row.last_error == report.error and row.metadata_xml == good, code
        assert registry.approved(SP).metadata.display_names["fr"] == "Plateforme de test"
        assert server.requests == 2 + number
    assert "metadata refresh of SAML SP" in caplog.text
    server.serve(b"", status=503)
    [report] = registry.refresh_due(now=moment + dt.timedelta(hours=1))
    assert "answered HTTP 503" in report.error

    # Re-signed, new content, a longer cacheDuration bounded by refresh_seconds.
    resigned = signed(
        shibboleth_metadata(display_name="Version 2", cache_duration="P1D"), federation
    )
    server.serve(resigned)
    moment = moment + dt.timedelta(hours=2)
    [report] = registry.refresh_due(now=moment)
    assert report.ok and report.changed
    assert report.next_refresh_at == moment + dt.timedelta(seconds=3600)
    row = _row(engine)
    assert row.metadata_xml == resigned and row.last_error is None
    assert row.last_refreshed_at == moment
    assert registry.approved(SP).metadata.display_names["fr"] == "Version 2"
    assert registry.approved(SP).released_attributes == ["uid"]  # the policy stays


def test_refresh_before_valid_until(registry: SamlSpRegistry, server: MetadataServer) -> None:
    now = utcnow()
    server.serve(shibboleth_metadata(valid_until=now + dt.timedelta(minutes=20)))

    sp = registry.add(metadata_url=server.url)

    # Three quarters of the way to validUntil, not an hour later when it would be expired.
    assert sp.next_refresh_at == pytest.approx(
        now + dt.timedelta(minutes=15), abs=dt.timedelta(seconds=5)
    )


def test_one_worker_refreshes_each_due_sp(
    engine: Engine, server: MetadataServer, http: httpx.Client
) -> None:
    workers = [SamlSpRegistry(engine, 0, http=http, min_refresh_seconds=60) for _ in range(2)]
    server.serve(shibboleth_metadata(cache_duration="PT5M"))
    workers[0].add(metadata_url=server.url)
    later = utcnow() + dt.timedelta(minutes=6)

    reports = workers[0].refresh_due(now=later) + workers[1].refresh_due(now=later)

    assert len(reports) == 1 and server.requests == 2


def test_pending_sps_are_not_refreshed(registry: SamlSpRegistry, server: MetadataServer) -> None:
    server.serve(shibboleth_metadata(cache_duration="PT5M"))
    registry.register(metadata_url=server.url)

    assert registry.refresh_due(now=utcnow() + dt.timedelta(days=1)) == []
    assert server.requests == 1
