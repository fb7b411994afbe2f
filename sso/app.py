"""``create_app(settings)``: wires the parts together. No logic lives here."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator, Callable
from functools import partial
from importlib import resources

import anyio
import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from sso.accounts.recovery import RecoveryTokens
from sso.accounts.store import AccountStore
from sso.accounts.throttle import AddressThrottle
from sso.config import Settings
from sso.db import make_engine
from sso.demo.routes import router as demo_router
from sso.login.account import router as account_router
from sso.login.password_change import router as password_change_router
from sso.login.questions import router as questions_router
from sso.login.recovery import router as recovery_router
from sso.login.routes import router as login_router
from sso.login.runtime import Runtime
from sso.mail import MailSender, Outbox
from sso.protocols.cas.logout import SingleLogout
from sso.protocols.cas.routes import PROTOCOL as CAS
from sso.protocols.cas.routes import complete_login as complete_cas_login
from sso.protocols.cas.routes import router as cas_router
from sso.protocols.saml.registration import router as saml_registration_router
from sso.protocols.saml.routes import PROTOCOL as SAML
from sso.protocols.saml.routes import complete_login as complete_saml_login
from sso.protocols.saml.routes import front_channel_frames
from sso.protocols.saml.routes import router as saml_router
from sso.protocols.saml.state import build_saml_state
from sso.security.csrf import CsrfProtection
from sso.security.passwords import hashes_at_once
from sso.security.signed import TokenSigner
from sso.services.registry import ServiceRegistry
from sso.services.saml_registry import SamlSpRegistry
from sso.sessions.registry import SqlSessionRegistry
from sso.web.mails import Mails
from sso.web.pages import Pages

log = logging.getLogger("sso")
PURGE_INTERVAL_SECONDS = 60
SAML_SP_REFRESH_CHECK_SECONDS = 60  # how often due SP metadata is looked for


def build_runtime(settings: Settings) -> Runtime:
    """The long-lived objects of one worker."""
    engine = make_engine(settings.database_url)
    # httpx 0.28 deprecates verify=<path>: a context trusting exactly the bundle's CAs.
    verify: ssl.SSLContext | bool = (
        ssl.create_default_context(cafile=str(settings.ca_bundle)) if settings.ca_bundle else True
    )
    timeout = httpx.Timeout(settings.backchannel_timeout)
    backchannel = httpx.Client(verify=verify, timeout=timeout)  # follows no redirects
    return Runtime(
        settings=settings,
        engine=engine,
        sessions=SqlSessionRegistry(
            engine,
            idle_timeout=settings.session_idle_timeout,
            max_lifetime=settings.session_max_lifetime,
            ticket_lifetime=settings.service_ticket_lifetime,
        ),
        services=ServiceRegistry(engine, settings.service_cache_seconds),
        accounts=AccountStore.from_settings(engine, settings),
        throttle=AddressThrottle(
            engine, settings.ip_failure_limit, settings.ip_failure_window_seconds
        ),
        recovery=RecoveryTokens(engine),
        signer=TokenSigner(settings.secret_key),
        csrf=CsrfProtection(settings.secret_key),
        pages=Pages(settings),
        backchannel=backchannel,
        async_backchannel=httpx.AsyncClient(verify=verify, timeout=timeout),
        password_checks=anyio.CapacityLimiter(
            settings.password_hash_concurrency or hashes_at_once()
        ),
        outbox=Outbox(engine),
        mails=Mails(settings),
        saml_sps=SamlSpRegistry(
            engine,
            settings.saml_sp_cache_seconds,
            http=backchannel,
            max_bytes=settings.saml_sp_metadata_max_bytes,
            refresh_seconds=settings.saml_sp_refresh_seconds,
            min_refresh_seconds=settings.saml_sp_refresh_min_seconds,
            allow_private_urls=settings.saml_sp_registration_private_urls,
        ),
    )


async def _purge_forever(purges: list[Callable[[], int]]) -> None:
    """Expired sessions and tickets, SAML message IDs past their window: deleted each minute."""
    while True:
        await asyncio.sleep(PURGE_INTERVAL_SECONDS)
        for purge in purges:
            try:
                await run_in_threadpool(purge)
            except Exception:  # a failed purge is retried next time; it must not stop the loop
                log.exception("purge failed: %s", getattr(purge, "__qualname__", purge))


async def _refresh_saml_sps_forever(runtime: Runtime) -> None:
    """Refresh the SAML SPs' metadata that is due (sso.services.saml_registry), off the loop."""
    while True:
        await asyncio.sleep(SAML_SP_REFRESH_CHECK_SECONDS)
        try:
            await run_in_threadpool(runtime.saml_sps.refresh_due)
        except Exception:  # each SP's failure is stored and logged; this is the unexpected
            log.exception("refresh of SAML SP metadata failed")


def create_app(settings: Settings) -> FastAPI:
    """The ASGI application for these settings."""
    runtime = build_runtime(settings)
    single_logout = SingleLogout(runtime.async_backchannel)
    runtime.completions[CAS] = complete_cas_login
    runtime.completions[SAML] = complete_saml_login
    app_saml = build_saml_state(settings, runtime.engine, runtime.saml_sps)
    runtime.front_channel_logouts[SAML] = partial(front_channel_frames, app_saml)
    runtime.logout_notifiers[CAS] = single_logout.notify
    mail_sender = MailSender(runtime.engine, settings)
    runtime.outbox.set_waker(mail_sender.wake)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(runtime.accounts.hasher.warm_up)
        purger = asyncio.create_task(
            _purge_forever([runtime.sessions.purge_expired, app_saml.seen.purge])
        )
        mailer = asyncio.create_task(mail_sender.run())
        saml_sp_refresher = asyncio.create_task(_refresh_saml_sps_forever(runtime))
        yield
        purger.cancel()
        saml_sp_refresher.cancel()
        mail_sender.stop()  # the mail in hand is finished, and recorded, before the engine goes
        with contextlib.suppress(asyncio.CancelledError):
            await mailer
        await single_logout.drain()
        await runtime.async_backchannel.aclose()
        runtime.backchannel.close()
        runtime.engine.dispose()

    app = FastAPI(
        title="sso",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.runtime = runtime
    app.state.saml = app_saml
    prefix = settings.base_path.rstrip("/")
    # Routes are matched in order, one by one: the protocols' endpoints, which relying parties
    # call most (ticket validation above all), come first.
    app.include_router(cas_router, prefix=prefix)
    app.include_router(saml_router, prefix=prefix)
    app.include_router(login_router, prefix=prefix)
    app.include_router(password_change_router, prefix=prefix)
    app.include_router(recovery_router, prefix=prefix)
    app.include_router(account_router, prefix=prefix)
    app.include_router(questions_router, prefix=prefix)
    app.include_router(saml_registration_router, prefix=prefix)
    if settings.demo:
        app.include_router(demo_router, prefix=prefix)
    app.mount(
        f"{prefix}/static",
        StaticFiles(directory=str(resources.files("sso").joinpath("static"))),
        name="static",
    )

    @app.get(f"{prefix}/health", include_in_schema=False)
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        key = "error.not_found" if exc.status_code == 404 else "error.bad_request"
        response = runtime.pages.message(request, "error.title", key, exc.status_code)
        if exc.headers:  # e.g. the Allow header RFC 9110 requires on a 405
            response.headers.update(exc.headers)
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        return runtime.pages.message(request, "error.title", "error.bad_request", 400)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s", request.url.path)
        return runtime.pages.message(request, "error.title", "error.internal", 500)

    if settings.trusted_proxies:
        # X-Forwarded-For/-Proto believed only from these addresses.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)
    return app


def app_from_environment() -> FastAPI:
    """Factory for uvicorn workers: settings from the environment (``SSO_*``)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return create_app(Settings())
