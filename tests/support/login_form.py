"""Submitting our login page the way a browser does, for tests that drive HTTP directly."""

from __future__ import annotations

from html.parser import HTMLParser

import httpx


class _FormParser(HTMLParser):
    def __init__(self, form_id: str) -> None:
        super().__init__()
        self.form_id = form_id
        self.in_form = False
        self.action: str | None = None
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "form" and attributes.get("id") == self.form_id:
            self.in_form = True
            self.action = attributes.get("action")
        elif tag == "input" and self.in_form and attributes.get("name"):
            self.fields[attributes["name"] or ""] = attributes.get("value") or ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.in_form = False


def read_form(html: str, form_id: str = "academic-login") -> tuple[str, dict[str, str]]:
    """The action and the fields (hidden ones with their values) of a form on a page."""
    parser = _FormParser(form_id)
    parser.feed(html)
    if parser.action is None:
        raise AssertionError(f"no form {form_id!r} on the page:\n{html[:2000]}")
    return parser.action, parser.fields


def submit_login(
    client: httpx.Client, page: httpx.Response, identifier: str, password: str
) -> httpx.Response:
    """Fill the blue door's form on ``page`` and post it with the client's cookies."""
    action, fields = read_form(page.text)
    fields.update(identifier=identifier, password=password)
    return client.post(action, data=fields)
