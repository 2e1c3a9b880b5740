"""The agent's event stream: one JSON object per line (--events FILE or - for stdout).

    {"event": "greeted", "citizen_key": "c_...", "name": "...", "t": 0.4, "distance": 0.62, "margin": 0.4}
    {"event": "unknown_visitor", "t": 2.1}
    {"event": "session_uploaded", "session_id": "..."}
and "ready", "sync", "offline", "online", "revoked", "registry_changed", "dead_letter", "end",
"exit".
"""
import json
import logging
import sys
import threading

log = logging.getLogger("kiosk.events")


class EventLog:
    """Writes events as JSON lines (flushed at once) and hands them to listeners."""

    def __init__(self, stream=None):
        self._stream = stream
        self._lock = threading.Lock()
        self._listeners = []

    def add_listener(self, callback):
        """callback(event dict) for every event, e.g. a benchmark's clock."""
        self._listeners.append(callback)

    def emit(self, event, **fields):
        record = {"event": event, **fields}
        line = json.dumps(record, ensure_ascii=False)
        log.info("%s", line)
        with self._lock:
            if self._stream is not None:
                self._stream.write(line + "\n")
                self._stream.flush()
            for callback in self._listeners:
                callback(record)
        return record

    def close(self):
        if self._stream not in (None, sys.stdout, sys.__stdout__):
            self._stream.close()


def open_events(spec):
    """An EventLog for --events: None (no output), "-" (stdout) or a file path (appended)."""
    if spec is None:
        return EventLog()
    if spec == "-":
        return EventLog(sys.stdout)
    return EventLog(open(spec, "a", encoding="utf-8", buffering=1))
