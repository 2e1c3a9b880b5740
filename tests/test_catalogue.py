"""One catalogue of text: every string a person reads in the console, the admin pages, the
kiosk and the robot has its Chinese; Cantonese is written in Traditional characters."""
import json
import re
import warnings
from pathlib import Path

import pytest

from device import phrases
from server.i18n import LABELS, ZH

ROOT = Path(__file__).resolve().parents[1]
T_CALL = re.compile(r'''\bt\(\s*(["'])((?:\\.|(?!\1).)*)\1\s*[,)]''')


def catalogued_strings():
    """Every literal passed to t() in the server's templates and modules, with where it is."""
    for path in sorted([*ROOT.glob("templates/**/*.html"), *ROOT.glob("server/*.py")]):
        for match in T_CALL.finditer(path.read_text(encoding="utf-8")):
            yield match.group(2).replace("\\'", "'").replace('\\"', '"'), path.relative_to(ROOT)


def phrase_tables():
    """Every per-language table of device/phrases.py (what the kiosk and robot say and show)."""
    for name, value in vars(phrases).items():
        if isinstance(value, dict) and set(value) == set(phrases.LANGUAGES):
            yield name, value
    for code, table in phrases.STATUS.items():
        yield f"STATUS[{code}]", table


def test_every_t_string_and_label_has_chinese():
    missing = [f"{where}: {text!r}" for text, where in catalogued_strings() if text not in ZH]
    missing += [f"LABELS[{code}]: {text!r}" for code, text in LABELS.items() if text not in ZH]
    assert not missing, "add to messages/zh.json:\n" + "\n".join(missing)


def test_the_catalogue_is_found_and_has_no_empty_translation():
    assert len(list(catalogued_strings())) > 100
    assert all(isinstance(v, str) and v.strip() for v in json.loads(
        (ROOT / "messages" / "zh.json").read_text(encoding="utf-8")).values())


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
