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
    from collections.abc import Callable

    import httpx
    from sqlalchemy import Engine

    from sso.services.saml_registry import SamlServiceProvider, SamlSpRegistry

    SpAction = Callable[[SamlSpRegistry, argparse.Namespace], int]


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
    import httpx

    from sso.demo import saml_sp

    with httpx.Client() as http:
        sps = _saml_sp_registry(settings, http)
        if sps.get(saml_sp.entity_id(settings)) is None:
            sps.add(
                metadata_xml=saml_sp.metadata(settings),
                name=saml_sp.NAME,
                released_attributes=["*"],
            )
    print(f"demo ready: open {settings.url('demo/webmail')} or {settings.url(saml_sp.PATH)}")
    return 0


def cmd_purge(_args: argparse.Namespace) -> int:
    """Delete expired sessions and tickets now (the server also does it every minute)."""
    from sso.app import build_runtime

    runtime = build_runtime(_settings())
    print(f"purged {runtime.sessions.purge_expired()} rows")
    return 0


# -- SAML service providers (sso saml-sps ...) ------------------------------------------------


def _saml_sp_registry(settings: Settings, http: httpx.Client) -> SamlSpRegistry:
    from sso.services.saml_registry import SamlSpRegistry

    return SamlSpRegistry(
        _engine(settings.database_url),
        cache_seconds=0,
        http=http,
        max_bytes=settings.saml_sp_metadata_max_bytes,
        refresh_seconds=settings.saml_sp_refresh_seconds,
        min_refresh_seconds=settings.saml_sp_refresh_min_seconds,
        allow_private_urls=True,  # an administrator may name any URL
    )


def _saml_sps(args: argparse.Namespace, action: SpAction) -> int:
    """Run ``action(registry, args)`` with an HTTP client for metadata, reporting errors."""
    import ssl

    import httpx

    from sso.errors import SsoError

    settings = _settings()
    verify: ssl.SSLContext | bool = (
        ssl.create_default_context(cafile=str(settings.ca_bundle)) if settings.ca_bundle else True
    )
    with httpx.Client(verify=verify, timeout=settings.backchannel_timeout) as http:
        try:
            return action(_saml_sp_registry(settings, http), args)
        except SsoError as exc:
            print(f"sso: {getattr(exc, 'message', exc)}", file=sys.stderr)
            return 1


def _attribute_list(value: str | None) -> list[str] | None:
    return None if value is None else [a.strip() for a in value.split(",") if a.strip()]


def _encrypt_choice(value: str | None, current: bool | None) -> bool | None:
    return {"yes": True, "no": False, "default": None}.get(value or "", current)


def _describe_sp(sp: SamlServiceProvider) -> str:
    from sso.services.saml_release import release_for

    categories = " (R&S)" if sp.metadata.research_and_scholarship else ""
    encrypt = "default" if sp.encrypt_assertions is None else sp.encrypt_assertions
    lines = [
        f"{sp.status:<8}  {sp.entity_id}  {sp.name}{categories}",
        f"          release: {','.join(sp.released_attributes) or '-'}"
        f" -> {','.join(sorted(release_for(sp))) or '-'}"
        f"  name id: {sp.name_id_format or 'per request'}  encrypt: {encrypt}",
    ]
    if sp.metadata_url and sp.next_refresh_at:
        lines.append(
            f"          metadata: {sp.metadata_url}  next refresh: "
            f"{sp.next_refresh_at:%Y-%m-%d %H:%M} UTC"
            + (f"  last error: {sp.last_error}" if sp.last_error else "")
        )
    if sp.contact:
        lines.append(f"          contact: {sp.contact}")
    return "\n".join(lines)


def _sp_list(registry: SamlSpRegistry, _args: argparse.Namespace) -> int:
    for sp in registry.list():
        print(_describe_sp(sp))
    return 0


def _sp_add(registry: SamlSpRegistry, args: argparse.Namespace) -> int:
    source = args.source
    options: dict[str, object] = {}
    if source.startswith(("https://", "http://")):
        options["metadata_url"] = source
    else:
        try:
            options["metadata_xml"] = Path(source).read_bytes()
        except OSError as exc:
            sys.exit(f"sso: cannot read {source}: {exc}")
    if args.signing_cert:
        try:
            options["signing_cert"] = Path(args.signing_cert).read_text("ascii")
        except (OSError, UnicodeDecodeError) as exc:
            sys.exit(f"sso: cannot read {args.signing_cert}: {exc}")
    sp = registry.add(
        name=args.name,
        released_attributes=_attribute_list(args.release),
        name_id_format=args.name_id_format,
        encrypt_assertions=_encrypt_choice(args.encrypt, None),
        replace=args.replace,
        **options,
    )
    print(f"SAML SP {sp.entity_id!r} added ({sp.name})")
    return 0


def _sp_approve(registry: SamlSpRegistry, args: argparse.Namespace) -> int:
    sp = registry.approve(args.entity_id, _attribute_list(args.release))
    print(f"SAML SP {sp.entity_id!r} approved; release: {','.join(sp.released_attributes) or '-'}")
    return 0


def _sp_reject(registry: SamlSpRegistry, args: argparse.Namespace) -> int:
    registry.reject(args.entity_id)
    print(f"SAML SP {args.entity_id!r} rejected")
    return 0


def _sp_remove(registry: SamlSpRegistry, args: argparse.Namespace) -> int:
    if not registry.remove(args.entity_id):
        print(f"sso: no SAML SP {args.entity_id!r}", file=sys.stderr)
        return 1
    print(f"SAML SP {args.entity_id!r} removed")
    return 0


def _sp_policy(registry: SamlSpRegistry, args: argparse.Namespace) -> int:
    current = registry.get(args.entity_id)
    if current is None:
        print(f"sso: no SAML SP {args.entity_id!r}", file=sys.stderr)
        return 1
    name_id_format = current.name_id_format if args.name_id_format is None else args.name_id_format
    sp = registry.set_policy(
        args.entity_id,
        _attribute_list(args.release),
        name_id_format or None,
        _encrypt_choice(args.encrypt, current.encrypt_assertions),
    )
    print(_describe_sp(sp))
    return 0


def _sp_refresh(registry: SamlSpRegistry, _args: argparse.Namespace) -> int:
    reports = registry.refresh_due()
    for report in reports:
        outcome = ("updated" if report.changed else "unchanged") if report.ok else report.error
        when = f"{report.next_refresh_at:%Y-%m-%d %H:%M}"
        print(f"{report.entity_id}: {outcome}; next refresh {when} UTC")
    print(f"{len(reports)} refreshed, {sum(not r.ok for r in reports)} failed")
    return 1 if any(not r.ok for r in reports) else 0


def _add_saml_sps_parser(commands: argparse._SubParsersAction) -> None:
    """``sso saml-sps list|add|approve|reject|remove|policy|refresh``."""
    sps = commands.add_parser("saml-sps", help="SAML service providers").add_subparsers(
        dest="action", required=True
    )

    def command(name: str, action: SpAction, help_text: str) -> argparse.ArgumentParser:
        sub = sps.add_parser(name, help=help_text)
        sub.set_defaults(handler=lambda args: _saml_sps(args, action))
        return sub

    release_help = "released attributes, comma separated (uid,mail,...); * for all"
    command("list", _sp_list, "list SAML SPs, pending ones included")
    add = command("add", _sp_add, "add an approved SAML SP from a metadata file or URL")
    add.add_argument("source", metavar="FILE_OR_URL")
    add.add_argument("--name", help="display name (default: from the metadata)")
    add.add_argument("--release", help=release_help)
    add.add_argument("--signing-cert", metavar="PEM", help="the metadata must be signed by it")
    add.add_argument("--name-id-format", help="NameID format imposed on this SP")
    add.add_argument("--encrypt", choices=["yes", "no", "default"])
    add.add_argument("--replace", action="store_true", help="replace an SP's metadata")
    approve = command("approve", _sp_approve, "approve a registered SAML SP")
    approve.add_argument("entity_id")
    approve.add_argument("--release", help=release_help)
    command("reject", _sp_reject, "reject a registered SAML SP").add_argument("entity_id")
    command("remove", _sp_remove, "forget a SAML SP").add_argument("entity_id")
    policy = command("policy", _sp_policy, "set what a SAML SP receives")
    policy.add_argument("entity_id")
    policy.add_argument("--release", required=True, help=release_help)
    policy.add_argument("--name-id-format", help='NameID format; "" for per request')
    policy.add_argument("--encrypt", choices=["yes", "no", "default"])
    command("refresh", _sp_refresh, "refresh the SPs' metadata that is due now")


# -- end of SAML service providers -------------------------------------------------------------


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
    _add_saml_sps_parser(commands)  # SAML service providers
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sso`` command."""
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    finally:
        while _engines:
            _engines.pop().dispose()
