"""From frames to visits: detect, track faces across frames, vote, and decide once per visit.

Per frame: faces are found on a downscaled copy (the costly step; detect_max_side trades
reach for speed), matched to the face tracks of earlier frames by overlap, and only the
faces of undecided tracks are encoded and matched against the gallery. A track is named
when recognition.decision.TrackVotes names it (several frames in a row agree, or the
mean template of its frames is a clear match); it is an unknown
visitor when they have not for unknown_after_s (it is still checked for a while after, so a
bad first angle does not cost a citizen the greeting). A named track is not encoded again,
which is where most of the speed over "encode every face in every frame" comes from.

One greeting per visit: a citizen whose track is lost and found again, or who steps out
and back in, is not greeted again until they have been out of sight for regreet_after_s.
Times are the frames' own t (seconds since the source started).

Only the largest face is served: it is the one at the screen. Smaller faces behind are
followed but not named until they step up, so a passer-by's greeting and case file never
appear in front of the person who is standing there.

A name stays with a face, not with a place: a named track's face is encoded again every
recheck_named_s, at once after any processed frame without it, and when the front end asks
(a blink was just seen: Track.check_now). A check that finds the face that was named (within
same_face of the frames that named it or of the citizen's templates) sets verified_t; a blink
counts only once a check after it has passed (device/casefile.py), so someone swapped in for
a photo cannot blink for it. changed_after checks in a row that find another face end the
track, and a new one starts where it was: a hand over the face or a dim moment fails one or
two checks, a different person fails them all.
"""
import itertools
from collections import deque
from dataclasses import dataclass, field, replace

from recognition import engine
from recognition.decision import TrackVotes, decide
from recognition.images import scaled_to_fit


@dataclass(frozen=True)
class GreeterSettings:
    detect_max_side: int = 480     # longer side of the copy faces are found on
    upsample: int = 1              # fine pass: 1 finds faces down to ~40 px in that copy
    max_faces: int = 3             # largest faces looked at per frame (a queue, not a crowd)
    min_face_px: int = 40          # smaller faces are too far away to name reliably
    track_lost_s: float = 1.0      # a face unseen this long has left (detection misses frames)
    regreet_after_s: float = 60.0  # out of sight this long, the next sighting is a new visit
    unknown_after_s: float = 1.0   # a track is an unknown visitor only after this long undecided:
                                   # the first frames of someone walking up are often turned or blurred
    recheck_unknown_s: float = 6.0 # an unknown track keeps being checked this long, so a citizen
                                   # who first showed a bad angle is still greeted once they face us
    keep_frames: int = 30          # recent frames kept per track (for liveness after greeting)
    keep_max_side: int = 1920      # ... at most this wide: 30 4K frames took 750 MB; the eye
                                   # landmarks' ratios read as well on a smaller copy
    min_iou: float = 0.25
    recheck_named_s: float = 0.5   # a named face is encoded again this often (0.11-0.15 s each),
                                   # and at once after a processed frame that did not show it
    changed_after: int = 3         # checks in a row that find another face end the track
    same_face: float = None        # a named face's checks count as the same face within this of
                                   # the frames that named it: the face model's own (Bounds.same_face)


@dataclass
class Track:
    """One face followed across frames."""
    id: int
    location: tuple                # (top, right, bottom, left) in the last frame it was seen
    first_t: float
    last_t: float
    votes: TrackVotes = field(default_factory=TrackVotes)
    state: str = "pending"         # pending -> named | unknown; "revisit" = named, not greeted again
    citizen_key: object = None
    decision: object = None        # the FrameDecision that named it
    frames: deque = field(default_factory=deque)   # (t, rgb, location), newest last
    encoding: object = None        # the face encoding of the last frame encoded (1:1 by ID number)
    reference: object = None       # mean encoding of the frames that named it
    views: deque = field(default_factory=lambda: deque(maxlen=10))  # (decision, rgb, location)
                                   # of recent encoded frames, for the snapshot of a greeting
    best_view: object = None       # (rgb, location) of the frame that best matched the name
                                   # (for a visitor named nobody: the clearest, clearest_view)
    checked_t: float = 0.0         # when a named face was last encoded again
    verified_t: float = float("-inf")  # when a check last found the face that was named
    mismatches: int = 0            # checks in a row that found another face
    recheck_due: bool = False      # check at the next frame (a frame missed it, or asked)

    @property
    def named(self):
        return self.state in ("named", "revisit")

    def name_by_id_number(self, citizen_key, t):
        """The visitor typed their ID number and the server matched the face: the track is
        theirs from now on, and their face is watched like any named face."""
        self.state, self.citizen_key = "named", citizen_key
        self.reference, self.checked_t, self.verified_t = self.encoding, t, t
        self.mismatches, self.recheck_due = 0, False

    def check_now(self):
        """Have the face checked at the next frame (the front end saw a blink to confirm)."""
        self.recheck_due = True


@dataclass(frozen=True)
class Outcome:
    """What happened in a frame that a front end should act on."""
    kind: str                      # "greeted" | "unknown" | "left"
    track: Track
    t: float


class Greeter:
    """Holds the face tracks of one camera; process() one frame at a time."""

    def __init__(self, gallery, policy, settings=None, model=None):
        """model: the face model the gallery's templates are of (the gallery's, if not
        given). Neither: no model this device can run, so faces are followed and every
        visitor becomes unknown (sent to the desk), never named."""
        self.model = model or (gallery.model if gallery is not None else None)
        self.gallery = gallery     # replaced whole by the sync worker; read once per frame
        self.policy = policy
        self.settings = settings or GreeterSettings()
        if self.model is not None and self.settings.same_face is None:
            self.settings = replace(self.settings, same_face=self.model.bounds.same_face)
        self.tracks = []
        self.encoded = 0           # faces encoded so far (the costly step; the bench counts it)
        self._ids = itertools.count(1)
        self._last_seen = {}       # citizen key -> last t a track named them was seen

    @property
    def model_id(self):
        """The id of the model it names with (the scale of its sessions' distances), or None."""
        return self.model.id if self.model is not None else None

    def process(self, rgb, t):
        """Outcomes of one RGB frame at time t: greetings, unknown visitors, tracks that left."""
        faces = self._faces(rgb)
        matched, new = self._match(faces)
        seen = {id(tr) for tr, _ in matched}
        outcomes = self._expire(t, seen)
        for track in self.tracks:
            track.recheck_due = track.recheck_due or id(track) not in seen
        for track, location in matched:
            track.location, track.last_t = location, t
        matched += [(self._new_track(location, t), location) for location in new]
        gallery = self.gallery
        kept, scale = scaled_to_fit(rgb, self.settings.keep_max_side) if matched else (rgb, 1.0)
        for track, location in matched:
            small = tuple(round(v * scale) for v in location)
            track.frames.append((t, kept, small))
            if track.named and self._recheck(track, rgb, location, t, gallery) == "changed":
                outcomes.append(self._replace(track, t))
                track = self._new_track(location, t)
                track.frames.append((t, kept, small))
            if track.named or location == faces[0]:      # only the largest face is served
                outcome = self._update(track, rgb, location, t, gallery, (kept, small))
                if outcome:
                    outcomes.append(outcome)
        return outcomes

    def _new_track(self, location, t):
        track = Track(next(self._ids), location, t, t)
        track.frames = deque(maxlen=self.settings.keep_frames)
        self.tracks.append(track)
        return track

    def _recheck(self, track, rgb, location, t, gallery):
        """Check a named track's face when due: None (not due), "same" or "changed" (another
        face changed_after times in a row). Due counts processed frames, not seconds: a slow
        frame (an encoding takes 0.11-0.15 s) is not a gap in which someone could step in."""
        s = self.settings
        if t - track.checked_t < s.recheck_named_s and not track.recheck_due:
            return None
        track.checked_t, track.recheck_due = t, False
        encoding = self._encode(rgb, location)
        if encoding is not None and self._same_face(track, encoding, gallery):
            track.verified_t, track.mismatches = t, 0
            return "same"
        track.mismatches += 1
        return "changed" if track.mismatches >= s.changed_after else None

    def _same_face(self, track, encoding, gallery):
        limit = self.settings.same_face
        if track.reference is not None and self.model.distance(encoding, track.reference) <= limit:
            return True
        hits = [h for h in (gallery.nearest(encoding, 5) if gallery is not None else ())
                if h.citizen_id == track.citizen_key]
        return bool(hits) and hits[0].distance <= limit

    def _replace(self, track, t):
        """End a named track whose face changed: it left (its visit ends), and the citizen may
        be greeted afresh if it was them after all (a false alarm costs a second greeting)."""
        self.tracks.remove(track)
        self._last_seen.pop(track.citizen_key, None)
        return Outcome("left", track, t)

    def _faces(self, rgb):
        """The largest faces in the frame. A coarse pass (no upsampling, about 4x cheaper)
        finds the face of someone standing at the kiosk; only when it finds none does the
        fine pass look for smaller, farther faces. So a visitor at the screen costs the
        least, and an empty hall pays for the thorough look."""
        s = self.settings
        faces = engine.detect_faces(rgb, s.detect_max_side, 0)
        if not faces and s.upsample > 0:
            faces = engine.detect_faces(rgb, s.detect_max_side, s.upsample)
        faces = [f for f in faces if min(engine.face_height(f), engine.face_width(f)) >= s.min_face_px]
        return faces[:s.max_faces]

    def _match(self, faces):
        """([(track, location)], [unmatched locations]): greedy, best overlap first."""
        pairs = sorted(((_similarity(tr.location, f), i, j) for i, tr in enumerate(self.tracks)
                        for j, f in enumerate(faces)), reverse=True)
        used_tracks, used_faces, matched = set(), set(), []
        for score, i, j in pairs:
            if score < self.settings.min_iou or i in used_tracks or j in used_faces:
                continue
            used_tracks.add(i)
            used_faces.add(j)
            matched.append((self.tracks[i], faces[j]))
        return matched, [f for j, f in enumerate(faces) if j not in used_faces]

    def _expire(self, t, seen):
        """End the tracks not seen for track_lost_s; "left" outcomes for them."""
        gone = [tr for tr in self.tracks
                if id(tr) not in seen and t - tr.last_t > self.settings.track_lost_s]
        self.tracks = [tr for tr in self.tracks if tr not in gone]
        return [Outcome("left", tr, t) for tr in gone]

    def _update(self, track, rgb, location, t, gallery, view):
        if track.named:
            self._last_seen[track.citizen_key] = t
            return None
        age = t - track.first_t
        if track.state == "unknown" and age > self.settings.recheck_unknown_s:
            return None
        if self.model is None:     # nothing to name with: a visitor for the desk, in time
            return self._unknown_without_model(track, t, age)
        encoding = self._encode(rgb, location)
        if encoding is None:       # the face cannot be aligned in this frame (turned away)
            return None
        track.encoding = encoding
        decision = decide(gallery, encoding, self.policy)
        track.votes.add(decision, encoding)
        track.views.append((decision, *view))
        verdict, decision = track.votes.verdict(self.policy, gallery)
        if verdict == "named":
            return self._named(track, decision, t)
        if verdict == "unknown" and track.state == "pending" and age >= self.settings.unknown_after_s:
            track.state = "unknown"
            track.best_view = clearest_view(track.views)
            return Outcome("unknown", track, t)
        return None

    def _unknown_without_model(self, track, t, age):
        if track.state == "pending" and age >= self.settings.unknown_after_s:
            track.state = "unknown"
            return Outcome("unknown", track, t)
        return None

    def _encode(self, rgb, location):
        """The face model's template of one face, or None when it cannot be aligned."""
        self.encoded += 1
        return self.model.encodings(rgb, [location])[0]

    def _named(self, track, decision, t):
        track.citizen_key, track.decision = decision.citizen_id, decision
        track.best_view = _best_view(track.views, decision.citizen_id)
        track.reference = self.model.mean(track.votes.encodings[-self.policy.min_frames:]) \
            if track.votes.encodings else None
        track.checked_t, track.verified_t, track.mismatches, track.recheck_due = t, t, 0, False
        last = self._last_seen.get(decision.citizen_id)
        self._last_seen[decision.citizen_id] = t
        if last is not None and t - last < self.settings.regreet_after_s:
            track.state = "revisit"   # the same visit: found again after a missed frame or a step away
            return None
        track.state = "named"
        return Outcome("greeted", track, t)


def clearest_view(views):
    """(rgb, location) of the recent frame a clerk can best compare with photos, for a visitor
    named nobody: eyes open (the latest frame caught one visitor mid-blink, eyes shut), the
    face near its largest (closest to the camera), and of those the sharpest (no motion
    blur). Not the frame nearest some citizen: that would show the clerk the face at its
    most like the device's guess. None without views."""
    from recognition.liveness import eyes_openness, face_eyes
    if not views:
        return None
    openness = [eyes_openness(*face_eyes(rgb, location)) for _, rgb, location in views]
    widest = max(openness)
    open_views = [view for view, seen in zip(views, openness) if seen >= 0.85 * widest]
    largest = max(engine.face_height(view[2]) for view in open_views)
    near = [view for view in open_views if engine.face_height(view[2]) >= 0.8 * largest]
    best = max(near, key=lambda view: _sharpness(view[1], view[2]))
    return best[1], best[2]


SHARPNESS_SIDE = 128     # faces compared for sharpness at one size: a bigger one is not sharper


def _sharpness(rgb, location):
    """Variance of the Laplacian of the face, grey at SHARPNESS_SIDE: low when blurred."""
    import cv2
    top, right, bottom, left = location
    face = rgb[max(0, top):max(0, bottom), max(0, left):max(0, right)]
    if face.size == 0:
        return 0.0
    grey = cv2.cvtColor(cv2.resize(face, (SHARPNESS_SIDE, SHARPNESS_SIDE)), cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def _best_view(views, citizen_id):
    """(rgb, location) of the recent frame closest to citizen_id: the snapshot the server
    checks 1:1 stands for the track's evidence, so it is its best frame, not its last."""
    def distance(view):
        return min((h.distance for h in view[0].candidates if h.citizen_id == citizen_id),
                   default=float("inf"))
    best = min(views, key=distance, default=None)
    return (best[1], best[2]) if best is not None else None


def _similarity(a, b):
    """Overlap of two boxes (IoU), or for a face that moved fast, a closeness in [0, 0.5]
    by centre distance relative to face size, so a quick step sideways keeps its track."""
    iou = _iou(a, b)
    if iou > 0:
        return iou
    size = max(engine.face_height(a), engine.face_width(a), 1)
    dy = (a[0] + a[2] - b[0] - b[2]) / 2
    dx = (a[1] + a[3] - b[1] - b[3]) / 2
    distance = (dx * dx + dy * dy) ** 0.5 / size
    return max(0.0, 0.5 * (1 - distance))


def _iou(a, b):
    top, bottom = max(a[0], b[0]), min(a[2], b[2])
    left, right = max(a[3], b[3]), min(a[1], b[1])
    inter = max(0, bottom - top) * max(0, right - left)
    union = engine.face_height(a) * engine.face_width(a) + engine.face_height(b) * engine.face_width(b) - inter
    return inter / union if union > 0 else 0.0
