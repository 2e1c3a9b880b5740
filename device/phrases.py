"""What the devices say and show after the greeting, in the citizen's language (zh, yue, en).

The blink request, the case file's next step, the queue ticket and the way to the desk for
visitors the device does not know. Plain functions of the case-file summary the server
returns (server/casefile.py), so the kiosk screen and the robot's voice say the same thing.
The words themselves are in messages/device.json (the screen's labels too).
"""
import json
import os
from datetime import date, datetime

LANGUAGES = ("zh", "yue", "en")
FALLBACK = "zh"   # the hall's own language, for a visitor whose language is unknown

CATALOGUE_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                              "messages", "device.json")


def load_catalogue(path=CATALOGUE_PATH):
    """{key: {"zh": ..., "yue": ..., "en": ...}}: every phrase a device says or shows, in one
    file beside the console's catalogue (messages/), with a note for the translator."""
    with open(path, encoding="utf-8") as f:
        return {key: {lang: entry[lang] for lang in LANGUAGES} for key, entry in json.load(f).items()}


CATALOGUE = load_catalogue()

# The tables the presenters pass to phrase(); their text lives in messages/device.json.
BLINK_REQUEST = CATALOGUE["blink_request"]
BLINK_HINT = CATALOGUE["blink_hint"]
SECOND_TRY = CATALOGUE["second_try"]
BLINK_AGAIN = CATALOGUE["blink_again"]
LOOK_AT_SCREEN = CATALOGUE["look_at_screen"]
BLINK_NOW = CATALOGUE["blink_now"]
LIVENESS_PASSED = CATALOGUE["liveness_passed"]
LIVENESS_FAILED = CATALOGUE["liveness_failed"]
UNKNOWN_VISITOR = CATALOGUE["unknown_visitor"]
UNKNOWN_WITH_SCREEN = CATALOGUE["unknown_with_screen"]
UNKNOWN_PROMPT = CATALOGUE["unknown_prompt"]
ID_NUMBER_PROMPT = CATALOGUE["id_number_prompt"]
TICKET_COUNTER = CATALOGUE["ticket_counter"]
TICKET_GENERAL = CATALOGUE["ticket_general"]
SEE_A_CLERK = CATALOGUE["see_a_clerk"]
NO_OPEN_CASES = CATALOGUE["no_open_cases"]
CASE_READY = CATALOGUE["case_ready"]
CASE_APPOINTMENT = CATALOGUE["case_appointment"]
APPOINTMENT_TODAY = CATALOGUE["appointment_today"]
CASE_OTHER = CATALOGUE["case_other"]
TICKET = CATALOGUE["ticket"]
DATE_TODAY = CATALOGUE["date.today"]
DATE_THIS_YEAR = CATALOGUE["date.this_year"]
DATE_OTHER_YEAR = CATALOGUE["date.other_year"]
STATUS = {key.split(".", 1)[1]: table for key, table in CATALOGUE.items() if key.startswith("status.")}


def language_of(language):
    return language if language in LANGUAGES else FALLBACK


def phrase(table, language, **fields):
    """The table's sentence in language (the hall's language when there is none)."""
    return table[language_of(language)].format(**fields)


def blink_request(language):
    return phrase(BLINK_REQUEST, language)


def ticket_text(number, language):
    """The ticket as said aloud: "007" is said "7", as a person would."""
    spoken = str(int(number)) if str(number).isdigit() else str(number)
    return phrase(TICKET, language, number=spoken)


def ticket_where(counter, language):
    """Where a ticket holder waits: their counter, or the general service desk."""
    if counter:
        return phrase(TICKET_COUNTER, language, counter=counter)
    return phrase(TICKET_GENERAL, language)


def todays_appointment(cases, today=None):
    """The earliest case booked for today at a counter, or None."""
    day = (today or date.today()).isoformat()
    booked = [c for c in cases if (c.get("appointment_at") or "")[:10] == day and c.get("counter")]
    return min(booked, key=lambda c: c["appointment_at"]) if booked else None


def main_case(cases):
    """The case to tell the citizen about first: one ready at a counter, then the earliest
    appointment, then the first listed; None when nothing is open."""
    if not cases:
        return None
    ready = [c for c in cases if c["status"] == "ready" and c["counter"]]
    if ready:
        return ready[0]
    booked = sorted((c for c in cases if c["appointment_at"]), key=lambda c: c["appointment_at"])
    return booked[0] if booked else cases[0]


def next_step(cases, language, today=None):
    """The next step from a citizen-safe case-file summary, one sentence: today's appointment
    first (the citizen came for it), else the case that matters most."""
    booked = todays_appointment(cases, today)
    if booked is not None:
        return phrase(APPOINTMENT_TODAY, language, type=booked["type"], number=booked["case_number"],
                      counter=booked["counter"], time=booked["appointment_at"][11:16])
    case = main_case(cases)
    if case is None:
        return phrase(NO_OPEN_CASES, language)
    fields = {"type": case["type"], "number": case["case_number"], "counter": case["counter"],
              "time": when_text(case["appointment_at"], language, today)}
    if case["status"] == "ready" and case["counter"]:
        return phrase(CASE_READY, language, **fields)
    if case["appointment_at"] and case["counter"]:
        return phrase(CASE_APPOINTMENT, language, **fields)
    status = STATUS.get(case["status"], {}).get(language_of(language), case["status"])
    return phrase(CASE_OTHER, language, status=status, **fields)


MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")


def when_text(stamp, language, today=None):
    """An appointment's local time as people of that language write and say it, as short as
    it can be: "今天 09:30", "3月2日 09:30", "2027年3月2日 09:30" (zh, yue); "Today 09:30",
    "2 March, 09:30", "2 March 2027, 09:30" (en). espeak reads these as a date and a time;
    "2026-03-02" it would spell out digit by digit."""
    try:
        moment = datetime.strptime((stamp or "")[:16].replace(" ", "T"), "%Y-%m-%dT%H:%M")
    except ValueError:
        return (stamp or "").replace("T", " ")[:16]     # not a date: shown as given
    today = today or date.today()
    table = DATE_TODAY if moment.date() == today else \
        DATE_THIS_YEAR if moment.year == today.year else DATE_OTHER_YEAR
    return phrase(table, language, year=moment.year, month=moment.month, day=moment.day,
                  month_name=MONTHS[moment.month - 1], clock=moment.strftime("%H:%M"))


def with_when(cases, language, today=None):
    """The cases of a summary, each with "when": its appointment in the citizen's language."""
    return [dict(c, when=when_text(c["appointment_at"], language, today) if c.get("appointment_at") else "")
            for c in cases]
