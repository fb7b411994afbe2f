"""Run a server command as a child process for a test, and wait until it serves."""

from __future__ import annotations

import os
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

import httpx

from tests.support.ports import LOOPBACK, port_is_open

_STOP_GRACE = 5.0
_TAIL_LINES = 60


class ServerProcessError(RuntimeError):
    """The process exited or never became ready; the message ends with its log tail."""


class ServerProcess:
    """A command run in its own process group with output captured to a log file.

    start() returns once ``port`` on 127.0.0.1 accepts connections and/or ``ready_url`` gives
    any HTTP response; stop() sends SIGTERM to the whole group and SIGKILL after 5 s.
    Use as a context manager or start()/stop().
    """

    def __init__(
        self,
        command: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        port: int | None = None,
        ready_url: str | None = None,
        verify: bool | str | Path | ssl.SSLContext = True,
        cwd: Path | str | None = None,
        timeout: float = 30.0,
        name: str | None = None,
        log_dir: Path | None = None,
    ) -> None:
        """``env`` is added to os.environ; ``verify`` is a CA file or context for an https URL.

        With ``log_dir`` the log is kept there; otherwise it goes to a temporary directory
        deleted by stop().
        """
        self.command = [str(part) for part in command]
        self.env = dict(env or {})
        self.port = port
        self.ready_url = ready_url
        self.verify = verify
        self.cwd = cwd
        self.timeout = timeout
        self.name = name or Path(self.command[0]).name
        self._log_dir = log_dir
        self._temp_dir: Path | None = None
        self.log_path: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """Process id of the command (also its process group id)."""
        if self.process is None:
            raise ServerProcessError(f"{self.name}: not started")
        return self.process.pid

    def start(self) -> ServerProcess:
        """Start the command and wait until it is ready; raise ServerProcessError otherwise."""
        if self.process is not None:
            raise ServerProcessError(f"{self.name}: already started")
        if self._log_dir is not None:
            self._log_dir.mkdir(parents=True, exist_ok=True)
            log_dir = self._log_dir
        else:
            log_dir = self._temp_dir = Path(tempfile.mkdtemp(prefix=f"sso-{self.name}-"))
        self.log_path = log_dir / f"{self.name}.log"
        # Unbuffered so the log tail in an error message shows the child's last words.
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        with self.log_path.open("wb") as log:
            # The child gets its own copy of the descriptor; ours can be closed right away.
            self.process = subprocess.Popen(
                self.command,
                env=env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # A new session (and process group) so stop() also reaches grandchildren,
                # e.g. uvicorn workers, and Ctrl-C in the terminal does not hit them first.
                start_new_session=True,
            )
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_until_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.timeout
        client = None
        if self.ready_url is not None:
            client = httpx.Client(verify=self._ssl_verify(), timeout=1.0, trust_env=False)
        try:
            while True:
                returncode = self.process.poll()
                if returncode is not None:
                    raise ServerProcessError(
                        f"{self.name} exited with status {returncode} before it was ready"
                        f"\ncommand: {self.command}{self._log_tail_block()}"
                    )
                if self._is_ready(client):
                    return
                if time.monotonic() >= deadline:
                    what = [f"port {LOOPBACK}:{self.port}"] if self.port is not None else []
                    what += [self.ready_url] if self.ready_url is not None else []
                    raise ServerProcessError(
                        f"{self.name} not ready within {self.timeout:.1f}s "
                        f"(waiting for {' and '.join(what)})"
                        f"\ncommand: {self.command}{self._log_tail_block()}"
                    )
                time.sleep(0.05)
        finally:
            if client is not None:
                client.close()

    def _ssl_verify(self) -> bool | ssl.SSLContext:
        # httpx 0.28 deprecates verify=<path>; a DeprecationWarning would be an error here.
        if isinstance(self.verify, str | Path):
            return ssl.create_default_context(cafile=str(self.verify))
        return self.verify

    def _is_ready(self, client: httpx.Client | None) -> bool:
        if self.port is not None and not port_is_open(self.port):
            return False
        if client is not None and self.ready_url is not None:
            try:
                client.get(self.ready_url)  # any status will do: it answers HTTP
            except httpx.HTTPError:
                return False
        return True

    def log_text(self) -> str:
        """Everything the process wrote to stdout/stderr so far."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def _log_tail_block(self) -> str:
        tail = "\n".join(self.log_text().splitlines()[-_TAIL_LINES:])
        return f"\n--- last {_TAIL_LINES} lines of {self.log_path} ---\n{tail or '(empty)'}"

    @property
    def returncode(self) -> int | None:
        """Exit status once the process has ended, else None."""
        return None if self.process is None else self.process.poll()

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL it after 5 s, reap it (safe to call twice)."""
        process, self.process = self.process, None
        if process is not None:
            pgid = process.pid  # start_new_session made the child its group leader
            _signal_group(pgid, signal.SIGTERM)
            deadline = time.monotonic() + _STOP_GRACE
            try:
                process.wait(timeout=_STOP_GRACE)
            except subprocess.TimeoutExpired:
                pass
            # Children outliving the leader (workers, shells' children) get the same grace.
            while _group_alive(pgid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if process.poll() is None or _group_alive(pgid):
                _signal_group(pgid, signal.SIGKILL)
                process.wait()
                # SIGKILL is asynchronous: let the kernel finish so the port is free on return.
                deadline = time.monotonic() + 1.0
                while _group_alive(pgid) and time.monotonic() < deadline:
                    time.sleep(0.01)
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass  # already gone


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # Members that have exited stay signalable as zombies until init reaps them, which some
    # container inits do only about once a second; count those as gone (Linux /proc only).
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited while we were looking
        # Fields after "(comm)": state, ppid, pgrp, ...; comm itself may contain spaces.
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return False
