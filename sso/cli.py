"""The ``sso`` command: serve, migrate, demo data and administration tasks."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from sso.config import Settings

if TYPE_CHECKING:
    from sqlalchemy import Engine


# Engines opened by the running command, disposed by main() when it ends.
_engines: list[Engine] = []


def _engine(database_url: str) -> Engine:
    from sso.db import make_engine

    engine = make_engine(database_url)
    _engines.append(engine)
    return engine


def _settings() -> Settings:
    try:
        return Settings()
    except ValueError as exc:
        sys.exit(f"sso: invalid settings: {exc}")


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the server with uvicorn."""
    import uvicorn

    settings = _settings()  # fail now, not in each worker
    if not settings.password_hash_concurrency:
        # The workers cannot know how many of them share the CPUs: tell them their share.
        from sso.security.passwords import hashes_at_once

        os.environ["SSO_PASSWORD_HASH_CONCURRENCY"] = str(hashes_at_once(args.workers))
    uvicorn.run(
        "sso.app:app_from_environment",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        ssl_certfile=args.ssl_certfile,
        ssl_keyfile=args.ssl_keyfile,
        log_level=settings.log_level,
        # Proxy headers are handled by our own middleware, from settings.trusted_proxies.
        proxy_headers=False,
        server_header=False,
        access_log=args.access_log,
    )
    return 0


def cmd_migrate(_args: argparse.Namespace) -> int:
    """Apply the database migrations."""
    from sso.migrate import upgrade

    upgrade(_settings().database_url)
    print("database schema up to date")
    return 0


def _import_report(report: object) -> int:
    print(
        f"created {report.created}, updated {report.updated}, "  # type: ignore[attr-defined]
        f"unchanged {report.unchanged}, refused {len(report.errors)}"  # type: ignore[attr-defined]
    )
    for line, reason in report.errors:  # type: ignore[attr-defined]
        print(f"line {line}: {reason}", file=sys.stderr)
    return 1 if report.errors else 0  # type: ignore[attr-defined]


def cmd_accounts_import(args: argparse.Namespace) -> int:
    """Import academic accounts from a CSV file."""
    settings = _settings()
    try:
        text = Path(args.file).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        sys.exit(f"sso: cannot read {args.file}: {exc}")
    return _import_report(_import(settings, text))


def _import(settings: Settings, csv_text: str) -> object:
    from sso.accounts.importer import import_accounts

    store = _account_store(settings)
    return import_accounts(
        store.engine,
        store.hasher,
        csv_text,
        numen_key=store.numen_key,
        temporary_password_days=store.temporary_password_days,
    )


def _account_store(settings: Settings):  # noqa: ANN202 - local import keeps `sso --help` fast
    from sso.accounts.store import AccountStore

    return AccountStore.from_settings(_engine(settings.database_url), settings)


def cmd_accounts_unlock(args: argparse.Namespace) -> int:
    """Unlock an account locked after failed logins (helpdesk)."""
    from sso.audit import ACCOUNT_UNLOCKED, record

    store = _account_store(_settings())
    account = store.unlock(args.identifier)
    if account is None:
        print(f"sso: no account {args.identifier!r}", file=sys.stderr)
        return 1
    record(
        store.engine,
        ACCOUNT_UNLOCKED,
        account_id=account.id,
        identifier=account.identifier,
        by="cli",
    )
    print(f"{account.identifier} unlocked")
    return 0


def cmd_accounts_set_password(args: argparse.Namespace) -> int:
    """Set an account's password (asked on the terminal, or read from stdin)."""
    password = sys.stdin.readline().rstrip("\n") if args.stdin else getpass.getpass()
    store = _account_store(_settings())
    try:
        found = store.set_password(args.identifier, password)
    except ValueError as exc:  # a password no login could use
        print(f"sso: {exc}", file=sys.stderr)
        return 1
    if not found:
        print(f"sso: no account {args.identifier!r}", file=sys.stderr)
        return 1
    print("password set")
    return 0


def _service_registry():  # noqa: ANN202 - local import keeps `sso --help` fast
    from sso.services.registry import ServiceRegistry

    return ServiceRegistry(_engine(_settings().database_url), cache_seconds=0)


def cmd_services_add(args: argparse.Namespace) -> int:
    """Register a CAS service."""
    from sso.services.registry import ServiceRegistryError

    try:
        service = _service_registry().add(
            name=args.name,
            pattern=args.url,
            match="regex" if args.regex else "exact",
            evaluation_order=args.order,
            released_attributes=[a for a in args.attributes.split(",") if a],
            logout_url=args.logout_url,
            single_logout=not args.no_single_logout,
            proxy_callback_pattern=args.proxy_callback,
            accepts_proxy_tickets=not args.no_proxy_tickets,
            response_method=args.method,
            description=args.description,
        )
    except ServiceRegistryError as exc:
        print(f"sso: {exc}", file=sys.stderr)
        return 1
    print(f"service {service.name!r} registered ({service.match}: {service.pattern})")
    return 0


def cmd_services_list(_args: argparse.Namespace) -> int:
    """List the registered CAS services."""
    for s in _service_registry().all():
        state = "" if s.enabled else " (disabled)"
        print(
            f"{s.evaluation_order:>4}  {s.name}{state}\n      {s.match}: {s.pattern}\n"
            f"      attributes: {','.join(s.released_attributes) or '-'}  "
            f"method: {s.response_method}  single logout: "
            f"{(s.logout_url or 'service URL') if s.single_logout else 'off'}  "
            f"proxy callback: {s.proxy_callback_pattern or '-'}"
        )
    return 0


def cmd_services_remove(args: argparse.Namespace) -> int:
    """Unregister a CAS service."""
    if not _service_registry().remove(args.name):
        print(f"sso: no service named {args.name!r}", file=sys.stderr)
        return 1
    print(f"service {args.name!r} removed")
    return 0


def cmd_demo(_args: argparse.Namespace) -> int:
    """Load the demo accounts and services (demo mode only)."""
    from sso.demo.routes import DEMO_PLATFORMS, demo_service_url

    settings = _settings()
    if not settings.demo:
        sys.exit("sso: demo data is loaded only with SSO_DEMO=true")
    csv_text = resources.files("sso").joinpath("demo", "accounts.csv").read_text("utf-8")
    _import_report(_import(settings, csv_text))
    registry = _service_registry()
    for key, name in DEMO_PLATFORMS.items():
        if registry.get(name) is None:
            registry.add(
                name=name,
                pattern=demo_service_url(settings.base_url, key),
                released_attributes=["*"],
                description="demo relying platform",
            )
    print(f"demo ready: open {settings.url('demo/webmail')}")
    return 0


def cmd_purge(_args: argparse.Namespace) -> int:
    """Delete expired sessions and tickets now (the server also does it every minute)."""
    from sso.app import build_runtime

    runtime = build_runtime(_settings())
    print(f"purged {runtime.sessions.purge_expired()} rows")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command-line grammar."""
    parser = argparse.ArgumentParser(prog="sso", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--ssl-certfile")
    serve.add_argument("--ssl-keyfile")
    serve.add_argument("--access-log", action="store_true")
    serve.set_defaults(handler=cmd_serve)

    commands.add_parser("migrate", help="apply database migrations").set_defaults(
        handler=cmd_migrate
    )
    commands.add_parser("demo", help="load demo accounts and services").set_defaults(
        handler=cmd_demo
    )
    commands.add_parser("purge", help="delete expired sessions and tickets").set_defaults(
        handler=cmd_purge
    )

    accounts = commands.add_parser("accounts", help="academic accounts").add_subparsers(
        dest="action", required=True
    )
    imp = accounts.add_parser("import", help="create or update accounts from a CSV file")
    imp.add_argument("file")
    imp.set_defaults(handler=cmd_accounts_import)
    setpw = accounts.add_parser("set-password", help="set an account's password")
    setpw.add_argument("identifier")
    setpw.add_argument("--stdin", action="store_true", help="read the password from stdin")
    setpw.set_defaults(handler=cmd_accounts_set_password)
    unlock = accounts.add_parser("unlock", help="unlock an account locked by failed logins")
    unlock.add_argument("identifier")
    unlock.set_defaults(handler=cmd_accounts_unlock)

    services = commands.add_parser("services", help="CAS services").add_subparsers(
        dest="action", required=True
    )
    add = services.add_parser("add", help="register a CAS service")
    add.add_argument("name")
    add.add_argument("url", help="the service URL, or a full-match regex with --regex")
    add.add_argument("--regex", action="store_true")
    add.add_argument("--order", type=int, default=0, help="evaluation order (lower first)")
    add.add_argument("--attributes", default="", help="released attributes, comma separated; *")
    add.add_argument("--logout-url", help="single-logout URL (default: the service URL)")
    add.add_argument("--no-single-logout", action="store_true")
    add.add_argument("--proxy-callback", help="full-match regex of allowed pgtUrl values")
    add.add_argument("--no-proxy-tickets", action="store_true", help="refuse proxy tickets")
    add.add_argument("--method", default="GET", choices=["GET", "POST", "HEADER"])
    add.add_argument("--description", default="")
    add.set_defaults(handler=cmd_services_add)
    services.add_parser("list", help="list CAS services").set_defaults(handler=cmd_services_list)
    remove = services.add_parser("remove", help="unregister a CAS service")
    remove.add_argument("name")
    remove.set_defaults(handler=cmd_services_remove)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sso`` command."""
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    finally:
        while _engines:
            _engines.pop().dispose()
