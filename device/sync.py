"""Store and forward: keep the gallery cache current and deliver the outbox, in the background.

The recognition loop never waits for the network. A worker thread delivers the outbox as
soon as the loop nudges it (a new session) and every `retry_s` while sessions wait, and
pulls gallery deltas every `sync_interval_s`. Each session is deleted from the outbox only
after the server's 2xx, and the server keys sessions by their id, so a retry after a lost
answer delivers it once. A revoked token stops all syncing and deletes the cached face templates; the sessions stay
on the device. A 429 (the server paces each device's pulls and uploads) is waited out for
the Retry-After it names, pulls and uploads apart: a device that kept asking was refused
each time, and polled the server as fast as it could answer.

Reports ride the same outbox. What a visit says after its session (the blink's verdict with
its evidence, the ticket request, each try of phone digits) is committed to the store before
it is announced or sent (add_report), and only this worker sends it: after its session's
upload, in the order recorded, one at a time, and it leaves the queue only on the
registry's answer. The registry takes each exactly once: a verdict and a ticket are keyed
by their session (the same verdict again changes nothing; a visit keeps its number), a digit
try by its try_id (a try already counted is answered as it was). A step that needs the
answer (the case file after the blink, the number for the screen) waits for it with
await_report(); an answer that comes after it stopped waiting goes to on_report.
"""
import logging
import sqlite3
import threading
import time
import uuid

from recognition.models import UnknownModel

from .client import Offline, Rejected, Revoked
from .store import ModelChanged, RegistryMismatch

log = logging.getLogger(__name__)

DONE, FAILED_HERE, UNREACHED = "done", "failed here", "unreached"   # one delivery's outcome
FAILING_RUN = 3     # sessions in a row the server fails on: it fails on everything, stop for now


def _named(line):
    """A report's line as event fields."""
    return {"report_id": line["id"], "session_id": line["session_id"], "kind": line["kind"]}


def _outcome(known):
    """(answer, error) of a report the store holds as answered or refused: a refusal, and a
    digit try's 4xx answer (wrong, locked, wait), are the Rejected they came as."""
    answer = known["answer"] or {}
    refused = known["state"] != "delivered" or answer.get("status", 200) != 200
    if not refused:
        return answer, None
    return None, Rejected(answer.get("status", 409), answer.get("message") or known["reason"])


class Syncer:
    """Moves data between the Store and the server through an ApiClient; reports events."""

    def __init__(self, store, client, events, on_gallery=None, sync_interval_s=30.0, retry_s=2.0):
        self.store = store
        self.client = client
        self.events = events
        self.on_gallery = on_gallery or (lambda: None)
        # on_report(report, answer, error): a report answered after no one waited for it any
        # more ({"id", "session_id", "kind"}; the answer, or the Rejected it was refused with)
        self.on_report = lambda report, answer, error: None
        client.outbox = self        # the client's own reports (the kiosk's digit tries) go here
        self.sync_interval_s = sync_interval_s
        self.retry_s = retry_s
        self.revoked = False
        self.online = None          # unknown until the first request
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = None
        self._last_gallery = float("-inf")
        self._pulls_paced_until = 0.0      # monotonic: no gallery or config pull before
        self._uploads_paced_until = 0.0    # ... no session upload before
        self._reports_paced_until = 0.0    # ... no report before
        self._answered = threading.Condition()
        self._waiting = {}                 # report id -> patient (waits through failed tries)
        self._answers = {}                 # report id -> (answer, error) for its waiter

    # --- one-shot operations (any thread) -----------------------------------------------------

    def sync_gallery(self):
        """Pull every gallery delta since the cached seq; True if the cache changed."""
        changed = False
        with self._lock:
            while not self.revoked:
                delta = self._call(self.client.gallery, self.store.sync_seq)
                if delta is None:
                    break
                try:
                    self.store.apply_delta(delta)  # one transaction: all of it or nothing
                except RegistryMismatch:
                    # The server is another registry now (rebuilt, restored, or another token):
                    # rebind from its config, then start the gallery over.
                    if not self._bind(self._call(self.client.config)):
                        self._note_failure(Offline("server sent the gallery of another registry"
                                                   " and no config to bind to it"))
                        break
                    changed = True
                    continue
                except ModelChanged as e:
                    # The registry was re-encoded with another face model: the cached templates
                    # cannot be compared with its faces. Drop them, take the new config (its
                    # thresholds are on the new model's scale) and pull everything again.
                    self.store.clear_gallery()
                    self._refresh_config()
                    self.events.emit("model_changed", model=e.args[0])
                    changed = True
                    continue
                except UnknownModel as e:
                    self.store.clear_gallery()
                    self.model_missing(e.model_id)
                    changed = True
                    break
                except (KeyError, TypeError, ValueError, OverflowError, sqlite3.InterfaceError,
                        sqlite3.ProgrammingError) as e:
                    # A delta of the wrong shape raised out of the worker thread and ended it:
                    # no more syncing and no more uploads until a restart. Keep the cache, retry.
                    self._note_failure(Offline(f"server sent a gallery that cannot be applied ({e})"))
                    break
                self._last_gallery = time.monotonic()
                if delta.get("upserts") or delta.get("removals") or delta.get("full"):
                    changed = True
                    self.events.emit("sync", seq=delta["seq"], upserts=len(delta.get("upserts", [])),
                                     removals=len(delta.get("removals", [])), full=bool(delta.get("full")))
                if not delta.get("more"):
                    break
        if changed:
            self.on_gallery()
        return changed

    def fetch_config(self):
        """The server's device config, cached in the store; the cached one when offline.
        The store is bound to the registry and device the config names (see Store.bind)."""
        with self._lock:
            if self.store.use_endpoint(self.client.fingerprint()):
                message = "pointed at another server or token: the cached gallery was dropped"
                log.warning(message)
                self.events.emit("endpoint_changed", message=message)
                self.on_gallery()
            config = None if self.revoked else self._call(self.client.config)
            if config is not None and self._bind(config):
                self.store.set_meta("config", config)
        return self.store.get_meta("config")

    def model_missing(self, model_id, reason="this device does not have that model"):
        """The registry greets on a face model this device cannot run: no greeting at all,
        said once, until the model is installed (a device never guesses on another's scale)."""
        if getattr(self, "_missing", None) == model_id:
            return
        self._missing = model_id
        message = (f"the registry's face model is {model_id}; {reason}: nobody is greeted by"
                   " name, every visitor is recorded as unknown and sent to the desk")
        log.error(message)
        self.events.emit("model_mismatch", model=model_id, message=message)

    def _refresh_config(self):
        config = self._call(self.client.config)
        if config is not None and self._bind(config):
            self.store.set_meta("config", config)

    def _bind(self, config):
        """Bind the store to the config's registry and device; False if the config says neither."""
        if not isinstance(config, dict) or not isinstance(config.get("registry_id"), str):
            return False
        device = config.get("device") if isinstance(config.get("device"), dict) else {}
        quarantined = self.store.bind(config["registry_id"], device.get("name"))
        if quarantined is not None:
            message = (f"this store held data of another registry or device: cache dropped,"
                       f" {quarantined} session(s) quarantined (kept, never delivered here)")
            log.warning(message)
            self.events.emit("registry_changed", registry_id=config["registry_id"],
                             device=device.get("name"), quarantined=quarantined, message=message)
            self.on_gallery()
        return True

    def flush_outbox(self):
        """Deliver what waits; stops at the first network failure. First the reports of
        visits already on the server, then the sessions, oldest first (a visit with reports
        waiting before the rest), each followed at once by its own reports. A session the
        server fails on (a 500, or a proxy's 413 for its snapshot) is kept and passed over
        until the next round: one such session held every visit behind it; its reports wait
        behind it. Returns how many sessions and reports still wait."""
        with self._lock:
            self._flush()
        return self.waiting()

    def waiting(self):
        """Sessions and reports not delivered yet."""
        return self.store.outbox_count() + self.store.reports_waiting()

    def _flush(self):
        blocked = set()     # sessions whose report the server failed on: the rest of theirs wait
        if not self._flush_reports(blocked):
            return
        passed_over, failing = 0, 0     # passed over: still first in the outbox, skipped
        while not self.revoked and time.monotonic() >= self._uploads_paced_until:
            batch = self.store.pending(20, skip=passed_over)
            if not batch:
                break
            for session, snapshot in batch:
                result = self._deliver(session, snapshot)
                if result is FAILED_HERE:
                    passed_over, failing = passed_over + 1, failing + 1
                else:
                    failing = 0
                if failing >= FAILING_RUN:
                    self._note_failure(Offline(f"the registry failed on {failing} sessions in a"
                                               " row; they are kept and sent again later"))
                if result is UNREACHED or failing >= FAILING_RUN:
                    return
                if result is DONE and not self._flush_reports(blocked, session["id"]):
                    return
            # between batches of a backlog: the reports of a visit someone may be waiting on
            if not self._flush_reports(blocked):
                return

    def _deliver(self, session, snapshot):
        """DONE when the session left the outbox (delivered or dead-lettered), FAILED_HERE
        when the server failed on it, UNREACHED when the server could not take it now."""
        try:
            self.client.post_session(session, snapshot)
        except Rejected as e:
            self.store.dead_letter(session["id"], str(e))     # its reports are refused with it
            self.events.emit("dead_letter", session_id=session["id"], reason=str(e))
            self._settle_refused(session["id"])
            return DONE
        except (Offline, Revoked) as e:
            self.store.failed_attempt(session["id"], e)
            if getattr(e, "fails_here", False):   # the server is there: no offline event for one session
                return FAILED_HERE
            if getattr(e, "retry_after", None) is not None:
                self._uploads_paced_until = self._paced("uploads", e)
                return UNREACHED
            self._note_failure(e)
            return UNREACHED
        self._note_online()
        self.store.delivered(session["id"])
        self.events.emit("session_uploaded", session_id=session["id"])
        return DONE

    # --- reports ------------------------------------------------------------------------------

    def add_report(self, session_id, kind, body, report_id=None, awaited=False, patient=True):
        """Commit a report of a visit to the outbox (before it is announced or sent) and wake
        the worker; its id. awaited: a step will ask for its answer (await_report), which is
        then kept for it instead of going to on_report; patient=False: the first failed try
        to send it ends that wait. A report id known already (waiting, or answered: never sent
        twice) is not queued again; its answer is the one it had."""
        report_id = report_id or str(uuid.uuid4())
        if awaited:
            with self._answered:
                self._waiting[report_id] = patient
        if not self.store.add_report(report_id, session_id, kind, body):
            known = self.store.report(report_id)
            if known is not None and known["state"] != "pending":
                self._settle(known, *_outcome(known))
        self.nudge()
        return report_id

    def await_report(self, report_id, wait_s, give_up=None):
        """The registry's answer to a report added with awaited=True, once this worker has
        delivered it: Rejected when it was refused; Offline when no answer came within wait_s
        (or one try, once give_up is set): the report stays in the outbox, and its answer
        goes to on_report. Without a running worker, the outbox is delivered here."""
        deadline = time.monotonic() + wait_s
        while True:
            if self._thread is None or not self._thread.is_alive() or (give_up and give_up.is_set()):
                self.flush_outbox()     # no worker (the agent's last steps, or a test): deliver here
            with self._answered:
                self._answered.wait_for(lambda: report_id in self._answers,
                                        max(0.0, min(deadline - time.monotonic(), self.retry_s)))
                done = report_id in self._answers
                answer, error = self._answers.pop(report_id, (None, None))
            if not done:    # answered before this wait began (or to another step waiting on it);
                # a digit try's answer (case details) is only ever in memory
                known = self.store.report(report_id)
                done = known is not None and known["state"] != "pending" and known["kind"] != "second_factor"
                answer, error = _outcome(known) if done else (None, None)
            if done or time.monotonic() >= deadline or (give_up and give_up.is_set()):
                with self._answered:
                    self._waiting.pop(report_id, None)
                    self._answers.pop(report_id, None)
                break
        if not done:
            raise Offline("the registry has not answered yet: the report is kept and sent when it can be")
        if error is not None:
            raise error
        return answer

    def _flush_reports(self, blocked, session_id=None):
        """Deliver the waiting reports of a session (or of every session already delivered),
        in the order recorded; False when the round must stop (the server is unreachable)."""
        while not self.revoked and time.monotonic() >= self._reports_paced_until:
            batch = self.store.pending_reports(session_id, exclude=blocked)
            if not batch:
                break
            for report in batch:
                if report["session_id"] in blocked:
                    continue    # an earlier report of this visit failed here: order first
                result = self._deliver_report(report)
                if result is UNREACHED:
                    return False
                if result is FAILED_HERE:
                    blocked.add(report["session_id"])
        return not self.revoked

    def _deliver_report(self, report):
        """As _deliver, for one report. Refused for good (a 4xx): kept as a line with the
        reason, except a digit try, for which the 4xx (wrong, locked, wait) is the answer."""
        line = {key: report[key] for key in ("id", "session_id", "kind")}
        try:
            answer = self.client.post_report(report["kind"], report["session_id"], report["body"])
        except Rejected as e:
            refusal = {"status": e.status, "message": e.message}
            if report["kind"] == "second_factor":
                self.store.report_delivered(report["id"], refusal)
                self.events.emit("report_delivered", status=e.status, **_named(line))
            else:
                self.store.refuse_report(report["id"], refusal, str(e))
                self.events.emit("report_refused", reason=str(e), **_named(line))
            self._settle(line, None, e)
            return DONE
        except (Offline, Revoked) as e:
            self.store.report_failed_attempt(report["id"], e)
            self._try_failed(report["id"], e)
            if getattr(e, "fails_here", False):
                return FAILED_HERE
            if getattr(e, "retry_after", None) is not None:
                self._reports_paced_until = self._paced("reports", e)
            else:
                self._note_failure(e)
            return UNREACHED
        self._note_online()
        # the answer to a digit try holds case details: never written to the device's disk
        self.store.report_delivered(report["id"], {"status": 200} if report["kind"] == "second_factor"
                                    else answer)
        self.events.emit("report_delivered", status=200, **_named(line))
        self._settle(line, answer, None)
        return DONE

    def _settle(self, report, answer, error):
        """Hand a report's answer to the step waiting for it, or else to on_report."""
        with self._answered:
            if report["id"] in self._waiting:
                self._answers[report["id"]] = (answer, error)
                self._answered.notify_all()
                return
        try:
            self.on_report({key: report[key] for key in ("id", "session_id", "kind")}, answer, error)
        except Exception:   # a front end's failure must not stop the deliveries
            log.exception("on_report failed")

    def _settle_refused(self, session_id):
        """Answer the steps waiting on reports of a session that was refused (so were they)."""
        with self._answered:
            waited = list(self._waiting)
        for report_id in waited:
            known = self.store.report(report_id)
            if known is not None and known["session_id"] == session_id and known["state"] != "pending":
                self._settle(known, *_outcome(known))

    def _try_failed(self, report_id, error):
        """A try to send the report failed: a waiter that is not patient stops waiting."""
        with self._answered:
            if self._waiting.get(report_id) is False:
                self._answers[report_id] = (None, error if isinstance(error, Offline) else
                                            Offline(str(error)))
                self._answered.notify_all()

    def _call(self, method, *args):
        """method(*args) (a gallery or config pull), or None after a network failure, a
        refusal (a wrong --server path), revocation (reported once), or while the server
        asked this device to wait (429)."""
        if time.monotonic() < self._pulls_paced_until:
            return None
        try:
            result = method(*args)
        except Offline as e:
            if e.retry_after is None:
                self._note_failure(e)
            else:
                self._pulls_paced_until = self._paced("pulls", e)
            return None
        except (Revoked, Rejected) as e:
            self._note_failure(e)
            return None
        self._note_online()
        return result

    def _paced(self, what, error):
        """The monotonic time until which `what` waits, as the server's 429 asked (reported:
        the server is there, this is not "offline")."""
        self.events.emit("paced", what=what, retry_after=error.retry_after, message=str(error))
        return time.monotonic() + error.retry_after

    def _note_failure(self, error):
        if isinstance(error, Revoked):
            if self.revoked:
                return
            self.revoked = True
            # A revoked device may be lost or stolen: it keeps its sessions (they are the
            # bureau's record) but drops the citizens' face templates.
            self.store.clear_gallery()
            self.events.emit("revoked", message=f"server refused this device's token ({error});"
                             " syncing stopped, face templates deleted, sessions kept on the device",
                             pending=self.store.outbox_count())
            self.on_gallery()
        elif self.online is not False:
            self.online = False
            self.events.emit("offline", message=str(error))

    def _note_online(self):
        if self.online is False:
            self.events.emit("online")
        self.online = True

    # --- the background worker ---------------------------------------------------------------

    def start(self):
        self._thread = threading.Thread(target=self._run, name="kiosk-sync", daemon=True)
        self._thread.start()

    def nudge(self):
        """Deliver soon: a new session is in the outbox."""
        self._wake.set()

    def stop(self, timeout=10.0):
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def detach(self):
        """The client's reports stop going to this outbox (its store is about to close): a
        try of digits made after the agent ended is sent at once, as without an outbox."""
        if self.client.outbox is self:
            self.client.outbox = None

    def _run(self):
        while not self._stop.is_set() and not self.revoked:
            waiting = True
            try:
                waiting = self.flush_outbox()
                if time.monotonic() - self._last_gallery >= self.sync_interval_s:
                    self.sync_gallery()
                    self._last_gallery = time.monotonic()  # offline too: do not hammer the server
            except Exception as e:     # whatever else: the worker must outlive it, or nothing syncs
                log.exception("sync round failed")
                self._note_failure(Offline(f"sync failed: {type(e).__name__}: {e}"))
            self._wake.wait(self.retry_s if waiting else self.sync_interval_s)
            self._wake.clear()
