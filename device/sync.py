"""Store and forward: keep the gallery cache current and deliver the outbox, in the background.

The recognition loop never waits for the network. A worker thread delivers the outbox as
soon as the loop nudges it (a new session) and every `retry_s` while sessions wait, and
pulls gallery deltas every `sync_interval_s`. Each session is deleted from the outbox only
after the server's 2xx, and the server keys sessions by their id, so a retry after a lost
answer delivers it once. A revoked token stops all syncing and deletes the cached face templates; the sessions stay
on the device. A 429 (the server paces each device's pulls and uploads) is waited out for
the Retry-After it names, pulls and uploads apart: a device that kept asking was refused
each time, and polled the server as fast as it could answer.
"""
import logging
import sqlite3
import threading
import time

from recognition.models import UnknownModel

from .client import Offline, Rejected, Revoked
from .store import ModelChanged, RegistryMismatch

log = logging.getLogger(__name__)

DONE, FAILED_HERE, UNREACHED = "done", "failed here", "unreached"   # one delivery's outcome
FAILING_RUN = 3     # sessions in a row the server fails on: it fails on everything, stop for now


class Syncer:
    """Moves data between the Store and the server through an ApiClient; reports events."""

    def __init__(self, store, client, events, on_gallery=None, sync_interval_s=30.0, retry_s=2.0):
        self.store = store
        self.client = client
        self.events = events
        self.on_gallery = on_gallery or (lambda: None)
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
        """Deliver waiting sessions, oldest first; stops at the first network failure. A
        session the server fails on (a 500, or a proxy's 413 for its snapshot) is kept and
        passed over until the next round: one such session held every visit behind it.
        Returns how many still wait."""
        with self._lock:
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
                        return self.store.outbox_count()
        return self.store.outbox_count()

    def _deliver(self, session, snapshot):
        """DONE when the session left the outbox (delivered or dead-lettered), FAILED_HERE
        when the server failed on it, UNREACHED when the server could not take it now."""
        try:
            self.client.post_session(session, snapshot)
        except Rejected as e:
            self.store.dead_letter(session["id"], str(e))
            self.events.emit("dead_letter", session_id=session["id"], reason=str(e))
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
