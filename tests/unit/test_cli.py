"""The ``sso`` command: migrate, account import and passwords, services, demo."""

from __future__ import annotations

import io
import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect

from sso.accounts.store import AccountStore
from sso.cli import main
from sso.db import Base, make_engine
from sso.security.passwords import PasswordHasher, hashes_at_once

SECRET = "cli-test-secret-that-is-long-enough-0123456789"
_database_names = itertools.count()


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the settings each test gives: nothing from the developer's shell."""
    for name in list(os.environ):
        if name.startswith("SSO_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SSO_SECRET_KEY", SECRET)


@pytest.fixture
def database(database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The suite's migrated database, named by SSO_DATABASE_URL."""
    monkeypatch.setenv("SSO_DATABASE_URL", database_url)
    return database_url


@pytest.fixture(scope="module")
def hasher() -> PasswordHasher:
    return PasswordHasher()


def authenticates(database_url: str, identifier: str, password: str) -> bool:
    engine = make_engine(database_url)
    try:
        store = AccountStore(engine, PasswordHasher())
        return store.authenticate(identifier, password, kind="academic") is not None
    finally:
        engine.dispose()


# -- serve ------------------------------------------------------------------------------------


@pytest.fixture
def uvicorn_runs(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, object]]:
    """uvicorn.run replaced by a recorder of its keyword arguments."""
    import uvicorn

    calls: list[dict[str, object]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *_args, **kwargs: calls.append(kwargs))
    return calls


def test_serve_tells_the_workers_their_share_of_the_cpus_for_password_hashing(
    uvicorn_runs: list[dict[str, object]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSO_PASSWORD_HASH_CONCURRENCY", "0")  # restored after the test

    assert main(["serve", "--workers", "2"]) == 0

    assert uvicorn_runs[0]["workers"] == 2
    assert os.environ["SSO_PASSWORD_HASH_CONCURRENCY"] == str(hashes_at_once(2))


def test_serve_keeps_a_configured_password_hash_concurrency(
    uvicorn_runs: list[dict[str, object]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSO_PASSWORD_HASH_CONCURRENCY", "3")

    assert main(["serve", "--workers", "2"]) == 0

    assert os.environ["SSO_PASSWORD_HASH_CONCURRENCY"] == "3"


# -- migrate ----------------------------------------------------------------------------------


@pytest.fixture
def fresh_database(
    database_backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[str]:
    if database_backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'cli.db'}"
        return
    cluster = request.getfixturevalue("postgres_cluster")
    name = f"cli_{next(_database_names)}"
    url = cluster.create_database(name)
    yield url
    cluster.drop_database(name)


def test_migrate(
    fresh_database: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SSO_DATABASE_URL", fresh_database)

    assert main(["migrate"]) == 0
    assert main(["migrate"]) == 0  # idempotent

    assert capsys.readouterr().out == "database schema up to date\n" * 2
    engine = make_engine(fresh_database)
    try:
        assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_invalid_settings_refused_with_a_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSO_SECRET_KEY", "short")

    with pytest.raises(SystemExit) as exited:
        main(["migrate"])

    assert "sso: invalid settings" in str(exited.value.code)
    assert "SSO_SECRET_KEY" in str(exited.value.code)


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["frobnicate"])

    assert exited.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


# -- accounts import --------------------------------------------------------------------------


def test_accounts_import(database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv_file = tmp_path / "accounts.csv"
    csv_file.write_text("identifier,password,surname\njdupont,s3cret,Dupont\nmmartin,,Martin\n")

    assert main(["accounts", "import", str(csv_file)]) == 0
    assert capsys.readouterr().out == "created 2, updated 0, unchanged 0, refused 0\n"
    assert main(["accounts", "import", str(csv_file)]) == 0
    assert capsys.readouterr().out == "created 0, updated 0, unchanged 2, refused 0\n"
    assert authenticates(database, "jdupont", "s3cret")


def test_accounts_import_of_a_spreadsheet_export_with_a_bom(
    database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv_file = tmp_path / "accounts.csv"
    csv_file.write_bytes("identifier,surname\r\njdupont,Dupont\r\n".encode("utf-8-sig"))

    assert main(["accounts", "import", str(csv_file)]) == 0
    assert "created 1" in capsys.readouterr().out


def test_accounts_import_reports_refused_lines(
    database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv_file = tmp_path / "accounts.csv"
    csv_file.write_text(
        "identifier,email\njdupont,j@ac-paris.fr\nbad id,x@ac-paris.fr\nmmartin,not-an-email\n"
    )

    assert main(["accounts", "import", str(csv_file)]) == 1

    out, err = capsys.readouterr()
    assert out == "created 1, updated 0, unchanged 0, refused 2\n"
    assert err.splitlines()[0].startswith("line 3: invalid identifier 'bad id'")
    assert err.splitlines()[1] == "line 4: invalid email 'not-an-email'"


def test_accounts_import_of_a_missing_file(database: str, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["accounts", "import", str(tmp_path / "missing.csv")])

    assert f"sso: cannot read {tmp_path / 'missing.csv'}" in str(exited.value.code)


def test_accounts_import_of_a_file_not_in_utf8(database: str, tmp_path: Path) -> None:
    csv_file = tmp_path / "latin1.csv"
    csv_file.write_bytes("identifier,surname\njdupont,Dupré\n".encode("latin-1"))

    with pytest.raises(SystemExit) as exited:
        main(["accounts", "import", str(csv_file)])

    assert "sso: cannot read" in str(exited.value.code)


def test_accounts_import_with_numen_gives_the_first_password(
    database: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    csv_file = tmp_path / "accounts.csv"
    csv_file.write_text(
        "identifier,surname,numen,birth_date,recovery_email\n"
        "jdupont,Dupont,12e0123456abc,14/03/1982,jd@perso.test\n"
        "bad,Bad,12E0123456ABCDEF,1982-03-14,\n"
    )

    assert main(["accounts", "import", str(csv_file)]) == 1
    captured = capsys.readouterr()
    assert captured.out.startswith("created 1,")
    assert "line 3: invalid numen" in captured.err and "12E0123456ABCDEF" not in captured.err
    assert main(["accounts", "import", str(csv_file)]) == 1
    assert "unchanged 1" in capsys.readouterr().out  # re-import keeps the same account
    engine = make_engine(database)
    try:
        from sso.accounts.store import MUST_CHANGE
        from sso.config import Settings

        store = AccountStore.from_settings(engine, Settings())
        assert store.login("jdupont", "12E0123456ABC", kind="academic").status == MUST_CHANGE
        assert store.find_by_numen("12E 0123456 ABC").identifier == "jdupont"
    finally:
        engine.dispose()


def test_accounts_unlock(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    engine = make_engine(database)
    try:
        from sso.accounts.importer import import_accounts
        from sso.accounts.store import LOCKED

        store = AccountStore(engine, PasswordHasher())
        import_accounts(engine, store.hasher, "identifier,password\njdupont,s3cret\n")
        outcomes = [store.login("jdupont", "wrong", kind="academic") for _ in range(3)]
        assert outcomes[-1].status == LOCKED and outcomes[-1].locked_now
        assert not authenticates(database, "jdupont", "s3cret")
    finally:
        engine.dispose()

    assert main(["accounts", "unlock", "JDupont"]) == 0
    assert capsys.readouterr().out == "jdupont unlocked\n"
    assert authenticates(database, "jdupont", "s3cret")
    assert main(["accounts", "unlock", "nobody"]) == 1


# -- accounts set-password --------------------------------------------------------------------


def test_set_password_from_stdin(
    database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    csv_file = tmp_path / "accounts.csv"
    csv_file.write_text("identifier,password\njdupont,old password\n")
    main(["accounts", "import", str(csv_file)])
    capsys.readouterr()
    monkeypatch.setattr("sys.stdin", io.StringIO("a new password\n"))

    assert main(["accounts", "set-password", "JDupont", "--stdin"]) == 0

    assert capsys.readouterr().out == "password set\n"
    assert authenticates(database, "jdupont", "a new password")
    assert not authenticates(database, "jdupont", "old password")


def test_set_password_of_an_unknown_account(
    database: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("a new password\n"))

    assert main(["accounts", "set-password", "nobody", "--stdin"]) == 1

    assert capsys.readouterr().err == "sso: no account 'nobody'\n"


@pytest.mark.parametrize("password", ["", "x" * 129], ids=["empty", "too-long"])
def test_set_password_refuses_unusable_passwords(
    database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    password: str,
) -> None:
    csv_file = tmp_path / "accounts.csv"
    csv_file.write_text("identifier,password\njdupont,old password\n")
    main(["accounts", "import", str(csv_file)])
    capsys.readouterr()
    monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))

    assert main(["accounts", "set-password", "jdupont", "--stdin"]) == 1

    assert capsys.readouterr().err.startswith("sso: ")
    assert authenticates(database, "jdupont", "old password")


# -- services ---------------------------------------------------------------------------------


def test_services_add_list_remove(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["services", "add", "moodle", "https://moodle.test/login", "--attributes=mail,sn"])
        == 0
    )
    assert capsys.readouterr().out == (
        "service 'moodle' registered (exact: https://moodle.test/login)\n"
    )
    assert (
        main(
            [
                "services",
                "add",
                "webmail",
                r"https://webmail\.test/.*",
                "--regex",
                "--order=5",
                "--method=POST",
                "--no-single-logout",
                "--proxy-callback",
                r"https://webmail\.test/pgt",
            ]
        )
        == 0
    )
    capsys.readouterr()

    assert main(["services", "list"]) == 0
    listing = capsys.readouterr().out
    assert listing.index("moodle") < listing.index("webmail")  # evaluation order
    assert "exact: https://moodle.test/login" in listing
    assert "attributes: mail,sn" in listing
    assert r"regex: https://webmail\.test/.*" in listing
    assert "method: POST" in listing
    assert "single logout: off" in listing
    assert r"proxy callback: https://webmail\.test/pgt" in listing

    assert main(["services", "remove", "moodle"]) == 0
    assert capsys.readouterr().out == "service 'moodle' removed\n"
    main(["services", "list"])
    assert "moodle" not in capsys.readouterr().out


def test_services_list_when_empty(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["services", "list"]) == 0
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bad", "not-a-url"], "sso: not an absolute http(s) URL: 'not-a-url'\n"),
        (["bad", "https://x/(", "--regex"], "sso: invalid regular expression pattern"),
        (
            ["bad", "https://x/", "--proxy-callback", "("],
            "sso: invalid regular expression proxy_callback_pattern",
        ),
    ],
)
def test_services_add_refused(
    database: str, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["services", "add", *args]) == 1

    out, err = capsys.readouterr()
    assert err.startswith(message)
    assert out == ""
    main(["services", "list"])
    assert capsys.readouterr().out == ""


def test_services_add_duplicate_name(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["services", "add", "app", "https://app.test/"]) == 0

    assert main(["services", "add", "app", "https://other.test/"]) == 1

    assert capsys.readouterr().err == "sso: a service named 'app' already exists\n"


def test_services_add_bad_method_is_a_usage_error(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["services", "add", "app", "https://app.test/", "--method=PUT"])

    assert exited.value.code == 2
    assert "invalid choice: 'PUT'" in capsys.readouterr().err


def test_services_remove_unknown(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["services", "remove", "nothing"]) == 1

    assert capsys.readouterr().err == "sso: no service named 'nothing'\n"


# -- demo -------------------------------------------------------------------------------------


def test_demo_refused_without_demo_mode(database: str) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["demo"])

    assert exited.value.code == "sso: demo data is loaded only with SSO_DEMO=true"


def test_demo(
    database: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SSO_DEMO", "true")
    monkeypatch.setenv("SSO_BASE_URL", "https://sso.test/")

    assert main(["demo"]) == 0
    assert main(["demo"]) == 0  # loading it again changes nothing

    out = capsys.readouterr().out
    assert "created 4" in out and "unchanged 4" in out
    assert "demo ready: open https://sso.test/demo/webmail" in out
    main(["services", "list"])
    assert "https://sso.test/demo/webmail" in capsys.readouterr().out
    assert authenticates(database, "cmartin", "Demo-Martin-2026")
