"""Fixtures of the interop tests: our server, independent CAS clients, and a scripted browser.

Every party runs in its own process and talks real HTTP(S) on 127.0.0.1:

- our server (``python -m sso serve``) over HTTPS with a throw-away PKI and a fresh SQLite
  database, holding one test account;
- phpCAS applications (``php -S`` serving ``clients/phpcas``), one per CAS version;
- python-cas applications (``clients/pythoncas_app.py``), one per CAS version;
- the "browser": an ``httpx.Client`` that keeps cookies and submits the real login form.

Each client application is registered as its own service (its exact URL) when it starts.

Set ``INTEROP_CAS_URL`` (with ``INTEROP_CA_CERT``, ``INTEROP_USER``, ``INTEROP_PASSWORD``) to
run the clients against a CAS server that is already running instead; its services must then
accept ``http://127.0.0.1:*/``.
"""

from __future__ import annotations

import csv
import os
import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]

from tests.support.ports import free_port  # noqa: E402
from tests.support.processes import ServerProcess  # noqa: E402
from tests.support.tls import make_test_pki  # noqa: E402

CLIENTS = Path(__file__).resolve().parent / "clients"
PHPCAS_DIR = CLIENTS / "phpcas"
PYTHONCAS_APP = CLIENTS / "pythoncas_app.py"

USER = "ada.lovelace"
PASSWORD = "Interop-Passw0rd-1843"
ACCOUNT = {
    "identifier": USER,
    "password": PASSWORD,
    "given_name": "Ada",
    "surname": "Lovelace",
    "email": "ada.lovelace@example.org",
    "affiliation": "staff",
    # Any other column is a released attribute; ";" separates values.
    "memberOf": "teachers;maths",
}
# What the server releases for ACCOUNT (sso.accounts.models.Account.released_attributes).
EXPECTED_ATTRIBUTES = {
    "uid": [USER],
    "mail": ["ada.lovelace@example.org"],
    "givenName": ["Ada"],
    "sn": ["Lovelace"],
    "eduPersonAffiliation": ["staff"],
    "memberOf": ["teachers", "maths"],
}

START_TIMEOUT = 30.0


# --- processes -------------------------------------------------------------------------------


def start_process(
    name: str,
    argv: list[str],
    log_dir: Path,
    *,
    port: int,
    env: dict[str, str] | None = None,
    ready_url: str | None = None,
    verify: Path | None = None,
) -> ServerProcess:
    """Start a child process (own process group, log in ``log_dir``) and wait until it serves."""
    process = ServerProcess(
        argv,
        env=env,
        port=port,
        ready_url=ready_url,
        verify=verify if verify is not None else True,
        cwd=ROOT,
        timeout=START_TIMEOUT,
        name=name,
        log_dir=log_dir,
    )
    return process.start()


def log_tail(process: ServerProcess, lines: int = 60) -> str:
    return "\n".join(process.log_text().splitlines()[-lines:])


def run(argv: list[str], env: dict[str, str], what: str) -> str:
    """Run a command to completion; fail the session with its output if it fails."""
    done = subprocess.run(
        argv,
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{what} failed ({done.returncode}): {' '.join(argv)}\n{done.stdout}\n{done.stderr}"
        )
    return done.stdout


# --- our server ------------------------------------------------------------------------------


@dataclass
class CasServer:
    """The CAS server under test, as the clients and the browser see it."""

    base_url: str  # with a trailing slash
    ca_cert: Path
    user: str
    password: str
    register: Callable[[str, str], None]  # (service name, exact service URL)
    process: ServerProcess | None = None
    # What a CAS 3.0 / SAML 1.1 validation releases for the test account.
    attributes: dict[str, list[str]] = field(default_factory=lambda: dict(EXPECTED_ATTRIBUTES))
    logs: list[ServerProcess] = field(default_factory=list)

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        parts = urlsplit(self.base_url)
        return parts.port or (443 if parts.scheme == "https" else 80)

    @property
    def context(self) -> str:
        return urlsplit(self.base_url).path or "/"

    def url(self, path: str) -> str:
        return urljoin(self.base_url, path.lstrip("/"))

    def diagnostics(self) -> str:
        """The tails of every process log, for assertion messages."""
        parts = []
        for proc in ([self.process] if self.process else []) + self.logs:
            parts.append(f"----- {proc.name} ({proc.log_path}) -----\n{log_tail(proc)}")
        return "\n".join(parts)


def _make_pki(directory: Path) -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate, server key) for 127.0.0.1."""
    pki = make_test_pki(directory)
    return Path(pki.ca_cert), Path(pki.server_cert), Path(pki.server_key)


@pytest.fixture(scope="session")
def interop_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("interop")


@pytest.fixture(scope="session")
def cas_server(interop_dir: Path) -> Iterator[CasServer]:
    external = os.environ.get("INTEROP_CAS_URL")
    if external:
        yield CasServer(
            base_url=external if external.endswith("/") else external + "/",
            ca_cert=Path(os.environ["INTEROP_CA_CERT"]),
            user=os.environ.get("INTEROP_USER", USER),
            password=os.environ.get("INTEROP_PASSWORD", PASSWORD),
            register=lambda name, url: None,
        )
        return

    ca_cert, server_cert, server_key = _make_pki(interop_dir / "pki")
    port = free_port()
    base_url = f"https://127.0.0.1:{port}/"
    env = {
        "SSO_DATABASE_URL": f"sqlite:///{interop_dir / 'sso.db'}",
        "SSO_BASE_URL": base_url,
        "SSO_DEMO": "true",
        "SSO_VAR_DIR": str(interop_dir / "var"),
        "SSO_CA_BUNDLE": str(ca_cert),
        "SSO_SERVICE_CACHE_SECONDS": "0",
        "SSO_DEFAULT_LANGUAGE": "en",
        "SSO_LOG_LEVEL": "debug",
    }
    python = sys.executable
    run([python, "-m", "sso", "migrate"], env, "sso migrate")
    accounts = interop_dir / "accounts.csv"
    with accounts.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=list(ACCOUNT))
        writer.writeheader()
        writer.writerow(ACCOUNT)
    run([python, "-m", "sso", "accounts", "import", str(accounts)], env, "sso accounts import")

    def register(name: str, url: str) -> None:
        run(
            [python, "-m", "sso", "services", "add", name, url, "--attributes", "*"],
            env,
            f"sso services add {name}",
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
            str(server_cert),
            "--ssl-keyfile",
            str(server_key),
        ],
        interop_dir / "logs",
        port=port,
        env=env,
        ready_url=base_url + "login",
        verify=ca_cert,
    )
    try:
        yield CasServer(base_url, ca_cert, USER, PASSWORD, register, process)
    finally:
        process.stop()


# --- client applications ---------------------------------------------------------------------


@dataclass
class ClientApp:
    """One CAS-protected application: where it is and how to ask who is logged in."""

    kind: str
    version: str
    url: str  # its service URL, the page that forces authentication
    whoami_url: str
    logout_url: str
    process: ServerProcess
    state_dir: Path

    def __str__(self) -> str:
        return f"{self.kind} {self.version} at {self.url}"


def _start_phpcas(server: CasServer, version: str, base: Path) -> ClientApp:
    php = shutil.which("php")
    if php is None or not Path("/usr/share/php/CAS/source/CAS.php").exists():
        pytest.skip("php-cli and php-cas (phpCAS) are not installed")
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    state = base / f"phpcas-{version}"
    state.mkdir(parents=True, exist_ok=True)
    server.register(f"phpcas-{version}", url)
    env = {
        "CAS_HOST": server.host,
        "CAS_PORT": str(server.port),
        "CAS_CONTEXT": server.context,
        "CAS_VERSION": version,
        "CAS_CA_CERT": str(server.ca_cert),
        "SERVICE_BASE_URL": f"http://127.0.0.1:{port}",
        "SESSION_DIR": str(state),
        # Several workers, so a slow request never blocks the back-channel logout.
        "PHP_CLI_SERVER_WORKERS": "2",
    }
    process = start_process(
        f"phpcas-{version}",
        [php, "-S", f"127.0.0.1:{port}", "-t", str(PHPCAS_DIR)],
        base / "logs",
        port=port,
        env=env,
    )
    return ClientApp("phpCAS", version, url, url + "whoami.php", url + "logout.php", process, state)


def _start_pythoncas(server: CasServer, version: str, base: Path) -> ClientApp:
    pytest.importorskip("cas", reason="python-cas is not installed")
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    server.register(f"pythoncas-{version}", url)
    process = start_process(
        f"pythoncas-{version}",
        [
            sys.executable,
            str(PYTHONCAS_APP),
            "--port",
            str(port),
            "--cas-url",
            server.base_url,
            "--version",
            version,
            "--ca-cert",
            str(server.ca_cert),
        ],
        base / "logs",
        port=port,
        env={"REQUESTS_CA_BUNDLE": str(server.ca_cert)},
    )
    return ClientApp("python-cas", version, url, url + "whoami", url + "logout", process, base)


@pytest.fixture(scope="session")
def client_apps(cas_server: CasServer, interop_dir: Path) -> Iterator[Callable[..., ClientApp]]:
    """``client_apps(kind, version)``: the running application, started on first use."""
    started: dict[tuple[str, str], ClientApp] = {}
    starters = {"phpcas": _start_phpcas, "pythoncas": _start_pythoncas}

    def get(kind: str, version: str) -> ClientApp:
        key = (kind, version)
        if key not in started:
            app = starters[kind](cas_server, version, interop_dir)
            started[key] = app
            cas_server.logs.append(app.process)
        return started[key]

    try:
        yield get
    finally:
        for app in started.values():
            app.process.stop()


@pytest.fixture
def phpcas_app(client_apps: Callable[..., ClientApp]) -> Callable[[str], ClientApp]:
    return lambda version: client_apps("phpcas", version)


@pytest.fixture
def pythoncas_app(client_apps: Callable[..., ClientApp]) -> Callable[[str], ClientApp]:
    return lambda version: client_apps("pythoncas", version)


# --- the browser -----------------------------------------------------------------------------


@dataclass
class Form:
    action: str
    method: str
    fields: dict[str, str]
    names: set[str]


class _FormParser(HTMLParser):
    """Collects each <form>: its action, method, and the values a browser would submit."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self._current: Form | None = None
        self._submit_seen = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._current = Form(a.get("action", ""), a.get("method", "get").lower(), {}, set())
            self.forms.append(self._current)
            self._submit_seen = False
            return
        if self._current is None or not a.get("name"):
            return
        name = a["name"]
        self._current.names.add(name)
        if tag == "input":
            kind = a.get("type", "text").lower()
            if kind in ("checkbox", "radio") and "checked" not in a:
                return
            if kind in ("submit", "image", "button"):
                # Only the clicked (first) submit button is sent.
                if kind == "submit" and not self._submit_seen:
                    self._submit_seen = True
                    self._current.fields[name] = a.get("value", "")
                return
            self._current.fields.setdefault(name, a.get("value", ""))
        elif tag == "button" and a.get("type", "submit").lower() == "submit":
            if not self._submit_seen:
                self._submit_seen = True
                self._current.fields[name] = a.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None


def login_form(html: str) -> Form | None:
    """The form of the page that has an ``identifier`` input, if any."""
    parser = _FormParser()
    parser.feed(html)
    return next((f for f in parser.forms if "identifier" in f.names), None)


@dataclass
class Visit:
    """What a browser visit ended on, and whether it had to type the password."""

    response: httpx.Response
    typed_password: bool
    history: list[str]

    def json(self) -> Any:
        return self.response.json()

    def describe(self) -> str:
        r = self.response
        body = r.text[:2000]
        chain = "\n  ".join(self.history)
        return f"chain:\n  {chain}\nended on {r.status_code} {r.url}\n{body}"


class Browser:
    """A scripted browser: keeps cookies, follows redirects, submits the login form."""

    def __init__(self, ca_cert: Path) -> None:
        context = ssl.create_default_context(cafile=str(ca_cert))
        self.http = httpx.Client(verify=context, follow_redirects=False, timeout=20.0)
        self.history: list[str] = []

    def close(self) -> None:
        self.http.close()

    def _follow(self, response: httpx.Response, history: list[str]) -> httpx.Response:
        for _ in range(20):
            history.append(
                f"{response.request.method} {response.request.url} -> {response.status_code}"
            )
            if response.status_code not in (301, 302, 303, 307, 308):
                return response
            location = urljoin(str(response.request.url), response.headers["location"])
            response = self.http.get(location)
        raise AssertionError("too many redirects:\n  " + "\n  ".join(history))

    def get(self, url: str) -> httpx.Response:
        history: list[str] = []
        response = self._follow(self.http.get(url), history)
        self.history += history
        return response

    def visit(self, url: str, user: str | None = None, password: str | None = None) -> Visit:
        """Open ``url``; if the CAS login page shows up, log in with ``user``/``password``."""
        history: list[str] = []
        response = self._follow(self.http.get(url), history)
        typed = False
        form = (
            login_form(response.text)
            if "html" in response.headers.get("content-type", "")
            else None
        )
        if form is not None:
            if user is None or password is None:
                return Visit(response, False, history)
            data = dict(form.fields)
            data["identifier"] = user
            data["password"] = password
            action = urljoin(str(response.url), form.action or str(response.url))
            response = self._follow(self.http.post(action, data=data), history)
            typed = True
        self.history += history
        return Visit(response, typed, history)


@pytest.fixture
def browser(cas_server: CasServer) -> Iterator[Browser]:
    b = Browser(cas_server.ca_cert)
    try:
        yield b
    finally:
        b.close()


def poll_whoami(
    browser: Browser, app: ClientApp, until: Callable[[Any], bool], timeout: float = 10.0
) -> Any:
    """Ask the application who is logged in until ``until(answer)`` or the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        answer = browser.http.get(app.whoami_url).json()
        if until(answer) or time.monotonic() > deadline:
            return answer
        time.sleep(0.2)


@pytest.fixture
def whoami() -> Callable[..., Any]:
    """``whoami(browser, app, until=..., timeout=...)``: see :func:`poll_whoami`."""
    return poll_whoami
