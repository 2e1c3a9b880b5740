"""The robot's voice: what it says at each step of a visit (presenter for CaseFileFlow).
A robot with a chest screen also runs the kiosk's screen beside the voice (robot/__main__.py).

Every utterance is also an event, {"event": "said", "what": ..., "language": ..., "text": ...,
"n": k}, n counting from 1 in speaking order: with --speech FILE.wav the k-th utterance is in
FILE.wav (k = 1) or FILE-k.wav, so what was said can be checked against the audio.
"""
import threading

from device.agent import FrontEnd
from device.phrases import (BLINK_AGAIN, LIVENESS_FAILED, SEE_A_CLERK, UNKNOWN_VISITOR,
                            UNKNOWN_WITH_SCREEN, blink_request, language_of, next_step, phrase,
                            ticket_text)

# An unknown visitor's language is unknown: the hall's language first, then English.
UNKNOWN_LANGUAGES = ("zh", "en")


class RobotVoice(FrontEnd):
    """Says each step of a visit in the citizen's language; never drops an utterance."""

    def __init__(self, speaker, events, screen=False):
        self.speaker = speaker
        self.events = events
        self.screen = screen            # a chest screen offers the ID-number keypad
        self._count = 0
        self._lock = threading.Lock()   # steps speak from the recognition loop and the server worker

    def say(self, what, text, language):
        language = language_of(language)
        with self._lock:
            self._count += 1
            self.events.emit("said", what=what, language=language, text=text, n=self._count)
            if self.speaker is not None:
                self.speaker.say(text, language)

    # --- the agent's hooks --------------------------------------------------------------------

    def on_greeted(self, visit):
        self.say("greeting", visit.greeting, visit.language)

    def on_unknown(self, visit):
        # The ID number is typed on the screen, never said: a number spoken aloud in a hall is
        # heard by everyone in the queue.
        table = UNKNOWN_WITH_SCREEN if self.screen else UNKNOWN_VISITOR
        for language in UNKNOWN_LANGUAGES:
            self.say("directions", phrase(table, language), language)

    # --- the case-file hooks ------------------------------------------------------------------

    def on_blink_request(self, visit):
        self.say("blink_request", blink_request(visit.language), visit.language)

    def on_blink_retry(self, visit):
        self.say("blink_retry", phrase(BLINK_AGAIN, visit.language), visit.language)

    def on_liveness_failed(self, visit):
        self.say("liveness_failed", phrase(LIVENESS_FAILED, visit.language), visit.language)

    def on_case_file(self, visit, summary):
        self.say("next_step", next_step(summary["cases"], visit.language), visit.language)

    def on_case_file_unavailable(self, visit):
        self.say("see_a_clerk", phrase(SEE_A_CLERK, visit.language), visit.language)

    def on_ticket(self, visit, number, counter="", day=""):
        # An unknown visitor heard the directions in zh then en: the number comes in zh. A
        # citizen's counter was in the next step already: the number alone is said.
        self.say("ticket", ticket_text(number, visit.language), visit.language)
