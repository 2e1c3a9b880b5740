"""The edge agent: camera frames in, greetings out, sessions stored and forwarded.

The agent owns the loop and the bookkeeping (sessions, outbox, events); what the citizen
sees and hears is a front end's job. A front end is any object with these hooks:

    on_greeted(visit)     a citizen was recognised (the session is already committed)
    on_unknown(visit)     an unknown visitor: send them to a clerk, never guess a name
    on_frame(frame, rgb, tracks)   every processed frame, with the live face tracks (each
                          keeps its recent frames): a liveness challenge hooks in here
    on_left(track)        a face track ended
    close()

and, optionally, attach_agent(agent): a front end with a screen the citizen touches gets the
agent, to call its two requests from the screen's thread: end_visit(track) (the citizen
pressed Done) and want_id_entry() (the idle screen's "type your ID number").

The kiosk (kiosk/presenter.py) and the robot (robot/voice.py) bring their own front ends.
"""
import logging
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone

from recognition import engine, models
from recognition.decision import Policy

from .camera import SourceError
from .greeter import Greeter, GreeterSettings, Outcome
from .speech import greeting_text
from .store import UNNAMED_MODEL

log = logging.getLogger(__name__)

SNAPSHOT_MARGIN = 0.6      # face crop grows by this share of the face size on each side
SNAPSHOT_QUALITY = 85
SNAPSHOT_MAX_SIDE = 800    # the clerk and the server's face check need no more
ID_ENTRY_WAIT_S = 30.0     # an ID-number entry asked for on the idle screen waits this long
                           # (source time) for a face at the screen to check it against


@dataclass
class Visit:
    """One greeting or unknown visitor, as handed to the front end."""
    session: dict
    track: object
    frame: object
    t: float
    citizen_key: object = None
    name: str = ""
    language: str = ""
    greeting: str = ""
    evidence: list = field(default_factory=list)   # crops of the blink, for the server to check


@dataclass
class Stats:
    frames: int = 0                  # frames processed
    busy_s: float = 0.0              # time spent processing them
    encoding_frames: int = 0         # ... of which a face was encoded in (someone undecided,
    encoding_busy_s: float = 0.0     # or a named face checked again): what greeting costs
    first_frame_wall: float = None   # monotonic time the first frame was read
    events: dict = field(default_factory=dict)


class Agent:
    """Runs the recognition loop over a camera; stores sessions; drives a front end."""

    def __init__(self, camera, store, syncer, events, front_end, settings=None,
                 regreet_after_s=None):
        self.camera = camera
        self.store = store
        self.syncer = syncer
        self.events = events
        self.front_end = front_end
        self.settings = settings or GreeterSettings()
        self.regreet_after_s = regreet_after_s
        self.greeter = None
        self.model = None           # the face model the registry greets on, if this device has it
        self.config = {}
        self.citizens = {}
        self.stats = Stats()
        self._stop = threading.Event()
        self._requests = queue.Queue()   # the screen's requests, for the recognition thread
        self._requests_lock = threading.Lock()
        self._looping = True        # False once the source has ended: requests are answered at once
        self._last_t = 0.0          # source time of the newest frame
        self._visits = {}           # track id -> session id of the visit it is in now
        self._ended = set()         # ids of tracks whose visit the citizen ended with Done
        self._id_entry_until = None  # source time an asked-for ID-number entry waits until
        syncer.on_gallery = self.reload_gallery
        attach = getattr(front_end, "attach_outbox", None)
        if attach is not None:   # the case-file flow's reports ride the outbox
            attach(syncer)
        attach = getattr(front_end, "attach_agent", None)
        if attach is not None:   # a touch screen's Done and "type your ID number"
            attach(self)

    # --- start-up ------------------------------------------------------------------------------

    def prepare(self):
        """Load the models and the freshest gallery before the first frame, so the first
        visitor waits for neither. Offline, the cached gallery and config are used."""
        self.config = self.syncer.fetch_config() or {}
        self.syncer.sync_interval_s = float(self.config.get("sync_interval_s", self.syncer.sync_interval_s))
        self.syncer.sync_gallery()
        self.reload_gallery()
        self.events.emit("ready", citizens=len(self.citizens), outbox=self.store.outbox_count(),
                         online=self.syncer.online is not False and not self.syncer.revoked)

    def _policy(self, model):
        """The registry's policy for this device: a threshold for its own gallery size,
        measured on its own faces ("calibrated"); before it has heard from a registry that
        does, the model's prior for the gallery it holds."""
        c = self.config
        defaults = Policy.for_model(model, max(1, len(self.citizens)))
        return Policy(threshold=c["threshold"] if c.get("calibrated") else defaults.threshold,
                      margin=c.get("margin", defaults.margin),
                      min_frames=c.get("min_frames", defaults.min_frames),
                      unknown_after=c.get("unknown_after", defaults.unknown_after),
                      evidence_frames=c.get("evidence_frames", defaults.evidence_frames),
                      evidence_window=c.get("evidence_window", defaults.evidence_window))

    def _greeter_settings(self, model):
        regreet = self.regreet_after_s
        if regreet is None:
            regreet = self.config.get("regreet_after_s", self.settings.regreet_after_s)
        return replace(self.settings, regreet_after_s=float(regreet),
                       same_face=float(self.config.get("same_face", model.bounds.same_face)))

    def reload_gallery(self):
        """Swap in the cached gallery (called after each sync that changed it). When the
        registry's face model changed (a re-encoded registry), a greeter on the new model is
        made with the new config's thresholds and swapped in whole (the sync thread calls
        this while frames go on); when this device does not have the model, the greeter
        names nobody: visitors are followed and recorded as unknown, sent to the desk."""
        self.citizens = self.store.citizens()
        config = self.store.get_meta("config") or self.config
        model_id = self.store.gallery_model or config.get("model") or UNNAMED_MODEL
        greeter = self.greeter
        if greeter is None or greeter.model_id != model_id:
            self.config = config
            self.model = self._face_model(model_id)
            greeter = self._new_greeter(self.model)
        if self.model is not None:
            greeter.gallery = self.store.gallery(self.model)
        self.greeter = greeter

    def _new_greeter(self, model):
        if model is None:
            return Greeter(None, Policy(threshold=0.0, margin=0.0), self.settings)
        warm_up_engine(model)
        return Greeter(None, self._policy(model), self._greeter_settings(model), model)

    def _face_model(self, model_id):
        """The profile of model_id with its file checked, or None (said once, as an event)."""
        try:
            model = models.by_id(model_id)
            model.check_file()
            return model
        except models.UnknownModel:
            self.syncer.model_missing(model_id)
        except models.ModelFileError as e:
            self.syncer.model_missing(model_id, str(e))
        return None

    # --- the loop ------------------------------------------------------------------------------

    def run(self, exit_at_end=False):
        """Process frames until the source ends or stop(); then deliver (exit_at_end) or idle."""
        self.prepare()
        self.syncer.start()
        failure = None
        try:
            self._loop()
        except SourceError as e:
            failure = e       # the camera died: deliver what is waiting, then stop loudly
            self.events.emit("camera_failed", reason=str(e))
        finally:
            self._after_the_last_frame()
            self.camera.close()
        self.events.emit("end", frames=self.stats.frames, dropped=getattr(self.camera, "dropped", 0))
        if not exit_at_end and failure is None:
            self._stop.wait()
        self.syncer.stop()
        self.syncer.flush_outbox()
        self.front_end.close()  # before "exit": its last steps (case file, speech) end first
        waiting = self.syncer.flush_outbox()    # and the reports those steps made
        self.syncer.detach()    # the store closes after this: a screen still up asks directly
        self.events.emit("exit", outbox=waiting, dead_letters=len(self.store.dead_letters()),
                         refused_reports=len(self.store.refused_reports()))
        if failure is not None:
            raise failure
        return waiting

    def stop(self):
        self._stop.set()
        stop_camera = getattr(self.camera, "stop", None)
        if stop_camera is not None:
            stop_camera()       # a camera being waited for gives up at once

    def _loop(self):
        while not self._stop.is_set():
            frame = self.camera.read()
            if frame is None:
                return
            if self.stats.first_frame_wall is None:
                self.stats.first_frame_wall = time.monotonic()
            started = time.monotonic()
            greeter = self.greeter
            encoded = greeter.encoded
            self.handle_frame(frame)
            spent = time.monotonic() - started
            self.stats.frames += 1
            self.stats.busy_s += spent
            if greeter.encoded > encoded:
                self.stats.encoding_frames += 1
                self.stats.encoding_busy_s += spent

    def _after_the_last_frame(self):
        """The source has ended (a video's last frame): Done pressed from now on, by a case file
        that opened late, is answered at once, and what came meanwhile now."""
        with self._requests_lock:
            self._looping = False
            self._drain_ends()

    def _drain_ends(self):
        while not self._requests.empty():
            kind, track = self._requests.get()
            if kind == "end" and track is not None:
                self._end(track, self._last_t)

    def handle_frame(self, frame):
        """Recognise one frame and act on what it shows."""
        import cv2
        self._last_t = frame.t
        rgb = cv2.cvtColor(frame.image, cv2.COLOR_BGR2RGB)
        greeter = self.greeter       # the sync thread may swap in another between frames
        for outcome in greeter.process(rgb, frame.t):
            if not self._deliverable(outcome):
                continue
            if outcome.kind == "greeted":
                self._greeted(outcome, frame, greeter.model_id)
            elif outcome.kind == "unknown":
                self._unknown(outcome, frame, greeter.model_id)
            else:
                self.front_end.on_left(outcome.track)
        self._answer_requests(frame, greeter)
        # a track whose visit ended is not "present" for the front end: nothing late (a case
        # file, a greeting by ID number) is shown for it
        self.front_end.on_frame(frame, rgb, [tr for tr in greeter.tracks if tr.id not in self._ended])

    # --- the screen's requests: Done, and "type your ID number" ---------------------------------

    def end_visit(self, track=None):
        """The citizen pressed Done (called from the screen's thread). At the next frame the
        front end hears that the track left, and nothing more of it while the greeter still
        follows the face: they are walking away, so no second greeting and no new unknown
        visitor; once out of sight for regreet_after_s they are a new visit, as ever. An
        ID-number entry asked for and not begun is called off too."""
        self._requests.put(("end", track))
        with self._requests_lock:
            if not self._looping:   # no frame will come to answer it
                self._drain_ends()

    def want_id_entry(self):
        """Someone pressed "type your ID number" on the idle screen (the screen's thread): the
        face at the screen, if it is in no visit yet, becomes an unknown visitor at once, so
        the ID-number path (its blink first, then the server's 1:1 check) runs for it without
        waiting for the greeter to give up; with no face in view, the first one to come
        within ID_ENTRY_WAIT_S does."""
        self._requests.put(("id", None))

    def _deliverable(self, outcome):
        """False for what the front end must not hear: anything of a track whose visit the
        citizen ended, and the greeter's own "unknown" or greeting for a track already in a
        visit (one made an unknown visitor when they asked to type their ID number)."""
        track_id = outcome.track.id
        if track_id in self._ended:
            if outcome.kind == "left":
                self._ended.discard(track_id)
            return False
        if outcome.kind == "left":
            self._visits.pop(track_id, None)
        elif outcome.kind in ("unknown", "greeted") and track_id in self._visits:
            return False        # already in a visit (made one by "type your ID number")
        return True

    def _answer_requests(self, frame, greeter):
        while not self._requests.empty():
            kind, track = self._requests.get()
            if kind == "end":
                self._id_entry_until = None
                if track is not None:
                    self._end(track, frame.t)
            else:
                self._id_entry_until = frame.t + ID_ENTRY_WAIT_S
        if self._id_entry_until is None:
            return
        if frame.t > self._id_entry_until:
            self._id_entry_until = None
            return
        track = _free_face(greeter.tracks, frame.t, self._visits)
        if track is not None:
            self._id_entry_until = None
            self._ended.discard(track.id)        # Done, then "type your ID number": a new visit
            self._unknown(Outcome("unknown", track, frame.t), frame, greeter.model_id, asked=True)

    def _end(self, track, t):
        session_id = self._visits.pop(track.id, None)
        if session_id is None:
            return      # it left already (the front end was told then)
        self._ended.add(track.id)
        self.events.emit("visit_ended", t=round(t, 3), session_id=session_id, reason="done")
        self.front_end.on_left(track)

    def _greeted(self, outcome, frame, model_id):
        track, decision = outcome.track, outcome.track.decision
        citizen = self.citizens.get(track.citizen_key, {"display_name": "", "language": "zh"})
        session = self._session(track, outcome.t, "greeted", decision, model_id)
        self.record_session(session, frame, track.location, track.best_view)
        visit = Visit(session, track, frame, outcome.t, track.citizen_key, citizen["display_name"],
                      citizen["language"],
                      greeting_text(citizen["display_name"], citizen["language"],
                                    self.config.get("greeting_templates"), self.config.get("honorifics")))
        self.events.emit("greeted", citizen_key=track.citizen_key, name=visit.name, t=round(outcome.t, 3),
                         distance=round(decision.distance, 4), margin=round(decision.margin, 4),
                         session_id=session["id"])
        self._visits[track.id] = session["id"]
        self.front_end.on_greeted(visit)

    def _unknown(self, outcome, frame, model_id, asked=False):
        """An unknown visitor: the greeter gave up on the track, or (asked) the visitor asked
        to type their ID number before it did."""
        track = outcome.track
        best = min(track.votes.decisions, key=lambda d: d.distance, default=None)
        session = self._session(track, outcome.t, "unknown", best, model_id)
        # the best frame's own refusal, or "agreement": it passed, but the frames did not agree
        session["refused_by"] = (best.rule or "agreement") if best is not None else \
            (None if model_id else "model_missing")
        self.record_session(session, frame, track.location, track.best_view)
        self.events.emit("unknown_visitor", t=round(outcome.t, 3), session_id=session["id"],
                         **({"asked_for_id_entry": True} if asked else {}))
        self._visits[track.id] = session["id"]
        self.front_end.on_unknown(Visit(session, track, frame, outcome.t))

    def _session(self, track, t, outcome, decision, model_id):
        started = datetime.now(timezone.utc) - timedelta(seconds=max(0.0, t - track.first_t))
        finite = decision is not None and decision.distance != float("inf")
        return {"id": str(uuid.uuid4()),
                "registry_id": self.store.registry_id,
                "model": model_id,               # the scale of its distances
                "citizen_key": track.citizen_key if outcome == "greeted" else None,
                "outcome": outcome,
                "candidates": [{"key": hit.citizen_id, "distance": round(hit.distance, 4)}
                               for hit in (decision.candidates if decision is not None else ())],
                "distance": round(decision.distance, 4) if finite else None,
                "margin": round(min(decision.margin, 1e6), 4) if finite else None,
                "time_to_greet": round(t - track.first_t, 3) if outcome == "greeted" else None,
                "liveness": "not_run",
                "started_at": started.isoformat(timespec="milliseconds")}

    def record_session(self, session, frame=None, location=None, view=None):
        """Commit a session (and its snapshot) to the outbox, then wake the uploader.
        Called before anything is announced: a crash after a greeting never loses its session.
        view: (rgb, location) of the frame to show instead of this one (a greeting's best)."""
        if view is not None:
            snapshot = snapshot_jpeg(view[0], view[1], rgb=True)
        else:
            snapshot = snapshot_jpeg(frame.image, location) if frame is not None else None
        self.store.add_session(session, snapshot)
        self.syncer.nudge()


def _free_face(tracks, t, visits):
    """The face at the screen (the largest seen in the frame at t) when it is in no visit,
    else None: a passer-by behind someone being served is never made a visitor."""
    seen = [tr for tr in tracks if tr.last_t == t]
    if not seen:
        return None
    largest = max(seen, key=lambda tr: engine.face_height(tr.location) * engine.face_width(tr.location))
    return None if largest.id in visits else largest


def warm_up_engine(model):
    """Load dlib's detector and landmarks and the face model, and run them once on a blank
    frame: the first detection and encoding also allocate their buffers, which the first
    visitor should not wait for."""
    import numpy as np
    engine.warm_up()
    blank = np.zeros((360, 640, 3), dtype=np.uint8)
    engine.detect_faces(blank, 480, 1)
    model.encodings(blank, [(100, 380, 260, 220)])


def snapshot_jpeg(image, location=None, rgb=False):
    """JPEG bytes of the face (with some margin) or of the whole frame, at most
    SNAPSHOT_MAX_SIDE pixels across: a 4K camera's crop of someone leaning in was larger than
    the server takes (4 megapixels), and the visit was refused with its case file and ticket.
    image: a camera frame (BGR), or a kept frame (RGB, rgb=True: converted after the crop)."""
    import cv2
    picture = image
    if location is not None:
        top, right, bottom, left = location
        pad_y, pad_x = int((bottom - top) * SNAPSHOT_MARGIN), int((right - left) * SNAPSHOT_MARGIN)
        height, width = picture.shape[:2]
        picture = picture[max(0, top - pad_y):min(height, bottom + pad_y),
                          max(0, left - pad_x):min(width, right + pad_x)]
    scale = SNAPSHOT_MAX_SIDE / max(picture.shape[:2])
    if scale < 1:
        size = (round(picture.shape[1] * scale), round(picture.shape[0] * scale))
        picture = cv2.resize(picture, size, interpolation=cv2.INTER_AREA)
    if rgb:
        picture = cv2.cvtColor(picture, cv2.COLOR_RGB2BGR)   # imencode writes BGR
    ok, data = cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_QUALITY, SNAPSHOT_QUALITY])
    return data.tobytes() if ok else None


class FrontEnd:
    """What a citizen sees and hears; the hooks a front end does not need stay no-ops."""

    speaker = None

    def on_greeted(self, visit):
        pass

    def on_unknown(self, visit):
        pass

    def on_frame(self, frame, rgb, tracks):
        pass

    def on_left(self, track):
        pass

    def close(self):
        if self.speaker is not None:
            self.speaker.close()
