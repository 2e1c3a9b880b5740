"""Blink liveness: did the eyes of this face close and open again during the challenge?

A photo held to the camera keeps its eyes exactly as printed, however it is moved, so the
eye aspect ratio (EAR: eyelid gap over eye width, Soukupová & Čech 2016) stays flat. A live
person asked to blink drops it to about 40 % of its open value for a tenth of a second or more.

People's open eyes differ (EAR 0.22 to 0.38 is common), so there is no fixed threshold: each
face track learns its own open-eye baseline, a high percentile of its recent EAR, and a blink
is a drop below a fraction of that baseline followed by a recovery. All timing is in seconds
of the samples' own clock, never in frame counts, so a camera that drops frames or a slow
loop changes nothing but the resolution.

This module is pure: no camera, no UI. Feed BlinkDetector with (t, landmarks) per frame.
"""
from dataclasses import dataclass, field

import numpy as np

from . import engine


@dataclass(frozen=True)
class BlinkPolicy:
    """The blink challenge's settings; defaults measured on ../shared/video (see bench/liveness.py)."""
    window_s: float = 6.0            # time the citizen has to blink, from the challenge start
    close_ratio: float = 0.70        # eyes count as closed below this share of the open baseline
    open_ratio: float = 0.85         # ... and open again at or above this share
    baseline_percentile: float = 90  # a high percentile ignores blinks and half-closed frames
    baseline_history_s: float = 10.0  # the baseline follows pose changes slower than this
    baseline_min_samples: int = 3    # no blink counts before the baseline rests on this many
    min_open_ear: float = 0.15       # a "baseline" lower than this is not an open eye
    min_closed_s: float = 0.1        # closed to open again; a shorter dip is landmark jitter
    max_closed_s: float = 1.5        # longer is looking down or a swapped picture, not a blink
    min_eye_px: float = 20.0         # narrower eyes are too few pixels to measure a blink on
    max_gap_s: float = 0.6           # a closure spanning a longer gap between samples is unseen


@dataclass(frozen=True)
class Blink:
    """One blink: eyes closed at `start`, open again at `end` (seconds); depth = lowest EAR/baseline."""
    start: float
    end: float
    depth: float

    def as_dict(self):
        return {"start": round(self.start, 3), "end": round(self.end, 3),
                "depth": round(self.depth, 3)}


def eye_aspect_ratio(eye):
    """EAR of one eye from its six 68-point landmarks (a 6x2 array, points p1..p6).

    (|p2-p6| + |p3-p5|) / (2 |p1-p4|): about 0.3 open, under 0.15 closed. It does not change
    with the face's size or position, and little with in-plane rotation.
    """
    eye = np.asarray(eye, dtype=np.float64)
    vertical = np.linalg.norm(eye[1] - eye[5]) + np.linalg.norm(eye[2] - eye[4])
    width = np.linalg.norm(eye[0] - eye[3])
    return float(vertical / (2.0 * width)) if width > 0 else 0.0


def eyes_openness(left_eye, right_eye):
    """The EAR of the *more open* eye: a blink closes both, so noise or a squint in one
    eye alone (or a wink) never looks like a blink."""
    return max(eye_aspect_ratio(left_eye), eye_aspect_ratio(right_eye))


def eye_width(eye):
    """Corner-to-corner width of one eye in pixels."""
    eye = np.asarray(eye, dtype=np.float64)
    return float(np.linalg.norm(eye[0] - eye[3]))


def eye_pair(landmarks):
    """(left_eye, right_eye) 6x2 arrays from a dlib 68-point shape, or the pair itself."""
    return engine.eye_points(landmarks) if hasattr(landmarks, "parts") else landmarks


def face_eyes(rgb, location):
    """(left_eye, right_eye) of the face at location in an RGB frame (68-point landmarks, ~2 ms)."""
    return engine.eye_points(engine.face_landmarks(rgb, location, model="large"))


def open_baseline(values, percentile=90):
    """The open-eye EAR of a series: its high percentile, so blinks in it do not lower it."""
    return float(np.percentile(np.asarray(values, dtype=np.float64), percentile))


@dataclass
class BlinkDetector:
    """Blinks of one face track, fed sample by sample, and the challenge verdict.

    The challenge window opens at `started_at`, or at the first sample when None. A blink
    counts for the challenge when it ends (eyes open again) inside the window.
    """
    policy: BlinkPolicy = field(default_factory=BlinkPolicy)
    started_at: float = None
    blinks: list = field(default_factory=list)
    # (t, openness) samples, oldest first; whether open eyes were seen since the last blink
    # or gap; the start and depth of a closure in progress; the last sample's time.
    _history: list = field(default_factory=list, init=False, repr=False)
    _armed: bool = field(default=False, init=False, repr=False)
    _closed_at: float = field(default=None, init=False, repr=False)
    _depth: float = field(default=1.0, init=False, repr=False)
    _last_t: float = field(default=None, init=False, repr=False)

    def update(self, t, landmarks):
        """Add the face's landmarks seen at time t (seconds): a dlib 68-point shape or a
        (left_eye, right_eye) pair. Returns the Blink it completes, or None.

        Eyes narrower than policy.min_eye_px are skipped as unseen: one pixel of landmark
        jitter on a 10 px eye moves the EAR by a third, as much as a blink.
        """
        left_eye, right_eye = eye_pair(landmarks)
        if min(eye_width(left_eye), eye_width(right_eye)) < self.policy.min_eye_px:
            return None
        return self.add_openness(t, eyes_openness(left_eye, right_eye))

    def add_openness(self, t, openness):
        """Add one eye-openness (EAR) sample at time t; the Blink it completes, or None."""
        if self.started_at is None:
            self.started_at = t
        if self._last_t is not None and t - self._last_t > self.policy.max_gap_s:
            self._forget_closure()
        self._last_t = t
        baseline = self._baseline(t)
        self._history.append((t, openness))
        if baseline is None:
            return None
        return self._step(t, openness / baseline)

    def _baseline(self, t):
        horizon = t - self.policy.baseline_history_s
        while self._history and self._history[0][0] < horizon:   # a long track stays small
            self._history.pop(0)
        recent = [v for _, v in self._history]
        if len(recent) < self.policy.baseline_min_samples:
            return None
        baseline = open_baseline(recent, self.policy.baseline_percentile)
        return baseline if baseline >= self.policy.min_open_ear else None

    def _step(self, t, ratio):
        policy = self.policy
        if self._closed_at is None:
            if ratio >= policy.open_ratio:
                self._armed = True
            elif ratio < policy.close_ratio and self._armed:
                self._closed_at, self._depth = t, ratio
            return None
        if t - self._closed_at > policy.max_closed_s:
            self._forget_closure()
            return None
        self._depth = min(self._depth, ratio)
        if ratio < policy.open_ratio:
            return None
        blink = Blink(self._closed_at, t, self._depth)
        self._closed_at = None
        if blink.end - blink.start < policy.min_closed_s:
            return None
        self.blinks.append(blink)
        return blink

    def _forget_closure(self):
        """Drop a closure in progress; the next blink needs open eyes seen first."""
        self._closed_at = None
        self._armed = False

    @property
    def last_sample_t(self):
        """Time of the last eye sample read (eyes wide enough to measure), or None."""
        return self._last_t

    @property
    def baseline_ready(self):
        """True once enough open-eye samples were read to tell a blink."""
        return len(self._history) >= self.policy.baseline_min_samples

    @property
    def window_end(self):
        return None if self.started_at is None else self.started_at + self.policy.window_s

    def passing_blink(self):
        """The first blink that ended inside the challenge window, or None. Samples from
        before the window (fed to learn the baseline early) cannot pass it."""
        end = self.window_end
        return next((b for b in self.blinks
                     if end is not None and self.started_at <= b.end <= end), None)

    def verdict(self, now):
        """"passed", "failed" once the window has closed without a blink, or None (still open)."""
        if self.passing_blink() is not None:
            return "passed"
        if self.window_end is not None and now > self.window_end:
            return "failed"
        return None


def blinks_in(samples, policy=None):
    """All blinks in a series of (t, openness) samples of one face track."""
    detector = BlinkDetector(policy or BlinkPolicy())
    for t, openness in samples:
        detector.add_openness(t, openness)
    return list(detector.blinks)


def blink_across(samples, policy=None):
    """Whether a few (t, openness) samples of one face, in time order, show a blink by the
    rule BlinkDetector applies frame by frame: open eyes, then a closure below close_ratio of
    the open level lasting min_closed_s to max_closed_s, then open eyes again (at open_ratio).
    For the server, which sees only the frames a device sent as its evidence: None when they
    show a blink, else why not."""
    policy = policy or BlinkPolicy()
    samples = sorted(samples)
    if len(samples) < 3:
        return "too few frames"
    low = min(range(len(samples)), key=lambda i: samples[i][1])
    before, after = samples[:low], samples[low + 1:]
    if not before or not after:
        return "the eyes do not open both before and after"
    # the open level both sides reach: a few samples have no history to take a percentile of,
    # and one wide-eyed frame before must not make the eyes after look half shut
    level = min(max(v for _, v in before), max(v for _, v in after))
    if level < policy.min_open_ear:
        return "no open eyes"
    closed = [(t, v) for t, v in samples if v < policy.close_ratio * level]
    opened_before = [t for t, v in before if v >= policy.open_ratio * level]
    opened_after = [t for t, v in after if v >= policy.open_ratio * level]
    if not closed or not opened_before or not opened_after:
        return "the eyes do not close and open again"
    span = min(opened_after) - max(opened_before)
    if span > policy.max_closed_s + 2 * policy.max_gap_s:
        return "the eyes stay closed too long for a blink"
    return None
