"""Throw-away PostgreSQL clusters for tests, built with the distribution's server binaries.

A cluster lives in its own temporary directory, listens on 127.0.0.1 on a free port (its unix
socket also lives in that directory), trusts every local connection and trades durability for
speed. It takes a second or two to create and start.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import tempfile
import weakref
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import psycopg
from psycopg import sql

from tests.support.ports import LOOPBACK, free_port

# Debian/Ubuntu install each major version side by side here.
DEBIAN_PG_ROOT = Path("/usr/lib/postgresql")
# Lets a developer on another distribution point at their own binaries.
BINDIR_ENV = "SSO_TEST_PG_BINDIR"
SUPERUSER = "postgres"
_DB_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
# Start attempts: the port chosen by free_port() can be taken before postgres binds it.
_START_ATTEMPTS = 3


class PostgresError(RuntimeError):
    """The temporary PostgreSQL cluster could not be created, started or used."""


def find_postgres_bindir() -> Path:
    """Return the bin directory of the newest installed PostgreSQL (initdb, pg_ctl, postgres)."""
    override = os.environ.get(BINDIR_ENV)
    if override:
        candidates = [Path(override)]
    else:
        found = DEBIAN_PG_ROOT.glob("*/bin") if DEBIAN_PG_ROOT.is_dir() else []
        # Sort numerically so that 9.6 < 10 < 15.
        candidates = sorted(found, key=lambda p: _version_key(p.parent.name), reverse=True)
    for bindir in candidates:
        if all(os.access(bindir / tool, os.X_OK) for tool in ("initdb", "pg_ctl", "postgres")):
            return bindir
    where = override or f"{DEBIAN_PG_ROOT}/*/bin"
    raise PostgresError(
        f"no PostgreSQL server binaries (initdb, pg_ctl, postgres) found in {where}; "
        f"install Debian's postgresql package or set {BINDIR_ENV}"
    )


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", name))


def _clean_env() -> dict[str, str]:
    # PGPORT, PGDATA, PGOPTIONS... from the developer's shell must not leak into the cluster.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    return env


def _as_postgres_user(argv: Sequence[str]) -> list[str]:
    # initdb and postgres refuse to run as root; drop to the postgres system account instead.
    if os.geteuid() == 0:
        return ["runuser", "-u", SUPERUSER, "--", *argv]
    return list(argv)


def _run(argv: Sequence[str], cwd: Path, what: str, log: Path | None = None) -> None:
    proc = subprocess.run(
        _as_postgres_user(argv),
        cwd=cwd,  # the postgres user may not be allowed into the caller's working directory
        env=_clean_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        message = (
            f"{what} failed (exit {proc.returncode}): {' '.join(argv)}\n{proc.stdout}{proc.stderr}"
        )
        if log is not None and log.exists():
            message += f"\n--- {log} (tail) ---\n{_tail(log)}"
        raise PostgresError(message)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(cannot read {path}: {exc})"


def _destroy(bindir: Path, base_dir: Path) -> None:
    """Stop the cluster in ``base_dir`` if it runs, then delete the directory."""
    data_dir = base_dir / "data"
    if (data_dir / "postmaster.pid").exists():
        # Immediate mode: no checkpoint, nothing worth keeping in a throw-away cluster.
        subprocess.run(
            _as_postgres_user(
                [str(bindir / "pg_ctl"), "stop", "-D", str(data_dir), "-m", "immediate", "-w"]
            ),
            cwd=base_dir,
            env=_clean_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=False,
        )
    # A half-removed temp dir must not hide the real outcome of the test run.
    shutil.rmtree(base_dir, ignore_errors=True)


class PostgresCluster:
    """A temporary PostgreSQL cluster on 127.0.0.1; use as a context manager or start()/stop()."""

    def __init__(self, bindir: Path | None = None, start_timeout: float = 30.0) -> None:
        self.bindir = bindir or find_postgres_bindir()
        self.start_timeout = start_timeout
        self.host = LOOPBACK
        self.port = 0
        self.user = SUPERUSER
        self.base_dir: Path | None = None
        self._finalizer: weakref.finalize | None = None

    @property
    def running(self) -> bool:
        """True between a successful start() and stop()."""
        return self._finalizer is not None and self._finalizer.alive

    @property
    def log_path(self) -> Path:
        """The server log (useful when a test fails on a database error)."""
        if self.base_dir is None:
            raise PostgresError("cluster not started")
        return self.base_dir / "postgres.log"

    def start(self) -> PostgresCluster:
        """Create the cluster in a new temporary directory and start the server."""
        if self.running:
            raise PostgresError("cluster already started")
        base_dir = Path(tempfile.mkdtemp(prefix="sso-pg-"))
        # Registered before anything can fail so that no server or directory is left behind,
        # even if the caller never calls stop() (runs at garbage collection or interpreter exit).
        self._finalizer = weakref.finalize(self, _destroy, self.bindir, base_dir)
        self.base_dir = base_dir
        try:
            self._create(base_dir)
            self._start_server(base_dir)
        except BaseException:
            self.stop()
            raise
        return self

    def _create(self, base_dir: Path) -> None:
        data_dir, socket_dir = base_dir / "data", base_dir / "sock"
        socket_dir.mkdir()
        if os.geteuid() == 0:
            try:
                account = pwd.getpwnam(SUPERUSER)
            except KeyError:
                raise PostgresError(
                    f"running as root but there is no {SUPERUSER!r} system user to run "
                    "initdb/postgres as (initdb refuses to run as root)"
                ) from None
            for path in (base_dir, socket_dir):
                os.chown(path, account.pw_uid, account.pw_gid)
        _run(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(data_dir),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",  # C collation: fast and identical on every machine
                "--no-sync",  # the cluster is thrown away; do not wait for the disk
            ],
            cwd=base_dir,
            what="initdb",
        )
        settings = {
            "listen_addresses": LOOPBACK,
            "unix_socket_directories": str(socket_dir),
            # Durability is worthless for a throw-away cluster; these make commits much faster.
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "logging_collector": "off",
        }
        # Appending keeps the file's owner (postgres) even when we write as root.
        with (data_dir / "postgresql.conf").open("a") as conf:
            conf.write("\n# tests.support.postgres\n")
            for key, value in settings.items():
                conf.write(f"{key} = '{value.replace(chr(39), chr(39) * 2)}'\n")
        # Only the unix socket and 127.0.0.1, without passwords: nothing else can reach it.
        (data_dir / "pg_hba.conf").write_text(
            "local all all trust\nhost all all 127.0.0.1/32 trust\n"
        )

    def _start_server(self, base_dir: Path) -> None:
        log = base_dir / "postgres.log"
        for attempt in range(1, _START_ATTEMPTS + 1):
            self.port = free_port()
            try:
                _run(
                    [
                        str(self.bindir / "pg_ctl"),
                        "start",
                        "-D",
                        str(base_dir / "data"),
                        "-l",
                        str(log),
                        "-w",
                        "-t",
                        str(int(self.start_timeout)),
                        "-o",
                        f"-p {self.port}",
                    ],
                    cwd=base_dir,
                    what="pg_ctl start",
                    log=log,
                )
                return
            except PostgresError:
                # Someone grabbed the port between free_port() and bind(): try another one.
                lost_port = "could not bind" in _tail(log, 20) or "in use" in _tail(log, 20)
                if attempt == _START_ATTEMPTS or not lost_port:
                    raise

    def stop(self) -> None:
        """Stop the server immediately and delete its directory (safe to call twice)."""
        if self._finalizer is not None:
            self._finalizer()  # runs _destroy at most once
            self._finalizer = None
        self.base_dir = None

    def url(self, name: str = "postgres") -> str:
        """SQLAlchemy URL (psycopg 3 driver) for database ``name`` over TCP."""
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{name}"

    def connect(self, name: str = "postgres") -> psycopg.Connection:
        """A raw autocommit psycopg connection to database ``name``; close it when done."""
        if not self.running:
            raise PostgresError("cluster not started")
        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            dbname=name,
            autocommit=True,  # CREATE/DROP DATABASE cannot run inside a transaction
            connect_timeout=10,
        )

    def create_database(self, name: str) -> str:
        """Create database ``name`` and return its SQLAlchemy URL."""
        _check_name(name)
        with self.connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop database ``name`` if it exists, disconnecting any sessions still using it."""
        _check_name(name)
        with self.connect() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def __enter__(self) -> PostgresCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _check_name(name: str) -> None:
    # Names go into URLs unquoted, so keep them to plain identifiers.
    if not _DB_NAME.match(name):
        raise ValueError(f"invalid database name for tests: {name!r}")
