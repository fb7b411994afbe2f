import sys
from pathlib import Path

import httpx
import pytest

from tests.support.ports import free_port, port_is_open
from tests.support.processes import ServerProcess, ServerProcessError


def test_http_server_becomes_ready_and_stops(tmp_path):
    (tmp_path / "hello.txt").write_text("hi")
    port = free_port()
    command = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)]
    with ServerProcess(
        command, port=port, ready_url=f"http://127.0.0.1:{port}/", cwd=tmp_path, timeout=15
    ) as server:
        with httpx.Client(trust_env=False) as client:
            assert client.get(f"http://127.0.0.1:{port}/hello.txt").text == "hi"
        process = server.process
    assert process is not None and process.returncode is not None
    assert not port_is_open(port)


def test_early_exit_reports_log_tail():
    command = [sys.executable, "-c", "print('boom: bad config'); raise SystemExit(3)"]
    with pytest.raises(ServerProcessError, match=r"(?s)status 3.*boom: bad config"):
        ServerProcess(command, port=free_port(), timeout=10).start()


def test_not_ready_in_time_is_reported_and_killed():
    server = ServerProcess(
        [sys.executable, "-c", "print('starting', flush=True); import time; time.sleep(60)"],
        port=free_port(),
        timeout=0.5,
        name="sleeper",
    )
    with pytest.raises(ServerProcessError, match=r"(?s)sleeper not ready.*starting"):
        server.start()
    assert server.process is None


def test_stop_terminates_the_whole_group(tmp_path):
    pid_file = tmp_path / "child.pid"
    port = free_port()
    # The server's own child must not survive stop().
    script = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "import http.server\n"
        f"http.server.HTTPServer(('127.0.0.1', {port}), http.server.BaseHTTPRequestHandler)"
        ".serve_forever()\n"
    )
    with ServerProcess(
        [sys.executable, "-c", script], port=port, log_dir=tmp_path, name="srv"
    ) as server:
        child_pid = int(pid_file.read_text())
        assert _running(child_pid)
        assert server.log_path == tmp_path / "srv.log"
    assert not _running(child_pid)


def _running(pid: int) -> bool:
    # A killed child may linger as a zombie until init reaps it; that counts as stopped.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"
