"""The case file on the kiosk screen: the open cases in large type and the four-digit phone
check before case details.

CaseFileDesk holds the one case file on screen and answers the page's requests on 127.0.0.1
(blueprint below): GET /casefile/state, POST /casefile/details, /casefile/identify,
/casefile/done and /casefile/type-id. The file leaves the screen when the citizen presses
Done (the agent is told: the visit ends on the device), when their face track ends, or after
hold_s at most (kiosk/presenter.py). KioskFlow gives the desk the agent's two requests.
"""
import re
import threading
import time
from collections import deque

from flask import Blueprint, jsonify, request

from device.casefile import CaseFileFlow
from device.client import Offline, Rejected, Revoked
from device.phrases import CATALOGUE, language_of, phrase, with_when

from .screen import ScreenServer, ScreenState

CASE_FILE_HOLD_S = 90.0     # the longest a case file stays on screen
NOTICE_HOLD_S = 15.0        # a notice ("please see the desk") goes sooner: the next visitor waits
TYPING_HOLD_S = 60.0        # the ID keypad opened on the idle screen, with no face found yet
ENDED_KEPT = 16             # sessions ended with Done remembered (their late steps show nothing)
ID_NUMBER_TYPING = CATALOGUE["id_number_typing"]   # the keypad opened from the idle screen


class CaseFileDesk:
    """The case file shown on the screen and its second factor; thread-safe."""

    def __init__(self, client, hold_s=CASE_FILE_HOLD_S, clock=time.monotonic,
                 notice_hold_s=NOTICE_HOLD_S, screen=None):
        self.client = client
        self.hold_s = hold_s
        self.notice_hold_s = notice_hold_s
        self._clock = clock
        self._lock = threading.Lock()
        self._seq = 0
        self._state = self._empty()
        self._visit = None
        self._shown_at = None
        self.identifier = None      # CaseFileFlow.identify: an unknown visitor's ID number, 1:1
        self.screen = screen        # the ScreenState: Done and the idle ID button change it at once
        self.ender = None           # Agent.end_visit(track): Done ends the visit on the device
        self.asker = None           # Agent.want_id_entry(): the face at the screen, for the ID keypad
        self._ended = deque(maxlen=ENDED_KEPT)

    @staticmethod
    def _empty():
        return {"mode": None, "greeting": "", "prompt": "", "name": "", "language": "",
                "cases": [], "second_factor": False, "details": None, "factor": None,
                "countdown": None, "feedback": "", "attempt": 1, "ticket": None, "english": "", "hint": "",
                "id_status": None}

    def _set(self, **fields):
        with self._lock:
            self._state.update(fields)
            self._seq += 1

    def prompt(self, mode, visit, text, english="", hint=""):
        """Show a prompt (mode "blink", "passed", "notice" or "ticket") for this visit;
        english is the English line under a notice in another language."""
        with self._lock:
            self._visit, self._shown_at = visit, self._clock()
        self._set(**{**self._empty(), "mode": mode, "greeting": visit.greeting, "prompt": text,
                     "english": english, "hint": hint, "name": visit.name,
                     "language": language_of(visit.language)})

    def progress(self, visit, seconds_left, feedback_text, attempt):
        """The blink countdown and live feedback, while this visit's blink prompt is up."""
        with self._lock:
            if self._visit is not visit or self._state["mode"] != "blink":
                return
        self._set(countdown=seconds_left, feedback=feedback_text, attempt=attempt)

    def ticket(self, visit, ticket):
        """Add the queue ticket ({"number", "where"}) to what is on screen for this visit."""
        with self._lock:
            if self._visit is not visit:
                return
        self._set(ticket=ticket)

    def show(self, visit, summary, step_text):
        with self._lock:
            self._visit, self._shown_at = visit, self._clock()
        self._set(mode="casefile", prompt=step_text, cases=with_when(summary["cases"], visit.language),
                  second_factor=summary["second_factor"], details=None,
                  factor={"status": "ask"} if summary["second_factor"] else None)

    def clear(self, track=None):
        """Take the file off the screen (only if it is this track's, when track is given)."""
        with self._lock:
            mine = self._visit is not None and self._visit.track is track
            if self._state["mode"] is None or (track is not None and not mine):
                return False
            self._visit, self._shown_at = None, None
        self._set(**self._empty())
        return True

    def expire(self):
        """Take the file off once it has been up for hold_s; True when it was taken off now."""
        with self._lock:
            hold = self.notice_hold_s if self._state["mode"] in ("notice", "ticket") else \
                TYPING_HOLD_S if self._visit is None else self.hold_s
            expired = self._shown_at is not None and self._clock() - self._shown_at > hold
        return self.clear() if expired else False

    def done(self):
        """The citizen pressed Done: the screen is idle at once, and the agent ends the visit
        (its blink, case file and ticket still on the way show nothing: ended())."""
        with self._lock:
            visit = self._visit
            if visit is not None:
                self._ended.append(visit.session["id"])
        self.clear()
        if self.screen is not None:
            self.screen.show("idle")
        if self.ender is not None:
            self.ender(visit.track if visit is not None else None)
        return self.state()

    def ended(self, visit):
        """True for a visit the citizen ended with Done."""
        with self._lock:
            return visit.session["id"] in self._ended

    def start_typing(self):
        """The idle screen's "type your ID number": the ID keypad at once, and the agent
        asked for the face at the screen (the 1:1 check needs it). Once the agent has made
        it an unknown visitor, on_unknown's prompt takes over, and what was typed stays."""
        with self._lock:
            busy = self._state["mode"] is not None
            if not busy:
                self._visit, self._shown_at = None, self._clock()
        if busy:
            return self.state()     # someone's visit is on screen: never replaced from the idle button
        text = phrase(ID_NUMBER_TYPING, "zh")
        self._set(**{**self._empty(), "mode": "identify", "prompt": text,
                     "english": phrase(ID_NUMBER_TYPING, "en"), "language": "zh"})
        if self.screen is not None:
            self.screen.show("identify", text)
        if self.asker is not None:
            self.asker()
        return self.state()

    def state(self):
        with self._lock:
            return dict(self._state, seq=self._seq)

    def submit_id_number(self, id_number):
        """Send an unknown visitor's typed ID number for the 1:1 check; the new screen state
        (id_status "checking" until the answer; a match moves on to the blink request)."""
        with self._lock:
            typing = self._state["mode"] == "identify"
            visit = self._visit if typing else None
            busy = self._state["id_status"] == "checking"
        if typing and visit is None:
            # typed on the idle screen, and no face found yet to check it against: look at
            # the screen (the agent is asked again), the number stays for OK again
            self._set(id_status="no_face")
            if self.asker is not None:
                self.asker()
            return self.state()
        if visit is None or self.identifier is None:
            return None
        if not busy:
            self._set(id_status="checking")
            self.identifier(visit, id_number, lambda status: self._identified(visit, status))
        return self.state()

    def _identified(self, visit, status):
        with self._lock:
            if self._visit is not visit or self._state["mode"] != "identify":
                return      # the match already moved the screen on (or the visitor left)
        self._set(id_status=status)

    def submit_digits(self, digits):
        """Ask the server for the details with the typed digits; the new screen state."""
        with self._lock:
            visit = self._visit if self._state["mode"] == "casefile" else None
        if visit is None:
            return None
        try:
            details = self.client.case_details(visit.session["id"], digits)
        except Rejected as e:
            self._set(factor=_factor_refusal(e))
        except (Offline, Revoked):
            self._set(factor={"status": "offline"})
        else:
            self._set(details=details["cases"], factor={"status": "ok"})
        return self.state()


def _factor_refusal(error):
    status = {403: "wrong", 423: "locked", 429: "wait"}.get(error.status, "invalid")
    factor = {"status": status, "message": error.message}
    if status == "wrong":
        factor["tries_left"] = _tries_left(error.message)
    return factor


def _tries_left(message):
    """The count in "wrong digits; 2 tries left" (the server's message), else None."""
    words = message.split()
    for before, after in zip(words, words[1:]):
        if after == "tries" and before.isdigit():
            return int(before)
    return None


class KioskFlow(CaseFileFlow):
    """The case-file flow of a kiosk whose screen the citizen touches: the agent hands
    itself over (device/agent.py attach_agent), and the desk gets its two requests."""

    def __init__(self, desk, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.desk = desk

    def attach_agent(self, agent):
        self.desk.ender = agent.end_visit
        self.desk.asker = agent.want_id_entry


def desk_blueprint(desk):
    """Routes of the kiosk screen app for the case file (127.0.0.1 only, like the screen)."""
    bp = Blueprint("casefile", __name__)

    @bp.route("/casefile/state")
    def casefile_state():
        response = jsonify(desk.state())
        response.headers["Cache-Control"] = "no-store"
        return response

    @bp.route("/casefile/identify", methods=["POST"])
    def casefile_identify():
        body = request.get_json(silent=True)
        id_number = body.get("id_number") if isinstance(body, dict) else None
        if not isinstance(id_number, str) or not re.fullmatch(r"[0-9A-Za-z]{6,32}", id_number):
            return jsonify({"error": {"status": 400, "message": "an ID number expected"}}), 400
        state = desk.submit_id_number(id_number.upper())
        if state is None:
            return jsonify({"error": {"status": 409, "message": "no visitor to identify"}}), 409
        return jsonify(state)

    @bp.route("/casefile/done", methods=["POST"])
    def casefile_done():
        # POST with JSON, like the others: a page elsewhere cannot end a visit with a form post
        if not request.is_json:
            return jsonify({"error": {"status": 400, "message": "JSON expected"}}), 400
        return jsonify(desk.done())

    @bp.route("/casefile/type-id", methods=["POST"])
    def casefile_type_id():
        if not request.is_json:
            return jsonify({"error": {"status": 400, "message": "JSON expected"}}), 400
        return jsonify(desk.start_typing())

    @bp.route("/casefile/details", methods=["POST"])
    def casefile_details():
        # JSON only: a form post from another page cannot send it without a CORS preflight.
        body = request.get_json(silent=True)
        digits = body.get("phone_last4") if isinstance(body, dict) else None
        if not isinstance(digits, str) or len(digits) != 4 or not digits.isdigit():
            return jsonify({"error": {"status": 400, "message": "four digits expected"}}), 400
        state = desk.submit_digits(digits)
        if state is None:
            return jsonify({"error": {"status": 409, "message": "no case file on screen"}}), 409
        return jsonify(state)

    return bp


def open_screen(client, events, port, blueprints=()):
    """The screen with its case-file desk, served on 127.0.0.1:port (the kiosk's, and the
    robot's chest screen): (screen state, desk, stop). blueprints: more of the page's
    routes (the demo's "play again")."""
    state = ScreenState()
    desk = CaseFileDesk(client, screen=state)
    server = ScreenServer(state, port, [desk_blueprint(desk), *blueprints]).start()
    events.emit("screen", url=server.url)
    return state, desk, server.stop
