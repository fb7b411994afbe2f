"""Helpers for flow tests of the CAS login side: logging in, reading cookies and tickets."""

from __future__ import annotations

import re
from html import unescape
from html.parser import HTMLParser
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx

from tests.support.login_form import submit_login

TICKET = re.compile(r"^ST-[A-Za-z0-9-]{32,}$")


def log_in(
    client: httpx.Client,
    identifier: str,
    password: str,
    service: str | None = None,
    **params: str,
) -> httpx.Response:
    """Open /login (with ``service`` and ``params``), fill the blue door, return the answer."""
    query = dict(params)
    if service is not None:
        query["service"] = service
    page = client.get("/login", params=query)
    assert page.status_code == 200, page.text
    return submit_login(client, page, identifier, password)


def set_cookie(response: httpx.Response, name: str) -> tuple[str, dict[str, str]] | None:
    """The value and attributes (lower-case names) of the Set-Cookie for ``name``, if any."""
    for header in response.headers.get_list("set-cookie"):
        first, *attributes = [part.strip() for part in header.split(";")]
        cookie_name, _, value = first.partition("=")
        if cookie_name != name:
            continue
        parsed: dict[str, str] = {}
        for attribute in attributes:
            key, _, attribute_value = attribute.partition("=")
            parsed[key.strip().lower()] = attribute_value.strip()
        return value.strip('"'), parsed
    return None


def ticket_from(location: str) -> str:
    """The ``ticket`` query parameter of a redirect to a service."""
    tickets = parse_qs(urlsplit(location).query).get("ticket", [])
    assert len(tickets) == 1, location
    return tickets[0]


def page_message(html: str) -> str:
    """The text of the page's error or message paragraph."""
    match = re.search(r'<p class="(?:error|message)"[^>]*>(.*?)</p>', html, re.S)
    assert match, html[:2000]
    return unescape(match.group(1)).strip()


class Forms(HTMLParser):
    """Every form on a page: its attributes, its inputs and its buttons."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict] = []
        self.scripts: list[dict[str, str | None]] = []
        self.links: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "form":
            self.forms.append({"attrs": attributes, "inputs": [], "buttons": []})
        elif tag == "input" and self.forms:
            self.forms[-1]["inputs"].append(attributes)
        elif tag == "button" and self.forms:
            self.forms[-1]["buttons"].append(attributes)
        elif tag == "script":
            self.scripts.append(attributes)
        elif tag == "a":
            self.links.append(attributes)


def parse_page(html: str) -> Forms:
    """The forms, scripts and links of a page."""
    parser = Forms()
    parser.feed(html)
    return parser


def foreign_links(page: httpx.Response) -> list[str]:
    """Links and form targets of a page that lead off our own host."""
    parsed = parse_page(page.text)
    targets = [a.get("href") or "" for a in parsed.links]
    targets += [form["attrs"].get("action") or "" for form in parsed.forms]
    here = urlsplit(str(page.url)).netloc
    return [t for t in targets if urlsplit(urljoin(str(page.url), t)).netloc != here]
