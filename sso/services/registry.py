"""The CAS service registry: which service URLs are allowed and what each one receives.

Matching follows Apereo CAS: a service URL is compared after percent-decoding and dropping
its fragment, case-insensitively ("exact"), or must fully match a regular expression
("regex"); services are tried in evaluation order and the first match wins.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import unquote

from sqlalchemy import Engine, delete, select
from sqlalchemy.exc import IntegrityError

from sso.errors import SsoError
from sso.services.models import CasServiceRow

MAX_SERVICE_URL_LENGTH = 4096
RESPONSE_METHODS = ("GET", "POST", "HEADER")
ALL_ATTRIBUTES = "*"


class ServiceRegistryError(SsoError):
    """A service definition that cannot be stored (bad pattern, duplicate name...)."""


def canonical_service(url: str) -> str:
    """The form in which two service URLs are compared: decoded, no fragment, lower case."""
    return unquote(url.split("#", 1)[0]).lower()


def same_service(a: str, b: str) -> bool:
    """Whether two service URLs name the same service (CAS validation's ``service`` check)."""
    return canonical_service(a) == canonical_service(b)


def is_acceptable_service_url(url: str) -> bool:
    """Cheap checks before any matching: bounded length, no control characters."""
    return 0 < len(url) <= MAX_SERVICE_URL_LENGTH and not any(ord(c) < 32 for c in url)


@dataclass(frozen=True)
class CasService:
    """A registered CAS service, as the protocol code uses it."""

    id: int
    name: str
    match: str
    pattern: str
    evaluation_order: int
    enabled: bool
    released_attributes: list[str]
    logout_url: str | None
    single_logout: bool
    proxy_callback_pattern: str | None
    accepts_proxy_tickets: bool
    response_method: str
    description: str = ""

    def matches(self, url: str) -> bool:
        """Whether this service covers ``url``."""
        if self.match == "regex":
            return re.fullmatch(self.pattern, url.split("#", 1)[0], re.IGNORECASE) is not None
        return canonical_service(self.pattern) == canonical_service(url)

    def release(self, attributes: dict[str, list[str]]) -> dict[str, list[str]]:
        """The attributes this service may receive, nothing beyond its release list."""
        if ALL_ATTRIBUTES in self.released_attributes:
            return dict(attributes)
        return {n: attributes[n] for n in self.released_attributes if attributes.get(n)}

    def may_use_proxy_callback(self, pgt_url: str) -> bool:
        """Whether the service may obtain proxy-granting tickets at ``pgt_url``."""
        if not self.proxy_callback_pattern:
            return False
        return re.fullmatch(self.proxy_callback_pattern, pgt_url) is not None


def _to_service(row: CasServiceRow) -> CasService:
    return CasService(**{f.name: getattr(row, f.name) for f in fields(CasService)})


class ServiceRegistry:
    """Registered CAS services, read from the database and cached briefly per process."""

    def __init__(self, engine: Engine, cache_seconds: float = 2.0) -> None:
        self._engine = engine
        self._cache_seconds = cache_seconds
        self._cached: list[CasService] | None = None
        self._cached_at = 0.0
        self._lock = threading.Lock()

    def all(self) -> list[CasService]:
        """Every service in evaluation order (then by id)."""
        now = time.monotonic()
        with self._lock:
            if self._cached is None or now - self._cached_at > self._cache_seconds:
                with self._engine.connect() as conn:
                    rows = conn.execute(
                        select(CasServiceRow).order_by(
                            CasServiceRow.evaluation_order, CasServiceRow.id
                        )
                    ).all()
                self._cached = [_to_service(r) for r in rows]
                self._cached_at = now
            return self._cached

    def invalidate(self) -> None:
        """Forget the cache (after a change made by this process)."""
        with self._lock:
            self._cached = None

    def match(self, url: str) -> CasService | None:
        """The enabled service covering ``url``, or None: never redirect to an unknown URL."""
        if not is_acceptable_service_url(url):
            return None
        for service in self.all():
            if service.enabled and service.matches(url):
                return service
        return None

    def get(self, name: str) -> CasService | None:
        """A service by name."""
        return next((s for s in self.all() if s.name == name), None)

    def add(
        self,
        *,
        name: str,
        pattern: str,
        match: str = "exact",
        evaluation_order: int = 0,
        released_attributes: list[str] | None = None,
        logout_url: str | None = None,
        single_logout: bool = True,
        proxy_callback_pattern: str | None = None,
        accepts_proxy_tickets: bool = True,
        response_method: str = "GET",
        description: str = "",
    ) -> CasService:
        """Register a service; raises ServiceRegistryError with a reason when it cannot."""
        values: dict[str, Any] = {
            "name": name.strip(),
            "pattern": pattern.strip(),
            "match": match,
            "evaluation_order": evaluation_order,
            "released_attributes": released_attributes or [],
            "logout_url": logout_url or None,
            "single_logout": single_logout,
            "proxy_callback_pattern": proxy_callback_pattern or None,
            "accepts_proxy_tickets": accepts_proxy_tickets,
            "response_method": response_method.upper(),
            "description": description,
        }
        self._check(values)
        try:
            with self._engine.begin() as conn:
                conn.execute(CasServiceRow.__table__.insert().values(**values))
        except IntegrityError as exc:
            raise ServiceRegistryError(f"a service named {name!r} already exists") from exc
        self.invalidate()
        service = self.get(values["name"])
        assert service is not None
        return service

    def remove(self, name: str) -> bool:
        """Unregister a service by name; whether it existed."""
        with self._engine.begin() as conn:
            removed = conn.execute(delete(CasServiceRow).where(CasServiceRow.name == name)).rowcount
        self.invalidate()
        return bool(removed)

    @staticmethod
    def _check(values: dict[str, Any]) -> None:
        if not values["name"]:
            raise ServiceRegistryError("a service needs a name")
        if values["match"] not in ("exact", "regex"):
            raise ServiceRegistryError("match must be 'exact' or 'regex'")
        if values["response_method"] not in RESPONSE_METHODS:
            raise ServiceRegistryError(f"response method must be one of {RESPONSE_METHODS}")
        pattern = values["pattern"]
        if values["match"] == "exact":
            if not re.match(r"^https?://[^/?#\s]+", pattern) or not is_acceptable_service_url(
                pattern
            ):
                raise ServiceRegistryError(f"not an absolute http(s) URL: {pattern!r}")
        for key in ("pattern", "proxy_callback_pattern"):
            if key == "pattern" and values["match"] != "regex":
                continue
            if values[key]:
                try:
                    re.compile(values[key])
                except re.error as exc:
                    raise ServiceRegistryError(f"invalid regular expression {key}: {exc}") from exc
