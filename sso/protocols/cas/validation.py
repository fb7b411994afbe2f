"""Ticket validation and proxying: the core of sections 2.4-2.9 (no web framework here).

Every consumer of a ticket goes through ``TicketValidator.validate``: the ticket is taken out of
the registry first, so it is spent whatever the outcome (section 3.1.1: "Service tickets MUST
only be valid for one ticket validation attempt").
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from sso.db import utcnow
from sso.protocols.cas.errors import (
    InvalidProxyCallback,
    InvalidRequest,
    InvalidService,
    InvalidTicket,
    InvalidTicketSpec,
    UnauthorizedService,
    UnauthorizedServiceProxy,
)
from sso.services.registry import CasService, ServiceRegistry, same_service
from sso.sessions.authentication import Authentication
from sso.sessions.registry import ConsumedTicket, LogoutTarget, SessionRegistry

log = logging.getLogger("sso.cas")

MAX_TICKET_LENGTH = 256


@dataclass(frozen=True)
class Validated:
    """A successful validation: who, for which service, through which proxies."""

    authentication: Authentication
    service: CasService
    ticket: str
    session_id: str
    from_new_login: bool
    proxies: list[str]
    pgt_iou: str | None
    issued_for: str  # the service URL the ticket was issued for, as /login received it
    # Whether the service login was recorded for single logout with the ticket's consumption.
    recorded_for_single_logout: bool = False


def add_query_parameters(url: str, parameters: dict[str, str]) -> str:
    """``url`` with ``parameters`` appended, its own query string and fragment kept as they are.

    Used for the redirect to the service (``ticket=``) and for the proxy callback (``pgtId``,
    ``pgtIou``): clients such as django-cas-ng compare the service URL byte for byte.
    """
    base, hash_sign, fragment = url.partition("#")
    separator = "&" if "?" in base else "?"
    if base.endswith(("?", "&")):
        separator = ""
    return base + separator + urlencode(parameters) + hash_sign + fragment


def callback_with(url: str, parameters: dict[str, str]) -> str:
    """The proxy callback URL with ``pgtId``/``pgtIou`` added and its own parameters kept."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(parameters.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


class TicketValidator:
    """Validates STs and PTs, delivers PGTs and issues PTs."""

    def __init__(
        self,
        sessions: SessionRegistry,
        services: ServiceRegistry,
        backchannel: httpx.Client,
    ) -> None:
        self._sessions = sessions
        self._services = services
        self._backchannel = backchannel

    def validate(
        self,
        *,
        ticket: str | None,
        service: str | None,
        renew: bool = False,
        pgt_url: str | None = None,
        accept_proxy_tickets: bool,
        single_logout_protocol: str | None = None,
    ) -> Validated:
        """Validate a ticket for a service (sections 2.5.1, 2.6); raises a ``CasError``.

        With ``single_logout_protocol`` and no ``pgt_url``, the service login is recorded for
        single logout (when the service wants it) in the transaction that consumes the ticket;
        with a ``pgt_url`` that waits for the proxy callback, and is left to the caller.
        """
        if not ticket or not service:
            raise InvalidRequest("'ticket' and 'service' parameters are both required")
        if len(ticket) > MAX_TICKET_LENGTH:
            raise InvalidTicketSpec("ticket too long")
        accepted: list[CasService] = []
        recorded: list[LogoutTarget] = []

        def accept(consumed: ConsumedTicket) -> LogoutTarget | None:
            registered = self._accept(
                consumed,
                ticket=ticket,
                service=service,
                renew=renew,
                accept_proxy_tickets=accept_proxy_tickets,
            )
            accepted.append(registered)
            if single_logout_protocol is None or pgt_url or not registered.single_logout:
                return None
            target = LogoutTarget(
                protocol=single_logout_protocol,
                service=consumed.service,
                logout_url=registered.logout_url or consumed.service,
                ticket=ticket,
            )
            recorded.append(target)
            return target

        consumed = self._sessions.consume_ticket(ticket, accept)
        if consumed is None:
            raise InvalidTicket(f"Ticket {ticket!r} not recognized")
        registered = accepted[0]
        assert consumed.authentication is not None  # accept() refuses ended sessions
        pgt_iou = None
        if pgt_url:
            pgt_iou = self._deliver_pgt(
                registered, consumed.session_id, consumed.service, pgt_url, consumed.proxies
            )
        return Validated(
            authentication=consumed.authentication,
            service=registered,
            ticket=ticket,
            session_id=consumed.session_id,
            from_new_login=consumed.from_new_login,
            proxies=consumed.proxies,
            pgt_iou=pgt_iou,
            issued_for=consumed.service,
            recorded_for_single_logout=bool(recorded),
        )

    def _accept(
        self,
        consumed: ConsumedTicket,
        *,
        ticket: str,
        service: str,
        renew: bool,
        accept_proxy_tickets: bool,
    ) -> CasService:
        """The checks of a consumed ticket; the registered service, or a ``CasError``."""
        if consumed.kind == "PT" and not accept_proxy_tickets:
            # Section 2.5: "/serviceValidate MUST NOT return a successful authentication if it
            # receives a proxy ticket"; the ticket is spent all the same.
            raise InvalidTicketSpec(
                "Proxy tickets cannot be validated at /serviceValidate: use /proxyValidate"
            )
        if consumed.expired(utcnow()) or consumed.authentication is None:
            raise InvalidTicket(f"Ticket {ticket!r} has expired")
        if not same_service(consumed.service, service):
            raise InvalidService(f"Ticket {ticket!r} was not issued for the service {service!r}")
        if renew and not consumed.from_new_login:
            raise InvalidTicket(
                f"Ticket {ticket!r} did not come from an initial login and renew was requested"
            )
        registered = self._services.match(consumed.service)
        if registered is None:  # unregistered since the ticket was issued
            raise InvalidService(f"Service {service!r} is not registered")
        return registered

    def _deliver_pgt(
        self,
        registered: CasService,
        session_id: str,
        service: str,
        pgt_url: str,
        proxies: list[str],
    ) -> str:
        """Section 2.5.4: call back ``pgt_url`` with a new PGT; the IOU if it answered 200."""
        try:
            scheme = urlsplit(pgt_url).scheme
        except ValueError as exc:  # e.g. "https://[::1/": INTERNAL_ERROR before
            raise InvalidProxyCallback(f"The proxy callback {pgt_url!r} is not a URL") from exc
        if scheme != "https":
            raise InvalidProxyCallback(f"The proxy callback {pgt_url!r} must use HTTPS")
        if not registered.may_use_proxy_callback(pgt_url):
            raise UnauthorizedServiceProxy(
                f"The service {registered.name!r} is not authorized to use CAS proxy "
                f"authentication with the callback {pgt_url!r}"
            )
        chain = [pgt_url, *proxies]
        pgt, iou = self._sessions.create_proxy_granting_ticket(
            session_id, service=service, proxies=chain
        )
        try:
            answer = self._backchannel.get(
                callback_with(pgt_url, {"pgtId": pgt, "pgtIou": iou}), follow_redirects=False
            )
            status = answer.status_code
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
            # InvalidURL and ValueError (IDNA, surrogates) are not HTTPErrors: without them a
            # malformed pgtUrl answered INTERNAL_ERROR and left its PGT alive.
            log.warning("proxy callback %s failed: %s", pgt_url, exc)
            status = None
        if status != 200:
            self._sessions.revoke_proxy_granting_ticket(pgt)
            reason = f"answered HTTP {status}" if status else "could not be reached securely"
            raise InvalidProxyCallback(f"The proxy callback {pgt_url!r} {reason}")
        return iou

    def issue_proxy_ticket(self, *, pgt: str | None, target_service: str | None) -> str:
        """Section 2.7: a PT for ``target_service`` from a PGT; raises a ``CasError``."""
        if not pgt or not target_service:
            raise InvalidRequest("'pgt' and 'targetService' parameters are both required")
        granting = self._sessions.find_proxy_granting_ticket(pgt)
        if granting is None:
            raise InvalidTicket(f"Proxy-granting ticket {pgt[:64]!r} not recognized")
        target = self._services.match(target_service)
        if target is None or not target.accepts_proxy_tickets:
            raise UnauthorizedService(
                f"The service {target_service!r} is not authorized to receive proxy tickets"
            )
        return self._sessions.issue_ticket(
            granting.session,
            kind="PT",
            service=target_service,
            from_new_login=False,
            proxies=granting.proxies,
        )


def cas3_attributes(validated: Validated) -> dict[str, list[str]]:
    """The ``cas:attributes`` of a CAS 3.0 answer: authentication facts, then release policy."""
    authentication = validated.authentication
    facts: dict[str, list[str]] = {
        "authenticationDate": [_instant(authentication.authenticated_at)],
        "longTermAuthenticationRequestTokenUsed": ["false"],
        "isFromNewLogin": ["true" if validated.from_new_login else "false"],
        "authenticationMethod": [authentication.method],
    }
    released = validated.service.release(authentication.attributes)
    # A directory attribute never shadows what the server itself asserts.
    return facts | {name: values for name, values in released.items() if name not in facts}


def _instant(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
