"""SAML SP self-registration through the running app: the page (CSRF, French and English,
clear errors with the form kept) and the API (202 pending, 400/409/413/415/429), nothing
stored when the metadata is refused, and nothing served before an administrator approves."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from sso.login.runtime import Runtime
from tests.support.login_form import read_form
from tests.support.saml_sp import MetadataServer, shibboleth_metadata

SP = "https://sp.univ-test.fr/shibboleth"
XML = "application/samlmetadata+xml"
MAX_BYTES = 16 * 1024
XXE = (
    '<?xml version="1.0"?><!DOCTYPE md [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    '<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="&xxe;"/>'
)
BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(f'<!ENTITY lol{i} "{(f"&lol{i - 1};" if i else "&lol;") * 10}">' for i in range(9))
    + "]><lolz>&lol8;</lolz>"
)
BAD_INPUTS = {
    "not XML": ("this is not XML", "not well-formed XML"),
    "XXE": (XXE, "DOCTYPE, which SAML forbids"),
    "billion laughs": (BILLION_LAUGHS, "DOCTYPE, which SAML forbids"),
    "wrong root": ("<html><body>hello</body></html>", "not md:EntityDescriptor"),
    "no ACS": (shibboleth_metadata(acs=None), "no AssertionConsumerService"),
    "ACS over http": (
        shibboleth_metadata(acs="http://sp.univ-test.fr/SAML2/POST"),
        "is not an https:// URL",
    ),
}


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"saml_sp_metadata_max_bytes": MAX_BYTES, "saml_sp_registration_limit": 1000}


def form_fields(client: TestClient, lang: str = "fr") -> dict[str, str]:
    page = client.get(f"/saml/register?lang={lang}")
    assert page.status_code == 200
    action, fields = read_form(page.text, "saml-register")
    assert action == "/saml/register"
    return fields


def submit(client: TestClient, lang: str = "fr", **values: str) -> Any:
    fields = {**form_fields(client, lang), "metadata_url": "", "metadata_xml": "", "contact": ""}
    fields.update(values)
    return client.post("/saml/register", files={"_": ("", b"")}, data=fields)


# -- the page ------------------------------------------------------------------------------


def test_page_in_french_by_default_and_in_english(client: TestClient) -> None:
    french = client.get("/saml/register")
    english = client.get("/saml/register?lang=en")

    assert "Enregistrer un fournisseur de services SAML" in french.text
    assert 'enctype="multipart/form-data"' in french.text
    assert "Register a SAML service provider" in english.text
    assert french.headers["x-frame-options"] == "DENY"


def test_registration_by_pasted_metadata_waits_for_approval(
    client: TestClient, runtime: Runtime
) -> None:
    answer = submit(client, metadata_xml=shibboleth_metadata(), contact="it@univ-test.fr")

    assert answer.status_code == 200
    assert "attend l&#39;accord d&#39;un administrateur" in answer.text
    assert SP in answer.text
    sp = runtime.saml_sps.get(SP)
    assert (sp.status, sp.contact) == ("pending", "it@univ-test.fr")
    assert runtime.saml_sps.approved(SP) is None  # nothing served before approval
    runtime.saml_sps.approve(SP, ["mail"])
    assert runtime.saml_sps.approved(SP).released_attributes == ["mail"]


def test_registration_by_uploaded_file(client: TestClient, runtime: Runtime) -> None:
    fields = {**form_fields(client), "contact": "it@univ-test.fr"}

    answer = client.post(
        "/saml/register",
        data=fields,
        files={"metadata_file": ("sp.xml", shibboleth_metadata().encode(), "text/xml")},
    )

    assert answer.status_code == 200
    assert runtime.saml_sps.get(SP).status == "pending"


@pytest.mark.parametrize("token", [None, "", "forged-token"])
def test_the_page_needs_its_csrf_token(
    client: TestClient, runtime: Runtime, token: str | None
) -> None:
    fields = form_fields(client)
    if token is None:
        del fields["csrf_token"]
    else:
        fields["csrf_token"] = token
    fields.update(metadata_xml=shibboleth_metadata(), contact="it@univ-test.fr")

    answer = client.post("/saml/register", files={"_": ("", b"")}, data=fields)

    assert answer.status_code == 403
    assert runtime.saml_sps.list() == []


def test_token_of_another_browser_refused(client: TestClient, runtime: Runtime) -> None:
    fields = form_fields(client)
    client.cookies.clear()
    form_fields(client)  # a new CSRF cookie: the old token no longer matches
    fields.update(metadata_xml=shibboleth_metadata(), contact="it@univ-test.fr")

    assert client.post("/saml/register", files={"_": ("", b"")}, data=fields).status_code == 403
    assert runtime.saml_sps.list() == []


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_page_shows_the_problem_and_keeps_the_form(
    client: TestClient, runtime: Runtime, case: str
) -> None:
    document, detail = BAD_INPUTS[case]

    answer = submit(client, metadata_xml=document, contact="it@univ-test.fr")

    assert answer.status_code == 400
    assert 'role="alert"' in answer.text and detail.replace("'", "&#39;") in answer.text
    assert 'value="it@univ-test.fr"' in answer.text
    assert runtime.saml_sps.list() == []


def test_page_explains_in_english(client: TestClient) -> None:
    answer = submit(client, "en", metadata_xml=shibboleth_metadata(acs=None), contact="a@b.fr")

    assert "The metadata has no AssertionConsumerService" in answer.text


def test_page_entity_id_clash(client: TestClient, runtime: Runtime) -> None:
    runtime.saml_sps.add(shibboleth_metadata(), released_attributes=["mail"])

    answer = submit(client, metadata_xml=shibboleth_metadata(), contact="evil@attacker.test")

    assert answer.status_code == 409
    assert "déjà enregistré" in answer.text
    assert runtime.saml_sps.get(SP).contact == ""  # untouched


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"contact": "it@univ-test.fr"}, "Donnez les métadonnées"),
        (
            {"metadata_xml": shibboleth_metadata(), "metadata_url": "https://x.test/m"},
            "une seule façon",
        ),
        ({"metadata_xml": shibboleth_metadata()}, "adresse électronique de contact valide"),
        (
            {"metadata_xml": shibboleth_metadata(), "contact": "not an address"},
            "adresse électronique de contact valide",
        ),
    ],
)
def test_page_incomplete_forms(
    client: TestClient, runtime: Runtime, values: dict[str, str], message: str
) -> None:
    answer = submit(client, **values)

    assert answer.status_code == 400 and message in answer.text
    assert runtime.saml_sps.list() == []


def test_page_oversized_upload(client: TestClient, runtime: Runtime) -> None:
    fields = {**form_fields(client), "contact": "it@univ-test.fr"}
    big = shibboleth_metadata().replace("<md:Organization>", "<!--" + "x" * MAX_BYTES + "-->")

    answer = client.post(
        "/saml/register", data=fields, files={"metadata_file": ("sp.xml", big.encode(), XML)}
    )

    assert answer.status_code == 413 and "trop volumineuses" in answer.text
    huge = client.post(
        "/saml/register",
        data=fields,
        files={"metadata_file": ("sp.xml", b"x" * (MAX_BYTES + 100_000), XML)},
    )
    assert huge.status_code == 413
    assert runtime.saml_sps.list() == []


def test_page_refuses_private_metadata_urls(client: TestClient, runtime: Runtime) -> None:
    with MetadataServer().running() as server:
        server.serve(shibboleth_metadata())

        answer = submit(client, metadata_url=server.url, contact="it@univ-test.fr")

        assert answer.status_code == 400 and "https publique" in answer.text
        assert server.requests == 0  # never fetched
    assert runtime.saml_sps.list() == []


# -- the API -------------------------------------------------------------------------------


def test_api_registration_by_xml_body(client: TestClient, runtime: Runtime) -> None:
    answer = client.post(
        "/saml/api/registrations?contact=it@univ-test.fr",
        content=shibboleth_metadata(),
        headers={"Content-Type": XML},
    )

    assert answer.status_code == 202
    assert answer.json() == {"entity_id": SP, "status": "pending"}
    status_url = answer.headers["location"]
    assert status_url == f"https://sso.test/saml/api/registrations/{quote(SP, safe='')}"
    status = client.get(status_url.removeprefix("https://sso.test"))
    assert status.status_code == 200
    assert status.json()["status"] == "pending" and status.json()["name"] == "Plateforme de test"
    assert set(status.json()) == {"entity_id", "name", "status", "created_at", "updated_at"}
    assert runtime.saml_sps.get(SP).contact == "it@univ-test.fr"

    runtime.saml_sps.approve(SP)
    assert client.get(f"/saml/api/registrations/{SP}").json()["status"] == "approved"


def test_api_registration_by_url(
    client: TestClient, runtime: Runtime, settings_overrides: dict[str, Any]
) -> None:
    settings_overrides["saml_sp_registration_private_urls"] = True
    with MetadataServer().running() as server:
        server.serve(shibboleth_metadata(cache_duration="PT30M"))
        app = _app_with(settings_overrides, client)
        with app as other:
            answer = other.post(
                "/saml/api/registrations",
                json={"metadata_url": server.url, "contact": "it@univ-test.fr"},
            )

    assert answer.status_code == 202, answer.text
    sp = runtime.saml_sps.get(SP)
    assert sp.metadata_url == server.url and sp.next_refresh_at is not None


def _app_with(overrides: dict[str, Any], client: TestClient) -> TestClient:
    """Another app on the same database with changed settings."""
    from sso.app import create_app

    settings = client.app.state.runtime.settings.model_copy(update=overrides)
    return TestClient(create_app(settings), base_url="https://sso.test")


def test_api_refuses_private_metadata_urls(client: TestClient, runtime: Runtime) -> None:
    for url in ("http://127.0.0.1:1/metadata", "https://127.0.0.1/metadata", "file:///etc/passwd"):
        answer = client.post("/saml/api/registrations", json={"metadata_url": url})

        assert answer.status_code == 400, url
    assert runtime.saml_sps.list() == []


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_api_bad_metadata(client: TestClient, runtime: Runtime, case: str) -> None:
    document, detail = BAD_INPUTS[case]

    answer = client.post(
        "/saml/api/registrations", content=document, headers={"Content-Type": "text/xml"}
    )

    assert answer.status_code == 400
    assert detail in answer.json()["error"]
    assert runtime.saml_sps.list() == []


def test_api_entity_id_clash(client: TestClient, runtime: Runtime) -> None:
    runtime.saml_sps.add(shibboleth_metadata())

    answer = client.post(
        "/saml/api/registrations", content=shibboleth_metadata(), headers={"Content-Type": XML}
    )

    assert answer.status_code == 409
    assert answer.json() == {"error": f"the entityID {SP!r} is already registered"}


def test_api_oversized_body(client: TestClient, runtime: Runtime) -> None:
    answer = client.post(
        "/saml/api/registrations",
        content=b"<x>" + b"a" * MAX_BYTES + b"</x>",
        headers={"Content-Type": XML},
    )

    assert answer.status_code == 413
    assert answer.json() == {"error": f"the body is larger than {MAX_BYTES} bytes"}

    def chunks():  # no Content-Length: read up to the cap only
        for _ in range(64):
            yield b"a" * 1024

    streamed = client.post(
        "/saml/api/registrations", content=chunks(), headers={"Content-Type": XML}
    )
    assert streamed.status_code == 413
    assert runtime.saml_sps.list() == []


@pytest.mark.parametrize(
    ("body", "content_type", "status", "message"),
    [
        ("{}", "application/json", 400, "give either the metadata or its URL"),
        ("[1]", "application/json", 400, "must be an object"),
        ("{nope", "application/json", 400, "not valid JSON"),
        ('{"metadata_url": 3}', "application/json", 400, "metadata_url must be a string"),
        ("hello", "text/plain", 415, "application/samlmetadata+xml"),
    ],
)
def test_api_bad_requests(
    client: TestClient, body: str, content_type: str, status: int, message: str
) -> None:
    answer = client.post(
        "/saml/api/registrations", content=body, headers={"Content-Type": content_type}
    )

    assert answer.status_code == status and message in answer.json()["error"]


def test_api_status_of_an_unknown_registration(client: TestClient) -> None:
    answer = client.get("/saml/api/registrations/https://nobody.test/sp")

    assert answer.status_code == 404 and "no registration" in answer.json()["error"]


class TestThrottle:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"saml_sp_registration_limit": 2}

    def test_registrations_limited_per_address(self, client: TestClient, runtime: Runtime) -> None:
        answers = [
            client.post(
                "/saml/api/registrations",
                content=shibboleth_metadata(f"https://sp{n}.test/shibboleth"),
                headers={"Content-Type": XML},
            )
            for n in range(3)
        ]

        assert [a.status_code for a in answers] == [202, 202, 429]
        assert "too many registrations" in answers[2].json()["error"]
        assert len(runtime.saml_sps.list()) == 2
        page = submit(client, metadata_xml=shibboleth_metadata(), contact="it@univ-test.fr")
        assert page.status_code == 429
