"""After the greeting: the blink challenge, then the case file (and a queue ticket).

CaseFileFlow is an agent front end (see device/agent.py) that wraps a presenter, the part
that shows and says things (the kiosk's screen and voice, or the robot's voice):

    greeted -> presenter.on_greeted, presenter.on_blink_request, a BlinkChallenge on that track;
        while it runs, presenter.on_blink_progress(visit, seconds_left, feedback, attempt) each
        time the countdown or the feedback ("look": look at the screen, "blink": eyes found)
        changes
    no blink in the first window, face still there -> {"event": "liveness_retry"} and
        presenter.on_blink_retry: a second window (a natural blink can come late)
    blink seen in time -> the verdict with its evidence is committed to the outbox, then
        {"event": "liveness_passed", "t": ...}, presenter.on_liveness_passed at once (the
        screen moves on even offline); once the registry has taken the verdict it is asked to
        open the case file -> {"event": "case_file_opened", "case_numbers": [...], "t": ...}
        -> presenter.on_case_file(visit, summary)
    no blink in time, or the face left -> the verdict is committed to the outbox, then
        {"event": "liveness_failed", "t": ...}; the file stays closed ->
        presenter.on_liveness_failed(visit)

    unknown visitor: liveness first. Their track's blinks are watched from the moment they
        are not recognised (people blink while they type). They type their ID number
        (identify(visit, id_number, on_result), from the screen): no blink seen yet ->
        on_result("no_blink") (blink, press OK again); else the server is told of the blink
        and checks the track's face encoding 1:1 against that citizen -> on a match
        {"event": "greeted", "identified_by": "id_number"}, presenter.on_greeted and
        on_liveness_passed, then the case file (phone digits for details); otherwise
        on_result("no_match") and the visitor keeps their ticket

The recognition loop never waits for the network: server calls run in one worker thread, in
order. Every report of a visit (the verdict, the ticket request; the kiosk's digit tries go
through the client, device/client.py) rides the device's outbox (device/sync.py): committed
before it is announced, sent after its session, in order, exactly once, after any crash. A
step that needs the answer waits for it up to upload_wait_s; while the registry cannot be
reached the citizen is told so, and the report stays queued:

    the case file cannot open offline (it is the registry's): {"event":
        "case_file_unavailable", "queued": true} and the desk notice; it does not open later,
        in front of whoever stands there then
    no ticket number can be given offline (numbers are the site's, shared by its devices and
        called from the clerks' list; a number made up here could be another visitor's):
        {"event": "ticket_unavailable", "queued": true}, presenter.on_ticket_unavailable; the
        request is sent when the registry is back (it numbers a visit only within its
        case-file age), and the number is shown then if the visitor is still at the screen:
        {"event": "ticket_issued", "late": true, "shown": true or false}

Presenter hooks beyond the agent's four are optional: a presenter without on_ticket simply
does not show tickets.
"""
import dataclasses
import logging
import queue
import threading
import time

from recognition.liveness import BlinkPolicy

from .client import Offline, Rejected, Revoked, liveness_body
from .liveness_step import BlinkChallenge
from .speech import greeting_text

IDENTIFY_WAIT_S = 5.0       # a typed ID number waits this long for the registry to take the blink
ID_WATCH_S = 180.0          # an unknown visitor's blinks count this long for the ID-number check

log = logging.getLogger(__name__)


def once_uploaded(call, wait_s, poll_s=0.25, give_up=None, clock=time.monotonic):
    """call() retried while the server does not have the session yet (404) or cannot be
    reached, for up to wait_s or until the give_up event is set; then the failure is raised."""
    deadline = clock() + wait_s
    while True:
        try:
            return call()
        except Rejected as e:
            if e.status != 404 or clock() >= deadline or (give_up and give_up.is_set()):
                raise
        except Offline:
            if clock() >= deadline or (give_up and give_up.is_set()):
                raise
        time.sleep(poll_s)


class ServerSteps:
    """One worker thread that runs jobs (callables) in order, off the recognition loop."""

    def __init__(self):
        self._jobs = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="casefile-steps", daemon=True)
        self._thread.start()

    def submit(self, job):
        self._jobs.put(job)

    def close(self, timeout=60.0):
        """Finish the queued jobs (up to timeout), then stop."""
        self._jobs.put(None)
        self._thread.join(timeout)

    def _run(self):
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                job()
            except Exception:  # one visit's failure must not stop the next visit's steps
                log.exception("case-file step failed")


class CaseFileFlow:
    """Agent front end: blink challenge after each greeting, then the case file."""

    def __init__(self, presenter, client, events, policy=None, tickets=False, upload_wait_s=15.0,
                 clock=time.monotonic, attempts=2):
        self.presenter = presenter
        self.client = client
        self.events = events
        self.policy = policy or BlinkPolicy()
        self.tickets = tickets
        self.upload_wait_s = upload_wait_s
        self.attempts = attempts    # blink windows before the citizen is sent to the desk
        self.outbox = None          # the device's outbox (a Syncer), given by the agent
        self._late_tickets = {}     # ticket report id -> the visit still owed its number
        self._clock = clock
        self._challenges = {}       # track id -> BlinkChallenge
        self._present = set()       # ids of the tracks in the latest frame (a worker reads it)
        self._shown = {}            # track id -> the progress last shown
        self._identified = queue.Queue()   # greetings by ID number, for the recognition thread
        self._id_requests = queue.Queue()  # typed ID numbers, for the recognition thread
        self._watching = {}         # track id -> BlinkChallenge of an unknown visitor (liveness first)
        self._last_t = 0.0
        self._steps = ServerSteps()
        self._closing = threading.Event()   # at exit, one try per step: no waiting for a server

    def attach_outbox(self, outbox):
        """The outbox every report of a visit rides (device/sync.py Syncer); answers that come
        after their step stopped waiting come back to _answered_late."""
        self.outbox = outbox
        outbox.on_report = self._answered_late

    def _report(self, visit, kind, body):
        """Commit a report of the visit to the outbox; its id (one verdict and one ticket a
        visit: the same report again is the one already queued or answered)."""
        session_id = visit.session["id"]
        return self.outbox.add_report(session_id, kind, body, f"{session_id}:{kind}", awaited=True)

    # --- agent hooks ----------------------------------------------------------------------------

    def on_greeted(self, visit):
        self.presenter.on_greeted(visit)
        _call(self.presenter, "on_blink_request", visit)
        self._challenges[visit.track.id] = BlinkChallenge(visit, visit.t, self.policy)

    def on_unknown(self, visit):
        # Liveness first: the visitor's blinks are watched from now on (they blink while they
        # type), so an ID number is only ever checked for a live face, never for a photo.
        self._watching[visit.track.id] = BlinkChallenge(visit, visit.t, BlinkPolicy(window_s=ID_WATCH_S))
        self.presenter.on_unknown(visit)
        if self.tickets:
            ticket = self._report(visit, "ticket", {})
            self._later(visit, visit.t, lambda v, t_of: self._ticket(v, t_of, ticket))

    def on_frame(self, frame, rgb, tracks):
        self._last_t = frame.t
        while not self._identified.empty():
            self._greet_identified(self._identified.get(), frame.t, tracks)
        for watcher in self._watching.values():
            watcher.feed()
        while not self._id_requests.empty():
            self._id_number_typed(*self._id_requests.get(), frame.t)
        self._present = {track.id for track in tracks}
        for track_id, challenge in list(self._challenges.items()):
            challenge.feed()
            verdict = challenge.verdict(frame.t)
            if verdict == "passed" and not _confirmed(challenge):
                verdict = None      # the face is checked again before the blink counts
            if verdict == "failed" and challenge.attempt < self.attempts:
                self._retry(track_id, frame.t)
            elif verdict:
                self._decided(track_id, verdict, frame.t, "blink" if verdict == "passed" else "no_blink")
            else:
                self._progress(track_id, challenge, frame.t)
        self.presenter.on_frame(frame, rgb, tracks)

    def _progress(self, track_id, challenge, t):
        shown = challenge.progress(t) + (challenge.attempt,)
        if self._shown.get(track_id) != shown:
            self._shown[track_id] = shown
            _call(self.presenter, "on_blink_progress", challenge.visit, *shown)

    def _retry(self, track_id, t):
        """The first window passed without a blink while the face stayed: a second chance."""
        old = self._challenges[track_id]
        visit = old.visit
        self._challenges[track_id] = BlinkChallenge(visit, t, self.policy, attempt=old.attempt + 1)
        self.events.emit("liveness_retry", t=round(t, 3), session_id=visit.session["id"],
                         attempt=old.attempt + 1)
        _call(self.presenter, "on_blink_retry", visit)

    def on_left(self, track):
        self._present.discard(track.id)
        self._watching.pop(track.id, None)
        if track.id in self._challenges:
            self._decided(track.id, "failed", self._last_t, "left")
        self.presenter.on_left(track)

    def close(self):
        """Finish the server steps already due, then close the presenter. A challenge still
        waiting for its blink when the source ended has no verdict and reports none."""
        self._challenges.clear()
        self._shown.clear()
        self._closing.set()
        self._steps.close(self.upload_wait_s + 30)
        self.presenter.close()

    # --- a visitor the camera did not recognise, by ID number --------------------------------

    def identify(self, visit, id_number, on_result):
        """Check a typed ID number 1:1 against the visitor's face (called from the screen's
        thread). on_result(status) gets "match", "no_match", "too_many", "invalid",
        "offline", "no_face" or "no_blink" (no blink seen yet: blink, then press OK again);
        on a match the greeting follows on the recognition thread."""
        self._id_requests.put((visit, id_number, on_result))

    def _id_number_typed(self, visit, id_number, on_result, t):
        """On the recognition thread: liveness first, then the server's 1:1 check."""
        watcher, encoding = self._watching.get(visit.track.id), visit.track.encoding
        status = "no_face" if encoding is None or watcher is None else \
            None if watcher.verdict(t) == "passed" else "no_blink"
        if status:
            on_result(status)    # the screen shows the answer before the event says it was given
            self.events.emit("id_number_checked", session_id=visit.session["id"], result=status)
            return
        verdict = self._report(visit, "liveness", liveness_body("passed", round(t, 3),
                                                                watcher.evidence.payload()))
        self.events.emit("liveness_passed", t=round(t, 3), session_id=visit.session["id"], citizen_key=None)
        encoding, snapshot = list(encoding), _face_now(visit.track)
        self._steps.submit(lambda: self._check_id_number(visit, id_number, encoding, on_result,
                                                         snapshot, verdict))

    def _check_id_number(self, visit, id_number, encoding, on_result, snapshot, verdict):
        session_id = visit.session["id"]
        try:
            # The server checks an ID number only for a visit whose blink it saw itself.
            self.outbox.await_report(verdict, IDENTIFY_WAIT_S, give_up=self._closing)
            answer = once_uploaded(lambda: self.client.identify(session_id, id_number, encoding, snapshot,
                                                                visit.session.get("model")),
                                   IDENTIFY_WAIT_S, give_up=self._closing)
        except Rejected as e:
            status = "invalid" if e.status == 400 else "no_match"
        except Offline as e:
            status = "too_many" if "429" in str(e) else "offline"
        except Revoked:
            status = "offline"
        else:
            status = "match" if answer.get("matched") else "no_match"
            if status == "match":
                self._identified.put((visit, answer))
        on_result(status)
        self.events.emit("id_number_checked", session_id=session_id, result=status)

    def _greet_identified(self, item, t, tracks):
        """The visitor is who they said, and blinked before: greet them and open the file."""
        visit, answer = item
        if visit.track not in tracks:
            return      # gone before the answer came: nobody to greet
        session = dict(visit.session, citizen_key=answer["citizen_key"], outcome="greeted",
                       identified_by="id_number")
        greeted = dataclasses.replace(
            visit, session=session, t=t, citizen_key=answer["citizen_key"], name=answer["name"],
            language=answer["language"], greeting=greeting_text(answer["name"], answer["language"]))
        self.events.emit("greeted", citizen_key=greeted.citizen_key, name=greeted.name, t=round(t, 3),
                         session_id=session["id"], identified_by="id_number")
        self._watching.pop(visit.track.id, None)
        visit.track.name_by_id_number(answer["citizen_key"], t)   # someone stepping in ends it
        self.presenter.on_greeted(greeted)
        _call(self.presenter, "on_liveness_passed", greeted)
        verdict = f"{session['id']}:liveness"     # taken by the registry before the ID number was
        self._later(greeted, t, lambda v, t_of: self._open_case_file(v, t_of, verdict))

    # --- after the verdict ----------------------------------------------------------------------

    def _decided(self, track_id, verdict, t, reason):
        challenge = self._challenges.pop(track_id)
        visit = dataclasses.replace(challenge.visit, evidence=challenge.evidence.payload()) \
            if verdict == "passed" else challenge.visit
        self._shown.pop(track_id, None)
        # committed before it is announced: "liveness_passed" in the log means the registry
        # will be told, after any crash of either side
        report = self._report(visit, "liveness", liveness_body(verdict, round(t, 3), visit.evidence))
        fields = {"t": round(t, 3), "session_id": visit.session["id"], "citizen_key": visit.citizen_key}
        if verdict == "passed":
            self.events.emit("liveness_passed", **fields)
            _call(self.presenter, "on_liveness_passed", visit)
            self._later(visit, t, lambda v, t_of: self._open_case_file(v, t_of, report))
        else:
            self.events.emit("liveness_failed", reason=reason, **fields)
            _call(self.presenter, "on_liveness_failed", visit)
            if self.tickets:
                ticket = self._report(visit, "ticket", {})
                self._later(visit, t, lambda v, t_of: self._ticket(v, t_of, ticket))

    def _later(self, visit, t, step):
        """Run step(visit, t_of) in the worker; t_of() is the source time when it is called."""
        wall = self._clock()
        self._steps.submit(lambda: step(visit, lambda: round(t + self._clock() - wall, 3)))

    def _server(self, call):
        return once_uploaded(call, self.upload_wait_s, give_up=self._closing)

    def _open_case_file(self, visit, t_of, verdict):
        self._show_case_file(visit, t_of, verdict)
        if self.tickets:
            self._ticket(visit, t_of)

    def _show_case_file(self, visit, t_of, verdict):
        session_id = visit.session["id"]
        try:
            self.outbox.await_report(verdict, self.upload_wait_s, give_up=self._closing)
        except (Offline, Rejected, Revoked) as e:
            # the file is the registry's: it does not open before the registry took the blink,
            # nor later, in front of whoever stands there then (queued: the verdict still waits)
            self._case_file_unavailable(visit, t_of, e, queued=isinstance(e, Offline))
            return
        try:
            if visit.track.id not in self._present:
                raise Offline("the visitor left before the case file opened")
            summary = self._server(lambda: self.client.open_case_file(session_id, visit.citizen_key))
        except (Offline, Rejected, Revoked) as e:
            self._case_file_unavailable(visit, t_of, e)
            return
        self.events.emit("case_file_opened", session_id=session_id,
                         case_numbers=[c["case_number"] for c in summary["cases"]], t=t_of())
        if visit.track.id in self._present:     # never shown to whoever stands there now
            _call(self.presenter, "on_case_file", visit, summary)
        else:
            self.events.emit("case_file_not_shown", session_id=session_id, reason="left", t=t_of())

    def _case_file_unavailable(self, visit, t_of, error, queued=False):
        self.events.emit("case_file_unavailable", session_id=visit.session["id"], reason=str(error),
                         t=t_of(), queued=queued)
        _call(self.presenter, "on_case_file_unavailable", visit)

    def _ticket(self, visit, t_of, report=None):
        """The visit's queue number, from the registry (the ticket request rides the outbox).
        Offline, the citizen gets no number now, and is told so: one made up here could be
        another visitor's. The request stays queued; its number is shown when it comes, if
        the visitor is still at the screen."""
        session_id = visit.session["id"]
        report = report or self._report(visit, "ticket", {})
        self._late_tickets[report] = visit      # before the wait ends: a late number finds it
        try:
            answer = self.outbox.await_report(report, self.upload_wait_s, give_up=self._closing)
        except (Offline, Rejected, Revoked) as e:
            queued = isinstance(e, Offline)
            if not queued:
                self._late_tickets.pop(report, None)
            self.events.emit("ticket_unavailable", session_id=session_id, reason=str(e), t=t_of(),
                             queued=queued)
            _call(self.presenter, "on_ticket_unavailable", visit)
            return
        self._late_tickets.pop(report, None)
        self._issued(visit, answer, t_of())

    def _issued(self, visit, answer, t, late=False):
        number, counter = answer["ticket_number"], answer.get("counter") or ""
        shown = visit is not None and (not late or visit.track.id in self._present)
        self.events.emit("ticket_issued", session_id=answer.get("session_id") or visit.session["id"],
                         ticket_number=number, counter=counter, t=t,
                         **({"late": True, "shown": shown} if late else {}))
        if shown:
            _call(self.presenter, "on_ticket", visit, number, counter, answer.get("day", ""))

    def _answered_late(self, report, answer, error):
        """A report answered after its step stopped waiting (the registry came back, or the
        device restarted): a ticket's number goes to the screen if its visitor is still there."""
        if report["kind"] != "ticket":
            return      # the outbox's own event says it was delivered; nothing to show now
        visit = self._late_tickets.pop(report["id"], None)
        if answer is not None:
            self._steps.submit(lambda: self._issued(visit, answer, round(self._last_t, 3), late=True))


class Presenters:
    """Several presenters as one (the robot's chest screen and its voice): each hook goes to
    every presenter that has it, in the order given."""

    def __init__(self, *presenters):
        self.presenters = presenters

    def __getattr__(self, hook):
        methods = [getattr(p, hook) for p in self.presenters if hasattr(p, hook)]
        if not methods:
            raise AttributeError(hook)

        def every(*args):
            for method in methods:
                method(*args)
        return every


def _call(presenter, hook, *args):
    """presenter.hook(*args) when the presenter has that hook."""
    method = getattr(presenter, hook, None)
    if method is not None:
        method(*args)


def _face_now(track):
    """A JPEG of the track's face in its latest frame: who is at the screen as OK is pressed
    (the session's snapshot is from when they were not recognised, often a turned head)."""
    from .agent import snapshot_jpeg
    if not track.frames:
        return None
    _, rgb, location = track.frames[-1]
    return snapshot_jpeg(rgb, location, rgb=True)


def _confirmed(challenge):
    """A seen blink counts once the greeter has checked, after it, that the face is still the
    one it named (Track.verified_t); until then it asks for that check. Else a live face
    swapped in for a photo, eyes opening as it arrives, blinked for the photo's citizen
    before the next regular check."""
    track, blink = challenge.track, challenge.blink
    verified = getattr(track, "verified_t", None)
    if verified is None or blink is None or verified >= blink.end:
        return True
    track.check_now()
    return False
