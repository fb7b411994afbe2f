"""The pending request survives the browser round trip only as its own signed token."""

from __future__ import annotations

import pytest

from sso.login.pending import PURPOSE, PendingRequest
from sso.security.signed import InvalidSignedToken, TokenSigner

SECRET = "pending-test-secret-that-is-long-enough-0123456789"


@pytest.fixture
def signer() -> TokenSigner:
    return TokenSigner(SECRET)


def test_round_trip(signer: TokenSigner) -> None:
    pending = PendingRequest(
        protocol="cas",
        relying_party="https://app.test/cas?x=1&y=é",
        relying_party_name="Application",
        params={"service": "https://app.test/cas?x=1", "method": "POST"},
        renew=True,
        passive=False,
        required_assurance="mfa",
    )

    back = PendingRequest.from_token(signer, pending.to_token(signer, 60))

    assert back == pending


def test_default_request_round_trip(signer: TokenSigner) -> None:
    pending = PendingRequest()

    assert PendingRequest.from_token(signer, pending.to_token(signer, 60)) == pending


def test_token_is_signed_for_the_pending_request_purpose(signer: TokenSigner) -> None:
    token = PendingRequest(protocol="cas").to_token(signer, 60)

    assert signer.verify(PURPOSE, token)["pr"]["protocol"] == "cas"


def test_tampered_token_refused(signer: TokenSigner) -> None:
    token = PendingRequest(protocol="cas", relying_party="https://app.test/").to_token(signer, 60)
    header, payload, signature = token.split(".")
    other = PendingRequest(protocol="cas", relying_party="https://evil.test/").to_token(signer, 60)
    forged_payload = other.split(".")[1]

    with pytest.raises(InvalidSignedToken):
        PendingRequest.from_token(signer, f"{header}.{forged_payload}.{signature}")
    with pytest.raises(InvalidSignedToken):
        PendingRequest.from_token(signer, f"{header}.{payload}.{signature[::-1]}")


def test_token_of_another_server_refused(signer: TokenSigner) -> None:
    token = PendingRequest(protocol="cas").to_token(TokenSigner(SECRET + "-other"), 60)

    with pytest.raises(InvalidSignedToken):
        PendingRequest.from_token(signer, token)


def test_expired_token_refused(signer: TokenSigner) -> None:
    token = PendingRequest(protocol="cas").to_token(signer, -1)

    with pytest.raises(InvalidSignedToken):
        PendingRequest.from_token(signer, token)


def test_token_for_another_purpose_refused(signer: TokenSigner) -> None:
    pending = PendingRequest(protocol="cas", relying_party="https://app.test/")
    token = signer.sign("relay-state", {"pr": pending.__dict__}, 60)

    with pytest.raises(InvalidSignedToken):
        PendingRequest.from_token(signer, token)


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c"])
def test_garbage_refused(signer: TokenSigner, token: str) -> None:
    with pytest.raises(InvalidSignedToken):
        PendingRequest.from_token(signer, token)
