"""SAML errors. Two kinds, told apart by what we may do with them:

- :class:`SamlStatusError`: the request came from a known SP with an ACS we trust; the answer
  is a Response carrying the status code (SAML core 3.2.2.2) sent back to that ACS;
- :class:`SamlRequestError`: the request cannot be trusted enough to answer the SP (not
  SAML, unknown SP, ACS not in metadata, bad signature...): the user gets a clear page, and
  nothing is sent anywhere (sending it would make us an open redirector).
"""

from __future__ import annotations

from typing import ClassVar

from sso.errors import SsoError

STATUS_PREFIX = "urn:oasis:names:tc:SAML:2.0:status:"
REQUESTER = STATUS_PREFIX + "Requester"
RESPONDER = STATUS_PREFIX + "Responder"


class SamlError(SsoError):
    """Root of the SAML protocol errors."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class SamlRequestError(SamlError):
    """A message we cannot answer to its sender: shown to the user as a page."""

    page_key: ClassVar[str] = "saml.error.bad_request"
    status_code: ClassVar[int] = 400


class UnknownServiceProvider(SamlRequestError):
    """The issuer is no approved SP of ours."""

    page_key = "saml.error.unknown_sp"
    status_code = 403


class SamlStatusError(SamlError):
    """A failure answered to the SP as a Response with this status (core 3.2.2.2)."""

    top: ClassVar[str] = RESPONDER
    second: ClassVar[str | None] = None


class NoPassive(SamlStatusError):
    """IsPassive, and the user would have to be asked (core 3.4.1)."""

    second = STATUS_PREFIX + "NoPassive"


class InvalidNameIdPolicy(SamlStatusError):
    """The NameIDPolicy cannot be met (core 3.4.1.1)."""

    second = STATUS_PREFIX + "InvalidNameIDPolicy"


class NoAuthnContext(SamlStatusError):
    """The RequestedAuthnContext cannot be met (core 3.3.2.2.1)."""

    second = STATUS_PREFIX + "NoAuthnContext"


class RequestDenied(SamlStatusError):
    """We refuse to answer this request (e.g. a replayed ID)."""

    top = REQUESTER
    second = STATUS_PREFIX + "RequestDenied"
