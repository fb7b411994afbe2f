"""The CAS service registry: Apereo-style matching, evaluation order, release, validation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, update

from sso.db import make_engine
from sso.services.models import CasServiceRow
from sso.services.registry import (
    MAX_SERVICE_URL_LENGTH,
    CasService,
    ServiceRegistry,
    ServiceRegistryError,
    canonical_service,
    is_acceptable_service_url,
    same_service,
)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def registry(engine: Engine) -> ServiceRegistry:
    return ServiceRegistry(engine, cache_seconds=0)


def disable(engine: Engine, name: str) -> None:
    with engine.begin() as conn:
        conn.execute(update(CasServiceRow).where(CasServiceRow.name == name).values(enabled=False))


def service(**overrides: Any) -> CasService:
    """A service value, for the pure matching and release rules."""
    values: dict[str, Any] = {
        "id": 1,
        "name": "app",
        "match": "exact",
        "pattern": "https://app.test/cas",
        "evaluation_order": 0,
        "enabled": True,
        "released_attributes": [],
        "logout_url": None,
        "single_logout": True,
        "proxy_callback_pattern": None,
        "accepts_proxy_tickets": True,
        "response_method": "GET",
    }
    values.update(overrides)
    return CasService(**values)


# -- Exact matching ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://app.test/cas?x=1",
        "https://app.test/c%61s?x=1",  # percent-decoded
        "https://app.test/cas%3Fx%3D1",
        "https://app.test/cas?x=1#section",  # fragment dropped
        "https://app.test/cas?x=1#",
        "HTTPS://APP.TEST/CAS?X=1",  # case-insensitive
        "https://App.Test/Cas?x=1",
    ],
)
def test_exact_match(url: str) -> None:
    assert service(pattern="https://app.test/cas?x=1").matches(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://app.test/cas",  # query missing
        "https://app.test/cas?x=2",
        "https://app.test/cas?x=1&y=2",
        "https://app.test/cas?x=1/",
        "http://app.test/cas?x=1",
        "https://app.test:8443/cas?x=1",
        "https://app.test/cas%23?x=1",  # an encoded '#' is not a fragment
        "https://evil.test/?https://app.test/cas?x=1",
        "https://app.test.evil.test/cas?x=1",
    ],
)
def test_exact_match_refuses_anything_else(url: str) -> None:
    assert not service(pattern="https://app.test/cas?x=1").matches(url)


def test_trailing_slash_is_significant() -> None:
    assert not service(pattern="https://x/").matches("https://x")
    assert not service(pattern="https://x").matches("https://x/")
    assert service(pattern="https://x/").matches("https://x/")


def test_canonical_service_and_same_service() -> None:
    assert canonical_service("HTTPS://App.test/a%20b#frag") == "https://app.test/a b"
    assert same_service("https://app.test/cas", "HTTPS://APP.TEST/c%61s#x")
    assert not same_service("https://app.test/cas", "https://app.test/cas/")


# -- Regex matching ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://app.test/",
        "https://app.test/moodle/login/index.php?x=1",
        "HTTPS://APP.TEST/x",
        "https://app.test/x#fragment-ignored",
    ],
)
def test_regex_full_match(url: str) -> None:
    assert service(match="regex", pattern=r"https://app\.test/.*").matches(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.test/?https://app.test/",  # contains a match: partial match refused
        "https://app.test.evil.test/",
        "http://app.test/",
        "xhttps://app.test/",
        "https://app.test",
    ],
)
def test_regex_partial_match_refused(url: str) -> None:
    assert not service(match="regex", pattern=r"https://app\.test/.*").matches(url)


def test_unanchored_regex_still_needs_the_whole_url() -> None:
    rule = service(match="regex", pattern=r"https://app\.test/cas")

    assert rule.matches("https://app.test/cas")
    assert not rule.matches("https://app.test/cas/../../evil")
    assert not rule.matches("https://evil.test/https://app.test/cas")


# -- The registry -----------------------------------------------------------------------------


def test_add_and_match(registry: ServiceRegistry) -> None:
    added = registry.add(
        name="moodle", pattern="https://moodle.test/login", released_attributes=["mail"]
    )

    assert isinstance(added, CasService)
    assert added.name == "moodle" and added.match == "exact" and added.enabled
    assert added.response_method == "GET"
    assert registry.match("https://moodle.test/login") == added
    assert registry.match("https://moodle.test/other") is None
    assert registry.get("moodle") == added
    assert registry.get("nothing") is None


def test_unknown_url_matches_nothing(registry: ServiceRegistry) -> None:
    assert registry.match("https://anything.test/") is None


@pytest.mark.parametrize(
    "url",
    ["", "https://app.test/\n", "https://app.test/\r\nLocation: x", "https://app.test/\x00"],
)
def test_unacceptable_urls_refused_before_matching(registry: ServiceRegistry, url: str) -> None:
    registry.add(name="any", match="regex", pattern=".*")

    assert not is_acceptable_service_url(url)
    assert registry.match(url) is None


def test_overlong_url_refused(registry: ServiceRegistry) -> None:
    registry.add(name="any", match="regex", pattern="https://app\\.test/.*")
    longest = "https://app.test/" + "a" * (MAX_SERVICE_URL_LENGTH - len("https://app.test/"))

    assert registry.match(longest) is not None
    assert registry.match(longest + "a") is None


def test_evaluation_order_first_match_wins(registry: ServiceRegistry) -> None:
    registry.add(name="catch-all", match="regex", pattern=r"https://.*", evaluation_order=100)
    registry.add(name="specific", pattern="https://app.test/cas", evaluation_order=10)

    assert [s.name for s in registry.all()] == ["specific", "catch-all"]
    matched = registry.match("https://app.test/cas")
    assert matched is not None and matched.name == "specific"
    other = registry.match("https://other.test/")
    assert other is not None and other.name == "catch-all"


def test_same_order_ties_broken_by_registration(registry: ServiceRegistry) -> None:
    registry.add(name="first", match="regex", pattern=r"https://app\.test/.*")
    registry.add(name="second", match="regex", pattern=r"https://app\.test/.*")

    matched = registry.match("https://app.test/x")
    assert matched is not None and matched.name == "first"


def test_disabled_service_skipped(registry: ServiceRegistry, engine: Engine) -> None:
    registry.add(name="specific", pattern="https://app.test/cas", evaluation_order=1)
    registry.add(
        name="fallback", match="regex", pattern=r"https://app\.test/.*", evaluation_order=2
    )
    disable(engine, "specific")

    matched = registry.match("https://app.test/cas")
    assert matched is not None and matched.name == "fallback"
    disable(engine, "fallback")
    assert registry.match("https://app.test/cas") is None
    assert [s.enabled for s in registry.all()] == [False, False]  # still listed


def test_remove(registry: ServiceRegistry) -> None:
    registry.add(name="app", pattern="https://app.test/")

    assert registry.remove("app")
    assert registry.match("https://app.test/") is None
    assert not registry.remove("app")


# -- Attribute release and proxying -----------------------------------------------------------

ATTRIBUTES = {"uid": ["jdupont"], "mail": ["j@ac.fr"], "sn": ["Dupont"], "title": []}


def test_release_all() -> None:
    assert service(released_attributes=["*"]).release(ATTRIBUTES) == ATTRIBUTES


def test_release_only_the_listed_attributes() -> None:
    released = service(released_attributes=["mail", "title", "missing"]).release(ATTRIBUTES)

    assert released == {"mail": ["j@ac.fr"]}


def test_release_nothing_by_default() -> None:
    assert service().release(ATTRIBUTES) == {}


def test_release_returns_a_copy() -> None:
    released = service(released_attributes=["*"]).release(ATTRIBUTES)
    released["uid"] = ["root"]

    assert ATTRIBUTES["uid"] == ["jdupont"]


def test_release_list_stored(registry: ServiceRegistry) -> None:
    registry.add(name="app", pattern="https://app.test/", released_attributes=["mail", "sn"])

    stored = registry.get("app")
    assert stored is not None
    assert stored.release(ATTRIBUTES) == {"mail": ["j@ac.fr"], "sn": ["Dupont"]}


def test_proxy_callback_pattern() -> None:
    rule = service(proxy_callback_pattern=r"https://app\.test/pgt(/.*)?")

    assert rule.may_use_proxy_callback("https://app.test/pgt")
    assert rule.may_use_proxy_callback("https://app.test/pgt/callback")
    assert not rule.may_use_proxy_callback("https://app.test/pgtx")
    assert not rule.may_use_proxy_callback("https://evil.test/?https://app.test/pgt")
    assert not rule.may_use_proxy_callback("http://app.test/pgt")


def test_no_proxying_without_a_callback_pattern() -> None:
    assert not service().may_use_proxy_callback("https://app.test/pgt")
    assert not service(proxy_callback_pattern="").may_use_proxy_callback("https://app.test/")


def test_options_stored(registry: ServiceRegistry) -> None:
    registry.add(
        name="  app  ",
        pattern=" https://app.test/ ",
        logout_url="https://app.test/slo",
        single_logout=False,
        proxy_callback_pattern=r"https://app\.test/pgt",
        accepts_proxy_tickets=False,
        response_method="post",
        description="a platform",
    )

    stored = registry.get("app")
    assert stored is not None
    assert stored.pattern == "https://app.test/"
    assert stored.logout_url == "https://app.test/slo"
    assert stored.single_logout is False
    assert stored.proxy_callback_pattern == r"https://app\.test/pgt"
    assert stored.accepts_proxy_tickets is False
    assert stored.response_method == "POST"
    assert stored.description == "a platform"


# -- Invalid definitions ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("definition", "reason"),
    [
        ({"match": "regex", "pattern": "https://app.test/(unclosed"}, "invalid regular expression"),
        ({"proxy_callback_pattern": "https://[bad"}, "invalid regular expression"),
        ({"pattern": "app.test/cas"}, "not an absolute http(s) URL"),
        ({"pattern": "/cas/login"}, "not an absolute http(s) URL"),
        ({"pattern": "ftp://app.test/"}, "not an absolute http(s) URL"),
        ({"pattern": "https://"}, "not an absolute http(s) URL"),
        ({"pattern": "https://app.test/\nLocation: x"}, "not an absolute http(s) URL"),
        ({"pattern": "javascript:alert(1)//https://x"}, "not an absolute http(s) URL"),
        ({"pattern": "https://app.test/" + "a" * MAX_SERVICE_URL_LENGTH}, "not an absolute"),
        ({"response_method": "PUT"}, "response method must be one of"),
        ({"match": "prefix"}, "match must be 'exact' or 'regex'"),
        ({"name": "   "}, "a service needs a name"),
    ],
)
def test_invalid_definition_refused_with_its_reason(
    registry: ServiceRegistry, definition: dict[str, Any], reason: str
) -> None:
    values: dict[str, Any] = {"name": "app", "pattern": "https://app.test/", **definition}

    with pytest.raises(ServiceRegistryError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        registry.add(**values)

    assert registry.all() == []


def test_duplicate_name_refused(registry: ServiceRegistry) -> None:
    registry.add(name="app", pattern="https://app.test/")

    with pytest.raises(ServiceRegistryError, match="a service named 'app' already exists"):
        registry.add(name="app", pattern="https://other.test/")
    with pytest.raises(ServiceRegistryError, match="already exists"):
        registry.add(name=" app ", pattern="https://other.test/")

    assert [s.pattern for s in registry.all()] == ["https://app.test/"]


# -- Cache ------------------------------------------------------------------------------------


def test_cache_hides_changes_of_other_processes_until_invalidated(engine: Engine) -> None:
    cached = ServiceRegistry(engine, cache_seconds=3600)
    other_process = ServiceRegistry(engine, cache_seconds=0)
    assert cached.match("https://app.test/") is None

    other_process.add(name="app", pattern="https://app.test/")

    assert cached.match("https://app.test/") is None
    cached.invalidate()
    assert cached.match("https://app.test/") is not None

    other_process.remove("app")
    assert cached.match("https://app.test/") is not None
    cached.invalidate()
    assert cached.match("https://app.test/") is None


def test_own_changes_invalidate_the_cache(engine: Engine) -> None:
    cached = ServiceRegistry(engine, cache_seconds=3600)
    assert cached.all() == []

    cached.add(name="app", pattern="https://app.test/")
    assert cached.match("https://app.test/") is not None

    cached.remove("app")
    assert cached.match("https://app.test/") is None


def test_without_cache_changes_are_seen_at_once(engine: Engine) -> None:
    uncached = ServiceRegistry(engine, cache_seconds=0)
    assert uncached.all() == []

    ServiceRegistry(engine).add(name="app", pattern="https://app.test/")

    assert uncached.match("https://app.test/") is not None
