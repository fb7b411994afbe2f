"""Every message catalogue is valid JSON, and French and English have the same keys."""

from __future__ import annotations

import json
from importlib import resources

import pytest

FOLDER = resources.files("sso").joinpath("locales")
FRENCH = sorted(entry.name for entry in FOLDER.iterdir() if entry.name.endswith("fr.json"))


@pytest.mark.parametrize("name", FRENCH)
def test_catalogue_is_json_with_the_same_keys_in_both_languages(name: str) -> None:
    french = json.loads(FOLDER.joinpath(name).read_text("utf-8"))
    english = json.loads(FOLDER.joinpath(name[: -len("fr.json")] + "en.json").read_text("utf-8"))
    assert set(french) == set(english)
