"""Fixtures of the SAML interop tests: our IdP, independent service providers, a browser.

Every party runs in its own process and talks real HTTP(S) on 127.0.0.1:

- our server (``python -m sso serve``) over HTTPS with a throw-away PKI, a fresh SQLite
  database and one test account; it makes its SAML signing key under its var dir at first
  start, and its metadata (``saml/metadata``) is saved to a file for the SPs;
- service providers: ``pysaml2_sp.py`` (pysaml2's ``Saml2Client``, in the venv) and
  ``lasso_sp.py`` (Lasso, mod_auth_mellon's library, run by Debian's ``/usr/bin/python3``),
  each on a free port with its own key, its metadata registered with our server through the
  CLI (``sso saml-sps add FILE --release '*'``) with the server's environment;
- the "browser": an ``httpx.Client`` keeping cookies that follows redirects, submits the
  auto-POST forms of both sides (SAMLRequest / SAMLResponse), loads iframes (front-channel
  logout pages) and fills our login form.

The test modules (``tests/interop/test_saml_*.py``) sit beside the CAS ones, out of this
directory's reach, so they import these fixtures by their ``*_fixture`` function names; each
module then gets its own server and SPs (module scope).
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import re
import shutil
import ssl
import subprocess
import sys
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlencode, urljoin

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tests.interop.conftest import ACCOUNT, log_tail, login_form, run, start_process
from tests.support.cas_login import parse_page
from tests.support.ports import free_port
from tests.support.processes import ServerProcess
from tests.support.tls import make_test_pki

SAML_DIR = Path(__file__).resolve().parent
PYSAML2_SP = SAML_DIR / "pysaml2_sp.py"
LASSO_SP = SAML_DIR / "lasso_sp.py"
# Lasso's binding is a Debian package for the system interpreter, not a wheel for the venv.
SYSTEM_PYTHON = "/usr/bin/python3"

SCOPE = "example.org"
# The test account: the CAS interop account plus a SupAnn attribute (the import releases any
# extra column as an attribute).
SAML_ACCOUNT = {**ACCOUNT, "supannEtablissement": "{UAI}0751234A"}
# What the IdP must release for it, by SAML name (sso.protocols.saml.attributes: eduPerson
# and SupAnn names, ePPN and affiliations scoped by SSO_SAML_SCOPE).
EXPECTED_BY_OID = {
    "urn:oid:0.9.2342.19200300.100.1.1": [ACCOUNT["identifier"]],  # uid
    "urn:oid:1.3.6.1.4.1.5923.1.1.1.6": [f"{ACCOUNT['identifier']}@{SCOPE}"],  # ePPN
    "urn:oid:0.9.2342.19200300.100.1.3": [ACCOUNT["email"]],  # mail
    "urn:oid:2.16.840.1.113730.3.1.241": ["Ada Lovelace"],  # displayName
    "urn:oid:2.5.4.42": ["Ada"],  # givenName
    "urn:oid:2.5.4.4": ["Lovelace"],  # sn
    "urn:oid:1.3.6.1.4.1.5923.1.1.1.1": ["staff", "member"],  # eduPersonAffiliation
    "urn:oid:1.3.6.1.4.1.5923.1.1.1.9": [f"staff@{SCOPE}", f"member@{SCOPE}"],  # scoped
    "urn:oid:1.3.6.1.4.1.7135.1.2.1.14": ["{UAI}0751234A"],  # supannEtablissement
}
# The same by the friendly names both SPs know (pysaml2's saml_uri map, Lasso SP's table).
EXPECTED_BY_NAME = {
    "uid": [ACCOUNT["identifier"]],
    "eduPersonPrincipalName": [f"{ACCOUNT['identifier']}@{SCOPE}"],
    "mail": [ACCOUNT["email"]],
    "displayName": ["Ada Lovelace"],
    "givenName": ["Ada"],
    "sn": ["Lovelace"],
    "eduPersonAffiliation": ["staff", "member"],
}

START_TIMEOUT = 30.0
SAML_FIELDS = ("SAMLRequest", "SAMLResponse")


# --- our IdP ---------------------------------------------------------------------------------


@dataclass
class SamlIdp:
    """Our server as the SPs and the browser see it, with its CLI."""

    base_url: str  # with a trailing slash
    ca_cert: Path
    user: str
    password: str
    env: dict[str, str]
    directory: Path
    metadata_file: Path
    process: ServerProcess
    logs: list[ServerProcess] = field(default_factory=list)

    @property
    def entity_id(self) -> str:
        return self.url("saml/metadata")

    def url(self, path: str) -> str:
        return urljoin(self.base_url, path.lstrip("/"))

    def cli(self, *args: str) -> str:
        """Run ``python -m sso ARGS`` with the server's environment."""
        return run([sys.executable, "-m", "sso", *args], self.env, f"sso {' '.join(args)}")

    def register(self, metadata_file: Path) -> None:
        """Register an SP and release every attribute to it."""
        self.cli("saml-sps", "add", str(metadata_file), "--release", "*")

    def diagnostics(self) -> str:
        """The tails of every process log, for assertion messages."""
        parts = []
        for proc in [self.process, *self.logs]:
            parts.append(f"----- {proc.name} ({proc.log_path}) -----\n{log_tail(proc)}")
        return "\n" + "\n".join(parts)


def _write_accounts(path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=list(SAML_ACCOUNT))
        writer.writeheader()
        writer.writerow(SAML_ACCOUNT)


@pytest.fixture(scope="module", name="saml_idp")
def saml_idp_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SamlIdp]:
    directory = tmp_path_factory.mktemp("saml-interop")
    pki = make_test_pki(directory / "pki")
    port = free_port()
    base_url = f"https://127.0.0.1:{port}/"
    env = {
        "SSO_DATABASE_URL": f"sqlite:///{directory / 'sso.db'}",
        "SSO_BASE_URL": base_url,
        "SSO_DEMO": "true",
        "SSO_VAR_DIR": str(directory / "var"),
        "SSO_CA_BUNDLE": str(pki.ca_cert),
        "SSO_SERVICE_CACHE_SECONDS": "0",
        "SSO_SAML_SP_CACHE_SECONDS": "0",
        "SSO_DEFAULT_LANGUAGE": "en",
        "SSO_LOG_LEVEL": "debug",
        "SSO_SAML_SCOPE": SCOPE,
        # Encrypt to every SP that publishes an encryption key (the SPs started with
        # --encryption); the others publish a signing key only and get plain assertions.
        "SSO_SAML_ENCRYPT_ASSERTIONS": "true",
    }
    python = sys.executable
    run([python, "-m", "sso", "migrate"], env, "sso migrate")
    _write_accounts(directory / "accounts.csv")
    run(
        [python, "-m", "sso", "accounts", "import", str(directory / "accounts.csv")],
        env,
        "sso accounts import",
    )
    process = start_process(
        "sso",
        [
            python,
            "-m",
            "sso",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--ssl-certfile",
            str(pki.server_cert),
            "--ssl-keyfile",
            str(pki.server_key),
        ],
        directory / "logs",
        port=port,
        env=env,
        ready_url=base_url + "login",
        verify=pki.ca_cert,
    )
    try:
        context = ssl.create_default_context(cafile=str(pki.ca_cert))
        answer = httpx.get(base_url + "saml/metadata", verify=context, timeout=10)
        assert answer.status_code == 200, f"{answer.status_code} {answer.text[:2000]}"
        metadata_file = directory / "idp-metadata.xml"
        metadata_file.write_bytes(answer.content)
        yield SamlIdp(
            base_url,
            Path(pki.ca_cert),
            ACCOUNT["identifier"],
            ACCOUNT["password"],
            env,
            directory,
            metadata_file,
            process,
        )
    finally:
        process.stop()


# --- service providers -----------------------------------------------------------------------


@dataclass
class SamlSp:
    """One running SP: where it is and its options."""

    kind: str  # "pysaml2" or "lasso"
    name: str
    base_url: str  # no trailing slash
    entity_id: str
    metadata_file: Path
    process: ServerProcess
    options: dict[str, bool]

    def login_url(
        self,
        binding: str = "redirect",
        *,
        force: bool = False,
        passive: bool = False,
        relay: str | None = None,
    ) -> str:
        query: dict[str, str] = {"binding": binding}
        if force:
            query["force"] = "1"
        if passive:
            query["passive"] = "1"
        if relay is not None:
            query["relay"] = relay
        return f"{self.base_url}/login?{urlencode(query)}"

    @property
    def whoami_url(self) -> str:
        return self.base_url + "/whoami"

    def logout_url(self, binding: str = "redirect") -> str:
        return f"{self.base_url}/logout?binding={binding}"

    def __str__(self) -> str:
        options = ",".join(k for k, v in self.options.items() if v) or "plain"
        return f"{self.kind} SP {self.name} ({options}) at {self.base_url}"


def _make_sp_keys(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed RSA-2048 pair, as SPs publish in metadata (PKIX is not used by SAML)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"sp {name}")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=3))
        .sign(key, hashes.SHA256())
    )
    key_file, cert_file = directory / f"{name}.key", directory / f"{name}.pem"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_file.chmod(0o600)
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_file, cert_file


def _sp_command(kind: str) -> list[str]:
    if kind == "pysaml2":
        if shutil.which("xmlsec1") is None:
            pytest.skip("xmlsec1 is not installed (pysaml2's signing program)")
        return [sys.executable, str(PYSAML2_SP)]
    if kind == "lasso":
        probe = (
            subprocess.run([SYSTEM_PYTHON, "-c", "import lasso"], capture_output=True, check=False)
            if Path(SYSTEM_PYTHON).exists()
            else None
        )
        if probe is None or probe.returncode != 0:
            pytest.skip(f"Lasso is not installed for {SYSTEM_PYTHON} (Debian python3-lasso)")
        return [SYSTEM_PYTHON, str(LASSO_SP)]
    raise ValueError(kind)


def start_sp(
    idp: SamlIdp, kind: str, name: str, *, registered: bool = True, **options: bool
) -> SamlSp:
    """Start an SP process of ``kind`` and (unless told not to) register it with our server."""
    directory = idp.directory / "sps" / name
    directory.mkdir(parents=True, exist_ok=True)
    key_file, cert_file = _make_sp_keys(directory, name)
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    entity_id = f"{base_url}/metadata"
    metadata_file = directory / "metadata.xml"
    argv = [
        *_sp_command(kind),
        "--port",
        str(port),
        "--entity-id",
        entity_id,
        "--idp-metadata",
        str(idp.metadata_file),
        "--key",
        str(key_file),
        "--cert",
        str(cert_file),
        "--ca",
        str(idp.ca_cert),
        "--metadata-out",
        str(metadata_file),
    ]
    for option in ("sign_requests", "want_assertions_signed", "encryption"):
        if options.get(option):
            argv.append("--" + option.replace("_", "-"))
    # Python's own environment must not leak from the venv into the system interpreter.
    env = {"PYTHONPATH": ""} if kind == "lasso" else {}
    process = start_process(
        f"{kind}-{name}",
        argv,
        idp.directory / "logs",
        port=port,
        env=env,
        ready_url=base_url + "/metadata",
    )
    idp.logs.append(process)
    if registered:
        idp.register(metadata_file)
    return SamlSp(kind, name, base_url, entity_id, metadata_file, process, dict(options))


@pytest.fixture(scope="module", name="saml_sps")
def saml_sps_fixture(saml_idp: SamlIdp) -> Iterator[Callable[..., SamlSp]]:
    """``saml_sps(kind, name, **options)``: the running SP, started and registered on first use.

    Options: ``sign_requests``, ``want_assertions_signed``, ``encryption``; with
    ``registered=False`` our server is not told about the SP.
    """
    started: dict[tuple[str, str], SamlSp] = {}

    def get(kind: str, name: str, *, registered: bool = True, **options: bool) -> SamlSp:
        key = (kind, name)
        if key not in started:
            started[key] = start_sp(saml_idp, kind, name, registered=registered, **options)
        sp = started[key]
        assert sp.options == options, f"{sp} was started with other options"
        return sp

    try:
        yield get
    finally:
        for sp in started.values():
            sp.process.stop()


# --- the browser -----------------------------------------------------------------------------


@dataclass
class Visit:
    """Where a browser visit ended, and whether it had to type the password."""

    response: httpx.Response
    typed_password: bool
    history: list[str]
    saml_posts: list[tuple[str, dict[str, str]]]

    @property
    def status_code(self) -> int:
        return self.response.status_code

    def json(self) -> Any:
        return self.response.json()

    def describe(self) -> str:
        r = self.response
        chain = "\n  ".join(self.history)
        return f"chain:\n  {chain}\nended on {r.status_code} {r.url}\n{r.text[:3000]}"


_META_REFRESH = re.compile(
    r"<meta[^>]+http-equiv=[\"']?refresh[\"']?[^>]+content=[\"']?\d+\s*;\s*url=([^\"'>]+)",
    re.I,
)
_IFRAME = re.compile(r"<iframe[^>]+src=[\"']([^\"']+)[\"']", re.I)


class SamlBrowser:
    """A scripted browser: cookies, redirects, auto-POST forms, iframes, our login form."""

    def __init__(self, ca_cert: Path) -> None:
        context = ssl.create_default_context(cafile=str(ca_cert))
        self.http = httpx.Client(verify=context, follow_redirects=False, timeout=20.0)

    def close(self) -> None:
        self.http.close()

    def visit(
        self,
        url: str,
        user: str | None = None,
        password: str | None = None,
        *,
        method: str = "GET",
        data: dict[str, str] | None = None,
    ) -> Visit:
        """Open ``url`` and go wherever the pages lead; log in if the login form shows up and
        ``user``/``password`` are given (otherwise stop on it)."""
        visit = Visit(self.http.request(method, url, data=data), False, [], [])
        self._run(visit, user, password)
        return visit

    def _run(self, visit: Visit, user: str | None, password: str | None) -> None:
        for _ in range(40):
            response = visit.response
            request = response.request
            visit.history.append(f"{request.method} {request.url} -> {response.status_code}")
            here = str(request.url)
            if response.status_code in (301, 302, 303, 307, 308):
                visit.response = self.http.get(urljoin(here, response.headers["location"]))
                continue
            if "html" not in response.headers.get("content-type", ""):
                return
            page = response.text
            frames = [urljoin(here, unescape(src)) for src in _IFRAME.findall(page)]
            for frame in frames:
                # Front-channel logout: each other SP's logout URL in a hidden frame, loaded
                # (with whatever redirects and forms it leads to) before the page moves on.
                inner = Visit(self.http.get(frame), False, [], visit.saml_posts)
                self._run(inner, None, None)
                visit.history += [f"  [iframe] {line}" for line in inner.history]
            onward = self._after_frames(page)
            if onward is not None:
                # What the page's script does once every frame has loaded.
                method, action, fields = onward
                target = urljoin(here, action)
                if method == "post":
                    visit.saml_posts.append((target, fields))
                    visit.response = self.http.post(target, data=fields)
                else:
                    visit.response = self.http.get(target)
                continue
            form = self._saml_form(page)
            if form is not None:
                action, fields = form
                target = urljoin(here, action)
                visit.saml_posts.append((target, fields))
                visit.response = self.http.post(target, data=fields)
                continue
            login = login_form(page)
            if login is not None:
                if user is None or password is None or visit.typed_password:
                    return
                fields = dict(login.fields)
                fields.update(identifier=user, password=password)
                visit.typed_password = True
                visit.response = self.http.post(urljoin(here, login.action or here), data=fields)
                continue
            refresh = _META_REFRESH.search(page)
            if refresh is not None:
                visit.response = self.http.get(urljoin(here, unescape(refresh.group(1))))
                continue
            return
        raise AssertionError("the pages did not settle:\n  " + "\n  ".join(visit.history))

    @staticmethod
    def _after_frames(page: str) -> tuple[str, str, dict[str, str]] | None:
        """The ``.after-logout`` form or link our logout page's script follows (logout.js)."""
        parsed = parse_page(page)
        for form in parsed.forms:
            if "after-logout" in (form["attrs"].get("class") or "").split():
                fields = {i["name"]: i.get("value") or "" for i in form["inputs"] if i.get("name")}
                return "post", form["attrs"].get("action") or "", fields
        for link in parsed.links:
            if "after-logout" in (link.get("class") or "").split() and link.get("href"):
                return "get", link["href"] or "", {}
        return None

    @staticmethod
    def _saml_form(page: str) -> tuple[str, dict[str, str]] | None:
        """The auto-POST form carrying a SAML message, as a browser with JavaScript posts it."""
        for form in parse_page(page).forms:
            fields = {
                i["name"]: i.get("value") or ""
                for i in form["inputs"]
                if i.get("name") and (i.get("type") or "text").lower() != "submit"
            }
            if any(name in fields for name in SAML_FIELDS):
                return form["attrs"].get("action") or "", fields
        return None

    def whoami(self, sp: SamlSp) -> httpx.Response:
        return self.http.get(sp.whoami_url)


@pytest.fixture(name="saml_browser")
def saml_browser_fixture(saml_idp: SamlIdp) -> Iterator[SamlBrowser]:
    browser = SamlBrowser(saml_idp.ca_cert)
    try:
        yield browser
    finally:
        browser.close()


# --- scenarios shared by every SP kind -------------------------------------------------------

SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
NO_PASSIVE = "urn:oasis:names:tc:SAML:2.0:status:NoPassive"
AES128_GCM = "http://www.w3.org/2009/xmlenc11#aes128-gcm"
RSA_OAEP = (
    "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p",
    "http://www.w3.org/2009/xmlenc11#rsa-oaep",
)


def sent_authn_request(visit: Visit) -> str:
    """The XML of the AuthnRequest the SP sent at the start of ``visit`` (either binding)."""
    for _target, fields in visit.saml_posts:
        if "SAMLRequest" in fields:
            return base64.b64decode(fields["SAMLRequest"]).decode("utf-8")
    for line in visit.history:
        match = re.search(r"[?&]SAMLRequest=([^&\s]+)", line)
        if match:
            raw = base64.b64decode(unquote(match.group(1)))
            return zlib.decompress(raw, -15).decode("utf-8")
    raise AssertionError("no AuthnRequest in the visit:\n" + visit.describe())


def assert_logged_in(visit: Visit, idp: SamlIdp, sp: SamlSp) -> dict[str, Any]:
    """The SP's session JSON after a successful login, checked against the test account."""
    assert visit.status_code == 200, visit.describe() + idp.diagnostics()
    session = visit.json()
    assert session["issuer"] == idp.entity_id, session
    assert session["name_id"], session
    assert session["session_index"], session
    assert session["authn_context"], session
    for name, values in EXPECTED_BY_OID.items():
        got = session["attributes_by_name"].get(name)
        assert got is not None and sorted(got) == sorted(values), (name, session)
    for name, values in EXPECTED_BY_NAME.items():
        got = session["attributes"].get(name)
        assert got is not None and sorted(got) == sorted(values), (name, session)
    algorithms = session["signature_algorithms"] + session["digest_algorithms"]
    assert algorithms and not [a for a in algorithms if "sha1" in a], algorithms
    assert session["response_signed"] or session["assertion_signed"], session
    return session


class SpScenarios:
    """What every SP kind must be able to do with our IdP; subclasses set ``kind``."""

    kind = ""

    def sp(self, saml_sps: Callable[..., SamlSp], name: str = "a", **options: bool) -> SamlSp:
        return saml_sps(self.kind, name, **options)

    @pytest.mark.parametrize("binding", ["redirect", "post"])
    def test_sp_initiated_login(self, saml_idp, saml_sps, saml_browser, binding):
        sp = self.sp(saml_sps)

        visit = saml_browser.visit(
            sp.login_url(binding, relay=f"/after-{binding}"), saml_idp.user, saml_idp.password
        )

        assert visit.typed_password, visit.describe()
        session = assert_logged_in(visit, saml_idp, sp)
        assert session["relay_state"] == f"/after-{binding}", session
        assert session["in_response_to"], session
        assert session["encrypted"] is False, session
        whoami = saml_browser.whoami(sp)
        assert whoami.status_code == 200 and whoami.json()["name_id"] == session["name_id"]

    def test_unregistered_sp_gets_no_assertion(self, saml_idp, saml_sps, saml_browser):
        sp = saml_sps(self.kind, "stranger", registered=False)

        visit = saml_browser.visit(sp.login_url("post"), saml_idp.user, saml_idp.password)

        # Our error page, before any login form, and nothing posted back to the SP.
        assert not visit.typed_password, visit.describe()
        assert visit.status_code >= 400, visit.describe()
        assert str(visit.response.url).startswith(saml_idp.base_url), visit.describe()
        assert not [t for t, f in visit.saml_posts if "SAMLResponse" in f], visit.describe()
        assert saml_browser.whoami(sp).status_code == 401

    def test_second_sp_logs_in_without_password(self, saml_idp, saml_sps, saml_browser):
        first = saml_browser.visit(self.sp(saml_sps).login_url(), saml_idp.user, saml_idp.password)
        assert first.typed_password and first.status_code == 200, first.describe()

        other = self.sp(saml_sps, "b")
        second = saml_browser.visit(other.login_url("post"))

        assert not second.typed_password, second.describe()
        session = assert_logged_in(second, saml_idp, other)
        assert session["authn_instant"] == first.json()["authn_instant"], session

    @pytest.mark.parametrize("binding", ["redirect", "post"])
    def test_signed_authn_request(self, saml_idp, saml_sps, saml_browser, binding):
        sp = self.sp(saml_sps, "signed", sign_requests=True, want_assertions_signed=True)

        visit = saml_browser.visit(sp.login_url(binding), saml_idp.user, saml_idp.password)

        session = assert_logged_in(visit, saml_idp, sp)
        assert session["assertion_signed"], session
        if binding == "post":
            assert "SignatureValue" in sent_authn_request(visit), visit.describe()
        else:
            assert "Signature=" in visit.history[1] and "SigAlg=" in visit.history[1]

    def test_encrypted_assertion(self, saml_idp, saml_sps, saml_browser):
        sp = self.sp(saml_sps, "encrypted", encryption=True, want_assertions_signed=True)

        visit = saml_browser.visit(sp.login_url("post"), saml_idp.user, saml_idp.password)

        session = assert_logged_in(visit, saml_idp, sp)
        assert session["encrypted"], session
        assert session["assertion_signed"], session
        assert AES128_GCM in session["encryption_algorithms"], session
        assert set(RSA_OAEP) & set(session["encryption_algorithms"]), session

    def test_idp_initiated_login(self, saml_idp, saml_sps, saml_browser):
        sp = self.sp(saml_sps)
        url = saml_idp.url(
            "saml/sso/unsolicited?" + urlencode({"providerId": sp.entity_id, "target": "/news"})
        )

        visit = saml_browser.visit(url, saml_idp.user, saml_idp.password)

        assert visit.typed_password, visit.describe()
        session = assert_logged_in(visit, saml_idp, sp)
        assert session["relay_state"] == "/news", session
        assert session["in_response_to"] is None, session

        # The same Response posted again (a replay) must not open a second session.
        target, fields = visit.saml_posts[-1]
        replay = saml_browser.http.post(target, data=fields)
        assert replay.status_code == 400, replay.text
        assert "replay" in replay.json()["error"], replay.text

    def test_force_authn_asks_for_the_password_again(self, saml_idp, saml_sps, saml_browser):
        sp = self.sp(saml_sps)
        first = saml_browser.visit(sp.login_url(), saml_idp.user, saml_idp.password)
        assert first.typed_password and first.status_code == 200, first.describe()

        again = saml_browser.visit(sp.login_url(force=True), saml_idp.user, saml_idp.password)

        assert again.typed_password, again.describe()
        session = assert_logged_in(again, saml_idp, sp)
        assert session["authn_instant"] != first.json()["authn_instant"] or (
            session["session_index"] != first.json()["session_index"]
        ), session

    def test_is_passive_without_session_gets_no_passive(self, saml_idp, saml_sps, saml_browser):
        sp = self.sp(saml_sps)

        visit = saml_browser.visit(sp.login_url(passive=True), saml_idp.user, saml_idp.password)

        assert not visit.typed_password, visit.describe()
        assert visit.status_code == 400, visit.describe()
        answer = visit.json()
        assert answer["substatus"] == NO_PASSIVE, answer
        assert saml_browser.whoami(sp).status_code == 401

    def test_is_passive_with_session_logs_in(self, saml_idp, saml_sps, saml_browser):
        sp = self.sp(saml_sps)
        first = saml_browser.visit(sp.login_url(), saml_idp.user, saml_idp.password)
        assert first.status_code == 200, first.describe()

        other = self.sp(saml_sps, "b")
        visit = saml_browser.visit(other.login_url(passive=True))

        assert not visit.typed_password, visit.describe()
        assert_logged_in(visit, saml_idp, other)

    @pytest.mark.parametrize("binding", ["redirect", "post"])
    def test_single_logout_reaches_the_other_sp(self, saml_idp, saml_sps, saml_browser, binding):
        first, other = self.sp(saml_sps), self.sp(saml_sps, "b")
        login = saml_browser.visit(first.login_url(), saml_idp.user, saml_idp.password)
        assert login.status_code == 200, login.describe()
        second = saml_browser.visit(other.login_url())
        assert not second.typed_password and second.status_code == 200, second.describe()

        logout = saml_browser.visit(first.logout_url(binding))

        assert logout.status_code == 200, logout.describe() + saml_idp.diagnostics()
        answer = logout.json()
        assert answer["status"] == SUCCESS and answer["logged_out"], answer
        assert answer["signed"], answer
        slo_hits = [line for line in logout.history if f"{other.base_url}/slo" in line]
        assert slo_hits, "the other SP got no LogoutRequest:\n" + logout.describe()
        assert saml_browser.whoami(first).status_code == 401
        assert saml_browser.whoami(other).status_code == 401, logout.describe()
        # The SSO session is over too: the next login asks for the password.
        again = saml_browser.visit(first.login_url(), saml_idp.user, saml_idp.password)
        assert again.typed_password and again.status_code == 200, again.describe()

    def test_cas_logout_logs_the_sps_out(self, saml_idp, saml_sps, saml_browser):
        first, other = self.sp(saml_sps), self.sp(saml_sps, "b")
        assert saml_browser.visit(first.login_url(), saml_idp.user, saml_idp.password).json()
        assert not saml_browser.visit(other.login_url("post")).typed_password

        # Our own logout page (the CAS /logout) ends the SSO session for every protocol.
        logout = saml_browser.visit(saml_idp.url("logout"))

        assert logout.status_code == 200, logout.describe()
        for sp in (first, other):
            hits = [line for line in logout.history if f"{sp.base_url}/slo" in line]
            assert hits, f"{sp} got no LogoutRequest:\n" + logout.describe()
            assert saml_browser.whoami(sp).status_code == 401, logout.describe()
