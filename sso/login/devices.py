"""Known devices: a long-lived cookie recognises a browser that has logged in to an account.

A login from a browser not seen before for that account sends a "new login" notice (time,
address, browser), as the academies' webmail does. Only the cookie's digest is stored.
"""

from __future__ import annotations

from sqlalchemy import Connection, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from starlette.requests import Request
from starlette.responses import Response

from sso.accounts.models import KnownDevice
from sso.config import Settings
from sso.db import UtcDateTime, driver_statement, utcnow
from sso.security.tokens import random_token, token_digest

DEVICE_COOKIE = "sso_device"

# Built once on the table and run on the DBAPI cursor (sso.db.DriverStatement): a returning
# browser's login runs it every time.
_devices = KnownDevice.__table__
_TOUCH_DEVICE = (
    update(_devices)
    .where(
        _devices.c.account_id == bindparam("account"),
        _devices.c.device_hash == bindparam("digest"),
    )
    .values(last_seen_at=bindparam("now", type_=UtcDateTime()))
)


def device_cookie(request: Request) -> str:
    """This browser's device cookie, or a new value for one."""
    value = request.cookies.get(DEVICE_COOKIE, "")
    return value if value.startswith("DEV-") and len(value) <= 64 else random_token("DEV")


def set_device_cookie(response: Response, settings: Settings, value: str) -> None:
    """Remember this browser (HttpOnly; Lax is enough: it is read on our own form's POST)."""
    response.set_cookie(
        DEVICE_COOKIE,
        value,
        max_age=settings.device_cookie_days * 86400,
        path=settings.base_path,
        secure=settings.secure_cookies,
        httponly=True,
        samesite="lax",
    )


def remember_device(conn: Connection, account_id: int, cookie: str, user_agent: str) -> str:
    """Record this login's device, within the caller's transaction: "known", "new" (other
    devices seen before: notify) or "first" (the account's first device: nothing to warn of)."""
    digest = token_digest(cookie)
    now = utcnow()
    seen = driver_statement(_TOUCH_DEVICE, conn.dialect).execute_in(
        conn, {"account": account_id, "digest": digest, "now": now}
    )
    if seen:
        return "known"
    others = conn.execute(
        select(KnownDevice.id).where(KnownDevice.account_id == account_id).limit(1)
    ).first()
    try:
        with conn.begin_nested():  # a savepoint: a lost race must not undo the caller's work
            conn.execute(
                insert(KnownDevice).values(
                    account_id=account_id,
                    device_hash=digest,
                    user_agent=user_agent[:256],
                    first_seen_at=now,
                    last_seen_at=now,
                )
            )
    except IntegrityError:  # the same browser logging in twice at once
        return "known"
    return "new" if others else "first"
