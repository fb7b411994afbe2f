"""Everything a request handler needs, built once by ``create_app`` and kept on app.state."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, ParamSpec, TypeVar

import anyio
import httpx
from fastapi import Depends, Request
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from sso.accounts.recovery import RecoveryTokens
from sso.accounts.store import AccountStore
from sso.accounts.throttle import AddressThrottle
from sso.config import Settings
from sso.login.pending import PendingRequest
from sso.mail import Outbox
from sso.security.csrf import CsrfProtection
from sso.security.signed import TokenSigner
from sso.services.registry import ServiceRegistry
from sso.services.saml_registry import SamlSpRegistry
from sso.sessions.registry import LogoutTarget, SessionRegistry, SsoSession
from sso.web.mails import Mails
from sso.web.pages import Pages

# A protocol's way to finish its answer once the user is authenticated (fresh: just now).
Completion = Callable[[Request, PendingRequest, SsoSession, bool], Awaitable[Response]]
# A protocol's way to tell its relying parties that a session ended (single logout).
LogoutNotifier = Callable[[list[LogoutTarget]], Awaitable[None]]
# A protocol's relying parties that can only be told through the browser: the URLs the
# logout page loads in hidden frames (SAML front-channel single logout).
FrontChannelLogout = Callable[[list[LogoutTarget]], list[str]]

P = ParamSpec("P")
T = TypeVar("T")


@dataclass
class Runtime:
    """The server's long-lived objects."""

    settings: Settings
    engine: Engine
    sessions: SessionRegistry
    services: ServiceRegistry
    accounts: AccountStore
    throttle: AddressThrottle
    recovery: RecoveryTokens
    signer: TokenSigner
    csrf: CsrfProtection
    pages: Pages
    backchannel: httpx.Client
    async_backchannel: httpx.AsyncClient
    # Password checks allowed at once in this worker (settings.password_hash_concurrency).
    password_checks: anyio.CapacityLimiter
    outbox: Outbox  # mails wait there for the sender (sso.mail)
    mails: Mails  # composes them in the user's language
    saml_sps: SamlSpRegistry  # the SAML service providers, registered and approved
    completions: dict[str, Completion] = field(default_factory=dict)
    logout_notifiers: dict[str, LogoutNotifier] = field(default_factory=dict)
    front_channel_logouts: dict[str, FrontChannelLogout] = field(default_factory=dict)

    async def run_database(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a short blocking database call: right here on SQLite, in the thread pool otherwise.

        A SQLite call is local and takes well under a millisecond (reads never wait in WAL
        mode; writers wait their short turn in the writer queue of ``sso.sqlite``): handing it to a
        thread costs more than running it, in GIL hand-offs (bench/cas_validation.py on 2
        workers: ~1,000 validations/s through the pool, ~1,600/s here). A PostgreSQL round trip
        would hold up every request of the worker, so there it goes to the thread pool. Only
        short calls come here: nothing that waits on the network (proxy callbacks) or runs long
        (the purge, argon2id).
        """
        if self.engine.dialect.name == "sqlite":
            return function(*args, **kwargs)
        return await run_in_threadpool(function, *args, **kwargs)


async def get_runtime(request: Request) -> Runtime:
    """The runtime of the application serving ``request``."""
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
