"""Self-registration of SAML service providers: a page and a small JSON API.

Anyone may submit an SP's metadata (saml-metadata-2.0-os 2.3.2 ``EntityDescriptor``), pasted,
uploaded or by URL; it is validated at once (sso.services.saml_metadata) and stored
``pending`` until an administrator approves it: nothing submitted here is served before. The
body is size-capped before it is parsed, registrations are limited per client address, and a
metadata URL must be public HTTPS (no fetching the private network for strangers).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response

from sso.accounts.throttle import AddressThrottle
from sso.login.cookies import csrf_ok
from sso.login.recovery import form_page
from sso.login.routes import client_address
from sso.login.runtime import Runtime, RuntimeDep
from sso.services.saml_metadata import SpMetadataError
from sso.services.saml_registry import EntityIdClash, SamlSpRegistryError

router = APIRouter()

XML_TYPES = ("application/samlmetadata+xml", "application/xml", "text/xml")
# Room for the form's other fields and multipart framing around the metadata itself.
FORM_OVERHEAD_BYTES = 64 * 1024
API_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
# Problems the page names in the user's language (saml.register.error.<code>).
ERROR_CODES = frozenset(
    {
        "no_metadata",
        "several",
        "contact",
        "too_large",
        "not_xml",
        "doctype",
        "wrong_root",
        "no_entity_id",
        "no_sp",
        "no_acs",
        "acs_not_https",
        "bad_endpoint",
        "bad_key",
        "bad_value",
        "bad_subject_id",
        "expired",
        "unsigned",
        "bad_signature",
        "clash",
        "fetch",
        "bad_url",
    }
)


class TooLarge(Exception):
    """The request body is over the cap."""


async def _registration_throttled(request: Request, runtime: Runtime) -> bool:
    """Every submission counts against the client address, accepted or not: it costs us a
    parse, maybe a fetch, and an administrator's attention."""
    settings = runtime.settings
    throttle = AddressThrottle(
        runtime.engine,
        settings.saml_sp_registration_limit,
        settings.saml_sp_registration_window_seconds,
    )
    # Its own counts in the login throttle's table: a prefix keeps them apart.
    address = "saml-register:" + client_address(request)
    if await runtime.run_database(throttle.blocked, address):
        return True
    await run_in_threadpool(throttle.record_failure, address)
    return False


def _declared_too_large(request: Request, limit: int) -> bool:
    """Refuse by Content-Length before reading anything (the server checks the body keeps
    to it); a body without one is read up to the cap only."""
    length = request.headers.get("content-length")
    if length is None:
        return False
    try:
        return int(length) > limit
    except ValueError:
        return True


async def _capped_body(request: Request, limit: int) -> bytes:
    if _declared_too_large(request, limit):
        raise TooLarge
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise TooLarge
    return bytes(body)


# -- the page ------------------------------------------------------------------------------


def _page(
    request: Request,
    runtime: Runtime,
    status_code: int = 200,
    *,
    form: dict[str, str] | None = None,
    code: str | None = None,
    detail: str = "",
) -> Response:
    error = None
    if code is not None:
        error = f"saml.register.error.{code if code in ERROR_CODES else 'invalid'}"
    return form_page(
        request,
        runtime,
        "saml_register.html",
        status_code,
        form=form or {"metadata_url": "", "metadata_xml": "", "contact": ""},
        error=error,
        detail=detail,
    )


@router.get("/saml/register")
async def registration_form(request: Request, runtime: RuntimeDep) -> Response:
    """The form: metadata URL, file or pasted XML, and a contact address."""
    return _page(request, runtime)


@router.post("/saml/register")
async def register_from_page(request: Request, runtime: RuntimeDep) -> Response:
    """Validate and store the registration, or show the form again with the problem."""
    limit = runtime.settings.saml_sp_metadata_max_bytes
    if _declared_too_large(request, limit + FORM_OVERHEAD_BYTES):
        return _page(request, runtime, 413, code="too_large")
    try:
        form_data = await request.form(max_files=1, max_fields=8, max_part_size=limit)
    except HTTPException:  # malformed multipart, too many fields, a field over the cap
        return _page(request, runtime, 400, code="too_large")
    fields = {
        name: value if isinstance(value := form_data.get(name), str) else ""
        for name in ("csrf_token", "metadata_url", "metadata_xml", "contact")
    }
    upload = form_data.get("metadata_file")
    uploaded = b""
    if isinstance(upload, UploadFile):
        uploaded = await upload.read(limit + 1)
    await form_data.close()
    form = {k: fields[k] for k in ("metadata_url", "metadata_xml", "contact")}

    if not csrf_ok(request, fields["csrf_token"], runtime.csrf):
        return runtime.pages.message(request, "error.title", "error.csrf", 403)
    if await _registration_throttled(request, runtime):
        return runtime.pages.message(
            request, "saml.register.title", "saml.register.error.throttled", 429
        )
    if len(uploaded) > limit:
        return _page(request, runtime, 413, form=form, code="too_large")
    given = {
        "file": uploaded or None,
        "xml": form["metadata_xml"] if form["metadata_xml"].strip() else None,
        "url": form["metadata_url"].strip() or None,
    }
    present = [k for k, v in given.items() if v is not None]
    if len(present) != 1:
        code = "no_metadata" if not present else "several"
        return _page(request, runtime, 400, form=form, code=code)
    if not form["contact"].strip():
        return _page(request, runtime, 400, form=form, code="contact")
    try:
        sp = await run_in_threadpool(
            runtime.saml_sps.register,
            metadata_xml=given["file"] or given["xml"],
            metadata_url=given["url"],
            contact=form["contact"],
            public=True,
        )
    except EntityIdClash as exc:
        return _page(request, runtime, 409, form=form, code=exc.code, detail=exc.message)
    except SpMetadataError as exc:
        return _page(request, runtime, 400, form=form, code=exc.code, detail=exc.message)
    except SamlSpRegistryError as exc:
        return _page(request, runtime, 400, form=form, code="contact", detail=exc.message)
    return runtime.pages.message(
        request, "saml.register.done_title", "saml.register.done", entity_id=sp.entity_id
    )


# -- the API -------------------------------------------------------------------------------


def _error(status_code: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status_code, headers=API_HEADERS)


def _json_request(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SpMetadataError("bad_request", f"the body is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise SpMetadataError("bad_request", "the JSON body must be an object")
    values = {k: document.get(k) for k in ("metadata_url", "metadata_xml", "contact")}
    for key, value in values.items():
        if value is not None and not isinstance(value, str):
            raise SpMetadataError("bad_request", f"{key} must be a string")
    return values


@router.post("/saml/api/registrations")
async def register_from_api(request: Request, runtime: RuntimeDep) -> Response:
    """Register an SP: the metadata as the body (application/samlmetadata+xml, text/xml;
    ``?contact=`` for the address), or JSON ``{"metadata_url": ..., "contact": ...}``.
    202 when stored pending; 400 invalid, 409 entityID taken, 413 too large, 429 too many."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type not in (*XML_TYPES, "application/json"):
        return _error(
            415,
            "send the metadata as application/samlmetadata+xml (or text/xml), "
            'or JSON {"metadata_url": "...", "contact": "..."}',
        )
    if await _registration_throttled(request, runtime):
        return _error(429, "too many registrations from this address; try again later")
    limit = runtime.settings.saml_sp_metadata_max_bytes
    try:
        body = await _capped_body(
            request, limit + (FORM_OVERHEAD_BYTES if media_type.endswith("json") else 0)
        )
    except TooLarge:
        return _error(413, f"the body is larger than {limit} bytes")
    try:
        if media_type == "application/json":
            values = _json_request(body)
        else:
            values = {"metadata_xml": body, "metadata_url": None}
            values["contact"] = request.query_params.get("contact", "")
        sp = await run_in_threadpool(
            runtime.saml_sps.register,
            metadata_xml=values["metadata_xml"],
            metadata_url=values["metadata_url"],
            contact=values["contact"] or "",
            public=True,
        )
    except EntityIdClash as exc:
        return _error(409, exc.message)
    except (SpMetadataError, SamlSpRegistryError) as exc:
        return _error(400, exc.message)
    location = runtime.settings.url(f"saml/api/registrations/{quote(sp.entity_id, safe='')}")
    return JSONResponse(
        {"entity_id": sp.entity_id, "status": sp.status},
        status_code=202,
        headers={**API_HEADERS, "Location": location},
    )


@router.get("/saml/api/registrations/{entity_id:path}")
async def registration_status(entity_id: str, runtime: RuntimeDep) -> Response:
    """Where a registration stands: pending, approved or rejected. Nothing more: no contact,
    no policy, no refresh error (it could tell what our network looks like)."""
    sp = await runtime.run_database(runtime.saml_sps.get, entity_id[:1024])
    if sp is None:
        return _error(404, f"no registration for {entity_id[:200]!r}")
    return JSONResponse(
        {
            "entity_id": sp.entity_id,
            "name": sp.name,
            "status": sp.status,
            "created_at": sp.created_at.isoformat() if sp.created_at else None,
            "updated_at": sp.updated_at.isoformat(),
        },
        headers=API_HEADERS,
    )
