"""CSV import: idempotent, good rows in, bad rows reported by line, nothing half-written."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from passlib.hash import ldap_salted_sha1
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from sso.accounts.importer import MAX_FIELD_LENGTH, ImportReport, import_accounts
from sso.accounts.models import Account
from sso.db import make_engine
from sso.security.passwords import PasswordHasher

HEADER = "identifier,given_name,surname,email,affiliation,password\n"


@pytest.fixture(scope="module")
def hasher() -> PasswordHasher:
    return PasswordHasher()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def run(engine: Engine, hasher: PasswordHasher, text: str, **kwargs: str) -> ImportReport:
    return import_accounts(engine, hasher, text, **kwargs)


def account(engine: Engine, identifier: str) -> Account | None:
    with Session(engine) as db:
        return db.scalar(select(Account).where(Account.identifier == identifier))


def identifiers(engine: Engine) -> list[str]:
    with Session(engine) as db:
        return list(db.scalars(select(Account.identifier).order_by(Account.identifier)))


def count(engine: Engine) -> int:
    with Session(engine) as db:
        return db.scalar(select(func.count()).select_from(Account)) or 0


def test_creates_accounts(engine: Engine, hasher: PasswordHasher) -> None:
    report = run(
        engine,
        hasher,
        HEADER
        + "JDupont,Jean,Dupont,jean.dupont@ac-paris.fr,staff,s3cret\n"
        + "mmartin,Marie,Martin,,student,\n",
    )

    assert report == ImportReport(created=2)
    jean = account(engine, "jdupont")
    assert jean is not None
    assert (jean.given_name, jean.surname, jean.display_name) == ("Jean", "Dupont", "Jean Dupont")
    assert jean.email == "jean.dupont@ac-paris.fr"
    assert jean.affiliation == "staff"
    assert jean.kind == "academic"
    assert jean.enabled
    assert jean.password_hash is not None and jean.password_hash.startswith("$argon2id$")
    assert hasher.verify("s3cret", jean.password_hash).ok
    marie = account(engine, "mmartin")
    assert marie is not None and marie.password_hash is None


def test_kind_of_the_imported_accounts(engine: Engine, hasher: PasswordHasher) -> None:
    run(engine, hasher, "identifier\nguest1\n", kind="invited")

    guest = account(engine, "guest1")
    assert guest is not None and guest.kind == "invited"


def test_accepts_an_iterable_of_lines(engine: Engine, hasher: PasswordHasher) -> None:
    report = import_accounts(engine, hasher, ["identifier,surname\n", "jdupont,Dupont\n"])

    assert report.created == 1


def test_reimporting_the_same_file_changes_nothing(engine: Engine, hasher: PasswordHasher) -> None:
    text = (
        HEADER
        + "jdupont,Jean,Dupont,jean.dupont@ac-paris.fr,staff,s3cret\n"
        + "mmartin,Marie,Martin,,student,\n"
    )
    run(engine, hasher, text)
    before = account(engine, "jdupont")

    report = run(engine, hasher, text)

    assert report == ImportReport(unchanged=2)
    after = account(engine, "jdupont")
    assert before is not None and after is not None
    assert after.password_hash == before.password_hash  # not re-hashed with a new salt
    assert after.updated_at == before.updated_at


def test_update_changes_only_what_changed(engine: Engine, hasher: PasswordHasher) -> None:
    run(
        engine,
        hasher,
        HEADER
        + "jdupont,Jean,Dupont,jean.dupont@ac-paris.fr,staff,s3cret\n"
        + "mmartin,Marie,Martin,,student,\n",
    )
    before = account(engine, "jdupont")

    report = run(
        engine,
        hasher,
        HEADER
        + "jdupont,Jean,Dupont,j.dupont@ac-paris.fr,staff,s3cret\n"
        + "mmartin,Marie,Martin,,student,\n",
    )

    assert report == ImportReport(updated=1, unchanged=1)
    after = account(engine, "jdupont")
    assert before is not None and after is not None
    assert after.email == "j.dupont@ac-paris.fr"
    assert after.id == before.id
    assert (after.given_name, after.surname, after.affiliation) == ("Jean", "Dupont", "staff")
    assert after.password_hash == before.password_hash
    assert after.created_at == before.created_at


def test_new_password_rehashed(engine: Engine, hasher: PasswordHasher) -> None:
    run(engine, hasher, "identifier,password\njdupont,old password\n")

    report = run(engine, hasher, "identifier,password\njdupont,new password\n")

    assert report == ImportReport(updated=1)
    jean = account(engine, "jdupont")
    assert jean is not None and jean.password_hash is not None
    assert hasher.verify("new password", jean.password_hash).ok
    assert not hasher.verify("old password", jean.password_hash).ok


def test_file_without_password_keeps_the_password(engine: Engine, hasher: PasswordHasher) -> None:
    run(engine, hasher, "identifier,password\njdupont,s3cret\n")

    report = run(engine, hasher, "identifier,surname\njdupont,Dupont\n")

    assert report == ImportReport(updated=1)
    jean = account(engine, "jdupont")
    assert jean is not None and jean.password_hash is not None
    assert hasher.verify("s3cret", jean.password_hash).ok


def test_password_hash_column_stores_a_legacy_hash(engine: Engine, hasher: PasswordHasher) -> None:
    ssha = ldap_salted_sha1.hash("from ldap")

    report = run(engine, hasher, f"identifier,password_hash\njdupont,{ssha}\n")

    assert report == ImportReport(created=1)
    jean = account(engine, "jdupont")
    assert jean is not None and jean.password_hash == ssha
    assert run(engine, hasher, f"identifier,password_hash\njdupont,{ssha}\n").unchanged == 1


def test_bad_rows_reported_by_line_while_good_rows_imported(
    engine: Engine, hasher: PasswordHasher
) -> None:
    report = run(
        engine,
        hasher,
        "identifier,email\n"  # line 1
        "good1,good1@ac-paris.fr\n"  # line 2
        "bad id,bad@ac-paris.fr\n"  # line 3
        "\n"  # line 4: blank lines are skipped but counted
        "good2,\n"  # line 5
        "bad2,not-an-email\n"  # line 6
        "good3,good3@ac-paris.fr\n",  # line 7
    )

    assert report.created == 3
    assert [line for line, _ in report.errors] == [3, 6]
    assert "invalid identifier 'bad id'" in report.errors[0][1]
    assert "invalid email 'not-an-email'" in report.errors[1][1]
    assert identifiers(engine) == ["good1", "good2", "good3"]


def test_line_numbers_count_physical_lines(engine: Engine, hasher: PasswordHasher) -> None:
    report = run(
        engine,
        hasher,
        'identifier,display_name\n"good1","two\nlines"\n"bad id",x\n',
    )

    assert report.created == 1
    assert report.errors[0][0] == 4


@pytest.mark.parametrize(
    "email",
    [
        "no-at-sign",
        "two@@ac-paris.fr",
        "space in@ac-paris.fr",
        "nodomain@",
        "@ac-paris.fr",
        "nodot@localhost",
        "x" * 65 + "@ac-paris.fr",
    ],
)
def test_bad_email_refused(engine: Engine, hasher: PasswordHasher, email: str) -> None:
    report = run(engine, hasher, f'identifier,email\njdupont,"{email}"\n')

    assert report.created == 0
    assert report.errors[0][0] == 2
    assert "invalid email" in report.errors[0][1]
    assert count(engine) == 0


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("jdupont,Jean,extra", "more fields than columns"),
        ("jdupont", "missing field 'surname'"),
    ],
)
def test_wrong_column_count(engine: Engine, hasher: PasswordHasher, row: str, reason: str) -> None:
    report = run(engine, hasher, f"identifier,surname\n{row}\nok,Fine\n")

    assert report.errors == [(2, reason)]
    assert identifiers(engine) == ["ok"]


def test_duplicate_identifier_in_one_file(engine: Engine, hasher: PasswordHasher) -> None:
    report = run(engine, hasher, "identifier,surname\njdupont,First\nJDUPONT ,Second\n")

    assert report.created == 1
    assert report.errors == [(3, "'jdupont' already on line 2")]
    jean = account(engine, "jdupont")
    assert jean is not None and jean.surname == "First"


@pytest.mark.parametrize("header", ["login,surname", "Identifier,surname", ""])
def test_missing_identifier_column(engine: Engine, hasher: PasswordHasher, header: str) -> None:
    report = run(engine, hasher, f"{header}\njdupont,Dupont\n")

    assert report.errors == [(1, "the header must contain an 'identifier' column")]
    assert report.created == 0
    assert count(engine) == 0


def test_password_and_password_hash_both_given(engine: Engine, hasher: PasswordHasher) -> None:
    ssha = ldap_salted_sha1.hash("x")

    report = run(engine, hasher, f"identifier,password,password_hash\njdupont,pw,{ssha}\n")

    assert report.errors == [(2, "give either password or password_hash, not both")]
    assert count(engine) == 0


@pytest.mark.parametrize(
    "password_hash", ["{MD5}X03MO1qnZdYdgyfeuILPmQ==", "$1$salt$hash", "plaintext", "{SSHA512}x"]
)
def test_unsupported_hash_scheme(
    engine: Engine, hasher: PasswordHasher, password_hash: str
) -> None:
    report = run(engine, hasher, f"identifier,password_hash\njdupont,{password_hash}\n")

    assert report.errors == [(2, "password_hash is not in a supported scheme")]
    assert count(engine) == 0


def test_extra_columns_become_attributes(engine: Engine, hasher: PasswordHasher) -> None:
    report = run(
        engine,
        hasher,
        "identifier,supannEntiteAffectation,eduPersonEntitlement,empty\n"
        'jdupont,"DSDEN75; RECTORAT ;",urn:mace:x,\n',
    )

    assert report.created == 1
    jean = account(engine, "jdupont")
    assert jean is not None
    assert jean.attributes == {
        "supannEntiteAffectation": ["DSDEN75", "RECTORAT"],
        "eduPersonEntitlement": ["urn:mace:x"],
    }
    released = jean.released_attributes()
    assert released["supannEntiteAffectation"] == ["DSDEN75", "RECTORAT"]
    assert "empty" not in released


def test_changed_attribute_is_an_update(engine: Engine, hasher: PasswordHasher) -> None:
    run(engine, hasher, "identifier,title\njdupont,a;b\n")

    assert run(engine, hasher, "identifier,title\njdupont,a;b\n").unchanged == 1
    assert run(engine, hasher, "identifier,title\njdupont,a;c\n").updated == 1
    jean = account(engine, "jdupont")
    assert jean is not None and jean.attributes == {"title": ["a", "c"]}


def test_invalid_attribute_column_name(engine: Engine, hasher: PasswordHasher) -> None:
    report = run(engine, hasher, "identifier,bad name\njdupont,x\n")

    assert report.errors == [(2, "invalid attribute column name 'bad name'")]
    assert count(engine) == 0


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("given_name", "x" * 129),
        ("surname", "x" * 129),
        ("display_name", "x" * (MAX_FIELD_LENGTH + 1)),
        ("email", "x" * 64 + "@" + "y" * 187 + ".fr"),  # 255 characters
        ("affiliation", "x" * 65),
        ("some_attribute", "x" * (MAX_FIELD_LENGTH + 1)),
        ("password", "x" * 129),
    ],
)
def test_too_long_fields_refused(
    engine: Engine, hasher: PasswordHasher, column: str, value: str
) -> None:
    report = run(engine, hasher, f"identifier,{column}\njdupont,{value}\nok,\n")

    assert [line for line, _ in report.errors] == [2]
    assert "longer than" in report.errors[0][1]
    assert identifiers(engine) == ["ok"]


def test_too_long_identifier_refused(engine: Engine, hasher: PasswordHasher) -> None:
    report = run(engine, hasher, "identifier\n" + "x" * 65 + "\nok\n")

    assert [line for line, _ in report.errors] == [2]
    assert identifiers(engine) == ["ok"]


def test_too_long_password_hash_refused(engine: Engine, hasher: PasswordHasher) -> None:
    report = run(engine, hasher, "identifier,password_hash\njdupont,{SSHA}" + "A" * 300 + "\nok,\n")

    assert [line for line, _ in report.errors] == [2]
    assert identifiers(engine) == ["ok"]


def test_absurdly_long_field_reported_not_raised(engine: Engine, hasher: PasswordHasher) -> None:
    """Beyond the csv module's own field limit (128 KiB) the import still reports."""
    report = run(engine, hasher, "identifier,surname\nok1,x\njdupont," + "x" * 200_000 + "\n")

    assert report.created == 1
    assert [line for line, _ in report.errors] == [3]
    assert identifiers(engine) == ["ok1"]


def test_nul_character_refused(engine: Engine, hasher: PasswordHasher) -> None:
    report = run(engine, hasher, "identifier,surname\njdupont,Du\x00pont\nok,x\n")

    assert [line for line, _ in report.errors] == [2]
    assert identifiers(engine) == ["ok"]


def test_a_refused_row_leaves_no_account(engine: Engine, hasher: PasswordHasher) -> None:
    """Every check runs before the write: a failing row writes nothing at all."""
    report = run(
        engine,
        hasher,
        "identifier,email,password,title\n"
        'jdupont,jean@ac-paris.fr,s3cret,"a;b"\n'
        'mmartin,not-an-email,s3cret,"a;b"\n',
    )

    assert report.created == 1
    assert [line for line, _ in report.errors] == [3]
    assert account(engine, "mmartin") is None
    assert count(engine) == 1


def test_a_refused_update_leaves_the_account_as_it_was(
    engine: Engine, hasher: PasswordHasher
) -> None:
    run(engine, hasher, "identifier,email,surname\njdupont,jean@ac-paris.fr,Dupont\n")

    report = run(engine, hasher, "identifier,email,surname\njdupont,broken,Durand\n")

    assert report.updated == 0 and len(report.errors) == 1
    jean = account(engine, "jdupont")
    assert jean is not None and (jean.email, jean.surname) == ("jean@ac-paris.fr", "Dupont")
