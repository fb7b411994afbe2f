"""CAS responses: sections 2.4-2.8, Appendices A and C, and what real clients read of them."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import unquote_plus
from xml.etree import ElementTree

import pytest
from cas import CASClientV2, CASClientV3, SingleLogoutMixin
from lxml import etree

from sso.errors import SsoError
from sso.protocols.cas import errors
from sso.protocols.cas.responses import (
    JSON_MEDIA_TYPE,
    RESERVED_ATTRIBUTE_NAMES,
    XML_MEDIA_TYPE,
    Rendered,
    format_instant,
    is_valid_attribute_name,
    parse_format,
    render_authentication_success,
    render_logout_request,
    render_proxy_success,
    render_validate_v1,
    xml_attr,
    xml_text,
)

CAS = "http://www.yale.edu/tp/cas"
NS = {"cas": CAS}
HOSTILE = "<b>&amp; \"double\" 'single' ]]> </cas:user><!-- -->"
NOW = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)

V3_ATTRIBUTES = {
    "authenticationDate": ["2024-05-06T07:08:09Z"],
    "longTermAuthenticationRequestTokenUsed": ["false"],
    "isFromNewLogin": ["true"],
    "mail": ["jdoe@example.org"],
    "memberOf": ["staff", "faculty"],
}


def parse(body: str) -> etree._Element:
    """Parse strictly with lxml (and with the standard library), as str and as UTF-8 bytes."""
    ElementTree.fromstring(body)
    root = etree.fromstring(body.encode("utf-8"))
    assert etree.tostring(etree.fromstring(body)) == etree.tostring(root)
    return root


def success(fmt: str = "XML", **overrides: object) -> Rendered:
    arguments: dict[str, object] = {
        "user": "jdoe",
        "attributes": None,
        "pgt_iou": None,
        "proxies": [],
        "fmt": fmt,
    }
    arguments.update(overrides)
    return render_authentication_success(**arguments)  # type: ignore[arg-type]


# --- 2.5.2 / 2.6.2 / 2.8 authenticationSuccess, XML ---------------------------------------


def test_cas2_success_has_user_and_no_attributes_block() -> None:
    rendered = success()
    assert rendered.media_type == XML_MEDIA_TYPE
    root = parse(rendered.body)
    assert root.tag == f"{{{CAS}}}serviceResponse"
    assert root.nsmap == {"cas": CAS}
    [auth] = root
    assert auth.tag == f"{{{CAS}}}authenticationSuccess"
    assert [child.tag for child in auth] == [f"{{{CAS}}}user"]
    assert auth[0].text == "jdoe"
    assert CASClientV2.verify_response(rendered.body.encode()) == ("jdoe", None, None)


def test_no_xml_declaration_so_str_parsers_accept_it() -> None:
    assert not success().body.startswith("<?xml")


def test_cas3_attributes_in_given_order_and_multi_valued_repeated() -> None:
    root = parse(success(attributes=V3_ATTRIBUTES).body)
    names = [
        etree.QName(e).localname for e in root.find("cas:authenticationSuccess/cas:attributes", NS)
    ]
    assert names == [
        "authenticationDate",
        "longTermAuthenticationRequestTokenUsed",
        "isFromNewLogin",
        "mail",
        "memberOf",
        "memberOf",
    ]
    assert root.xpath("//cas:memberOf/text()", namespaces=NS) == ["staff", "faculty"]


def test_python_cas_v3_reads_user_attributes_and_pgt_iou() -> None:
    body = success(attributes=V3_ATTRIBUTES, pgt_iou="PGTIOU-84678-8a9d").body
    user, attributes, pgt_iou = CASClientV3.verify_response(body.encode())
    assert user == "jdoe"
    assert pgt_iou == "PGTIOU-84678-8a9d"
    assert attributes == {
        "authenticationDate": "2024-05-06T07:08:09Z",
        "longTermAuthenticationRequestTokenUsed": "false",
        "isFromNewLogin": "true",
        "mail": "jdoe@example.org",
        "memberOf": ["staff", "faculty"],
    }


def test_schema_order_user_attributes_pgt_proxies() -> None:
    root = parse(
        success(
            attributes={"a": ["1"]}, pgt_iou="PGTIOU-1", proxies=["https://p2/cb", "https://p1/cb"]
        ).body
    )
    assert [etree.QName(e).localname for e in root[0]] == [
        "user",
        "attributes",
        "proxyGrantingTicket",
        "proxies",
    ]
    # Section 2.6.2: most recently visited proxy first - the caller's order is kept.
    assert root.xpath("//cas:proxies/cas:proxy/text()", namespaces=NS) == [
        "https://p2/cb",
        "https://p1/cb",
    ]


def test_no_proxies_block_without_proxies_and_no_pgt_without_iou() -> None:
    root = parse(success(attributes={}).body)
    assert root.find(".//cas:proxies", NS) is None
    assert root.find(".//cas:proxyGrantingTicket", NS) is None
    assert root.find(".//cas:attributes", NS) is not None
    assert len(root.find(".//cas:attributes", NS)) == 0


def test_hostile_values_are_escaped_and_round_trip() -> None:
    body = success(
        user=HOSTILE,
        attributes={"note": [HOSTILE, "a\r\nb\tc"]},
        pgt_iou=HOSTILE,
        proxies=[HOSTILE],
    ).body
    root = parse(body)
    assert root.findtext("cas:authenticationSuccess/cas:user", namespaces=NS) == HOSTILE
    assert root.xpath("//cas:note/text()", namespaces=NS) == [HOSTILE, "a\r\nb\tc"]
    assert root.findtext(".//cas:proxyGrantingTicket", namespaces=NS) == HOSTILE
    assert root.findtext(".//cas:proxy", namespaces=NS) == HOSTILE
    assert "]]>" not in body
    assert len(root.xpath("//comment()")) == 0
    user, attributes, _ = CASClientV3.verify_response(body.encode())
    assert user == HOSTILE


@pytest.mark.parametrize("char", ["\x00", "\x01", "\x08", "\x0b", "\x1f", "\ufffe", "\ud800"])
def test_characters_xml_cannot_carry_are_replaced(char: str) -> None:
    root = parse(success(user=f"a{char}b", attributes={"x": [f"c{char}d"]}).body)
    assert root.findtext(".//cas:user", namespaces=NS) == "a\ufffdb"
    assert root.findtext(".//cas:x", namespaces=NS) == "c\ufffdd"


def test_non_ascii_text_and_names() -> None:
    body = success(user="élodie.müller", attributes={"prénom": ["Élodie"], "名前": ["花子"]}).body
    root = parse(body)
    assert root.findtext(".//cas:user", namespaces=NS) == "élodie.müller"
    assert root.findtext(".//cas:prénom", namespaces=NS) == "Élodie"
    assert root.findtext(".//cas:名前", namespaces=NS) == "花子"


@pytest.mark.parametrize(
    "name",
    ["", "1abc", "-abc", ".abc", "a b", "a:b", "a<b", "a&b", "a/b", 'a"b', "a\x00", "·a"],
)
def test_invalid_attribute_names_are_rejected(name: str) -> None:
    assert not is_valid_attribute_name(name)


@pytest.mark.parametrize("name", sorted(RESERVED_ATTRIBUTE_NAMES))
def test_cas_element_names_are_reserved(name: str) -> None:
    assert not is_valid_attribute_name(name)


@pytest.mark.parametrize(
    "name", ["mail", "_x", "eduPersonAffiliation", "a-b.c_d9", "prénom", "xmlLang"]
)
def test_valid_attribute_names(name: str) -> None:
    assert is_valid_attribute_name(name)


def test_invalid_and_reserved_names_are_left_out_in_both_formats() -> None:
    attributes = {
        "ok": ["1"],
        "bad name": ["2"],
        "a:b": ["3"],
        "proxy": ["https://evil/"],
        "authenticationFailure": ["x"],
        "user": ["mallory"],
        "fine": ["4"],
    }
    root = parse(success(attributes=attributes).body)
    found = [etree.QName(e).localname for e in root.find(".//cas:attributes", NS)]
    assert found == ["ok", "fine"]
    # A released "proxy" would be read by phpCAS as a proxy-chain hop and refused.
    assert root.find(".//cas:proxy", NS) is None
    assert root.findtext(".//cas:user", namespaces=NS) == "jdoe"
    document = json.loads(success("JSON", attributes=attributes).body)
    assert document["serviceResponse"]["authenticationSuccess"]["attributes"] == {
        "ok": ["1"],
        "fine": ["4"],
    }


def test_bare_string_value_is_one_value_and_empty_lists_are_skipped() -> None:
    attributes = {"mail": "jdoe@example.org", "none": [], "empty": [""]}
    root = parse(success(attributes=attributes).body)  # type: ignore[arg-type]
    assert root.xpath("//cas:mail/text()", namespaces=NS) == ["jdoe@example.org"]
    assert root.find(".//cas:none", NS) is None
    assert root.find(".//cas:empty", NS) is not None
    document = json.loads(success("JSON", attributes=attributes).body)  # type: ignore[arg-type]
    assert document["serviceResponse"]["authenticationSuccess"]["attributes"] == {
        "mail": ["jdoe@example.org"],
        "empty": [""],
    }


# --- JSON (sections 2.5.2, 2.5.7, 2.6.2) --------------------------------------------------


def test_json_cas2_success_shape() -> None:
    rendered = success("JSON")
    assert rendered.media_type == JSON_MEDIA_TYPE
    assert json.loads(rendered.body) == {
        "serviceResponse": {"authenticationSuccess": {"user": "jdoe"}}
    }


def test_json_cas3_success_shape_with_lists() -> None:
    rendered = success(
        "JSON",
        attributes={"mail": ["jdoe@example.org"], "affiliation": ["staff", "faculty"]},
        pgt_iou="PGTIOU-84678-8a9d",
        proxies=["https://proxy2/pgtUrl", "https://proxy1/pgtUrl"],
    )
    document = json.loads(rendered.body)
    assert document == {
        "serviceResponse": {
            "authenticationSuccess": {
                "user": "jdoe",
                "attributes": {
                    "mail": ["jdoe@example.org"],
                    "affiliation": ["staff", "faculty"],
                },
                "proxyGrantingTicket": "PGTIOU-84678-8a9d",
                "proxies": ["https://proxy2/pgtUrl", "https://proxy1/pgtUrl"],
            }
        }
    }
    assert list(document["serviceResponse"]["authenticationSuccess"]["attributes"]) == [
        "mail",
        "affiliation",
    ]


def test_json_escapes_hostile_values() -> None:
    body = success("JSON", user=HOSTILE + "\u2028\x00", attributes={"n": [HOSTILE]}).body
    assert body.isascii()
    document = json.loads(body)
    assert document["serviceResponse"]["authenticationSuccess"]["user"] == HOSTILE + "\u2028\x00"


# --- 2.7.2 /proxy -------------------------------------------------------------------------


def test_proxy_success_xml_read_as_python_cas_and_phpcas_do() -> None:
    rendered = render_proxy_success("PT-1856392-b98xZrQN4p90ASrw96c8", "XML")
    assert rendered.media_type == XML_MEDIA_TYPE
    root = parse(rendered.body)
    assert etree.QName(root).localname == "serviceResponse"
    # python-cas get_proxy_ticket: exactly one //cas:proxyTicket.
    assert root.xpath("//cas:proxyTicket/text()", namespaces=NS) == [
        "PT-1856392-b98xZrQN4p90ASrw96c8"
    ]
    assert root.find("cas:proxySuccess/cas:proxyTicket", NS) is not None


def test_proxy_success_json() -> None:
    rendered = render_proxy_success("PT-1", "JSON")
    assert rendered.media_type == JSON_MEDIA_TYPE
    assert json.loads(rendered.body) == {
        "serviceResponse": {"proxySuccess": {"proxyTicket": "PT-1"}}
    }


# --- 2.5.3 / 2.7.3 error codes ------------------------------------------------------------

SPEC_CODES = {
    "INVALID_REQUEST": errors.InvalidRequest,
    "INVALID_TICKET_SPEC": errors.InvalidTicketSpec,
    "UNAUTHORIZED_SERVICE_PROXY": errors.UnauthorizedServiceProxy,
    "INVALID_PROXY_CALLBACK": errors.InvalidProxyCallback,
    "INVALID_TICKET": errors.InvalidTicket,
    "INVALID_SERVICE": errors.InvalidService,
    "INTERNAL_ERROR": errors.InternalError,
    "UNAUTHORIZED_SERVICE": errors.UnauthorizedService,
}


def test_every_spec_code_has_its_class() -> None:
    assert dict(errors.ERRORS_BY_CODE) == SPEC_CODES
    for code, cls in SPEC_CODES.items():
        assert cls.code == code
        assert issubclass(cls, errors.CasError)
        assert issubclass(cls, SsoError)
        assert cls.message


@pytest.mark.parametrize("cls", list(SPEC_CODES.values()), ids=list(SPEC_CODES))
def test_every_error_renders_authentication_failure_xml(cls: type[errors.CasError]) -> None:
    rendered = cls().render("XML")
    assert rendered.media_type == XML_MEDIA_TYPE
    root = parse(rendered.body)
    [failure] = root
    assert failure.tag == f"{{{CAS}}}authenticationFailure"
    assert failure.get("code") == cls.code
    assert failure.text == cls.message
    assert CASClientV2.verify_response(rendered.body.encode()) == (None, None, None)
    assert CASClientV3.verify_response(rendered.body.encode()) == (None, {}, None)


@pytest.mark.parametrize("cls", list(SPEC_CODES.values()), ids=list(SPEC_CODES))
def test_every_error_renders_authentication_failure_json(cls: type[errors.CasError]) -> None:
    rendered = cls("detail").render("JSON")
    assert rendered.media_type == JSON_MEDIA_TYPE
    assert json.loads(rendered.body) == {
        "serviceResponse": {"authenticationFailure": {"code": cls.code, "description": "detail"}}
    }


@pytest.mark.parametrize("cls", list(SPEC_CODES.values()), ids=list(SPEC_CODES))
def test_every_error_renders_proxy_failure(cls: type[errors.CasError]) -> None:
    root = parse(cls().render_proxy("XML").body)
    [failure] = root
    assert failure.tag == f"{{{CAS}}}proxyFailure"
    assert failure.get("code") == cls.code
    assert failure.text == cls.message
    # Section 2.7.2 prints the JSON proxy failure under "authenticationFailure".
    assert json.loads(cls("d").render_proxy("JSON").body) == {
        "serviceResponse": {"authenticationFailure": {"code": cls.code, "description": "d"}}
    }


def test_error_default_format_is_xml_and_message_overrides() -> None:
    error = errors.InvalidTicket(f"Ticket {HOSTILE} not recognized")
    assert error.message == f"Ticket {HOSTILE} not recognized"
    assert str(error) == error.message
    assert errors.InvalidTicket().message == errors.InvalidTicket.message
    assert "INVALID_TICKET" in repr(error)
    root = parse(error.render().body)
    assert root[0].text == f"Ticket {HOSTILE} not recognized"
    with pytest.raises(errors.CasError) as caught:
        raise errors.InvalidService()
    assert caught.value.code == "INVALID_SERVICE"


# --- 2.5.1 format -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "XML"),
        ("", "XML"),
        ("XML", "XML"),
        ("xml", "XML"),
        ("JSON", "JSON"),
        ("json", "JSON"),
        ("Json", "JSON"),
        ("yaml", None),
        ("XML ", None),
    ],
)
def test_parse_format(value: str | None, expected: str | None) -> None:
    assert parse_format(value) == expected


# --- 2.4.2 /validate ----------------------------------------------------------------------


def test_validate_v1() -> None:
    assert render_validate_v1("jdoe") == "yes\njdoe\n"
    assert render_validate_v1(None) == "no\n\n"


@pytest.mark.parametrize("user", ["a\nb", "a\rb", "jdoe\n"])
def test_validate_v1_refuses_line_breaks_in_user(user: str) -> None:
    with pytest.raises(ValueError, match="line break"):
        render_validate_v1(user)


# --- Appendix C single logout -------------------------------------------------------------

SAMLP2 = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML2 = "urn:oasis:names:tc:SAML:2.0:assertion"


def logout(**overrides: object) -> str:
    arguments: dict[str, object] = {
        "request_id": "LR-1-abcdef",
        "issue_instant": NOW,
        "session_index": "ST-1856339-aA5Yuvrxzpv8Tau1cYQ7",
    }
    arguments.update(overrides)
    return render_logout_request(**arguments)  # type: ignore[arg-type]


def test_logout_request_structure() -> None:
    root = parse(logout())
    assert root.tag == f"{{{SAMLP2}}}LogoutRequest"
    assert root.prefix == "samlp"
    assert root.get("ID") == "LR-1-abcdef"
    assert root.get("Version") == "2.0"
    assert root.get("IssueInstant") == "2024-05-06T07:08:09.123Z"
    name_id, session_index = root
    assert name_id.tag == f"{{{SAML2}}}NameID"
    assert name_id.prefix == "saml"
    assert name_id.text == "@NOT_USED@"
    assert session_index.tag == f"{{{SAMLP2}}}SessionIndex"
    assert session_index.text == "ST-1856339-aA5Yuvrxzpv8Tau1cYQ7"


def test_logout_request_read_as_phpcas_does() -> None:
    document = logout()
    # phpCAS urldecodes the already-decoded POST field again, then applies a text regex.
    seen_by_phpcas = unquote_plus(document)
    assert seen_by_phpcas == document
    match = re.search("<samlp:SessionIndex>(.*)</samlp:SessionIndex>", seen_by_phpcas)
    assert match is not None and match.group(1) == "ST-1856339-aA5Yuvrxzpv8Tau1cYQ7"
    assert "\n" not in document


def test_logout_request_read_by_python_cas_as_str() -> None:
    document = logout()
    assert SingleLogoutMixin.verify_logout_request(document, "ST-1856339-aA5Yuvrxzpv8Tau1cYQ7")
    assert not SingleLogoutMixin.verify_logout_request(document, "ST-other")


def test_logout_request_converts_time_zone_to_utc() -> None:
    paris = timezone(timedelta(hours=2))
    root = parse(logout(issue_instant=datetime(2024, 5, 6, 9, 8, 9, tzinfo=paris)))
    assert root.get("IssueInstant") == "2024-05-06T07:08:09.000Z"


@pytest.mark.parametrize(
    "session_index", ["", "ST-1+2", "ST-1%2B", "ST 1", "ST-<x>", "ST-1\n", "ST_1"]
)
def test_logout_request_refuses_non_ticket_session_index(session_index: str) -> None:
    with pytest.raises(ValueError, match="session_index"):
        logout(session_index=session_index)


@pytest.mark.parametrize("request_id", ["", "1abc", "a+b", "a%20", 'a"b', "a b"])
def test_logout_request_refuses_unsafe_id(request_id: str) -> None:
    with pytest.raises(ValueError, match="request_id"):
        logout(request_id=request_id)


def test_logout_request_refuses_naive_datetime() -> None:
    with pytest.raises(ValueError, match="timezone"):
        logout(issue_instant=datetime(2024, 5, 6, 7, 8, 9))


# --- helpers ------------------------------------------------------------------------------


def test_format_instant() -> None:
    assert format_instant(NOW) == "2024-05-06T07:08:09.123Z"
    assert format_instant(datetime(2024, 1, 1, tzinfo=UTC)) == "2024-01-01T00:00:00.000Z"


def test_xml_text_and_attr() -> None:
    assert xml_text("a<b>&c\r") == "a&lt;b&gt;&amp;c&#13;"
    assert xml_attr('x"y') == "'x\"y'"
    assert xml_attr("x'y\"z\n") == '"x\'y&quot;z&#10;"'
    root = etree.fromstring(f"<a v={xml_attr(HOSTILE)}>{xml_text(HOSTILE)}</a>")
    assert root.get("v") == HOSTILE
    assert root.text == HOSTILE
