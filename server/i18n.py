"""Chinese and English text of the console and admin pages, through gettext (Flask-Babel).

English is the msgid; translations/zh/LC_MESSAGES/messages.po holds the Simplified Chinese,
made and kept up to date with pybabel (scripts/translations.sh: extract, update, compile), the
format translators' tools read. A person picks the language with the switch on every page
(kept in their session); before that, the browser's Accept-Language decides, and Chinese is
the default of a Chinese service hall.
"""
import functools
import logging
import math
import os
import re
import tempfile
from decimal import Decimal

import flask_babel
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations
from flask import has_app_context, has_request_context, redirect, request, session

from .redirects import safe_path

log = logging.getLogger(__name__)
TRANSLATIONS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "translations")
DOMAIN = "messages"


def N_(text):
    """Marks English text that is translated where it is shown, not where it is written (a
    table's labels, a stored reason): `pybabel extract` finds it by this name."""
    return text


UI_LANGUAGES = ("zh", "en")
TRANSLATED = ("zh",)        # English is the msgid: it has no catalogue


def catalogue_path(language, ext="po"):
    return os.path.join(TRANSLATIONS, language, "LC_MESSAGES", f"{DOMAIN}.{ext}")


def compile_catalogues():
    """Each .po compiled to the .mo gettext reads, where the .mo is missing or older (a fresh
    clone, a pulled translation): scripts/setup.sh runs `pybabel compile` too, and a server
    started without it still speaks Chinese."""
    for language in TRANSLATED:
        po, mo = catalogue_path(language), catalogue_path(language, "mo")
        if os.path.exists(mo) and os.path.getmtime(mo) >= os.path.getmtime(po):
            continue
        with open(po, "rb") as source:
            catalog = read_po(source, locale=language)
        try:
            # a temporary file of this process's own: a server's workers start together
            handle, temporary = tempfile.mkstemp(dir=os.path.dirname(mo), suffix=".mo.tmp")
            with os.fdopen(handle, "wb") as out:
                write_mo(out, catalog)
            os.replace(temporary, mo)
        except OSError as e:      # a read-only install: `pybabel compile` at set-up did it
            log.warning("cannot compile %s: %s", po, e)

# Stored codes (statuses, outcomes, roles, device kinds) and how people read them.
LABELS = {
    "pending": N_("Pending review"), "confirmed": N_("Confirmed"), "rejected": N_("Rejected"),
    "closed": N_("Closed"), "greeted": N_("Greeted"), "unknown": N_("Unknown"), "passed": N_("Passed"),
    "failed": N_("Failed"), "not_run": N_("Not run"), "open": N_("Opened"), "in_progress": N_("In progress"),
    "waiting_documents": N_("Waiting for documents"), "ready": N_("Ready"), "admin": N_("Administrator"),
    "clerk": N_("Clerk"), "kiosk": N_("Kiosk"), "robot": N_("Robot"),
    "device.throttled": N_("Device paused: case files opened too fast"),
    "device.sessions_throttled": N_("Device paused: sessions uploaded too fast"),
    "device.factor_budget": N_("Device used up its phone-check tries"),
    "citizen.factor_locked": N_("Phone check locked for a citizen"),
    "device": N_("Device"), "citizen": N_("Citizen"),
    # duplicate review decisions
    "import": N_("Imported as a different person"), "discard": N_("Discarded as the same person"),
    "add_to_existing": N_("Added to the registered citizen"),
    # how a visitor was identified
    "face": N_("By face"), "id_number": N_("By ID number typed at the device"),
    "id_document": N_("By ID document, checked by a clerk"),
    # citizens' languages
    "zh": N_("Mandarin"), "yue": N_("Cantonese"), "en": N_("English"),
    # import jobs and their rows
    "queued": N_("Queued"), "running": N_("Running"), "done": N_("Done"), "imported": N_("Imported"),
    "updated": N_("Updated"), "unchanged": N_("Unchanged"), "flagged": N_("Flagged"),
    # audit actions
    "case.note": N_("Case note added"), "case.update": N_("Case updated"),
    "casefile.details": N_("Case details shown on a device"), "casefile.open": N_("Case file opened on a device"),
    "casefile.refused": N_("Case file refused"), "casefile.second_factor_failed": N_("Wrong phone digits"),
    "casefile.view": N_("Case file viewed"), "citizen.photo.view": N_("Citizen photo viewed"),
    "citizen.search": N_("Citizens searched"), "citizen.view": N_("Citizen viewed"),
    "device.register": N_("Device registered"), "device.revoke": N_("Device revoked"),
    "identify.match": N_("ID number matched the face"), "identify.no_match": N_("ID number not matched"),
    "import.flagged": N_("Import flagged a duplicate face"), "import.report.download": N_("Import report downloaded"),
    "import.run": N_("Import ran"), "import.start": N_("Import started"), "import.view": N_("Import viewed"),
    "login.failed": N_("Failed login"), "session.liveness": N_("Liveness reported"),
    "session.snapshot.view": N_("Snapshot viewed"), "session.upload": N_("Session uploaded"),
    "gallery.sync": N_("Gallery sent to a device"),
    "session.view": N_("Session viewed"), "session.review": N_("Session reviewed"),
    "session.confirm": N_("Match confirmed"), "session.reject": N_("Match rejected"),
    "session.close": N_("Session closed"),
    "settings.update": N_("Settings changed"), "snapshots.purge": N_("Snapshots purged"),
    "ticket.call": N_("Ticket called"), "ticket.issue": N_("Ticket issued"), "user.create": N_("User created"),
    "user.password_reset": N_("Password reset"), "user.update": N_("User changed"),
    "login": N_("Signed in"), "user.unlock": N_("Sign-in unlocked"), "calibration.measured": N_("Calibration measured"),
    "faces.reencoded": N_("Face templates re-encoded with another model"),
    "device.pulls_throttled": N_("Device paused: gallery and config pulled too fast"),
    "citizen.add": N_("Citizen added"), "citizen.update": N_("Citizen changed"), "citizen.remove": N_("Citizen removed"),
    "citizen.consent.withdraw": N_("Consent withdrawn"), "citizen.photo.add": N_("Citizen photo added"),
    "citizen.photo.replace": N_("Citizen photo replaced"), "citizen.factor_unlocked": N_("Phone check unlocked"),
    "duplicate.held": N_("Possible duplicate held for review"), "duplicate.list": N_("Duplicate reviews listed"),
    "duplicate.view": N_("Duplicate review viewed"), "duplicate.photo.view": N_("Held photo viewed"),
    "duplicate.import": N_("Duplicate review: imported as a different person"),
    "duplicate.discard": N_("Duplicate review: discarded as the same person"),
    "duplicate.add_to_existing": N_("Duplicate review: photo added to the registered citizen"),
    "session.attach": N_("Visit attached to a citizen"), "session.template_added": N_("Snapshot added as a template"),
}
# Who acted and what was acted on, in the audit log (kept apart from LABELS: "import" is
# both a duplicate decision and a kind of record).
KINDS = {"user": N_("Staff member"), "device": N_("Device"), "system": N_("System"), "case": N_("Case"),
         "citizen": N_("Citizen"), "session": N_("Session"), "setting": N_("Setting"), "import": N_("Import job"),
         "duplicate_review": N_("Duplicate review")}


def current_language():
    if not has_request_context():
        return "zh"
    lang = session.get("lang")
    if lang in UI_LANGUAGES:
        return lang
    return request.accept_languages.best_match(UI_LANGUAGES) or "zh"


def t(text):
    """text in the page's language (English text is its own translation)."""
    if not text:
        return text     # gettext("") is the catalogue's header, never a page's text
    if has_app_context():
        return flask_babel.gettext(text)
    return _offline(current_language()).gettext(text)


def counted(n, one, other):
    """A message about n things in the page's language, by gettext's plural forms: English
    says "1 citizen" and "2 citizens" ({n} in both), Chinese has one form."""
    if has_app_context():     # Flask-Babel's own ngettext would %-format the text
        text = flask_babel.get_translations().ungettext(one, other, n)
    else:
        text = _offline(current_language()).ngettext(one, other, n)
    return text.format(n=number(n))


@functools.lru_cache(maxsize=None)
def _offline(language):
    """The catalogue outside a Flask app (a command's own code, a bench)."""
    compile_catalogues()
    return Translations.load(TRANSLATIONS, [language], domain=DOMAIN)


@functools.lru_cache(maxsize=None)
def _reasons():
    """(regex, Chinese template) for the catalogue's templated reasons ("{0}", "{1}" ... stand
    for an ID number, a line, a file name), longest first so the most specific one wins."""
    with open(catalogue_path("zh"), "rb") as source:
        catalog = read_po(source, locale="zh")
    keys = sorted((m for m in catalog if isinstance(m.id, str) and "{0}" in m.id and m.string),
                  key=lambda m: len(m.id), reverse=True)
    return [(re.compile(re.sub(r"\\\{\d\\\}", "(.+?)", re.escape(m.id)) + r"\Z", re.S), m.string)
            for m in keys]


def reason(text):
    """An import or enrolment reason (English, as stored and written in the report CSV) in the
    page's language: the catalogue's template for it, with the row's values put back."""
    if not text or current_language() != "zh":
        return text
    translated = t(text)
    if translated != text:
        return translated
    for pattern, template in _reasons():
        match = pattern.match(text)
        if match:
            return template.format(*match.groups())
    return text


def kind(code):
    """An actor or target type of the audit log in the page's language."""
    return t(KINDS.get(code, code))


def label(code):
    """A stored code (status, liveness, role) in the page's language."""
    return t(LABELS.get(code, code))


def number(value, grouping=True):
    """A number as people write it: 0.00001, not 1e-05; 1, not 1.0; 12,000 with grouping
    (off for a form field, whose value is read back as typed). Text is returned as it is."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            return "—"
        value += 0.0    # -0.0 is 0
        # repr: the shortest digits that read back as this float, without its exponent
        text = format(Decimal(repr(value)), "f")
        whole, _, fraction = text.partition(".")
        fraction = fraction.rstrip("0")
    else:
        whole, fraction = str(value), ""
    if grouping:
        whole = f"{int(whole):,}"
    return whole + ("." + fraction if fraction else "")


def duration(seconds, digits=2):
    """A duration in seconds in the page's language: "0.55 s", "0.55 秒"."""
    if seconds is None:
        return "—"
    return t("{n} s").format(n=f"{seconds:.{digits}f}")


TEMPLATE_SOURCES = {"enrolment": N_("Enrolment photo"), "confirmed_session": N_("Confirmed visit snapshot")}


def template_source(code):
    """Where a face template came from (face_templates.source) in the page's language."""
    return t(TEMPLATE_SOURCES.get(code, code))


def set_language(code):
    """Switch the page language and go back to the page the switch was on (the form says which:
    pages send no Referer)."""
    if code in UI_LANGUAGES:
        session["lang"] = code
    return redirect(safe_path(request.form.get("next")) or "/")


def init_app(app):
    compile_catalogues()
    flask_babel.Babel(app, locale_selector=current_language, default_domain=DOMAIN,
                      default_translation_directories=TRANSLATIONS)
    app.jinja_env.globals.update(t=t, N_=N_, current_language=current_language)
    app.jinja_env.filters["label"] = label
    app.jinja_env.filters["reason"] = reason
    app.jinja_env.filters["kind"] = kind
    app.jinja_env.filters["number"] = number
    app.jinja_env.filters["duration"] = duration
    app.jinja_env.filters["template_source"] = template_source
    app.add_url_rule("/lang/<code>", "set_language", set_language, methods=["POST"])
