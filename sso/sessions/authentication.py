"""The Authentication: what the login layer hands back to a protocol (DESIGN.md contract)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

METHOD_ACADEMIC = "academic"
METHOD_FEDERATED = "federated"
METHOD_INVITED = "invited"


@dataclass(frozen=True)
class Authentication:
    """Who the user is, how and when they proved it, and the attributes known about them."""

    subject: str
    method: str
    authenticated_at: dt.datetime
    assurance: str = "password"
    attributes: dict[str, list[str]] = field(default_factory=dict)
