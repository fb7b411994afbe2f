"""CAS error codes (CAS Protocol Specification 3.0.3, sections 2.5.3 and 2.7.3).

"The following is the minimum set of error codes that all CAS servers MUST implement."
Each error carries its wire ``code`` and a ``message`` (the body of the failure element, which
"SHOULD describe the exact details") and renders itself:

- :meth:`CasError.render`: ``cas:authenticationFailure`` for the validation endpoints
  (sections 2.5.2, 2.6.2, 2.8);
- :meth:`CasError.render_proxy`: ``cas:proxyFailure`` for ``/proxy`` (section 2.7.2).

The endpoints answer HTTP 200 with these documents, as Apereo CAS does; clients read the body.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Final

from sso.errors import SsoError
from sso.protocols.cas.responses import (
    Format,
    Rendered,
    render_authentication_failure,
    render_proxy_failure,
)


class CasError(SsoError):
    """A CAS protocol failure; subclasses fix the wire code (section 2.5.3)."""

    code: ClassVar[str] = "INTERNAL_ERROR"
    message: str = "An internal error occurred during ticket validation."

    def __init__(self, message: str | None = None) -> None:
        if message is not None:
            self.message = message
        super().__init__(self.message)

    def render(self, fmt: Format = "XML") -> Rendered:
        """This error as ``cas:authenticationFailure`` (section 2.5.2), XML or JSON."""
        return render_authentication_failure(self.code, self.message, fmt)

    def render_proxy(self, fmt: Format = "XML") -> Rendered:
        """This error as ``/proxy``'s ``cas:proxyFailure`` (section 2.7.2), XML or JSON."""
        return render_proxy_failure(self.code, self.message, fmt)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class InvalidRequest(CasError):
    """``INVALID_REQUEST``: "not all of the required request parameters were present"."""

    code = "INVALID_REQUEST"
    message = "Not all of the required request parameters were present."


class InvalidTicketSpec(CasError):
    """``INVALID_TICKET_SPEC``: "failure to meet the requirements of validation specification"."""

    code = "INVALID_TICKET_SPEC"
    message = "The ticket does not meet the requirements of the validation specification."


class UnauthorizedServiceProxy(CasError):
    """``UNAUTHORIZED_SERVICE_PROXY``: "the service is not authorized to perform proxy
    authentication"."""

    code = "UNAUTHORIZED_SERVICE_PROXY"
    message = "The service is not authorized to perform proxy authentication."


class UnauthorizedService(CasError):
    """``UNAUTHORIZED_SERVICE`` (section 2.7.3, ``/proxy``): "service is unauthorized to
    perform the proxy request"."""

    code = "UNAUTHORIZED_SERVICE"
    message = "The service is not authorized to perform the proxy request."


class InvalidProxyCallback(CasError):
    """``INVALID_PROXY_CALLBACK``: "The proxy callback specified is invalid. The credentials
    specified for proxy authentication do not meet the security requirements"."""

    code = "INVALID_PROXY_CALLBACK"
    message = "The proxy callback specified is invalid."


class InvalidTicket(CasError):
    """``INVALID_TICKET``: "the ticket provided was not valid, or the ticket did not come from
    an initial login and ``renew`` was set on validation"."""

    code = "INVALID_TICKET"
    message = "The ticket provided is not valid."


class InvalidService(CasError):
    """``INVALID_SERVICE``: "the ticket provided was valid, but the service specified did not
    match the service associated with the ticket". The ticket is spent all the same."""

    code = "INVALID_SERVICE"
    message = "The service specified does not match the service the ticket was issued for."


class InternalError(CasError):
    """``INTERNAL_ERROR``: "an internal error occurred during ticket validation"."""

    code = "INTERNAL_ERROR"
    message = "An internal error occurred during ticket validation."


ERRORS_BY_CODE: Final[Mapping[str, type[CasError]]] = {
    cls.code: cls
    for cls in (
        InvalidRequest,
        InvalidTicketSpec,
        UnauthorizedServiceProxy,
        UnauthorizedService,
        InvalidProxyCallback,
        InvalidTicket,
        InvalidService,
        InternalError,
    )
}
"""Every concrete error class, by wire code."""
