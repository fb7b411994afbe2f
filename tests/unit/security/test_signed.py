"""Signed tokens: bound to one purpose and a lifetime; tampering and oversize refused."""

from __future__ import annotations

import base64
import json
import time

import pytest
from jose import jwt

from sso.errors import SsoError
from sso.security.signed import InvalidSignedToken, TokenSigner

SECRET = "signer-test-secret-that-is-long-enough-0123456789"


@pytest.fixture
def signer() -> TokenSigner:
    return TokenSigner(SECRET)


def test_round_trip(signer: TokenSigner) -> None:
    token = signer.sign("relay-state", {"idp": "https://idp.test/", "n": [1, 2]}, 60)

    claims = signer.verify("relay-state", token)

    assert claims["idp"] == "https://idp.test/"
    assert claims["n"] == [1, 2]
    assert claims["aud"] == "relay-state"
    assert claims["exp"] - claims["iat"] == 60


def test_tokens_are_plain_hs256_with_the_secret(signer: TokenSigner) -> None:
    # Signed and checked with a key object built once: the same tokens as with the secret
    # itself, so those issued before (a pending login form, across a restart) still verify.
    now = int(time.time())
    before = jwt.encode({"aud": "login", "iat": now, "exp": now + 60}, SECRET, algorithm="HS256")

    assert signer.verify("login", before)["aud"] == "login"
    assert jwt.decode(signer.sign("login", {}, 60), SECRET, audience="login")["aud"] == "login"


def test_errors_belong_to_the_project_tree() -> None:
    assert issubclass(InvalidSignedToken, SsoError)


def test_token_for_another_purpose_refused(signer: TokenSigner) -> None:
    token = signer.sign("pending-request", {"x": 1}, 60)

    with pytest.raises(InvalidSignedToken):
        signer.verify("admin-api", token)


def test_claims_cannot_override_the_purpose(signer: TokenSigner) -> None:
    token = signer.sign("pending-request", {"aud": "admin-api"}, 60)

    with pytest.raises(InvalidSignedToken):
        signer.verify("admin-api", token)


def test_claims_cannot_override_the_expiry(signer: TokenSigner) -> None:
    token = signer.sign("p", {"exp": int(time.time()) + 10**6}, 60)

    assert signer.verify("p", token)["exp"] <= int(time.time()) + 60


def test_expired_token_refused(signer: TokenSigner) -> None:
    token = signer.sign("p", {"x": 1}, -1)

    with pytest.raises(InvalidSignedToken, match="xpired"):
        signer.verify("p", token)


def test_token_signed_with_another_key_refused(signer: TokenSigner) -> None:
    token = TokenSigner(SECRET + "-other").sign("p", {"x": 1}, 60)

    with pytest.raises(InvalidSignedToken):
        signer.verify("p", token)


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_tampered_payload_refused(signer: TokenSigner) -> None:
    header, _payload, signature = signer.sign("p", {"user": "alice"}, 60).split(".")
    forged = _b64({"user": "root", "aud": "p", "exp": int(time.time()) + 60})

    with pytest.raises(InvalidSignedToken):
        signer.verify("p", f"{header}.{forged}.{signature}")


def test_tampered_signature_refused(signer: TokenSigner) -> None:
    token = signer.sign("p", {"user": "alice"}, 60)
    last = "A" if token[-2] != "A" else "B"

    with pytest.raises(InvalidSignedToken):
        signer.verify("p", token[:-2] + last + token[-1])


def test_unsigned_token_refused(signer: TokenSigner) -> None:
    payload = _b64({"aud": "p", "exp": int(time.time()) + 60})

    with pytest.raises(InvalidSignedToken):
        signer.verify("p", f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.")


def test_other_algorithm_refused(signer: TokenSigner) -> None:
    token = jwt.encode({"aud": "p", "exp": int(time.time()) + 60}, SECRET, algorithm="HS512")

    with pytest.raises(InvalidSignedToken):
        signer.verify("p", token)


@pytest.mark.parametrize("token", ["", "not a token", "a.b.c", "a" * 8193])
def test_garbage_missing_or_oversized_refused(signer: TokenSigner, token: str) -> None:
    with pytest.raises(InvalidSignedToken):
        signer.verify("p", token)


def test_oversized_token_refused_even_when_valid(signer: TokenSigner) -> None:
    token = signer.sign("p", {"padding": "x" * 9000}, 60)

    with pytest.raises(InvalidSignedToken, match="oversized"):
        signer.verify("p", token)
