"""A tiny CAS-protected web application built on python-cas, for the interop tests.

Run it in its own process::

    python tests/interop/clients/pythoncas_app.py --port 8082 \
        --cas-url https://127.0.0.1:8443/ --version 3 --ca-cert ca.pem

Pages (the service URL is ``http://HOST:PORT/``):

- ``GET /``: without a session and without ``ticket``, redirect to the CAS login page; with
  ``ticket``, validate it (python-cas's ``verify_ticket``), open a session (cookie) and answer
  JSON ``{"user", "attributes"}``; with a session, answer the same JSON.
- ``POST /`` with the form field ``logoutRequest``: single logout, the session whose ticket is
  the request's ``SessionIndex`` ends.
- ``GET /whoami``: JSON of the current session, ``{"user": null}`` without one. Never redirects.
- ``GET /logout``: end the local session and redirect to the CAS server's ``/logout``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import secrets
import sys
import threading
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from cas import CASClient, SingleLogoutMixin

log = logging.getLogger("pythoncas_app")

SESSION_INDEX_RE = re.compile(r"<(?:\w+:)?SessionIndex>\s*([^<\s]+)\s*</(?:\w+:)?SessionIndex>")


class Sessions:
    """In-memory sessions keyed by a random cookie value, with ticket -> session for SLO."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[str, dict[str, Any]] = {}
        self._by_ticket: dict[str, str] = {}

    def open(self, user: str, attributes: dict[str, Any], ticket: str) -> str:
        session_id = secrets.token_urlsafe(24)
        with self._lock:
            self._by_id[session_id] = {"user": user, "attributes": attributes, "ticket": ticket}
            self._by_ticket[ticket] = session_id
        return session_id

    def get(self, session_id: str | None) -> dict[str, Any] | None:
        if not session_id:
            return None
        with self._lock:
            return self._by_id.get(session_id)

    def drop(self, session_id: str | None) -> bool:
        with self._lock:
            session = self._by_id.pop(session_id or "", None)
            if session is not None:
                self._by_ticket.pop(session["ticket"], None)
            return session is not None

    def drop_by_ticket(self, ticket: str) -> bool:
        with self._lock:
            session_id = self._by_ticket.pop(ticket, None)
            if session_id is None:
                return False
            self._by_id.pop(session_id, None)
            return True


def session_index(logout_request: str) -> str | None:
    """The ticket named by a SAML 2.0 LogoutRequest, read the way python-cas does when it can."""
    nodes = SingleLogoutMixin.get_saml_slos(logout_request.encode("utf-8"))
    if nodes:
        text = (nodes[0].text or "").strip()
        if text:
            return text
    match = SESSION_INDEX_RE.search(logout_request)
    return match.group(1) if match else None


class App:
    def __init__(self, client: Any, cookie_name: str, service_url: str) -> None:
        self.client = client
        self.cookie_name = cookie_name
        self.service_url = service_url
        self.sessions = Sessions()


def make_handler(app: App) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "pythoncas-app/1"
        protocol_version = "HTTP/1.1"

        # -- helpers -------------------------------------------------------------------------
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            log.info("%s %s", self.address_string(), format % args)

        def _session_id(self) -> str | None:
            cookies = SimpleCookie()
            try:
                cookies.load(self.headers.get("Cookie", ""))
            except Exception:
                return None
            morsel = cookies.get(app.cookie_name)
            return morsel.value if morsel else None

        def _send(
            self,
            status: int,
            body: bytes,
            content_type: str,
            headers: dict[str, str] | None = None,
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
            body = json.dumps(data, ensure_ascii=False).encode("utf-8") + b"\n"
            self._send(status, body, "application/json", headers)

        def _redirect(self, location: str, headers: dict[str, str] | None = None) -> None:
            self._send(302, b"", "text/plain", {"Location": location, **(headers or {})})

        def _cookie(self, value: str, max_age: int | None = None) -> dict[str, str]:
            cookie = f"{app.cookie_name}={value}; Path=/; HttpOnly; SameSite=Lax"
            if max_age is not None:
                cookie += f"; Max-Age={max_age}"
            return {"Set-Cookie": cookie}

        # -- routes --------------------------------------------------------------------------
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            if url.path == "/":
                self._index(query)
            elif url.path == "/whoami":
                session = app.sessions.get(self._session_id())
                if session is None:
                    self._json(200, {"user": None})
                else:
                    self._json(200, {"user": session["user"], "attributes": session["attributes"]})
            elif url.path == "/logout":
                app.sessions.drop(self._session_id())
                self._redirect(
                    app.client.get_logout_url(app.service_url), self._cookie("", max_age=0)
                )
            else:
                self._json(404, {"error": "not found"})

        def do_POST(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if url.path != "/":
                self._json(404, {"error": "not found"})
                return
            form = parse_qs(raw.decode("utf-8", "replace"))
            logout_request = (form.get("logoutRequest") or [""])[0]
            if not logout_request:
                self._json(400, {"error": "no logoutRequest"})
                return
            ticket = session_index(logout_request)
            dropped = bool(ticket) and app.sessions.drop_by_ticket(ticket)
            log.info("single logout for ticket %r: session dropped=%s", ticket, dropped)
            self._json(200, {"ticket": ticket, "dropped": dropped})

        def _index(self, query: dict[str, list[str]]) -> None:
            ticket = (query.get("ticket") or [""])[0]
            if ticket:
                try:
                    user, attributes, _pgtiou = app.client.verify_ticket(ticket)
                except Exception as exc:  # the server's answer could not be used at all
                    log.exception("ticket validation failed")
                    self._json(502, {"user": None, "error": f"{type(exc).__name__}: {exc}"})
                    return
                if not user:
                    self._json(401, {"user": None, "error": "ticket not validated"})
                    return
                attributes = attributes or {}
                session_id = app.sessions.open(user, attributes, ticket)
                self._json(200, {"user": user, "attributes": attributes}, self._cookie(session_id))
                return
            session = app.sessions.get(self._session_id())
            if session is not None:
                self._json(200, {"user": session["user"], "attributes": session["attributes"]})
                return
            self._redirect(app.client.get_login_url())

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cas-url", required=True, help="CAS server URL, with a trailing slash")
    parser.add_argument("--version", default="3", choices=["2", "3", "CAS_2_SAML_1_0"])
    parser.add_argument("--ca-cert", help="PEM bundle to verify the CAS server's certificate")
    parser.add_argument("--service-url", help="default: http://HOST:PORT/")
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s"
    )

    service_url = args.service_url or f"http://{args.host}:{args.port}/"
    http = requests.Session()
    verify: bool | str = args.ca_cert or True
    # The SAML client posts without passing `verify`: the session's setting must carry it, and
    # requests lets REQUESTS_CA_BUNDLE override a session's setting, so set that too.
    http.verify = verify
    if args.ca_cert:
        os.environ["REQUESTS_CA_BUNDLE"] = args.ca_cert
    client = CASClient(
        version=args.version,
        service_url=service_url,
        server_url=args.cas_url,
        verify_ssl_certificate=verify,
        session=http,
    )
    app = App(client, cookie_name=f"pycas{args.port}", service_url=service_url)
    server = ThreadingHTTPServer((args.host, args.port), make_handler(app))
    server.daemon_threads = True
    log.info("serving %s (CAS %s at %s)", service_url, args.version, args.cas_url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
