"""Helpers for the case-file and robot tests: the blinking woman of tests/data/video enrolled
as a citizen with cases, her clips, and the real agent with CaseFileFlow run in this process."""
import functools
import wave

import cv2
import numpy as np

from conftest import VIDEO
from db import now_iso, transaction
from device_helpers import enrol
from device.agent import Agent
from device.camera import open_source
from device.casefile import CaseFileFlow
from device.client import ApiClient
from device.events import EventLog
from device.store import Store
from device.sync import Syncer
from recognition import engine
import liveness_videos

# In tests/data/video the face appears at 1.5 s; her first blink starts at 2.17 s.
CLIP_START, CLIP_END = 1.0, 5.5
PHONE = "139 0000 4321"


@functools.lru_cache(maxsize=None)
def her_encoding():
    """Her template from a frame with open eyes (2.5 s), as an enrolment photo would give."""
    capture = cv2.VideoCapture(str(VIDEO))
    capture.set(cv2.CAP_PROP_POS_MSEC, 2_500)
    ok, frame = capture.read()
    capture.release()
    rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    return engine.face_encoding(rgb, engine.detect_faces(rgb, 640)[0])


def enrol_her(db, name="林小姐", language="zh", cases=(("TX-2026-0107", "个人所得税", "ready", "3"),)):
    """Enrol her with a phone on file and open cases (case_number, type, status, counter)."""
    citizen_id = enrol(db, "blinking", name=name, language=language, encodings=[her_encoding()])
    stamp = now_iso()
    with transaction(db):
        db.execute("UPDATE citizens SET phone = ? WHERE id = ?", [PHONE, citizen_id])
        for number, kind, status, counter in cases:
            db.execute(
                "INSERT INTO cases (case_number, citizen_id, type, status, counter, summary,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [number, citizen_id, kind, status, counter, f"{number}: refund 1,280.00 CNY",
                 stamp, stamp])
    return citizen_id


def blinking_clip(path):
    """4.5 s of the real video at 640 px: she appears at 0.5 s and blinks from 1.17 s on."""
    return liveness_videos.video_slice(VIDEO, path, CLIP_START, CLIP_END, max_side=640)


def still_clip(path, seconds=8.0):
    """Her face held still (a photo of her): one frame repeated, with camera noise."""
    frame = liveness_videos.frame_at(VIDEO, 2.5, max_side=640)
    return liveness_videos.still_frame_video(path, frame, seconds=seconds, fps=15)


def run_flow(server_url, token, camera, store_path, make_presenter, tickets=False, policy=None):
    """The real agent with CaseFileFlow over a video until its end; returns the events.
    make_presenter(event_log, client) builds the front end's presenter."""
    events = []
    log = EventLog()
    log.add_listener(events.append)
    store = Store(store_path)
    client = ApiClient(server_url, token, timeout=2.0)
    syncer = Syncer(store, client, log, retry_s=0.5)
    flow = CaseFileFlow(make_presenter(log, client), client, log, policy, tickets=tickets)
    agent = Agent(open_source(camera), store, syncer, log, flow)
    try:
        agent.run(exit_at_end=True)
    finally:
        store.close()
    return events


def of_kind(events, kind):
    return [e for e in events if e["event"] == kind]


def wav_duration_and_rms(path):
    """(seconds, RMS of the 16-bit samples): real speech lasts and is not silence."""
    with wave.open(str(path)) as w:
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
        seconds = w.getnframes() / w.getframerate()
    return seconds, float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) if len(samples) else 0.0
