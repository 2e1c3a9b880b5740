"""What the kiosk and the robot say and show: every phrase in Mandarin, Cantonese and English,
Cantonese in Traditional characters. (The console's and admin pages' text, messages/zh.json,
is checked by tests/test_console.py.)"""
import warnings

import pytest

from device import phrases


def phrase_tables():
    """Every per-language table of device/phrases.py (what the kiosk and robot say and show)."""
    for name, value in vars(phrases).items():
        if isinstance(value, dict) and set(value) == set(phrases.LANGUAGES):
            yield name, value
    for code, table in phrases.STATUS.items():
        yield f"STATUS[{code}]", table


def test_every_device_phrase_is_in_mandarin_cantonese_and_english():
    tables = dict(phrase_tables())
    assert {"BLINK_REQUEST", "BLINK_AGAIN", "LIVENESS_FAILED", "TICKET", "ID_NUMBER_PROMPT"} <= set(tables)
    empty = [f"{name}[{lang}]" for name, table in tables.items()
             for lang in phrases.LANGUAGES if not table.get(lang, "").strip()]
    assert not empty


def simplified_only(text):
    """Characters of text that Traditional Chinese writes otherwise (e.g. 请 for 請)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # zhconv still reads its table with pkg_resources
        import zhconv
    return [c for c in text if "\u4e00" <= c <= "\u9fff"
            and all(zhconv.convert(c, variant) != c for variant in ("zh-hant", "zh-hk", "zh-tw"))]


@pytest.mark.parametrize("name, table", list(phrase_tables()), ids=lambda v: v if isinstance(v, str) else "")
def test_cantonese_is_written_in_traditional_characters(name, table):
    assert simplified_only(table["yue"]) == [], table["yue"]


def test_the_check_catches_simplified_cantonese():
    assert simplified_only("请望住屏幕") == ["请"]
