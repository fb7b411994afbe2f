"""The pending request: what a protocol asks of the login layer, carried signed in the form."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from sso.security.signed import TokenSigner

PURPOSE = "pending-request"


@dataclass(frozen=True)
class PendingRequest:
    """Which relying party, through which protocol, with which demands.

    ``params`` is the protocol's own state, handed back untouched when the login completes.
    """

    protocol: str = ""  # "" when the user came to log in for its own sake
    relying_party: str = ""
    relying_party_name: str = ""
    params: dict[str, str] = field(default_factory=dict)
    renew: bool = False  # fresh credentials demanded (CAS renew, SAML ForceAuthn)
    passive: bool = False  # never show a page (CAS gateway, SAML IsPassive)
    required_assurance: str | None = None

    def to_token(self, signer: TokenSigner, lifetime: int) -> str:
        """The signed form of this request, to carry through the browser."""
        return signer.sign(PURPOSE, {"pr": asdict(self)}, lifetime)

    @classmethod
    def from_token(cls, signer: TokenSigner, token: str) -> PendingRequest:
        """The request a token carries; raises InvalidSignedToken when forged or expired."""
        return cls(**signer.verify(PURPOSE, token)["pr"])
