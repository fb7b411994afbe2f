"""What every benchmark shares: a throw-away deployment on loopback, seeding, wrk, reporting.

A ``Deployment`` is a temporary directory with its own SQLite database (migrated with
``python -m sso migrate``), a free port on 127.0.0.1, and ``python -m sso serve --workers 2``
(one worker per core on the 2-core reference machine). Seeding goes straight through the
server's own registries, with the same settings the server reads from the environment.

``run_wrk`` drives wrk with a Lua script that loads ``report.lua``: every script ends with one
``BENCH key=value ...`` line (requests, successes, latency percentiles) parsed here.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
if str(ROOT) not in sys.path:  # `sso` and `tests.support` whichever way the script is run
    sys.path.insert(0, str(ROOT))

from sso.accounts.store import AccountStore  # noqa: E402
from sso.config import Settings  # noqa: E402
from sso.db import make_engine  # noqa: E402
from sso.security.passwords import PasswordHasher  # noqa: E402
from sso.services.registry import CasService, ServiceRegistry  # noqa: E402
from sso.sessions.authentication import METHOD_ACADEMIC, Authentication  # noqa: E402
from sso.sessions.registry import SqlSessionRegistry, SsoSession  # noqa: E402
from tests.support.ports import LOOPBACK, free_port  # noqa: E402
from tests.support.processes import ServerProcess  # noqa: E402

# Other work on the machine skews every figure: say how busy it was before we started.
LOAD_AT_START = os.getloadavg()[0]
WORKERS = 2  # one per core
WRK_MAX_SECONDS = 15  # no load loop runs longer than this
SERVICE_URL = "https://app.bench.example/cas/login?next=%2Fcours"
# Pre-issued tickets must survive seeding plus the run; the server accepts up to 300 s.
BENCH_TICKET_LIFETIME = 300


def service_query(url: str = SERVICE_URL) -> str:
    """``service=`` with the URL percent-encoded, as CAS clients send it."""
    return "service=" + quote(url, safe="")


class Deployment:
    """A migrated temporary database and, once ``start()`` is called, a server on it."""

    def __init__(self, name: str, *, workers: int = WORKERS) -> None:
        self.name = name
        self.workers = workers
        self.dir = Path(tempfile.mkdtemp(prefix=f"sso-bench-{name}-"))
        self.port = free_port()
        self.base_url = f"http://{LOOPBACK}:{self.port}/"
        self.env = {
            "SSO_DATABASE_URL": f"sqlite:///{self.dir / 'sso.db'}",
            "SSO_SECRET_KEY": secrets.token_urlsafe(48),
            "SSO_BASE_URL": self.base_url,
            "SSO_VAR_DIR": str(self.dir / "var"),
            "SSO_SERVICE_TICKET_LIFETIME": str(BENCH_TICKET_LIFETIME),
            # The server runs the code of this checkout, whatever the venv has installed.
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        }
        self.settings = Settings(
            database_url=self.env["SSO_DATABASE_URL"],
            secret_key=self.env["SSO_SECRET_KEY"],
            base_url=self.base_url,
            var_dir=self.dir / "var",
            service_ticket_lifetime=BENCH_TICKET_LIFETIME,
        )
        self.server: ServerProcess | None = None
        self._engine = None

    # -- database -----------------------------------------------------------------------------
    def migrate(self) -> None:
        """``python -m sso migrate`` on the temporary database."""
        subprocess.run(
            [sys.executable, "-m", "sso", "migrate"],
            env={**os.environ, **self.env},
            cwd=self.dir,
            check=True,
            capture_output=True,
            timeout=120,
        )

    @property
    def engine(self):  # noqa: ANN201 - sqlalchemy.Engine, imported lazily by make_engine
        if self._engine is None:
            self._engine = make_engine(self.settings.database_url)
        return self._engine

    def sessions(self) -> SqlSessionRegistry:
        """The session registry the server uses, on the same database and lifetimes."""
        return SqlSessionRegistry(
            self.engine,
            idle_timeout=self.settings.session_idle_timeout,
            max_lifetime=self.settings.session_max_lifetime,
            ticket_lifetime=self.settings.service_ticket_lifetime,
        )

    def add_service(self, url: str = SERVICE_URL) -> CasService:
        """A realistic CAS service: exact URL, a few released attributes, single logout on."""
        return ServiceRegistry(self.engine, cache_seconds=0).add(
            name="bench",
            pattern=url,
            released_attributes=["uid", "mail", "displayName", "eduPersonAffiliation"],
        )

    def add_account(self, identifier: str, password: str) -> None:
        """An academic account with its argon2id hash (as `sso accounts import` stores it)."""
        from sso.accounts.importer import import_accounts

        csv_text = (
            "identifier,password,given_name,surname,email,affiliation\n"
            f"{identifier},{password},Claire,Martin,{identifier}@ac-bench.fr,teacher\n"
        )
        report = import_accounts(self.engine, PasswordHasher(), csv_text)
        if report.errors:
            raise RuntimeError(f"account seeding failed: {report.errors}")

    def accounts(self) -> AccountStore:
        return AccountStore(self.engine, PasswordHasher())

    def open_session(self, subject: str = "cmartin") -> tuple[str, SsoSession]:
        """A live SSO session: the TGC cookie value and the session."""
        authentication = Authentication(
            subject=subject,
            method=METHOD_ACADEMIC,
            authenticated_at=dt.datetime.now(dt.UTC),
            attributes={
                "uid": [subject],
                "mail": [f"{subject}@ac-bench.fr"],
                "displayName": ["Claire Martin"],
                "eduPersonAffiliation": ["teacher"],
            },
        )
        return self.sessions().create_session(authentication)

    # -- server -------------------------------------------------------------------------------
    def start(self) -> None:
        """``python -m sso serve --workers N`` on the port; returns once /health answers."""
        if self._engine is not None:
            self._engine.dispose()  # no connection of ours kept open beside the server's
        self.server = ServerProcess(
            [
                sys.executable,
                "-m",
                "sso",
                "serve",
                "--workers",
                str(self.workers),
                "--port",
                str(self.port),
            ],
            env=self.env,
            port=self.port,
            ready_url=self.base_url + "health",
            cwd=self.dir,
            timeout=60,
            name=f"sso-{self.name}",
            log_dir=self.dir,
        )
        self.server.start()

    def server_log_tail(self, lines: int = 20) -> str:
        if self.server is None:
            return ""
        return "\n".join(self.server.log_text().splitlines()[-lines:])

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None
        if self._engine is not None:
            self._engine.dispose()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Deployment:
        try:
            self.migrate()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@dataclass(frozen=True)
class WrkResult:
    """What one wrk run measured (from the ``BENCH`` line of report.lua)."""

    requests: int
    seconds: float
    ok: int
    socket_errors: int
    status_errors: int
    timeouts: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    exhausted: bool
    output: str

    @property
    def rate(self) -> float:
        """Completed requests per second."""
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def ok_rate(self) -> float:
        """Successful requests per second."""
        return self.ok / self.seconds if self.seconds else 0.0

    @property
    def ok_ratio(self) -> float:
        return self.ok / self.requests if self.requests else 0.0

    def describe(self) -> str:
        return (
            f"{self.requests} requests in {self.seconds:.1f} s ({self.rate:,.0f}/s), "
            f"{self.ok} successes ({self.ok_ratio:.2%}); latency p50 {self.p50_ms:.1f} ms, "
            f"p90 {self.p90_ms:.1f} ms, p99 {self.p99_ms:.1f} ms, max {self.max_ms:.1f} ms; "
            f"socket errors {self.socket_errors}, non-2xx/3xx {self.status_errors}, "
            f"timeouts {self.timeouts}"
        )


def run_wrk(
    url: str,
    script: str,
    *,
    threads: int = 2,
    connections: int = 32,
    seconds: int = 10,
    script_args: tuple[str, ...] = (),
    headers: tuple[str, ...] = (),
) -> WrkResult:
    """One wrk run against ``url`` with ``bench/<script>``; at most WRK_MAX_SECONDS long."""
    if not url.startswith(f"http://{LOOPBACK}:"):
        raise ValueError("benchmarks only ever load 127.0.0.1")
    seconds = min(seconds, WRK_MAX_SECONDS)
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "5s",
        "--latency",
        "-s",
        str(BENCH_DIR / script),
    ]
    for header in headers:
        command += ["-H", header]
    command += [url, "--", str(threads), *script_args]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        env={**os.environ, "BENCH_DIR": str(BENCH_DIR)},
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    line = next((x for x in done.stdout.splitlines() if x.startswith("BENCH ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no BENCH line:\n{done.stdout}\n{done.stderr}")
    fields = dict(part.split("=", 1) for part in line.split()[1:])
    number = {k: float(v) for k, v in fields.items()}
    return WrkResult(
        requests=int(number["requests"]),
        seconds=number["duration_us"] / 1e6,
        ok=int(number["ok"]),
        socket_errors=int(
            number["connect_errors"] + number["read_errors"] + number["write_errors"]
        ),
        status_errors=int(number["status_errors"]),
        timeouts=int(number["timeouts"]),
        p50_ms=number["p50_us"] / 1000,
        p90_ms=number["p90_us"] / 1000,
        p99_ms=number["p99_us"] / 1000,
        max_ms=number["max_us"] / 1000,
        exhausted=number["exhausted"] > 0,
        output=done.stdout,
    )


def warm_up(url: str, script: str, **kwargs: object) -> None:
    """A short wrk run whose figures are thrown away (workers' caches, SQLite pages)."""
    run_wrk(url, script, seconds=2, **kwargs)  # type: ignore[arg-type]


def report(figure: str, value: str, target: str, met: bool, details: list[str]) -> None:
    """Print the figure and its target; the script still exits 0 when it is missed."""
    print(f"{figure}: {value}")
    print(f"target: {target} -> {'MET' if met else 'MISSED'}")
    for line in details:
        print(f"  {line}")
    print(f"  machine: {os.cpu_count()} CPUs, load average {LOAD_AT_START:.2f} at the start")
