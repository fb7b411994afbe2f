"""SAML SP-initiated SSO round trips per second with an existing SSO session.

Target: >= 400 round trips/s with in-process signing (2 workers) and the default RSA-2048 key;
the same run measures, each on a deployment of its own, in-process signing with an RSA-3072 key
(``SSO_SAML_KEY_SIZE=3072``) and the xmlsec1 backend (``SSO_SAML_CRYPTO_BACKEND=xmlsec1``,
pysaml2 spawning the program for every signature), for comparison.

A round trip is what an SP sends a browser that is already logged in:
``GET /saml/sso/redirect?SAMLRequest=…&RelayState=x`` with the TGC cookie, answered 200 with
the auto-POST form carrying a signed Response around a signed assertion (all attributes
released, no encryption). Each deployment registers one SP through ``sso saml-sps add`` (its
metadata written by pysaml2, one HTTP-POST ACS), imports one account through
``sso accounts import`` and logs it in once through the real login form for its TGC.

The AuthnRequests (unique IDs: the IdP keeps a replay cache; current IssueInstant) are built
beforehand from a string template with zlib, one request path per line of a file; wrk walks
it (each thread its own slice, never a path twice) and counts 200 answers holding a
SAMLResponse at least half the size of a sample whose two signatures were verified with the
IdP's certificate from /saml/metadata.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import os
import re
import subprocess
import sys
import time
import uuid
import warnings
import zlib
from pathlib import Path
from urllib.parse import quote

import httpx
from cryptography.utils import CryptographyDeprecationWarning
from harness import Deployment, WrkResult, report, run_wrk
from lxml import etree

with warnings.catch_warnings():  # pysaml2 still names cryptography's moved CFB mode
    warnings.filterwarnings("ignore", "CFB has been moved", CryptographyDeprecationWarning)
    from saml2 import BINDING_HTTP_POST
    from saml2.config import SPConfig
    from saml2.metadata import entity_descriptor
    from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

    from sso.login.cookies import TGC_COOKIE
    from sso.protocols.saml.idp import SSO_REDIRECT
    from sso.security import xmldsig
    from tests.support.login_form import read_form, submit_login
    from tests.support.saml_sp import key_pair

TARGET_RATE = 400  # round trips/s with in-process signing
# name -> the deployment's settings; the first is the one the target is about.
RUNS = {
    "inprocess": {"SSO_SAML_CRYPTO_BACKEND": "inprocess"},
    "inprocess-rsa3072": {"SSO_SAML_CRYPTO_BACKEND": "inprocess", "SSO_SAML_KEY_SIZE": "3072"},
    "xmlsec1": {"SSO_SAML_CRYPTO_BACKEND": "xmlsec1"},
}
IDENTIFIER = "cmartin"
PASSWORD = "Bench-Saml-Martin-2026!"  # noqa: S105 - a throw-away account in a temporary database
SP_ENTITY_ID = "https://sp.bench.example/saml/metadata"
SP_ACS = "https://sp.bench.example/saml/acs"
RELAY_STATE = "x"
WARM_UP_REQUESTS = 3000
SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
MD = "urn:oasis:names:tc:SAML:2.0:metadata"
DS = "http://www.w3.org/2000/09/xmldsig#"

# What pysaml2's Saml2Client.prepare_for_authenticate writes, unsigned (the SP signs nothing).
AUTHN_REQUEST = (
    '<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
    'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{id}" Version="2.0" '
    'IssueInstant="{instant}" Destination="{destination}" '
    'ProtocolBinding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" '
    'AssertionConsumerServiceURL="{acs}">'
    "<saml:Issuer>{issuer}</saml:Issuer>"
    '<samlp:NameIDPolicy Format="urn:oasis:names:tc:SAML:2.0:nameid-format:transient" '
    'AllowCreate="true"/>'
    "</samlp:AuthnRequest>"
)

# wrk: one pre-built path per request, never reused; thread `id` takes lines id+1,
# id+1+threads, ...; a thread out of paths stops. Arguments: thread count, the path file, the
# smallest body that counts as a success. Written next to the paths (BENCH_DIR for report.lua).
WRK_SCRIPT = """\
dofile(os.getenv("BENCH_DIR") .. "/report.lua")

local paths = {}
local next_path = 1
local min_length

function init(args)
  local threads, file = tonumber(args[1]), args[2]
  min_length = tonumber(args[3])
  local line_number = 0
  for line in io.lines(file) do
    if line_number % threads == id then
      paths[#paths + 1] = line
    end
    line_number = line_number + 1
  end
end

function request()
  local path = paths[next_path]
  if path == nil then
    exhausted = 1
    wrk.thread:stop()
    path = "/health"
  end
  next_path = next_path + 1
  return wrk.format("GET", path)
end

function response(status, headers, body)
  if status == 200 and #body >= min_length and string.find(body, "SAMLResponse", 1, true) then
    ok = ok + 1
  end
end
"""


def request_paths(destination: str, count: int) -> list[str]:
    """``count`` SSO paths, each with a fresh AuthnRequest (deflate + base64 + URL-encoded)."""
    instant = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    prefix = "/" + SSO_REDIRECT + "?SAMLRequest="
    suffix = "&RelayState=" + RELAY_STATE
    paths = []
    for _ in range(count):
        xml = AUTHN_REQUEST.format(
            id="id-" + uuid.uuid4().hex,
            instant=instant,
            destination=destination,
            acs=SP_ACS,
            issuer=SP_ENTITY_ID,
        )
        deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
        compressed = deflater.compress(xml.encode()) + deflater.flush()
        paths.append(prefix + quote(base64.b64encode(compressed), safe="") + suffix)
    return paths


def sp_metadata(directory: Path) -> Path:
    """The SP's metadata as pysaml2 writes it (tests/support/saml_client.make_sp's settings)."""
    key, cert = key_pair("sp.bench.example").write(directory, "sp")
    config = SPConfig()
    config.load(
        {
            "entityid": SP_ENTITY_ID,
            "key_file": str(key),
            "cert_file": str(cert),
            "crypto_backend": "XMLSecurity",
            "service": {
                "sp": {
                    "endpoints": {"assertion_consumer_service": [(SP_ACS, BINDING_HTTP_POST)]},
                    "authn_requests_signed": False,
                    "want_assertions_signed": True,
                    "want_response_signed": True,
                    "signing_algorithm": SIG_RSA_SHA256,
                    "digest_algorithm": DIGEST_SHA256,
                }
            },
        }
    )
    path = directory / "sp-metadata.xml"
    path.write_text(str(entity_descriptor(config)))
    return path


def sso_command(deployment: Deployment, *args: str) -> None:
    """``python -m sso ARGS`` on the deployment's database, as an operator runs it."""
    done = subprocess.run(
        [sys.executable, "-m", "sso", *args],
        env={**os.environ, **deployment.env},
        cwd=deployment.dir,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"sso {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")


def seed(deployment: Deployment) -> None:
    """One SP releasing everything, unencrypted, and one academic account, through the CLI."""
    metadata = sp_metadata(deployment.dir)
    sso_command(deployment, "saml-sps", "add", str(metadata), "--release", "*", "--encrypt", "no")
    accounts = deployment.dir / "accounts.csv"
    accounts.write_text(
        "identifier,password,given_name,surname,email,affiliation\n"
        f"{IDENTIFIER},{PASSWORD},Claire,Martin,{IDENTIFIER}@ac-bench.fr,teacher\n"
    )
    sso_command(deployment, "accounts", "import", str(accounts))


def idp_certificate(client: httpx.Client) -> bytes:
    """The IdP's signing certificate (PEM) from its metadata."""
    metadata = client.get("/saml/metadata")
    metadata.raise_for_status()
    root = etree.fromstring(metadata.content)
    for descriptor in root.iter(f"{{{MD}}}KeyDescriptor"):
        if descriptor.get("use") in (None, "signing"):
            value = descriptor.find(f".//{{{DS}}}X509Certificate")
            if value is not None and value.text:
                body = re.sub(r"\s+", "", value.text)
                lines = [body[i : i + 64] for i in range(0, len(body), 64)]
                return ("-----BEGIN CERTIFICATE-----\n" + "\n".join(lines)).encode() + (
                    b"\n-----END CERTIFICATE-----\n"
                )
    raise RuntimeError("no signing certificate in the IdP's metadata")


def check_sample(client: httpx.Client, path: str, certificate: bytes) -> int:
    """One round trip with the TGC: both signatures verify; returns the answer's length."""
    page = client.get(path)
    if page.status_code != 200:
        raise RuntimeError(f"round trip answered {page.status_code}: {page.text[:500]}")
    action, fields = read_form(page.text, form_id=None)
    if action != SP_ACS or fields.get("RelayState") != RELAY_STATE:
        raise RuntimeError(f"unexpected form: {action} {fields.keys()}")
    document = base64.b64decode(fields["SAMLResponse"])
    root = etree.fromstring(document)
    status = root.find(f"{{{SAMLP}}}Status/{{{SAMLP}}}StatusCode")
    if status is None or not status.get("Value", "").endswith(":Success"):
        raise RuntimeError(f"not a success Response: {document[:800]!r}")
    assertion = root.find(f"{{{SAML}}}Assertion")
    if assertion is None:
        raise RuntimeError("the Response carries no plain Assertion")
    xmldsig.verify(document, [certificate], element_id=root.get("ID"))
    xmldsig.verify(document, [certificate], element_id=assertion.get("ID"))
    return len(page.content)


def log_in(client: httpx.Client, path: str) -> str:
    """The TGC, through the login form an unauthenticated round trip leads to."""
    page = client.get(path)
    if page.status_code != 200 or 'id="academic-login"' not in page.text:
        raise RuntimeError(f"no login page: {page.status_code} {page.text[:500]}")
    answer = submit_login(client, page, IDENTIFIER, PASSWORD)
    if answer.status_code != 200 or "SAMLResponse" not in answer.text:
        raise RuntimeError(f"login failed: {answer.status_code} {answer.text[:500]}")
    return client.cookies[TGC_COOKIE]


def measure(name: str, args: argparse.Namespace) -> tuple[WrkResult, int, float]:
    """One deployment with the settings of run ``name``: the wrk figure, the sample's size,
    the seconds it took to build the AuthnRequests."""
    with Deployment(f"saml-{name}") as deployment:
        deployment.env.update(RUNS[name])
        seed(deployment)
        deployment.start()
        base = deployment.base_url
        destination = base + SSO_REDIRECT
        with httpx.Client(base_url=base, trust_env=False, timeout=30) as client:
            certificate = idp_certificate(client)
            first, second = request_paths(destination, 2)
            cookie = log_in(client, first)
            sample_length = check_sample(client, second, certificate)

        started = time.perf_counter()
        warm = request_paths(destination, WARM_UP_REQUESTS)
        timed = request_paths(destination, args.requests)
        build_seconds = time.perf_counter() - started
        (deployment.dir / "warm.txt").write_text("\n".join(warm) + "\n")
        (deployment.dir / "paths.txt").write_text("\n".join(timed) + "\n")
        script = deployment.dir / "saml_sso.lua"
        script.write_text(WRK_SCRIPT)

        url = destination
        minimum = str(sample_length // 2)
        options = {"connections": args.connections, "headers": (f"Cookie: {TGC_COOKIE}={cookie}",)}
        run_wrk(
            url,
            str(script),
            seconds=2,
            script_args=(str(deployment.dir / "warm.txt"), minimum),
            **options,
        )
        result = run_wrk(
            url,
            str(script),
            seconds=args.seconds,
            script_args=(str(deployment.dir / "paths.txt"), minimum),
            **options,
        )
    return result, sample_length, build_seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000, help="AuthnRequests per run")
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()

    results = {name: measure(name, args) for name in RUNS}
    inprocess, xmlsec1 = results["inprocess"][0], results["xmlsec1"][0]
    rsa3072 = results["inprocess-rsa3072"][0]
    details = []
    for name, (result, sample_length, build_seconds) in results.items():
        details.append(f"{name}: {result.describe()}")
        details.append(
            f"{name}: sample answer {sample_length:,} bytes, Response and assertion "
            f"signatures verified with the certificate of /saml/metadata; "
            f"{args.requests + WARM_UP_REQUESTS:,} AuthnRequests built in {build_seconds:.1f} s"
        )
        if result.exhausted:
            details.append(f"{name}: the AuthnRequests ran out: a lower bound, use --requests")
    if xmlsec1.ok_rate:
        details.append(f"in-process signing is {inprocess.ok_rate / xmlsec1.ok_rate:.0f}x xmlsec1")
    details.append(
        f"wrk -t2 -c{args.connections} -d{args.seconds}s on GET /{SSO_REDIRECT}?SAMLRequest=…"
        f"&RelayState={RELAY_STATE} with a TGC, 2 workers, one deployment per run"
    )
    report(
        "SAML SP-initiated SSO round trips with an SSO session (in-process signing)",
        f"{inprocess.ok_rate:,.0f}/s successful, p50 {inprocess.p50_ms:.1f} ms, "
        f"p99 {inprocess.p99_ms:.1f} ms (RSA-2048); RSA-3072 {rsa3072.ok_rate:,.0f}/s, "
        f"p99 {rsa3072.p99_ms:.1f} ms; xmlsec1 backend {xmlsec1.ok_rate:,.1f}/s, "
        f"p50 {xmlsec1.p50_ms:.1f} ms, p99 {xmlsec1.p99_ms:.1f} ms",
        f">= {TARGET_RATE:,}/s with in-process signing and the default key",
        inprocess.ok_rate >= TARGET_RATE,
        details,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
