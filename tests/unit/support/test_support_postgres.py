import time

import pytest
import sqlalchemy as sa

from tests.support.postgres import PostgresCluster, find_postgres_bindir


def test_cluster_creates_database_and_cleans_up():
    started = time.monotonic()
    with PostgresCluster() as cluster:
        assert time.monotonic() - started < 15
        base_dir = cluster.base_dir
        url = cluster.create_database("support_test")
        assert url == f"postgresql+psycopg://postgres@127.0.0.1:{cluster.port}/support_test"

        engine = sa.create_engine(url)
        try:
            with engine.connect() as conn:
                assert conn.execute(sa.text("select 1")).scalar_one() == 1
                settings = dict(
                    conn.execute(
                        sa.text(
                            "select name, setting from pg_settings where name in "
                            "('listen_addresses', 'fsync', 'synchronous_commit', "
                            "'full_page_writes')"
                        )
                    ).all()
                )
        finally:
            engine.dispose()
        assert settings == {
            "listen_addresses": "127.0.0.1",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
        }

        cluster.drop_database("support_test")
        with cluster.connect() as conn:
            names = {row[0] for row in conn.execute("select datname from pg_database")}
        assert "support_test" not in names
    assert base_dir is not None and not base_dir.exists()
    assert not cluster.running


def test_drop_database_disconnects_open_sessions():
    with PostgresCluster() as cluster:
        url = cluster.create_database("busy")
        engine = sa.create_engine(url)
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("select 1"))
                cluster.drop_database("busy")  # would fail without WITH (FORCE)
        except sa.exc.OperationalError:
            pass  # the forced disconnect surfaces when the connection is returned
        finally:
            engine.dispose()


def test_rejects_names_that_need_quoting():
    cluster = PostgresCluster()
    with pytest.raises(ValueError):
        cluster.create_database('x"; drop')


def test_finds_server_binaries():
    assert (find_postgres_bindir() / "initdb").exists()
