"""The blink challenge after a greeting, on the face track that was recognised.

The greeter keeps each track's recent frames (t, rgb, location). A challenge reads the eye
landmarks of every frame of *that* track it has not seen yet, so a second face in view (a
photo held up beside the citizen) cannot answer for them. Frames from just before the
greeting teach the detector this person's open eyes; only a blink after the request counts.
"""
from recognition.liveness import BlinkDetector, BlinkPolicy, eye_width, eyes_openness, face_eyes

from .evidence import Evidence

BASELINE_LOOKBACK_S = 2.0   # frames this long before the request are read for the baseline
EYES_LOST_S = 0.6           # no eye read this long: the citizen is asked to look at the screen


class BlinkChallenge:
    """One citizen's challenge: started at t (the request), decided by verdict(now)."""

    def __init__(self, visit, started_at, policy=None, attempt=1):
        self.visit = visit
        self.attempt = attempt
        self.track = visit.track
        self.detector = BlinkDetector(policy or BlinkPolicy(), started_at=started_at)
        self.evidence = Evidence(visit.track.first_t)   # the crops the server checks the blink on
        self._read_until = started_at - BASELINE_LOOKBACK_S

    def feed(self):
        """Read the track's frames not read yet (about 2 ms of landmarks each)."""
        for t, rgb, location in list(self.track.frames):
            if t <= self._read_until:
                continue
            eyes = face_eyes(rgb, location)
            blink = self.detector.update(t, eyes)
            if min(eye_width(eye) for eye in eyes) >= self.detector.policy.min_eye_px:
                counts = blink is not None and blink.end >= self.detector.started_at
                self.evidence.add(t, eyes_openness(*eyes), rgb, location, blink if counts else None)
            self._read_until = t

    def verdict(self, now):
        """"passed", "failed" (window over without a blink) or None (still waiting)."""
        return self.detector.verdict(now)

    def progress(self, now):
        """What the citizen is told while the window is open: (whole seconds left, feedback),
        feedback "look" (no eyes read just now: look at the screen) or "blink" (eyes found,
        blink now)."""
        end = self.detector.window_end
        left = max(0, int(-(-(end - now) // 1))) if end is not None else 0
        seen = self.detector.last_sample_t
        eyes = seen is not None and now - seen <= EYES_LOST_S and self.detector.baseline_ready
        return left, "blink" if eyes else "look"

    @property
    def blink(self):
        return self.detector.passing_blink()
