"""Everything a request handler needs, built once by ``create_app`` and kept on app.state."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated

import anyio
import httpx
from fastapi import Depends, Request
from sqlalchemy import Engine
from starlette.responses import Response

from sso.accounts.store import AccountStore
from sso.config import Settings
from sso.login.pending import PendingRequest
from sso.security.csrf import CsrfProtection
from sso.security.signed import TokenSigner
from sso.services.registry import ServiceRegistry
from sso.sessions.registry import LogoutTarget, SessionRegistry, SsoSession
from sso.web.pages import Pages

# A protocol's way to finish its answer once the user is authenticated (fresh: just now).
Completion = Callable[[Request, PendingRequest, SsoSession, bool], Awaitable[Response]]
# A protocol's way to tell its relying parties that a session ended (single logout).
LogoutNotifier = Callable[[list[LogoutTarget]], Awaitable[None]]


@dataclass
class Runtime:
    """The server's long-lived objects."""

    settings: Settings
    engine: Engine
    sessions: SessionRegistry
    services: ServiceRegistry
    accounts: AccountStore
    signer: TokenSigner
    csrf: CsrfProtection
    pages: Pages
    backchannel: httpx.Client
    async_backchannel: httpx.AsyncClient
    # Password checks allowed at once in this worker (settings.password_hash_concurrency).
    password_checks: anyio.CapacityLimiter
    completions: dict[str, Completion] = field(default_factory=dict)
    logout_notifiers: dict[str, LogoutNotifier] = field(default_factory=dict)


async def get_runtime(request: Request) -> Runtime:
    """The runtime of the application serving ``request``."""
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
