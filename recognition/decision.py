"""When to say a name: the decision policy shared by devices and the accuracy bench.

Nearest neighbour at a fixed tolerance (face_recognition's 0.6 for dlib) names many
strangers as someone enrolled. A name is said only when
  - the distance to the best citizen is under a calibrated threshold, which tightens as the
    gallery grows (a stranger has N chances to resemble someone among N citizens),
  - the nearest *other* citizen is clearly further away (margin), and
  - on a device, the same citizen wins several frames of one face track in a row.
Anything else is "unknown": the visitor is sent to a clerk, never greeted with a guess.
"""
from dataclasses import dataclass, field

import numpy as np

NO_RUNNER_UP = 4.0   # margin reported when only one citizen is enrolled: further than any two
                    # templates of any model are apart
DEFAULT_TARGET_FPIR = 0.005   # strangers the threshold alone may name, before an admin says


@dataclass(frozen=True)
class Policy:
    """An operating point on one face model's distances; see the README for how it is chosen.

    threshold is the distance the best citizen must be within: the registry sends each
    device the threshold for its own gallery, measured on its own faces
    (recognition.calibration). for_model() gives the prior's point for a gallery size, for a
    device that has not heard from its registry yet and for the benchmarks' baselines. The
    evidence rule's parameters are below (TrackVotes).
    """
    threshold: float
    margin: float
    min_frames: int = 3          # frames in a row that must agree before greeting
    unknown_after: int = 6       # frames of a track with no acceptable match -> unknown visitor
    evidence_frames: int = 2     # frames whose mean template may name a track (0: off)
    evidence_window: int = 10    # most recent frames averaged

    @classmethod
    def for_model(cls, model, gallery_size=1, target_fpir=DEFAULT_TARGET_FPIR, **changes):
        """The policy the model's prior gives a gallery of gallery_size citizens: the largest
        threshold whose expected share of strangers named, n x FMR_upper(t), stays within
        target_fpir, between the model's floor and its default ceiling."""
        from . import calibration
        bounds = model.bounds
        threshold = calibration.threshold_for(calibration.prior_curve(model), gallery_size,
                                              target_fpir, bounds.threshold_ceiling,
                                              bounds.threshold_floor)
        return cls(**{"threshold": threshold, "margin": bounds.margin, **changes})


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
    if best.distance > policy.threshold:
        rule = "threshold"
    elif margin < policy.margin:
        rule = "margin"
    return FrameDecision(None if rule else best.citizen_id, best.distance, margin, hits, rule)


def naive_decide(gallery, encoding, tolerance):
    """The naive policy, for comparison only: nearest neighbour under a fixed tolerance
    (the model's naive_tolerance: face_recognition's 0.6 for dlib)."""
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
        mean = gallery.model.mean(self.encodings[-policy.evidence_window:])
        pooled = decide(gallery, mean, policy)
        latest = self.decisions[-1].candidates
        if pooled.citizen_id is None or not latest or latest[0].citizen_id != pooled.citizen_id:
            return None
        return FrameDecision(pooled.citizen_id, pooled.distance, pooled.margin,
                             pooled.candidates, None)
