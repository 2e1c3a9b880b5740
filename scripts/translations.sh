#!/usr/bin/env bash
# The console's catalogue, with pybabel (Flask-Babel's tooling; server/i18n.py reads the result).
#   scripts/translations.sh          extract the English from the code and templates (babel.cfg)
#                                    into translations/messages.pot, merge it into each language's
#                                    messages.po (new text arrives untranslated), compile the .mo
#   scripts/translations.sh compile  compile only (scripts/setup.sh runs this)
# Then translate each empty msgstr (any .po editor: Poedit, Lokalize, Weblate) and run it again;
# tests/test_translations.py fails on a msgid without its Chinese, or text the .po lacks.
set -euo pipefail
cd "$(dirname "$0")/.."
PYBABEL=.venv/bin/pybabel
if [ "${1:-update}" = "update" ]; then
  # server/i18n_extract.py (the import's reasons) is imported by pybabel: the repository on the path
  PYTHONPATH=. "$PYBABEL" -q extract -F babel.cfg -k t -k N_ -k counted:2,3 --add-location=file \
    --sort-output --no-wrap --project "civic service hall" --copyright-holder "civic service hall" \
    -o translations/messages.pot .
  "$PYBABEL" -q update -i translations/messages.pot -d translations -D messages --no-wrap \
    --ignore-obsolete --no-fuzzy-matching
fi
"$PYBABEL" -q compile -d translations -D messages
