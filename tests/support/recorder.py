"""A tiny threaded HTTP(S) server that records every request, for back-channel tests.

The SSO server calls out to relying parties: CAS proxy-granting-ticket callbacks (a GET on
``pgtUrl?pgtId=..&pgtIou=..`` over HTTPS with certificate verification) and CAS single-logout
POSTs (form field ``logoutRequest``). Point those at a RecordingServer and assert on what
arrived. Standard library only, so it behaves the same wherever the tests run.
"""

from __future__ import annotations

import socket
import socketserver
import ssl
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from urllib.parse import parse_qs, urljoin, urlsplit

from tests.support.ports import LOOPBACK

_FORM_TYPE = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the recording server received it."""

    method: str
    path: str  # without the query string
    query: dict[str, list[str]]  # parse_qs of the query string
    headers: dict[str, str]  # names lower-cased; repeated headers joined with ", "
    body: bytes
    form: dict[str, list[str]]  # parsed from the body only when it is urlencoded, else empty

    def arg(self, name: str) -> str | None:
        """First value of query parameter ``name``, or None."""
        values = self.query.get(name)
        return values[0] if values else None

    def field(self, name: str) -> str | None:
        """First value of form field ``name``, or None."""
        values = self.form.get(name)
        return values[0] if values else None


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    # One request per connection: nothing lingers in keep-alive when the server stops.
    protocol_version = "HTTP/1.0"
    # A client that connects and says nothing must not hold a thread and a socket forever.
    timeout = 10

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            # Handshake here, in the per-connection thread, not in the accept loop, so one
            # stalled or refused handshake cannot block other requests.
            self.request.settimeout(self.timeout)
            self.request.do_handshake()
        super().setup()

    def _record(self) -> None:
        owner = self.server.owner
        split = urlsplit(self.path)
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        body = self._read_body(headers)
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        form = (
            parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
            if content_type == _FORM_TYPE
            else {}
        )
        request = RecordedRequest(
            method=self.command,
            path=split.path,
            query=parse_qs(split.query, keep_blank_values=True),
            headers=headers,
            body=body,
            form=form,
        )
        # Read the response settings before recording, so a test that changes them after
        # wait_for() returns affects only later requests.
        status, payload, content_type_out = owner.status, owner.response_body, owner.content_type
        owner._add(request)
        self.send_response(status)
        self.send_header("Content-Type", content_type_out)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _read_body(self, headers: dict[str, str]) -> bytes:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    # Skip trailers up to the blank line that ends the message.
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(headers.get("content-length", "0") or "0")
        return self.rfile.read(length) if length else b""

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _record

    def log_message(self, format: str, *args: object) -> None:
        # Requests are recorded, not printed: keep pytest output clean.
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, owner: RecordingServer, context: ssl.SSLContext | None) -> None:
        self.owner = owner
        self.context = context
        super().__init__((LOOPBACK, 0), _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name (socket.getfqdn), which can stall on a
        # machine with slow DNS; the name is never used here.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = LOOPBACK, self.server_address[1]

    def get_request(self) -> tuple[socket.socket, object]:
        sock, address = super().get_request()
        if self.context is not None:
            sock = self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def handle_error(self, request: object, client_address: object) -> None:
        # Refused handshakes and dropped clients are expected in tests; remember, don't print.
        self.owner.errors.append(repr(sys.exc_info()[1]))


class RecordingServer:
    """HTTP server on 127.0.0.1 that records every request and answers ``status``.

    With ``certfile``/``keyfile`` it speaks HTTPS. Use as a context manager or start()/stop().
    ``status``, ``response_body`` and ``content_type`` may be changed while it runs.
    """

    def __init__(
        self,
        certfile: Path | str | None = None,
        keyfile: Path | str | None = None,
        status: int = 200,
        response_body: bytes = b"",
        content_type: str = "text/plain; charset=utf-8",
    ) -> None:
        self.status = status
        self.response_body = response_body
        self.content_type = content_type
        self.requests: list[RecordedRequest] = []
        self.errors: list[str] = []  # repr() of exceptions from failed connections/handshakes
        self._context: ssl.SSLContext | None = None
        if certfile is not None:
            self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._context.load_cert_chain(certfile, keyfile)
        self._cond = threading.Condition()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port the server listens on (chosen by the kernel)."""
        if self._server is None:
            raise RuntimeError("recording server not started")
        return self._server.server_port

    @property
    def url(self) -> str:
        """Base URL with a trailing slash, e.g. ``https://127.0.0.1:PORT/``."""
        scheme = "https" if self._context is not None else "http"
        return f"{scheme}://{LOOPBACK}:{self.port}/"

    def url_for(self, path: str) -> str:
        """Absolute URL of ``path`` (may include a query string) on this server."""
        return urljoin(self.url, path.lstrip("/"))

    def start(self) -> RecordingServer:
        """Bind a free port and serve in a background thread."""
        if self._server is not None:
            raise RuntimeError("recording server already started")
        self._server = _Server(self, self._context)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"RecordingServer:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket (safe to call twice)."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def _add(self, request: RecordedRequest) -> None:
        with self._cond:
            self.requests.append(request)
            self._cond.notify_all()

    def clear(self) -> None:
        """Forget the requests and errors recorded so far."""
        with self._cond:
            self.requests.clear()
            self.errors.clear()

    def wait_for(
        self,
        predicate: Callable[[RecordedRequest], bool] | None = None,
        timeout: float = 10.0,
    ) -> RecordedRequest:
        """Return the first recorded request matching ``predicate`` (any request if None).

        Waits up to ``timeout`` seconds for it to arrive; raises TimeoutError listing what
        was received instead.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for request in self.requests:
                    if predicate is None or predicate(request):
                        return request
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [f"{r.method} {r.path}" for r in self.requests]
                    raise TimeoutError(
                        f"no matching request at {self.url} within {timeout:.1f}s; "
                        f"received {seen or 'nothing'}; connection errors: {self.errors or 'none'}"
                    )
                self._cond.wait(remaining)

    def __enter__(self) -> RecordingServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
