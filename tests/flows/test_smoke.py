"""The shortest journey: log in through CAS and validate the ticket."""

from tests.support.login_form import submit_login

SERVICE = "https://webmail.test/login?next=/inbox%3Fa%3D1&x=%C3%A9"


def test_login_then_validate(client, add_account, add_service):
    add_account("cmartin", "correct horse battery", email="c@ac.test")
    add_service(SERVICE, released_attributes=["mail"])
    page = client.get("/login", params={"service": SERVICE})
    assert page.status_code == 200
    answer = submit_login(client, page, "  CMartin ", "correct horse battery")
    assert answer.status_code == 302
    location = answer.headers["location"]
    assert location.startswith(SERVICE + "&ticket=ST-")
    ticket = location.rsplit("ticket=", 1)[1]
    tgc = answer.headers["set-cookie"]
    assert "HttpOnly" in tgc and "Secure" in tgc and "SameSite=none" in tgc
    validation = client.get("/p3/serviceValidate", params={"service": SERVICE, "ticket": ticket})
    assert "<cas:user>cmartin</cas:user>" in validation.text
    assert "<cas:mail>c@ac.test</cas:mail>" in validation.text
