"""How fast the kiosk greets, against the naive loop, on one video, in the same run.

    python -m bench.greet VIDEO --enrol NAME=PHOTO [--enrol NAME=PHOTO ...]
                          [--face-model mobilefacenet|dlib|all]

Starts a real server on 127.0.0.1 (a temporary instance folder), enrols each NAME from its
PHOTO through the enrolment quality gate, registers a kiosk, and runs the real agent on
VIDEO paced in real time (frames the engine cannot keep up with are dropped, as with a
live camera). Then the naive loop on the same video, paced the same way:
face_recognition.face_locations + face_encodings on every full frame, compare_faces at 0.6.

Prints JSON: for each, the wall time from the first frame to the first greeting, the
video time t of the frame that greeted, who was greeted, and frames processed per second
(paced: at most the video's rate; busy_fps: frames per second of the agent's own work, what it
could do unpaced; encoding_fps: the same over the frames in which it encoded a face, the rate
at which a visitor walking up is read). --face-model all runs the agent once per face model, each on a registry of
its own: the default model's figures at the top level, each model's under "models".
Targets: greeting <= 0.5 s after the first frame when the face is there from the start of
a 640x360 clip; at least twice the naive frame rate.
"""
import argparse
import json
import os
import sys
import tempfile
import threading
import time

TARGET_GREETING_S = 0.5
TARGET_SPEEDUP = 2.0


def parse_enrol(spec):
    name, sep, photo = spec.partition("=")
    if not sep or not name or not os.path.isfile(photo):
        raise argparse.ArgumentTypeError(f"--enrol wants NAME=PHOTO with an existing photo, not {spec!r}")
    return name, photo


def start_server(instance, model_name):
    """A real server on a temporary instance greeting on the face model, on a free port of
    127.0.0.1."""
    from werkzeug.serving import make_server
    os.environ["CIVIC_INSTANCE_PATH"] = instance
    os.environ["CIVIC_FACE_MODEL"] = model_name
    from app import create_app
    app = create_app()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return app, server, f"http://127.0.0.1:{server.server_port}"


def enrol(db, name, photo):
    """One citizen with the template of `photo`, on the registry's face model; returns its id."""
    from db import now_iso, transaction
    from db.queries import new_citizen_key, next_sync_seq
    from recognition import images, quality
    from server import faces
    model = faces.active(db)
    encoding = quality.enrolment_template(images.load_image(photo), model).encoding
    stamp = now_iso()
    with transaction(db):
        seq = next_sync_seq(db)
        citizen_id = db.insert(
            "INSERT INTO citizens (id_number, key, name, language, sync_seq, created_at, updated_at)"
            " VALUES (?, ?, ?, 'en', ?, ?, ?) RETURNING id",
            [f"BENCH{seq:06d}", new_citizen_key(), name, seq, stamp, stamp])
        faces.add_template(db, citizen_id, model, encoding)
    return citizen_id


def run_agent(video, url, token, store_path):
    """The real kiosk agent, real-time paced; its greeting time and frame rate."""
    from device.agent import Agent, FrontEnd
    from device.camera import open_source
    from device.client import ApiClient
    from device.events import EventLog
    from device.store import Store
    from device.sync import Syncer
    greetings = []
    events = EventLog()
    events.add_listener(lambda e: e["event"] == "greeted" and greetings.append((time.monotonic(), e)))
    store = Store(store_path)
    camera = open_source(video, realtime=True)
    agent = Agent(camera, store, Syncer(store, ApiClient(url, token), events), events, FrontEnd())
    ended = []
    events.add_listener(lambda e: e["event"] == "end" and ended.append(time.monotonic()))
    agent.run(exit_at_end=True)
    store.close()
    first = agent.stats.first_frame_wall
    result = _timing(first, ended[0], agent.stats.frames, camera.dropped)
    stats = agent.stats
    result["busy_fps"] = round(stats.frames / max(stats.busy_s, 1e-9), 2)
    # frames in which a face was encoded: the rate at which an approaching visitor is read
    result["encoding_frames"] = stats.encoding_frames
    result["encoding_fps"] = round(stats.encoding_frames / stats.encoding_busy_s, 2) \
        if stats.encoding_busy_s else None
    result["face_model"] = agent.model.id if agent.model else None
    if greetings:
        wall, event = greetings[0]
        result.update(time_to_greeting_s=round(wall - first, 3), greeting_t=event["t"],
                      greeted=event["name"], greetings=len(greetings))
    return result


def run_naive(video, enrolled):
    """face_recognition on every full frame, compare_faces at 0.6; the first match greets.
    enrolled: [(name, photo)]."""
    import cv2
    import face_recognition
    from device.camera import open_source
    names = [name for name, _ in enrolled]
    encodings = [face_recognition.face_encodings(face_recognition.load_image_file(photo))[0]
                 for _, photo in enrolled]
    camera = open_source(video, realtime=True)
    first = greeted = None
    frames = 0
    while (frame := camera.read()) is not None:
        first = first or time.monotonic()
        rgb = cv2.cvtColor(frame.image, cv2.COLOR_BGR2RGB)
        for encoding in face_recognition.face_encodings(rgb, face_recognition.face_locations(rgb)):
            matches = face_recognition.compare_faces(encodings, encoding, tolerance=0.6)
            if greeted is None and True in matches:
                greeted = (time.monotonic(), frame.t, names[matches.index(True)])
        frames += 1
    result = _timing(first, time.monotonic(), frames, camera.dropped)
    if greeted:
        result.update(time_to_greeting_s=round(greeted[0] - first, 3), greeting_t=round(greeted[1], 3),
                      greeted=greeted[2])
    return result


def _timing(first, end, frames, dropped):
    elapsed = max(end - first, 1e-9)
    return {"frames_processed": frames, "frames_dropped": dropped, "seconds": round(elapsed, 3),
            "fps": round(frames / elapsed, 2), "time_to_greeting_s": None, "greeting_t": None,
            "greeted": None}


def video_info(video):
    import cv2
    capture = cv2.VideoCapture(video)
    info = {"path": video, "width": int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
            "height": int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            "fps": round(capture.get(cv2.CAP_PROP_FPS), 2),
            "frames": int(capture.get(cv2.CAP_PROP_FRAME_COUNT))}
    capture.release()
    return info


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.greet", description=__doc__.split("\n\n")[0])
    p.add_argument("video")
    p.add_argument("--enrol", action="append", type=parse_enrol, required=True, metavar="NAME=PHOTO")
    from bench.accuracy import add_face_model_option
    add_face_model_option(p)
    args = p.parse_args(argv)
    if not os.path.isfile(args.video):
        p.error(f"no video at {args.video}")
    from bench import accuracy
    names = accuracy.model_names(args.face_model)
    agents = {name: run_model(args.video, args.enrol, name) for name in names}
    agent = agents[names[0]]
    naive = run_naive(args.video, args.enrol)
    speedup = round(agent["fps"] / naive["fps"], 2) if naive["fps"] else None
    report = {"video": video_info(args.video), "enrolled": [n for n, _ in args.enrol],
              "cpus": os.cpu_count(), "agent": agent, "naive": naive, "speedup": speedup,
              "targets": {"time_to_greeting_s": TARGET_GREETING_S, "speedup": TARGET_SPEEDUP,
                          "greeting_met": agent["time_to_greeting_s"] is not None
                          and agent["time_to_greeting_s"] <= TARGET_GREETING_S,
                          "speedup_met": speedup is not None and speedup >= TARGET_SPEEDUP}}
    if len(names) > 1:
        report["models"] = agents
    json.dump(report, sys.stdout, indent=2, ensure_ascii=False)
    print()


def run_model(video, enrolled, model_name):
    """The agent on a registry of its own that greets on the face model."""
    from db import open_db
    from recognition import PhotoRejected
    from server.devices import register_device
    with tempfile.TemporaryDirectory(prefix="bench-greet-") as tmp:
        app, server, url = start_server(os.path.join(tmp, "instance"), model_name)
        db = open_db(app.config["DATABASE"])
        try:
            for name, photo in enrolled:
                enrol(db, name, photo)
        except PhotoRejected as e:
            sys.exit(f"bench.greet: cannot enrol that photo: {e.reason}")
        token = register_device(db, "bench-kiosk", "kiosk")
        try:
            return run_agent(video, url, token, os.path.join(tmp, "kiosk.db"))
        finally:
            server.shutdown()
            db.close()


if __name__ == "__main__":
    main()
