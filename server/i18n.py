"""Chinese and English text of the console and admin pages, from one catalogue.

English strings are the keys; messages/zh.json holds their Simplified Chinese. A person picks
the language with the switch on every page (kept in their session); before that, the browser's
Accept-Language decides, and Chinese is the default of a Chinese service hall.
"""
import json
import math
import os
import re
from decimal import Decimal

from flask import has_request_context, redirect, request, session

from .redirects import safe_path

UI_LANGUAGES = ("zh", "en")
CATALOGUE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                         "messages", "zh.json")
with open(CATALOGUE, encoding="utf-8") as _f:
    ZH = json.load(_f)

# Stored codes (statuses, outcomes, roles, device kinds) and how people read them.
LABELS = {
    "pending": "Pending review", "confirmed": "Confirmed", "rejected": "Rejected",
    "closed": "Closed", "greeted": "Greeted", "unknown": "Unknown", "passed": "Passed",
    "failed": "Failed", "not_run": "Not run", "open": "Opened", "in_progress": "In progress",
    "waiting_documents": "Waiting for documents", "ready": "Ready", "admin": "Administrator",
    "clerk": "Clerk", "kiosk": "Kiosk", "robot": "Robot",
    "device.throttled": "Device paused: case files opened too fast",
    "device.sessions_throttled": "Device paused: sessions uploaded too fast",
    "device.factor_budget": "Device used up its phone-check tries",
    "citizen.factor_locked": "Phone check locked for a citizen",
    "device": "Device", "citizen": "Citizen",
    # duplicate review decisions
    "import": "Imported as a different person", "discard": "Discarded as the same person",
    "add_to_existing": "Added to the registered citizen",
    # how a visitor was identified
    "face": "By face", "id_number": "By ID number typed at the device",
    "id_document": "By ID document, checked by a clerk",
    # citizens' languages
    "zh": "Mandarin", "yue": "Cantonese", "en": "English",
    # import jobs and their rows
    "queued": "Queued", "running": "Running", "done": "Done", "imported": "Imported",
    "updated": "Updated", "unchanged": "Unchanged", "flagged": "Flagged",
    # audit actions
    "case.note": "Case note added", "case.update": "Case updated",
    "casefile.details": "Case details shown on a device", "casefile.open": "Case file opened on a device",
    "casefile.refused": "Case file refused", "casefile.second_factor_failed": "Wrong phone digits",
    "casefile.view": "Case file viewed", "citizen.photo.view": "Citizen photo viewed",
    "citizen.search": "Citizens searched", "citizen.view": "Citizen viewed",
    "device.register": "Device registered", "device.revoke": "Device revoked",
    "identify.match": "ID number matched the face", "identify.no_match": "ID number not matched",
    "import.flagged": "Import flagged a duplicate face", "import.report.download": "Import report downloaded",
    "import.run": "Import ran", "import.start": "Import started", "import.view": "Import viewed",
    "login.failed": "Failed login", "session.liveness": "Liveness reported",
    "session.snapshot.view": "Snapshot viewed", "session.upload": "Session uploaded",
    "gallery.sync": "Gallery sent to a device",
    "session.view": "Session viewed", "session.review": "Session reviewed",
    "session.confirm": "Match confirmed", "session.reject": "Match rejected",
    "session.close": "Session closed",
    "settings.update": "Settings changed", "snapshots.purge": "Snapshots purged",
    "ticket.call": "Ticket called", "ticket.issue": "Ticket issued", "user.create": "User created",
    "user.password_reset": "Password reset", "user.update": "User changed",
    "login": "Signed in", "user.unlock": "Sign-in unlocked", "calibration.measured": "Calibration measured",
    "faces.reencoded": "Face templates re-encoded with another model",
    "device.pulls_throttled": "Device paused: gallery and config pulled too fast",
    "citizen.add": "Citizen added", "citizen.update": "Citizen changed", "citizen.remove": "Citizen removed",
    "citizen.consent.withdraw": "Consent withdrawn", "citizen.photo.add": "Citizen photo added",
    "citizen.photo.replace": "Citizen photo replaced", "citizen.factor_unlocked": "Phone check unlocked",
    "duplicate.held": "Possible duplicate held for review", "duplicate.list": "Duplicate reviews listed",
    "duplicate.view": "Duplicate review viewed", "duplicate.photo.view": "Held photo viewed",
    "duplicate.import": "Duplicate review: imported as a different person",
    "duplicate.discard": "Duplicate review: discarded as the same person",
    "duplicate.add_to_existing": "Duplicate review: photo added to the registered citizen",
    "session.attach": "Visit attached to a citizen", "session.template_added": "Snapshot added as a template",
}
# Who acted and what was acted on, in the audit log (kept apart from LABELS: "import" is
# both a duplicate decision and a kind of record).
KINDS = {"user": "Staff member", "device": "Device", "system": "System", "case": "Case",
         "citizen": "Citizen", "session": "Session", "setting": "Setting", "import": "Import job",
         "duplicate_review": "Duplicate review"}


def current_language():
    if not has_request_context():
        return "zh"
    lang = session.get("lang")
    if lang in UI_LANGUAGES:
        return lang
    return request.accept_languages.best_match(UI_LANGUAGES) or "zh"


def t(text):
    """text in the page's language (English text is its own translation)."""
    return ZH.get(text, text) if current_language() == "zh" else text


def _reason_patterns():
    """(regex, Chinese template) for the catalogue's templated reasons ("{0}", "{1}" ... stand
    for an ID number, a line, a file name), longest first so the most specific one wins."""
    keys = sorted((k for k in ZH if "{0}" in k), key=len, reverse=True)
    return [(re.compile(re.sub(r"\\\{\d\\\}", "(.+?)", re.escape(k)) + r"\Z", re.S), ZH[k])
            for k in keys]


_REASONS = _reason_patterns()


def reason(text):
    """An import or enrolment reason (English, as stored and written in the report CSV) in the
    page's language: the catalogue's template for it, with the row's values put back."""
    if not text or current_language() != "zh":
        return text
    if text in ZH:
        return ZH[text]
    for pattern, template in _REASONS:
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


def counted(n, one, other):
    """A message about n things in the page's language: English says "1 citizen" and
    "2 citizens" (one and other, both catalogue keys with {n}); Chinese has one form."""
    return t(one if n == 1 else other).format(n=number(n))


TEMPLATE_SOURCES = {"enrolment": "Enrolment photo", "confirmed_session": "Confirmed visit snapshot"}


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
    app.jinja_env.globals.update(t=t, current_language=current_language)
    app.jinja_env.filters["label"] = label
    app.jinja_env.filters["reason"] = reason
    app.jinja_env.filters["kind"] = kind
    app.jinja_env.filters["number"] = number
    app.jinja_env.filters["duration"] = duration
    app.jinja_env.filters["template_source"] = template_source
    app.add_url_rule("/lang/<code>", "set_language", set_language, methods=["POST"])
