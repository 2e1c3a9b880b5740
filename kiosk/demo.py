"""The demo's pace (scripts/demo.sh, python -m kiosk --demo): a video played for people to
watch. Played as a camera, it greets her, asks for the blink, opens her case file and prints
her ticket within seconds, each stage on screen for a moment; here the video waits at each
stage long enough to read it, says when it is over, and plays again from the screen.

DemoSource wraps the camera source: when the agent reports a stage (its events), the next
frame waits HOLDS[stage] seconds. Nothing else changes: the frames, the greeter and the
registry are the product's own. At the end the screen says the demo is over, with a button
that plays it again; the frames of a new play come REPLAY_GAP_S later in the source's time, so
the greeter sees a new visit (out of sight longer than regreet_after_s) and greets her again.
"""
import threading
import time

from flask import Blueprint, jsonify, request

# Seconds the video waits at each stage, after the agent reports it.
HOLDS = {"greeted": 4.0,            # her name, then the blink request under it
         "liveness_passed": 2.0,
         "case_file_opened": 8.0,   # long enough to read the cases
         "ticket_issued": 5.0}
REPLAY_GAP_S = 3600.0               # source time between plays: more than any regreet_after_s


class DemoSource:
    """A camera source whose frames wait at each stage of a visit, and that plays again when
    asked at its end. open_source() makes the source anew for each play."""

    def __init__(self, open_source, events, clock=time.monotonic, sleep=time.sleep):
        self._open, self._clock, self._sleep = open_source, clock, sleep
        self.source = open_source()
        self.on_over = None               # called at the end of a play (the screen says so)
        self.plays, self.held_s = 1, 0.0
        self._offset, self._last_t, self._hold_until = 0.0, 0.0, None
        self._lock, self._again, self._stopped = threading.Lock(), threading.Event(), False
        self._waiting = False             # at the end, for "play again"
        events.add_listener(self._heard)

    def _heard(self, event):
        """An agent event (any thread): a stage holds the next frame."""
        hold = HOLDS.get(event.get("event"))
        if hold:
            with self._lock:
                until = self._clock() + hold
                self._hold_until = max(self._hold_until or until, until)

    def read(self):
        self._wait_for_hold()
        frame = self.source.read()
        if frame is None:
            frame = self._play_again()
        if frame is not None:
            frame.t += self._offset
            self._last_t = frame.t
        return frame

    def _wait_for_hold(self):
        with self._lock:
            until, self._hold_until = self._hold_until, None
        wait = (until - self._clock()) if until is not None else 0
        if wait > 0:
            self._sleep(wait)
            self.held_s += wait
            # a file paced as a camera would skip the frames of the wait: it waited too
            start = getattr(self.source, "_start", None)
            if start is not None:
                self.source._start = start + wait

    def _play_again(self):
        """At the end: say so, wait for "play again" (or stop), then the first frame of a new play."""
        self._waiting = True
        if self.on_over is not None:
            self.on_over()
        self._again.wait()
        self._waiting = False
        with self._lock:
            if self._stopped:
                return None
        self.source.close()
        self.source = self._open()
        self._again.clear()     # set only by "play again" at an end: a tap during a play is no request
        self.plays += 1
        self._offset = self._last_t + REPLAY_GAP_S
        return self.source.read()

    def replay(self):
        """The screen's "play again" (a web server thread); heard only at the end."""
        if self._waiting:
            self._again.set()

    def stop(self):
        with self._lock:
            self._stopped = True
        self._again.set()
        stop = getattr(self.source, "stop", None)
        if stop is not None:
            stop()

    def close(self):
        self.source.close()

    @property
    def dropped(self):
        return getattr(self.source, "dropped", 0)


def demo_blueprint(demo):
    """POST /demo/replay on the kiosk screen (127.0.0.1 only, as the whole screen)."""
    bp = Blueprint("demo", __name__)

    @bp.route("/demo/replay", methods=["POST"])
    def replay():
        # JSON only: a form on another page cannot restart the demo without a CORS preflight
        if not request.is_json:
            return jsonify({"error": {"status": 400, "message": "JSON expected"}}), 400
        demo.replay()
        return jsonify({"plays": demo.plays})

    return bp
