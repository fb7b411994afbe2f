"""Alembic environment: the models' metadata, the URL given by ``sso.migrate`` or SSO_*."""

from __future__ import annotations

from alembic import context

import sso.accounts.models  # noqa: F401 - register the tables
import sso.accounts.questions  # noqa: F401
import sso.audit  # noqa: F401
import sso.mail  # noqa: F401
import sso.protocols.saml.models  # noqa: F401
import sso.services.models  # noqa: F401
import sso.services.saml_models  # noqa: F401
import sso.sessions.models  # noqa: F401
from sso.db import Base, make_engine

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from sso.config import Settings

    return Settings(demo=True).database_url


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = make_engine(_url())
    with engine.connect() as connection:
        context.configure(
            connection=connection, target_metadata=target_metadata, render_as_batch=True
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
