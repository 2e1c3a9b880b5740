"""The kiosk's screen and voice: the agent's front end (device/agent.py) and the case-file
presenter (device/casefile.py) in one.

What the citizen sees comes from ScreenState (kiosk/screen.py) and the case file on screen
from CaseFileDesk (kiosk/casefile_screen.py); what they hear from the Speaker.
"""
import functools
import threading

from device.agent import FrontEnd
from device.phrases import (BLINK_AGAIN, BLINK_HINT, BLINK_NOW, ID_NUMBER_PROMPT, LIVENESS_FAILED,
                            LIVENESS_PASSED, LOOK_AT_SCREEN, SECOND_TRY, SEE_A_CLERK,
                            UNKNOWN_PROMPT, blink_request, language_of, next_step, phrase,
                            ticket_text, ticket_where)

REFRESH_S = 2.0             # how often the screen's mode is renewed while a file is shown


class KioskFrontEnd(FrontEnd):
    """The kiosk's screen and voice."""

    def __init__(self, screen_state=None, speaker=None):
        self.screen = screen_state
        self.speaker = speaker

    def on_greeted(self, visit):
        if self.screen is not None:
            self.screen.show("greeting", visit.greeting, visit.name, visit.language)
        if self.speaker is not None:
            self.speaker.say(visit.greeting, visit.language)

    def on_unknown(self, visit):
        if self.screen is not None:
            self.screen.show("unknown")
        if self.speaker is not None:
            self.speaker.say(phrase(UNKNOWN_PROMPT, "zh"), "zh")


def _unless_ended(hook):
    """The hook does nothing for a visit the citizen ended with Done: its blink verdict,
    case file or ticket may still come from the flow's worker, and the screen is someone
    else's by then (or idle)."""
    @functools.wraps(hook)
    def guarded(self, visit, *args, **kwargs):
        if self.desk is not None and self.desk.ended(visit):
            return None
        return hook(self, visit, *args, **kwargs)
    return guarded


class KioskCaseFilePresenter(KioskFrontEnd):
    """The kiosk's screen and voice, with the blink request and the case file."""

    def __init__(self, screen_state=None, speaker=None, desk=None, printer=None):
        super().__init__(screen_state, speaker)
        self.desk = desk
        self.printer = printer      # kiosk/printer.py TicketPrinter, or None
        self._refresher = None
        if screen_state is not None and desk is not None:
            self._refresher = threading.Thread(target=self._keep_on_screen, daemon=True,
                                               name="casefile-screen")
            self._stop = threading.Event()
            self._refresher.start()

    @_unless_ended
    def on_greeted(self, visit):
        super().on_greeted(visit)

    def _show(self, mode, visit, text):
        if self.screen is not None:
            self.screen.show(mode, text, visit.name, visit.language)

    def _say(self, text, language):
        if self.speaker is not None:
            self.speaker.say(text, language_of(language))

    @_unless_ended
    def on_unknown(self, visit):
        """A visitor the camera does not know: they may type their ID number (checked 1:1
        against their face), and get a ticket either way."""
        if self.desk is None or self.desk.identifier is None:
            super().on_unknown(visit)
            return
        text = phrase(ID_NUMBER_PROMPT, "zh")
        self.desk.prompt("identify", visit, text, phrase(ID_NUMBER_PROMPT, "en"))
        self._show("identify", visit, text)
        self._say(text, "zh")

    @_unless_ended
    def on_blink_request(self, visit):
        text = blink_request(visit.language)
        if self.desk is not None:
            self.desk.prompt("blink", visit, text, hint=_hint(BLINK_HINT, visit.language))
        self._show("blink", visit, text)
        self._say(text, visit.language)

    @_unless_ended
    def on_blink_progress(self, visit, seconds_left, feedback, attempt):
        """Countdown and live feedback on screen only: speaking every second would drown it."""
        if self.desk is not None:
            table = BLINK_NOW if feedback == "blink" else LOOK_AT_SCREEN
            self.desk.progress(visit, seconds_left, phrase(table, visit.language), attempt)

    @_unless_ended
    def on_blink_retry(self, visit):
        text = phrase(BLINK_AGAIN, visit.language)
        if self.desk is not None:
            self.desk.prompt("blink", visit, text, hint=_hint(SECOND_TRY, visit.language))
        self._show("blink", visit, text)
        self._say(text, visit.language)

    @_unless_ended
    def on_liveness_passed(self, visit):
        """The blink was seen: say so at once, before (and whether or not) the server answers."""
        text = phrase(LIVENESS_PASSED, visit.language)
        if self.desk is not None:
            self.desk.prompt("passed", visit, text)
        self._show("passed", visit, text)

    @_unless_ended
    def on_liveness_failed(self, visit):
        self._notice(visit, LIVENESS_FAILED)

    @_unless_ended
    def on_case_file_unavailable(self, visit):
        self._notice(visit, SEE_A_CLERK)

    def _notice(self, visit, table):
        """A notice in the citizen's language, with an English line under it."""
        text = phrase(table, visit.language)
        english = phrase(table, "en") if language_of(visit.language) != "en" else ""
        if self.desk is not None:
            self.desk.prompt("notice", visit, text, english)
        self._show("notice", visit, text)
        self._say(text, visit.language)

    @_unless_ended
    def on_case_file(self, visit, summary):
        text = next_step(summary["cases"], visit.language)
        if self.desk is not None:
            self.desk.show(visit, summary, text)
        self._show("casefile", visit, text)
        self._say(text, visit.language)

    @_unless_ended
    def on_ticket(self, visit, number, counter="", day=""):
        """The queue ticket, large on screen (with the case file or the notice when one is
        up, alone for a visitor the kiosk does not know), said, and printed."""
        language = language_of(visit.language)
        ticket = {"number": number, "where": _bilingual(ticket_where(counter, language),
                                                        ticket_where(counter, "en"), language)}
        spoken = ticket_text(number, language)
        if self.desk is not None:
            mode = self.desk.state()["mode"]
            if mode is None or (visit.citizen_key is None and mode != "identify"):
                english = ticket_text(number, "en") if language != "en" else ""
                self.desk.prompt("ticket", visit, spoken, english)
                self._show("ticket", visit, spoken)
            self.desk.ticket(visit, ticket)
        self._say(spoken, language)
        if self.printer is not None:
            self.printer.print_ticket(number, ticket_where(counter, language),
                                      ticket_where(counter, "en"), day)

    def on_left(self, track):
        """The citizen walked away: their case file leaves the screen at once (a ticket stays
        its short while: the number is not private, and they may glance back)."""
        if self.desk is not None and self.desk.state()["mode"] == "ticket":
            return
        if self.desk is not None and self.desk.clear(track) and self.screen is not None:
            self.screen.show("idle")

    def _keep_on_screen(self):
        """Renew the screen's mode while a case file is up (the screen falls back to idle
        after its own hold time otherwise)."""
        while not self._stop.wait(REFRESH_S):
            if self.desk.expire():
                self.screen.show("idle")
            state = self.desk.state()
            if state["mode"] is not None:
                self.screen.show(state["mode"], state["prompt"], state["name"], state["language"])

    def close(self):
        if self._refresher is not None:
            self._stop.set()
        super().close()


def _hint(table, language):
    """A hint in the citizen's language with the English line (one line in English)."""
    return _bilingual(phrase(table, language), phrase(table, "en"), language_of(language))


def _bilingual(text, english, language):
    return text if language == "en" else f"{text} · {english}"
