"""The password policy: each rule refuses what it must, and only that.

Each rule has a password that only it refuses, so a rule removed from ``problems`` fails its
test, and a strong passphrase passes them all.
"""

from __future__ import annotations

import json
from importlib import resources

import pytest
from jinja2 import Environment, PackageLoader, select_autoescape

from sso.accounts.policy import RULE_OF_PROBLEM, PasswordPolicy, common_passwords, fold
from sso.accounts.store import MAX_PASSWORD_LENGTH
from sso.config import Settings
from sso.web.i18n import translate

POLICY = PasswordPolicy(min_length=12, min_classes=3)
PERSON = {"identifier": "jdupont", "numen": "09S1234567ABC", "names": ["Jean-Éloi", "Dupont"]}
STRONG = "Le héron pêche 7 truites au lac"


def problems(password: str, policy: PasswordPolicy = POLICY) -> list[str]:
    return policy.problems(password, **PERSON)


def test_defaults_come_from_the_settings() -> None:
    policy = PasswordPolicy.from_settings(Settings(secret_key="x" * 32))
    assert policy == PasswordPolicy(min_length=12, min_classes=3, max_length=MAX_PASSWORD_LENGTH)
    assert policy.max_length == 128


def test_settings_change_the_policy() -> None:
    settings = Settings(secret_key="x" * 32, password_min_length=16, password_min_classes=4)
    policy = PasswordPolicy.from_settings(settings)
    assert (policy.min_length, policy.min_classes) == (16, 4)
    assert problems("Kq7vLz2wXp9m", policy) == ["policy.too_short", "policy.classes"]


@pytest.mark.parametrize(
    ("min_length", "min_classes", "max_length"),
    [(0, 3, 128), (12, 0, 128), (12, 5, 128), (20, 3, 16), (12, 3, MAX_PASSWORD_LENGTH + 1)],
)
def test_impossible_policies_are_refused(
    min_length: int, min_classes: int, max_length: int
) -> None:
    with pytest.raises(ValueError):
        PasswordPolicy(min_length=min_length, min_classes=min_classes, max_length=max_length)


def test_a_strong_passphrase_passes() -> None:
    assert problems(STRONG) == []
    assert problems("Kq7vLz2wXp9m") == []  # random, exactly 12 characters, 3 classes


def test_too_short() -> None:
    assert problems("Kq7vLz2wXp9") == ["policy.too_short"]
    assert problems("") == ["policy.too_short", "policy.classes"]


def test_length_counts_characters_as_typed_either_way() -> None:
    composed = "Kq7vLz2wXpé"  # 11 characters, é as one code point
    decomposed = "Kq7vLz2wXpe\u0301"  # the same 11 characters, é as e + combining accent
    assert problems(composed) == problems(decomposed) == ["policy.too_short"]


def test_too_long() -> None:
    longest = "Kq7vLz2wXp9m" * 10 + "Kq7vLz2w"
    assert len(longest) == MAX_PASSWORD_LENGTH
    assert problems(longest) == []
    assert problems(longest + "x") == ["policy.too_long"]


def test_a_stricter_maximum_is_kept() -> None:
    policy = PasswordPolicy(min_length=12, min_classes=3, max_length=20)
    assert problems("Kq7vLz2wXp9mKq7vLz2w", policy) == []
    assert problems("Kq7vLz2wXp9mKq7vLz2wX", policy) == ["policy.too_long"]


@pytest.mark.parametrize(
    ("password", "classes"),
    [
        ("kqvlzwxpmtrb", 1),
        ("kqvlzwxpmt29", 2),
        ("KQVLZWXPMT!?", 2),
        ("KQVLZWXPMT29", 2),
        ("kqvlzwxpmt 9", 3),  # a space is a sign
        ("kqvlzwXPMT29", 3),
        ("éàèùçôêîkqvw", 1),  # accented letters are lower case letters
        ("ÉÀÈÙçôêîkq12", 3),
        ("kqVLzw!?mt29", 4),
    ],
)
def test_character_classes(password: str, classes: int) -> None:
    for required in range(1, 5):
        policy = PasswordPolicy(min_length=12, min_classes=required)
        expected = [] if classes >= required else ["policy.classes"]
        assert policy.problems(password) == expected, (password, required)


@pytest.mark.parametrize(
    "password",
    ["Kq7jdupontXp9", "Kq7-JDUPONT-p9", "Kq7-jd.upont-9", "Kq7 JDüpont 9", "Kq7jdup0ntXp9"],
)
def test_contains_the_identifier(password: str) -> None:
    # "jdupont" holds the surname too; test_identifier_alone has the identifier on its own.
    assert problems(password) == ["policy.contains_identifier", "policy.contains_name"]


def test_identifier_alone() -> None:
    found = POLICY.problems("Kq7-prof.maths-9", identifier="prof.maths")
    assert found == ["policy.contains_identifier"]
    # An invited account's identifier may be a mail address: its domain is no secret.
    assert POLICY.problems("Kq7 Gmail 9 com", identifier="zoe.k@gmail.com") == []
    assert POLICY.problems("Kq7 Zoe.K 9 com", identifier="zoe.k@gmail.com") == [
        "policy.contains_identifier"
    ]


@pytest.mark.parametrize(
    "password", ["Kq7v09S1234567ABC", "kq7v 09s1234567abc", "Kq-09S-1234567-ABC"]
)
def test_contains_the_numen(password: str) -> None:
    assert problems(password) == ["policy.contains_numen"]


@pytest.mark.parametrize(
    "password",
    [
        "Dupont-Kq7vLz2w",  # the surname
        "Kq7vLz2wDUPONT",
        "Kq7v Jean-Eloi z2w",  # the first name, without its accent
        "Kq7v ÉLOI z2w!",  # a word of the first name, with its accent, upper case
        "Kq7v Dup0nt z2w",  # in leetspeak
    ],
)
def test_contains_a_name(password: str) -> None:
    assert problems(password) == ["policy.contains_name"]


def test_dupont2024_contains_the_surname() -> None:
    assert "policy.contains_name" in POLICY.problems("Dupont2024!", names=["Dupont"])


def test_short_names_are_skipped() -> None:
    """Names of one or two letters are inside too many words to refuse them."""
    assert POLICY.problems("Le héron pêche 7 truites", names=["Lé", "Ba", "Ng"]) == []
    assert POLICY.problems("Kq7v Ngo z2w!!", names=["Ngo"]) == ["policy.contains_name"]


@pytest.mark.parametrize(
    "password",
    [
        "azertyuiop",  # as it is
        "Azertyuiop123!",  # capital, trailing digits and sign
        "Soleil2024!!!",
        "!!2024Marseille",  # leading decoration
        "M0td3p@sse-2024",  # leetspeak and decoration
        "P@$$w0rd-2024",
        "1l0veyou!2024",  # 1 for l
        "Pr1nc3sse12345",  # 1 for i
        "AzertyAzerty1!",  # a common password twice
        "Blahblah!2024",  # listed as it is, though "blah" alone is not
        "Mot de passe 2024!",  # with spaces
        "Mot-de-passe-2024",
        "Académie2024!!",  # accents folded
        "MAGISTERE2024!",
        "Numen!2024",
        "Chouchou!123456",
    ],
)
def test_common_passwords_and_their_decorations(password: str) -> None:
    assert "policy.common" in POLICY.problems(password)


def test_a_password_merely_containing_a_common_word_passes() -> None:
    assert POLICY.problems("Soleil et 7 grenouilles vertes") == []


def test_the_blocklist() -> None:
    blocklist = common_passwords()
    assert len(blocklist) > 5000
    french = "azerty motdepasse soleil doudou marseille loulou chouchou jetaime bonjour academie"
    for word in (*french.split(), "education", "magistere", "numen", "123456", "password"):
        assert word in blocklist
    assert all(entry == fold(entry) and entry.strip() == entry and entry for entry in blocklist)
    assert common_passwords() is blocklist  # read once


def test_every_problem_is_reported_at_once() -> None:
    assert POLICY.problems("kerbrat", names=["Kerbrat"]) == [
        "policy.too_short",
        "policy.classes",
        "policy.contains_name",
    ]
    assert POLICY.problems("azerty", names=["Azerty"]) == [
        "policy.too_short",
        "policy.classes",
        "policy.contains_name",
        "policy.common",
    ]


def test_rules_quote_the_policy() -> None:
    policy = PasswordPolicy(min_length=14, min_classes=4, max_length=64)
    assert policy.rules() == [
        ("policy.rule.length", {"min_length": 14, "max_length": 64}),
        ("policy.rule.classes", {"min_classes": 4}),
        ("policy.rule.personal", {}),
        ("policy.rule.common", {}),
    ]
    assert policy.message_values() == {"min_length": 14, "max_length": 64, "min_classes": 4}
    assert PasswordPolicy.broken_rules(["policy.too_short", "policy.common"]) == {
        "length",
        "common",
    }


def _locale(language: str) -> dict[str, str]:
    folder = resources.files("sso").joinpath("locales")
    return json.loads(folder.joinpath(f"policy.{language}.json").read_text("utf-8"))


@pytest.mark.parametrize("language", ["fr", "en"])
def test_every_key_has_its_message(language: str) -> None:
    policy = PasswordPolicy(min_length=12, min_classes=3)
    keys = {key for key, _ in policy.rules()} | set(RULE_OF_PROBLEM)
    keys |= {"policy.title", "policy.rule.match", "policy.hint"}
    keys |= {"policy.state.met", "policy.state.unmet", "policy.state.server"}
    messages = _locale(language)
    assert keys <= messages.keys()
    assert _locale("fr").keys() == _locale("en").keys()
    for key in keys:  # every message formats with the policy's values
        assert "{" not in translate(language, key, **policy.message_values()), key


def _render_rules(language: str, **context: object) -> str:
    env = Environment(loader=PackageLoader("sso", "templates"), autoescape=select_autoescape())
    return env.get_template("password_rules.html").render(
        t=lambda key, **values: translate(language, key, **values), **context
    )


def test_the_rules_include() -> None:
    html = _render_rules("fr", policy=POLICY, password_id="new-password", confirm_id="confirm")
    assert 'id="new-password-rules"' in html
    assert "compter entre 12 et 128 caractères" in html
    assert "au moins 3 types de caractères" in html
    for rule in ("length", "classes", "personal", "common", "match"):
        assert f'data-rule="{rule}"' in html
    assert html.count("policy-server") == 2  # identifier/NUMEN/names and common: server only
    assert "policy-broken" not in html
    assert 'aria-live="polite"' in html


def test_the_rules_include_marks_what_the_server_refused() -> None:
    html = _render_rules("en", policy=POLICY, policy_problems=["policy.common"])
    assert 'id="new-password-rules"' in html
    assert 'data-rule="match"' not in html
    assert '<li data-rule="common" class="policy-server policy-broken">' in html
    assert "have between 12 and 128 characters" in html
