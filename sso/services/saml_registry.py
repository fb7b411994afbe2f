"""The SAML service provider registry: self-registration, approval, release policy, refresh.

An SP registers itself with its metadata (the document, or a URL we fetch) and waits,
``pending``, until an administrator approves or rejects it; administrators may also add an SP
directly. Only ``approved`` SPs are served (:meth:`SamlSpRegistry.approved`, cached per
worker). Metadata given by URL is refreshed on a schedule that honours its cacheDuration and
validUntil (metadata 2.2.1, 2.3.2); a refresh that fails — fetch error, invalid document,
another entityID — keeps the last good copy and is reported, and a good one replaces the copy
in one UPDATE, never partly.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import re
import socket
import threading
import time
from dataclasses import dataclass, fields, replace
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from sqlalchemy import Engine, delete, select, update
from sqlalchemy.exc import IntegrityError

from sso.db import utcnow
from sso.errors import SsoError
from sso.services.saml_metadata import (
    DEFAULT_MAX_BYTES,
    RESEARCH_AND_SCHOLARSHIP,
    SpMetadata,
    SpMetadataError,
    parse_sp_metadata,
)
from sso.services.saml_models import APPROVED, PENDING, REJECTED, SamlServiceProviderRow
from sso.services.saml_release import unknown_attributes

log = logging.getLogger(__name__)

# NameID formats an administrator may impose (SAML core 8.3).
NAME_ID_FORMATS = (
    "urn:oasis:names:tc:SAML:2.0:nameid-format:transient",
    "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
    "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
    "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
)
# Refresh early enough that a copy near its validUntil is replaced before it expires.
VALID_UNTIL_FRACTION = 0.75
_ACCEPT = "application/samlmetadata+xml, application/xml;q=0.9, text/xml;q=0.8"
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


class SamlSpRegistryError(SsoError):
    """A registry operation that cannot be done (unknown SP, bad policy, bad contact...)."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class EntityIdClash(SpMetadataError):
    """The entityID is registered already (pending, approved or rejected)."""

    def __init__(self, entity_id: str) -> None:
        super().__init__("clash", f"the entityID {entity_id!r} is already registered")
        self.entity_id = entity_id


@dataclass(frozen=True)
class SamlServiceProvider:
    """A registered SP, as the IdP code uses it."""

    entity_id: str
    name: str
    status: str
    metadata_xml: str  # the last good copy
    metadata_url: str | None
    released_attributes: list[str]
    name_id_format: str | None
    encrypt_assertions: bool | None  # None: the global setting
    updated_at: dt.datetime
    metadata: SpMetadata
    metadata_signing_cert: str | None = None
    contact: str = ""
    valid_until: dt.datetime | None = None
    next_refresh_at: dt.datetime | None = None
    last_refreshed_at: dt.datetime | None = None
    last_error: str | None = None
    created_at: dt.datetime | None = None


@dataclass(frozen=True)
class RefreshReport:
    """What one metadata refresh did."""

    entity_id: str
    ok: bool
    changed: bool
    error: str | None
    next_refresh_at: dt.datetime


_ROW_FIELDS = [f.name for f in fields(SamlServiceProvider) if f.name != "metadata"]


def _to_sp(row: Any) -> SamlServiceProvider:  # noqa: ANN401 - a Row of the table
    metadata = parse_sp_metadata(row.metadata_xml, max_bytes=1 << 30, check_expiry=False)
    if row.metadata_signing_cert:  # every stored copy was verified with it before storing
        metadata = replace(metadata, signed=True)
    values = {name: getattr(row, name) for name in _ROW_FIELDS}
    values["released_attributes"] = list(values["released_attributes"] or [])
    return SamlServiceProvider(metadata=metadata, **values)


def check_metadata_url(url: str, *, public: bool, allow_private: bool = False) -> None:
    """Where we agree to fetch metadata from.

    An administrator may name any http(s) URL. A URL given by anyone through the public
    registration must be HTTPS and resolve only to public addresses: otherwise the server
    would fetch, for strangers, pages of the private network it sits in (SSRF).
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SpMetadataError("bad_url", f"the metadata URL {url!r} is not an http(s) URL")
    if not public or allow_private:
        return
    if parts.scheme != "https":
        raise SpMetadataError("bad_url", "the metadata URL must be an https:// URL")
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(parts.hostname, parts.port or 443)}
    except (OSError, UnicodeError) as exc:
        raise SpMetadataError("fetch", f"the host {parts.hostname!r} cannot be resolved") from exc
    for address in addresses:
        if not ipaddress.ip_address(address.split("%", 1)[0]).is_global:
            raise SpMetadataError(
                "bad_url", f"the metadata URL points to a non-public address ({address})"
            )


def fetch_metadata(client: httpx.Client, url: str, max_bytes: int) -> bytes:
    """GET the metadata at ``url``: 200 only, no redirect followed, at most ``max_bytes``
    (decoded: a compressed bomb stops there too)."""
    try:
        with client.stream(
            "GET", url, headers={"Accept": _ACCEPT}, follow_redirects=False
        ) as response:
            if response.status_code != 200:
                raise SpMetadataError(
                    "fetch", f"fetching {url} answered HTTP {response.status_code}, not 200"
                )
            size = 0
            chunks: list[bytes] = []
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise SpMetadataError(
                        "too_large", f"the metadata at {url} is larger than {max_bytes} bytes"
                    )
                chunks.append(chunk)
    except httpx.HTTPError as exc:
        raise SpMetadataError("fetch", f"cannot fetch {url}: {exc}") from exc
    return b"".join(chunks)


def _text(document: bytes) -> str:
    try:
        return document.decode("utf-8")
    except UnicodeDecodeError:
        raise SpMetadataError("not_xml", "the metadata must be encoded in UTF-8") from None


class SamlSpRegistry:
    """Registered SAML SPs in the database; approved ones cached briefly per process."""

    def __init__(
        self,
        engine: Engine,
        cache_seconds: float = 2.0,
        *,
        http: httpx.Client | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        refresh_seconds: int = 3600,
        min_refresh_seconds: int = 300,
        allow_private_urls: bool = False,
    ) -> None:
        self._engine = engine
        self._cache_seconds = cache_seconds
        self._http = http
        self.max_bytes = max_bytes
        self.refresh_interval = dt.timedelta(seconds=refresh_seconds)
        self.refresh_floor = dt.timedelta(seconds=min(min_refresh_seconds, refresh_seconds))
        self._allow_private_urls = allow_private_urls
        self._lock = threading.Lock()
        self._approved: dict[str, SamlServiceProvider] = {}
        self._loaded_at: float | None = None

    # -- the hot path ----------------------------------------------------------------------

    def approved(self, entity_id: str) -> SamlServiceProvider | None:
        """The approved SP with this entityID, or None: unknown, pending, rejected, or its
        metadata's validUntil has passed (an expired copy is trusted no more)."""
        sp = self._approved_by_entity_id().get(entity_id)
        if sp is None:
            return None
        if sp.metadata.valid_until is not None and sp.metadata.valid_until <= utcnow():
            return None
        return sp

    def invalidate(self) -> None:
        """Forget the cache (after a change made by this process)."""
        with self._lock:
            self._loaded_at = None

    def _approved_by_entity_id(self) -> dict[str, SamlServiceProvider]:
        now = time.monotonic()
        with self._lock:
            if self._loaded_at is not None and now - self._loaded_at <= self._cache_seconds:
                return self._approved
            # Versions first, cheap; whole rows (and a parse) only for what changed.
            with self._engine.connect() as conn:
                versions = dict(
                    conn.execute(
                        select(
                            SamlServiceProviderRow.entity_id, SamlServiceProviderRow.updated_at
                        ).where(SamlServiceProviderRow.status == APPROVED)
                    ).all()
                )
                changed = [
                    e
                    for e, updated in versions.items()
                    if e not in self._approved or self._approved[e].updated_at != updated
                ]
                rows = []
                for start in range(0, len(changed), 500):
                    rows += conn.execute(
                        select(SamlServiceProviderRow).where(
                            SamlServiceProviderRow.entity_id.in_(changed[start : start + 500]),
                            SamlServiceProviderRow.status == APPROVED,
                        )
                    ).all()
            cache = {
                e: sp for e, sp in self._approved.items() if e in versions and e not in changed
            }
            for row in rows:
                try:
                    cache[row.entity_id] = _to_sp(row)
                except SpMetadataError as exc:  # stored before a stricter check: not served
                    log.error("stored metadata of SAML SP %s unusable: %s", row.entity_id, exc)
            self._approved = cache
            self._loaded_at = now
            return cache

    # -- registration and administration ---------------------------------------------------

    def register(
        self,
        metadata_xml: str | bytes | None = None,
        metadata_url: str | None = None,
        contact: str = "",
        *,
        public: bool = False,
    ) -> SamlServiceProvider:
        """An SP registers itself: stored ``pending`` until an administrator decides.

        ``public``: the request came from anyone (the page or API), so a metadata URL must
        pass :func:`check_metadata_url`'s public rules.
        """
        contact = self._check_contact(contact)
        document = self._document(metadata_xml, metadata_url, public=public)
        metadata = parse_sp_metadata(document, max_bytes=self.max_bytes)
        values = self._metadata_values(document, metadata, metadata_url, utcnow())
        values.update(status=PENDING, contact=contact, released_attributes=[])
        return self._insert(values)

    def add(
        self,
        metadata_xml: str | bytes | None = None,
        metadata_url: str | None = None,
        *,
        name: str | None = None,
        released_attributes: list[str] | None = None,
        signing_cert: str | None = None,
        name_id_format: str | None = None,
        encrypt_assertions: bool | None = None,
        contact: str = "",
        replace: bool = False,
    ) -> SamlServiceProvider:
        """An administrator adds an SP, approved at once with its release policy.

        ``signing_cert`` (PEM): this and every later copy of the metadata must be signed by
        it. ``replace``: an SP with the same entityID gets this metadata (an administrator's
        refresh); its release policy is kept unless a new one is given.
        """
        contact = self._check_contact(contact)
        if signing_cert is not None:
            signing_cert = self._check_certificate(signing_cert)
        if released_attributes is not None:
            self._check_policy(released_attributes, name_id_format)
        elif name_id_format is not None:
            self._check_policy([], name_id_format)
        document = self._document(metadata_xml, metadata_url, public=False)
        metadata = parse_sp_metadata(document, signing_cert=signing_cert, max_bytes=self.max_bytes)
        values = self._metadata_values(document, metadata, metadata_url, utcnow())
        values.update(status=APPROVED, metadata_signing_cert=signing_cert)
        if name:
            values["name"] = name.strip()[:256]
        if contact:
            values["contact"] = contact
        if name_id_format is not None:
            values["name_id_format"] = name_id_format
        if encrypt_assertions is not None:
            values["encrypt_assertions"] = encrypt_assertions
        existing = self.get(metadata.entity_id)
        if existing is not None and replace:
            if released_attributes is not None:
                values["released_attributes"] = list(released_attributes)
            return self._update(metadata.entity_id, values)
        values["released_attributes"] = list(released_attributes or [])
        return self._insert(values)

    def approve(
        self, entity_id: str, released_attributes: list[str] | None = None
    ) -> SamlServiceProvider:
        """Approve a (pending or rejected) SP, optionally with its release policy."""
        values: dict[str, Any] = {"status": APPROVED}
        if released_attributes is not None:
            self._check_policy(released_attributes, None)
            values["released_attributes"] = list(released_attributes)
        return self._update(entity_id, values)

    def reject(self, entity_id: str) -> SamlServiceProvider:
        """Refuse an SP: never served; its entityID stays taken until it is removed."""
        return self._update(entity_id, {"status": REJECTED})

    def remove(self, entity_id: str) -> bool:
        """Forget an SP entirely; whether it existed."""
        with self._engine.begin() as conn:
            removed = conn.execute(
                delete(SamlServiceProviderRow).where(SamlServiceProviderRow.entity_id == entity_id)
            ).rowcount
        self.invalidate()
        return bool(removed)

    def set_policy(
        self,
        entity_id: str,
        released_attributes: list[str],
        name_id_format: str | None = None,
        encrypt_assertions: bool | None = None,
    ) -> SamlServiceProvider:
        """Set what the SP receives: these attributes (``*``: all), the NameID format (None:
        chosen per request) and assertion encryption (None: the global setting)."""
        self._check_policy(released_attributes, name_id_format)
        return self._update(
            entity_id,
            {
                "released_attributes": list(released_attributes),
                "name_id_format": name_id_format,
                "encrypt_assertions": encrypt_assertions,
            },
        )

    def get(self, entity_id: str) -> SamlServiceProvider | None:
        """An SP in whatever status, read now (not cached)."""
        with self._engine.connect() as conn:
            row = conn.execute(
                select(SamlServiceProviderRow).where(SamlServiceProviderRow.entity_id == entity_id)
            ).first()
        return None if row is None else _to_sp(row)

    # -- refresh ---------------------------------------------------------------------------

    def next_refresh(self, metadata: SpMetadata, now: dt.datetime) -> dt.datetime:
        """When to fetch again: within cacheDuration (never cache longer than it says), before
        validUntil, at most ``refresh_interval`` apart, at least ``refresh_floor`` apart."""
        delay = self.refresh_interval
        if metadata.cache_duration is not None:
            delay = min(delay, metadata.cache_duration)
        if metadata.valid_until is not None:
            delay = min(delay, (metadata.valid_until - now) * VALID_UNTIL_FRACTION)
        return now + max(delay, self.refresh_floor)

    def refresh_due(
        self, client: httpx.Client | None = None, now: dt.datetime | None = None
    ) -> list[RefreshReport]:
        """Refresh every approved URL-backed SP whose time has come (blocking: network).

        Each due SP is claimed first by moving its next_refresh_at (one UPDATE that only one
        worker can win), so several workers never fetch the same metadata at once.
        """
        client = client or self._require_http()
        now = now or utcnow()
        with self._engine.connect() as conn:
            due = conn.execute(
                select(SamlServiceProviderRow.entity_id, SamlServiceProviderRow.next_refresh_at)
                .where(
                    SamlServiceProviderRow.status == APPROVED,
                    SamlServiceProviderRow.metadata_url.is_not(None),
                    SamlServiceProviderRow.next_refresh_at <= now,
                )
                .order_by(SamlServiceProviderRow.next_refresh_at)
            ).all()
        reports = []
        for entity_id, planned in due:
            if self._claim(entity_id, planned, now + self.refresh_floor):
                reports.append(self._refresh(entity_id, client, now))
        return reports

    def _claim(self, entity_id: str, planned: dt.datetime, lease_until: dt.datetime) -> bool:
        with self._engine.begin() as conn:
            return bool(
                conn.execute(
                    update(SamlServiceProviderRow)
                    .where(
                        SamlServiceProviderRow.entity_id == entity_id,
                        SamlServiceProviderRow.next_refresh_at == planned,
                    )
                    .values(next_refresh_at=lease_until)
                ).rowcount
            )

    def _refresh(self, entity_id: str, client: httpx.Client, now: dt.datetime) -> RefreshReport:
        current = self.get(entity_id)
        if current is None or current.metadata_url is None:  # removed meanwhile
            return RefreshReport(entity_id, False, False, "no longer registered", now)
        try:
            document = fetch_metadata(client, current.metadata_url, self.max_bytes)
            metadata = parse_sp_metadata(
                document,
                signing_cert=current.metadata_signing_cert,
                now=now,
                max_bytes=self.max_bytes,
            )
            if metadata.entity_id != entity_id:
                raise SpMetadataError(
                    "entity_id_changed",
                    f"the metadata at the URL is now for {metadata.entity_id!r}",
                )
            if metadata.research_and_scholarship and not current.metadata.research_and_scholarship:
                # The category releases more attributes: an administrator accepts that, not a
                # refresh (sso saml-sps add --replace).
                raise SpMetadataError(
                    "new_category",
                    f"the refreshed metadata adds the {RESEARCH_AND_SCHOLARSHIP} category, "
                    "which an administrator must accept",
                )
            text = _text(document)
        except SpMetadataError as exc:
            retry = now + self.refresh_floor
            log.warning("metadata refresh of SAML SP %s failed: %s", entity_id, exc.message)
            self._store(entity_id, {"last_error": exc.message, "next_refresh_at": retry})
            return RefreshReport(entity_id, False, False, exc.message, retry)
        next_at = self.next_refresh(metadata, now)
        values: dict[str, Any] = {
            "last_refreshed_at": now,
            "last_error": None,
            "next_refresh_at": next_at,
        }
        changed = text != current.metadata_xml
        if changed:
            values.update(metadata_xml=text, valid_until=metadata.valid_until, updated_at=now)
        self._store(entity_id, values)
        return RefreshReport(entity_id, True, changed, None, next_at)

    # -- helpers ---------------------------------------------------------------------------

    def _require_http(self) -> httpx.Client:
        if self._http is None:
            raise SamlSpRegistryError("no HTTP client to fetch metadata with")
        return self._http

    def _document(
        self, metadata_xml: str | bytes | None, metadata_url: str | None, *, public: bool
    ) -> bytes:
        if (metadata_xml is None) == (metadata_url is None):
            raise SpMetadataError("no_metadata", "give either the metadata or its URL")
        if metadata_url is not None:
            metadata_url = metadata_url.strip()
            check_metadata_url(metadata_url, public=public, allow_private=self._allow_private_urls)
            return fetch_metadata(self._require_http(), metadata_url, self.max_bytes)
        assert metadata_xml is not None
        return metadata_xml.encode("utf-8") if isinstance(metadata_xml, str) else metadata_xml

    def _metadata_values(
        self,
        document: bytes,
        metadata: SpMetadata,
        metadata_url: str | None,
        now: dt.datetime,
    ) -> dict[str, Any]:
        return {
            "entity_id": metadata.entity_id,
            "name": metadata.display_name("fr")[:256],
            "metadata_xml": _text(document),
            "metadata_url": metadata_url.strip() if metadata_url else None,
            "valid_until": metadata.valid_until,
            "next_refresh_at": self.next_refresh(metadata, now) if metadata_url else None,
            "last_refreshed_at": now if metadata_url else None,
            "last_error": None,
            "updated_at": now,
        }

    def _insert(self, values: dict[str, Any]) -> SamlServiceProvider:
        if self.get(values["entity_id"]) is not None:
            raise EntityIdClash(values["entity_id"])
        values.setdefault("created_at", values["updated_at"])
        try:
            with self._engine.begin() as conn:
                conn.execute(SamlServiceProviderRow.__table__.insert().values(**values))
        except IntegrityError as exc:  # registered by someone else meanwhile
            raise EntityIdClash(values["entity_id"]) from exc
        self.invalidate()
        sp = self.get(values["entity_id"])
        assert sp is not None
        return sp

    def _update(self, entity_id: str, values: dict[str, Any]) -> SamlServiceProvider:
        values = {**values, "updated_at": utcnow()}
        if not self._store(entity_id, values):
            raise SamlSpRegistryError(f"no SAML SP {entity_id!r}")
        sp = self.get(values.get("entity_id", entity_id))
        assert sp is not None
        return sp

    def _store(self, entity_id: str, values: dict[str, Any]) -> bool:
        with self._engine.begin() as conn:
            found = conn.execute(
                update(SamlServiceProviderRow)
                .where(SamlServiceProviderRow.entity_id == entity_id)
                .values(**values)
            ).rowcount
        self.invalidate()
        return bool(found)

    @staticmethod
    def _check_contact(contact: str) -> str:
        contact = contact.strip()
        if contact and (len(contact) > 320 or not _EMAIL.fullmatch(contact)):
            raise SamlSpRegistryError(f"not an email address: {contact[:64]!r}")
        return contact

    @staticmethod
    def _check_certificate(pem: str) -> str:
        try:
            x509.load_pem_x509_certificate(pem.encode("ascii"))
        except (ValueError, UnicodeEncodeError) as exc:
            raise SamlSpRegistryError("the signing certificate is not a PEM certificate") from exc
        return pem

    @staticmethod
    def _check_policy(released_attributes: list[str], name_id_format: str | None) -> None:
        unknown = unknown_attributes(released_attributes)
        if unknown:
            raise SamlSpRegistryError(f"unknown attribute(s): {', '.join(unknown)}")
        if name_id_format is not None and name_id_format not in NAME_ID_FORMATS:
            raise SamlSpRegistryError(f"unsupported NameID format {name_id_format!r}")

    # Last: inside the class body, ``list`` names this method from here on.
    def list(self) -> list[SamlServiceProvider]:
        """Every SP, whatever its status, by entityID."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(SamlServiceProviderRow).order_by(SamlServiceProviderRow.entity_id)
            ).all()
        return [_to_sp(row) for row in rows]
