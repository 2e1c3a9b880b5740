"""When to say a name: the decision policy shared by devices and the accuracy bench.

Nearest neighbour at face_recognition's default tolerance (0.6) names many strangers as
someone enrolled. A name is said only when
  - the distance to the best citizen is under a calibrated threshold, which tightens as the
    gallery grows (a stranger has N chances to resemble someone among N citizens),
  - the nearest *other* citizen is clearly further away (margin), and
  - on a device, the same citizen wins several frames of one face track in a row.
Anything else is "unknown": the visitor is sent to a clerk, never greeted with a guess.
"""
import math
from dataclasses import dataclass, field

import numpy as np

NO_RUNNER_UP = 1.0  # margin reported when only one citizen is enrolled

# dlib's false-match rate per comparison as a function of the distance threshold t:
# log10 FMR = FMR_LOG10_AT_0 + FMR_LOG10_SLOPE * t, fitted to a public measurement over all
# 81.9 million pairs of LFW (13k photos, 5.7k people): FMR ~ 3.6e-5 at 0.45, ~ 2.5e-4 at 0.50.
FMR_LOG10_AT_0 = -12.0
FMR_LOG10_SLOPE = 16.8


def false_match_rate(threshold):
    """Expected chance that two different people's faces fall within `threshold`."""
    return 10 ** (FMR_LOG10_AT_0 + FMR_LOG10_SLOPE * threshold)


@dataclass(frozen=True)
class Policy:
    """The shipped operating point; see bench/accuracy.py and the README for how it was chosen.

    threshold is the loosest distance ever accepted. A registry that measured its own
    false-match curve (recognition.calibration) sends each device the threshold for its
    gallery, used as is (target_fpir=None). Otherwise, with target_fpir set, the distance
    used for a gallery of n citizens is the largest one whose expected share of strangers
    named, n x FMR(t) on the LFW prior, stays within target_fpir: about 0.50 for 10
    citizens, 0.46 for 100, 0.40 for 1,000 — far too loose for East-Asian faces, which is
    why the registry measures. The evidence rule's parameters are below (TrackVotes).
    """
    threshold: float = 0.50
    margin: float = 0.06
    min_frames: int = 3          # frames in a row that must agree before greeting
    unknown_after: int = 6       # frames of a track with no acceptable match -> unknown visitor
    target_fpir: object = 0.005  # share of strangers the threshold alone may name; None = fixed
    min_threshold: float = 0.30  # below this nobody is recognised anyway: don't tighten further
    evidence_frames: int = 2     # frames whose mean template may name a track (0: off)
    evidence_window: int = 10    # most recent frames averaged

    def threshold_for(self, gallery_size):
        """The distance threshold for a gallery of gallery_size citizens."""
        if self.target_fpir is None or gallery_size <= 1:
            return self.threshold
        fitted = (math.log10(self.target_fpir / gallery_size) - FMR_LOG10_AT_0) / FMR_LOG10_SLOPE
        return round(max(self.min_threshold, min(self.threshold, fitted)), 4)


@dataclass(frozen=True)
class FrameDecision:
    citizen_id: object           # the citizen named, or None for "no acceptable match"
    distance: float
    margin: float
    candidates: tuple = ()       # the nearest citizens, closest first: (Hit, ...)
    rule: object = None          # why no one was named: "threshold", "margin", "empty_gallery"


CANDIDATES = 5   # nearest citizens a decision reports (the clerk sees them; calibration uses them)


def decide(gallery, encoding, policy):
    """One probe against the gallery: the citizen if the match is acceptable, else None,
    with the nearest citizens and the rule that refused the best one."""
    hits = tuple(gallery.nearest(encoding, CANDIDATES))
    if not hits:
        return FrameDecision(None, float("inf"), 0.0, (), "empty_gallery")
    best = hits[0]
    margin = (hits[1].distance - best.distance) if len(hits) > 1 else NO_RUNNER_UP
    rule = None
    if best.distance > policy.threshold_for(len(gallery)):
        rule = "threshold"
    elif margin < policy.margin:
        rule = "margin"
    return FrameDecision(None if rule else best.citizen_id, best.distance, margin, hits, rule)


def naive_decide(gallery, encoding, tolerance=0.6):
    """The naive policy, for comparison only: nearest neighbour under face_recognition's tolerance."""
    best, _ = gallery.nearest_two(encoding)
    if best is None or best.distance > tolerance:
        return FrameDecision(None, float("inf") if best is None else best.distance, 0.0)
    return FrameDecision(best.citizen_id, best.distance, 0.0)


KEPT_ENCODINGS = 30   # frame templates a track keeps for the evidence rule (>= evidence_window)


@dataclass
class TrackVotes:
    """Frame decisions of one face track, oldest first, and the frames' templates.

    A track is named on either rule, both keeping the threshold and the margin:
      - agreement: the last min_frames single-frame decisions name the same citizen;
      - evidence: the mean template of the last evidence_window frames (at least
        evidence_frames of them) is within the threshold of one citizen with the margin to
        the runner-up, and the latest frame's nearest citizen is that one. Averaging cancels
        the frame-to-frame noise of one face, so a citizen whose single frames hover just
        above the threshold is named sooner, while a stranger's mean stays as far from
        everyone else as their single frames are.
    """
    decisions: list = field(default_factory=list)
    encodings: list = field(default_factory=list)

    def add(self, decision, encoding=None):
        self.decisions.append(decision)
        if encoding is not None:
            self.encodings.append(np.asarray(encoding, dtype=np.float32))
            del self.encodings[:-KEPT_ENCODINGS]   # a long undecided track holds a bounded few

    def verdict(self, policy, gallery=None):
        """("named", decision) once the agreement or the evidence rule names a citizen,
        ("unknown", None) once unknown_after frames passed without that, else (None, None)."""
        recent = self.decisions[-policy.min_frames:]
        if len(recent) == policy.min_frames and recent[0].citizen_id is not None \
                and all(d.citizen_id == recent[0].citizen_id for d in recent):
            return "named", min(recent, key=lambda d: d.distance)
        evidence = self.evidence(policy, gallery)
        if evidence is not None:
            return "named", evidence
        if len(self.decisions) >= policy.unknown_after:
            return "unknown", None
        return None, None

    def evidence(self, policy, gallery):
        """The decision on the track's mean template when the evidence rule names someone."""
        if gallery is None or not policy.evidence_frames \
                or len(self.encodings) < policy.evidence_frames or not self.decisions:
            return None
        mean = np.mean(self.encodings[-policy.evidence_window:], axis=0)
        pooled = decide(gallery, mean, policy)
        latest = self.decisions[-1].candidates
        if pooled.citizen_id is None or not latest or latest[0].citizen_id != pooled.citizen_id:
            return None
        return FrameDecision(pooled.citizen_id, pooled.distance, pooled.margin,
                             pooled.candidates, None)
