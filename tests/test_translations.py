"""The console's gettext catalogue (translations/, server/i18n.py): every text the code and
templates give a page is a msgid of the zh catalogue, each with its Chinese, and the pages
speak it. scripts/translations.sh brings new text in; these tests fail until it is translated."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[1]
PO = ROOT / "translations" / "zh" / "LC_MESSAGES" / "messages.po"


def zh_messages():
    with open(PO, "rb") as source:
        return [m for m in read_po(source, locale="zh") if m.id]


def zh_catalogue():
    """{English: Chinese} of every message (a plural's every English form to its one Chinese)."""
    pairs = {}
    for m in zh_messages():
        for english in (m.id if isinstance(m.id, tuple) else (m.id,)):
            pairs[english] = m.string[0] if isinstance(m.string, tuple) else m.string
    return pairs


def extracted(tmp_path):
    """The msgids pybabel finds in the code and templates now, as scripts/translations.sh runs it."""
    pot = tmp_path / "messages.pot"
    pybabel = Path(sys.executable).parent / "pybabel"
    subprocess.run([str(pybabel), "-q", "extract", "-F", "babel.cfg",
                    "-k", "t", "-k", "N_", "-k", "counted:2,3", "-o", str(pot), "."],
                   cwd=ROOT, check=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    with open(pot, "rb") as source:
        return {m.id for m in read_po(source) if m.id}


def test_every_msgid_has_its_chinese():
    messages = zh_messages()
    assert len(messages) > 600
    untranslated = [m.id for m in messages if not (m.string[0] if isinstance(m.string, tuple) else m.string)
                    or "fuzzy" in m.flags]
    assert untranslated == []


def test_the_catalogue_holds_every_text_of_the_code_and_nothing_else(tmp_path):
    found = extracted(tmp_path)
    held = {m.id for m in zh_messages()}
    assert len(found) > 600
    assert sorted(map(str, found - held)) == []     # new text: run scripts/translations.sh, translate
    assert sorted(map(str, held - found)) == []     # text the code no longer has


def test_the_catalogue_compiles_without_an_error(tmp_path):
    """pybabel compile checks each translation keeps its msgid's placeholders (a "%" before a
    letter reads as one: write "at most {share}" with the % in the value)."""
    import shutil
    shutil.copytree(ROOT / "translations", tmp_path / "translations")
    done = subprocess.run([str(Path(sys.executable).parent / "pybabel"), "compile", "-d",
                           str(tmp_path / "translations"), "-D", "messages"], capture_output=True, text=True)
    assert done.returncode == 0 and "error" not in done.stderr, done.stderr


def test_a_plural_is_said_with_the_count_in_english_and_once_in_chinese(app):
    from server.i18n import counted
    one, other = "threshold for {n} citizen", "threshold for {n} citizens"
    with app.test_request_context(headers={"Accept-Language": "en"}):
        assert (counted(1, one, other), counted(2, one, other)) == ("threshold for 1 citizen",
                                                                    "threshold for 2 citizens")
    with app.test_request_context(headers={"Accept-Language": "zh"}):
        chinese = zh_catalogue()[one]
        assert chinese == zh_catalogue()[other] and "{n}" in chinese
        assert (counted(1, one, other), counted(2, one, other)) == (chinese.format(n=1), chinese.format(n=2))


def test_empty_text_stays_empty_not_the_catalogue_header(app):
    from server.i18n import label, t
    with app.test_request_context(headers={"Accept-Language": "zh"}):
        assert t("") == "" and label("") == ""


@pytest.mark.parametrize("language, shown", [("zh", "登录"), ("en", "Sign in")])
def test_a_page_speaks_the_compiled_catalogue(client, language, shown):
    page = client.get("/login", headers={"Accept-Language": language}).get_data(as_text=True)
    assert shown in page


def test_a_stale_compiled_catalogue_is_compiled_again(tmp_path, monkeypatch):
    """A .po newer than its .mo (a pulled translation) is what the server speaks."""
    import shutil
    from server import i18n
    root = tmp_path / "translations" / "zh" / "LC_MESSAGES"
    root.mkdir(parents=True)
    shutil.copy(PO, root / "messages.po")
    (root / "messages.mo").write_bytes(b"stale")
    os.utime(root / "messages.mo", (0, 0))
    monkeypatch.setattr(i18n, "TRANSLATIONS", str(tmp_path / "translations"))
    i18n.compile_catalogues()
    from babel.support import Translations
    assert Translations.load(str(tmp_path / "translations"), ["zh"]).gettext("Sign in") == "登录"
