"""The replay cache: an ID is accepted once per issuer; expired entries are purged."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update

from sso.protocols.saml.models import SeenMessageRow
from sso.protocols.saml.replay import SeenMessages


def test_an_id_is_accepted_once_per_issuer(runtime) -> None:
    seen = SeenMessages(runtime.engine)
    assert seen.first_time("https://sp.test", "_a")
    assert not seen.first_time("https://sp.test", "_a")
    assert seen.first_time("https://other.test", "_a")


def test_purge_forgets_only_expired_ids(runtime) -> None:
    seen = SeenMessages(runtime.engine)
    seen.first_time("https://sp.test", "_old")
    seen.first_time("https://sp.test", "_new")
    with runtime.engine.begin() as conn:
        first = conn.scalars(select(SeenMessageRow.id)).first()
        conn.execute(
            update(SeenMessageRow)
            .where(SeenMessageRow.id == first)
            .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
        )
    assert seen.purge() == 1
    with runtime.engine.connect() as conn:
        assert len(conn.scalars(select(SeenMessageRow.id)).all()) == 1
