"""What the kiosk and the robot say and show: every phrase in Mandarin, Cantonese and English,
Cantonese in Traditional characters, all of it in messages/device.json. (The console's and
admin pages' text, a gettext catalogue in translations/, is checked by tests/test_translations.py.)"""
import json
import re
import warnings
from pathlib import Path

import pytest

from device import phrases


ROOT = Path(__file__).resolve().parents[1]


def phrase_tables():
    """Every entry of messages/device.json, as written in the file."""
    with open(ROOT / "messages" / "device.json", encoding="utf-8") as f:
        return list(json.load(f).items())


def test_every_device_phrase_is_in_mandarin_cantonese_and_english():
    tables = dict(phrase_tables())
    assert {"blink_request", "blink_again", "liveness_failed", "ticket", "id_number_prompt",
            "screen.your_ticket", "status.ready"} <= set(tables)
    empty = [f"{name}[{lang}]" for name, table in tables.items()
             for lang in phrases.LANGUAGES if not table.get(lang, "").strip()]
    assert not empty


def test_the_kiosk_screen_and_the_devices_hold_no_words_of_their_own():
    """Chinese written in the kiosk's page, its scripts or the device code would escape the
    catalogue (and its Cantonese and English); only messages/device.json holds it."""
    han = re.compile(r"[\u4e00-\u9fff]")
    files = [*ROOT.glob("kiosk/templates/**/*.html"), *ROOT.glob("kiosk/static/js/*.js"),
             *ROOT.glob("kiosk/*.py"), *ROOT.glob("robot/*.py"), ROOT / "device" / "phrases.py",
             ROOT / "device" / "casefile.py"]
    def code(text):
        """The text with docstrings and comments blanked (line numbers kept)."""
        text = re.sub(r'"""[\s\S]*?"""', lambda m: "\n" * m.group().count("\n"), text)
        return [re.sub(r"(#|//).*", "", line) for line in text.splitlines()]
    with_chinese = [f"{f.relative_to(ROOT)}:{n}" for f in files
                    for n, line in enumerate(code(f.read_text(encoding="utf-8")), 1) if han.search(line)]
    assert with_chinese == []


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
