"""Face models: each datum names its model, a registry moves to another with `reencode`,
devices follow it (or refuse to greet without it), and a damaged model file stops everything.

Real photos through the real import on a registry that starts on dlib, as every registry
enrolled before MobileFaceNet did; real devices syncing with a real server on 127.0.0.1."""
import json
import os
import shutil

import numpy as np
import pytest

import helpers
from conftest import PEOPLE
from db import transaction
from device.client import ApiClient
from device.events import EventLog
from device.store import Store
from device.sync import Syncer
from helpers import (RECORD_HEADER, add_device, add_session, greeted_payload, key_of, of_kind,
                     person_encoding, photo_folder, record, run_agent, write_csv)
from recognition import models
from server import calibration, faces, reencode

DLIB, MFN = models.get("dlib"), models.get("mobilefacenet")
PEOPLE_PHOTOS = {"barack_obama": 1, "joe_biden": 1, "kit_harington": 1, "rose_leslie": 1,
                 "alex_lacamoire": 1}
on_dlib = pytest.mark.face_model("dlib")


def import_people(runner, tmp_path, people=PEOPLE_PHOTOS):
    """The test people imported through `import-records` (one photo each)."""
    rows = [record(n, person, f"{person}.jpg") for n, person in enumerate(people, start=1)]
    records = write_csv(tmp_path / "records.csv", RECORD_HEADER, rows)
    photos = photo_folder(tmp_path / "photos", {f"{p}.jpg": (PEOPLE / p / f"{i}.jpg").read_bytes()
                                                for p, i in people.items()})
    result = runner.invoke(args=["import-records", str(records), "--photos", str(photos)])
    assert result.exit_code == 0, result.output
    return result


def template_models(db):
    return {(r[0], len(r[1])) for r in db.execute("SELECT face_model, encoding FROM face_templates")}


# --- one object per model ---------------------------------------------------------------------

def test_each_model_names_its_file_and_every_distance_constant():
    for model in models.PROFILES.values():
        assert model.id == f"{model.name}-{model.sha256[:12]}"
        model.check_file()                               # shipped with the project, checked
        b = model.bounds
        assert b.threshold_floor < b.threshold_ceiling <= b.threshold_range[1]
        assert b.threshold_ceiling <= b.duplicate_ceiling < b.max_reported
        assert len(model.prior_fmr()) == len(model.grid)
        assert list(model.prior_fmr()) == sorted(model.prior_fmr())
    assert MFN.file.startswith(os.path.dirname(models.__file__))   # in the repository
    assert (MFN.dims, DLIB.dims) == (192, 128)


def test_a_damaged_or_missing_model_file_is_refused_naming_the_file(tmp_path, monkeypatch):
    cut = tmp_path / "MobileFaceNet.tflite"
    cut.write_bytes(open(MFN.file, "rb").read()[:100_000])
    monkeypatch.setattr(type(MFN), "file", str(cut))
    with pytest.raises(models.ModelFileError, match=str(cut)):
        MFN.check_file()
    cut.unlink()
    with pytest.raises(models.ModelFileError, match="missing"):
        MFN.check_file()


def test_a_server_with_a_damaged_model_file_stops_with_one_line(tmp_path, monkeypatch):
    from app import create_app
    cut = tmp_path / "MobileFaceNet.tflite"
    cut.write_bytes(b"not a model")
    monkeypatch.setattr(type(MFN), "file", str(cut))
    monkeypatch.setenv("CIVIC_INSTANCE_PATH", str(tmp_path / "instance"))
    with pytest.raises(SystemExit) as stopped:
        create_app({"TESTING": True})
    message = str(stopped.value)
    assert "\n" not in message and str(cut) in message and "sha256" in message


def test_a_lone_face_and_two_faces_encode_alike():
    """The network takes two faces a call: a face's template does not depend on what else
    is in the frame (each face is paired with its own mirror)."""
    from recognition import engine, images
    rgb = images.load_image(helpers.FACES / "group" / "obama_and_biden.jpg")
    found = engine.detect_faces(rgb, 1000)[:2]
    both = MFN.encodings(rgb, found)
    alone = [MFN.encoding(rgb, location) for location in found]
    assert len(both) == 2 and all(np.allclose(a, b, atol=1e-5) for a, b in zip(both, alone))
    assert all(abs(np.linalg.norm(v) - 1) < 1e-5 for v in both)


def test_a_face_whose_landmarks_cannot_be_aligned_is_refused_with_a_reason():
    from recognition import align
    eyes_together = np.array([[150, 150], [151, 150], [150, 170], [140, 190], [160, 190]], float)
    scattered = np.array([[40, 40], [260, 60], [150, 290], [20, 250], [280, 10]], float)
    frontal = align.TEMPLATE * 2 + 30
    assert "the eyes are 1 px apart" in align.unalignable(eyes_together)
    assert "do not form a face" in align.unalignable(scattered)
    assert align.unalignable(frontal) is None


# --- the registry on a model -------------------------------------------------------------------

def test_a_new_registry_starts_on_mobilefacenet_and_tags_every_datum(app, db, runner, tmp_path, token, client):
    import_people(runner, tmp_path)
    assert faces.active(db) is MFN
    assert template_models(db) == {(MFN.id, 192 * 4)}
    headers = helpers.bearer(token)
    delta = client.get("/api/v1/gallery?since=0", headers=headers).get_json()
    config = client.get("/api/v1/config", headers=headers).get_json()
    assert delta["model"] == config["model"] == MFN.id
    assert calibration.latest_report(db)["face_model"]["id"] == MFN.id
    assert db.execute("SELECT face_model FROM calibrations").fetchone()[0] == MFN.id


@on_dlib
def test_reencode_moves_a_dlib_registry_to_mobilefacenet_in_one_step(app, db, runner, tmp_path, token, client):
    import_people(runner, tmp_path)
    obama = db.execute("SELECT id FROM citizens WHERE name = 'barack_obama'").fetchone()[0]
    device_id = db.execute("SELECT id FROM devices").fetchone()[0]
    # a clerk-confirmed capture from before crops were kept: its snapshot was purged since
    session = add_session(app, db, device_id, obama, status="confirmed")
    with transaction(db):
        faces.add_template(db, obama, DLIB, person_encoding("barack_obama", 3), source="confirmed_session",
                           session_id=session)
    assert template_models(db) == {(DLIB.id, 128 * 4)}
    app.config["FACE_MODEL"] = "mobilefacenet"    # the server upgraded: its default is the new model
    before = runner.invoke(args=["init-db"]).output
    assert "greets on dlib" in before and "reencode --model mobilefacenet" in before

    result = runner.invoke(args=["reencode", "--model", "mobilefacenet"])
    assert result.exit_code == 0, result.output
    assert "switched from dlib" in result.output and "1 templates dropped" in result.output
    assert f"citizen {obama}: its source image is gone" in result.output
    assert faces.active(db) is MFN and template_models(db) == {(MFN.id, 192 * 4)}
    assert db.execute("SELECT count(*) FROM face_templates").fetchone()[0] == 5
    assert db.execute("SELECT count(*) FROM reencode_staged").fetchone()[0] == 0
    headers = helpers.bearer(token)
    assert client.get("/api/v1/config", headers=headers).get_json()["model"] == MFN.id
    # the same photos measure the same on the new model as a fresh import does
    fresh = MFN.from_blob(db.execute("SELECT encoding FROM face_templates WHERE citizen_id = ?",
                                     [obama]).fetchone()[0])
    assert MFN.distance(fresh, person_encoding("barack_obama", 1, "mobilefacenet")) < 1e-4
    assert calibration.latest_report(db)["face_model"]["id"] == MFN.id
    assert "greets on" not in runner.invoke(args=["init-db"]).output
    again = runner.invoke(args=["reencode", "--model", "mobilefacenet"])
    assert again.exit_code == 0 and "already on" in again.output        # idempotent


@on_dlib
def test_a_reencode_stopped_halfway_resumes_and_ends_as_a_clean_run(app, db, runner, tmp_path, monkeypatch):
    import_people(runner, tmp_path)
    monkeypatch.setattr(reencode, "BATCH", 2)
    real = reencode._encoded_rows
    calls = []

    def crash_on_the_second_batch(*args):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt   # as a kill: the first batch is committed, nothing else
        return real(*args)
    monkeypatch.setattr(reencode, "_encoded_rows", crash_on_the_second_batch)
    runner.invoke(args=["reencode", "--model", "mobilefacenet"])
    assert faces.active(db) is DLIB                         # still greeting on the old model
    assert db.execute("SELECT count(*) FROM reencode_staged").fetchone()[0] == 2
    assert template_models(db) == {(DLIB.id, 128 * 4)}
    monkeypatch.setattr(reencode, "_encoded_rows", real)
    result = runner.invoke(args=["reencode", "--model", "mobilefacenet"])
    assert result.exit_code == 0 and "(2 by an earlier run)" in result.output, result.output
    stored = {r[0]: MFN.from_blob(r[1]) for r in db.execute(
        "SELECT c.name, t.encoding FROM face_templates t JOIN citizens c ON c.id = t.citizen_id")}
    assert set(stored) == set(PEOPLE_PHOTOS)
    for person, vector in stored.items():
        assert MFN.distance(vector, person_encoding(person, 1, "mobilefacenet")) < 1e-4


@on_dlib
def test_a_registry_with_no_face_yet_switches_at_once(app, db, runner):
    result = runner.invoke(args=["reencode", "--model", "mobilefacenet"])
    assert result.exit_code == 0 and "0 encoded" in result.output
    assert faces.active(db) is MFN


@on_dlib
def test_an_import_encoded_on_the_old_model_is_refused_after_the_switch(app, db, runner, tmp_path):
    """An import that read the registry's model before a switch cannot slip its templates in."""
    runner.invoke(args=["reencode", "--model", "mobilefacenet"])
    with transaction(db), pytest.raises(faces.ModelChanged):
        citizen = helpers.add_citizen(app, db, photo=None)
        faces.add_template(db, citizen, DLIB, np.zeros(128))


# --- devices follow the registry's model ------------------------------------------------------

@on_dlib
def test_a_device_on_the_old_model_drops_its_cache_and_pulls_the_new_one(app, db, runner, tmp_path, token, live_server):
    import_people(runner, tmp_path)
    store = Store(tmp_path / "kiosk.db")
    events = []
    log = EventLog()
    log.add_listener(events.append)
    syncer = Syncer(store, ApiClient(live_server.url, token), log)
    syncer.fetch_config()
    syncer.sync_gallery()
    assert store.gallery_model == DLIB.id and len(store.gallery(DLIB)) == 5
    assert runner.invoke(args=["reencode", "--model", "mobilefacenet"]).exit_code == 0
    assert syncer.sync_gallery() is True
    assert store.gallery_model == MFN.id and len(store.gallery(MFN)) == 5
    assert len(store.gallery(DLIB)) == 0                     # never read on the wrong scale
    assert of_kind(events, "model_changed") and store.get_meta("config")["model"] == MFN.id
    store.close()


def test_a_device_without_the_registrys_model_greets_no_one(app, db, tmp_path, token, live_server, monkeypatch):
    """The registry greets on MobileFaceNet; this device's copy of the model file is damaged:
    it says so once, as an event, and sends every visitor to the desk: it never guesses."""
    helpers.enrol(db, "barack_obama")
    video = helpers.blinking_clip(tmp_path / "clip.avi")
    cut = tmp_path / "MobileFaceNet.tflite"
    cut.write_bytes(b"damaged")
    monkeypatch.setattr(type(MFN), "file", str(cut))
    monkeypatch.setattr("recognition.models.profile._nets", {})
    events, agent = run_agent(live_server.url, token, video, tmp_path / "kiosk.db")
    [mismatch] = of_kind(events, "model_mismatch")
    assert mismatch["model"] == MFN.id and str(cut) in mismatch["message"]
    assert agent.greeter.model is None and not of_kind(events, "greeted")
    # she is still a visitor the clerks see: unknown, and why
    assert of_kind(events, "unknown_visitor") and of_kind(events, "session_uploaded")
    row = db.execute("SELECT outcome, refused_by, face_model FROM sessions").fetchone()
    assert tuple(row) == ("unknown", "model_missing", None)


# --- what devices report is kept on its own scale --------------------------------------------

def test_distances_of_another_model_or_of_none_are_kept_but_never_measured(app, db, client, token):
    ids = [helpers.enrol(db, "barack_obama", name=f"市民{i}", encodings=[v])
           for i, v in enumerate(np.eye(192, dtype=np.float32)[:12])]
    headers = helpers.bearer(token)
    candidates = [{"key": key_of(db, i), "distance": 0.3 + j / 100} for j, i in enumerate(ids[1:5])]
    for model in (DLIB.id, None, "an-unknown-model-0000"):
        payload = greeted_payload(db, ids[0], model=model, candidates=candidates)
        if model is None:
            payload.pop("model")
        assert client.post("/api/v1/sessions", json=payload, headers=headers).status_code == 201
    stored = [r[0] for r in db.execute("SELECT face_model FROM sessions ORDER BY received_at")]
    assert sorted(map(str, stored)) == sorted([DLIB.id, "None", "None"])
    db.execute("UPDATE sessions SET review_status = 'confirmed'")
    report = calibration.measure_registry(db)
    assert report["operational_comparisons"] == 0 and report["genuine"] == 0
    # the same report on the registry's own model counts
    payload = greeted_payload(db, ids[0], candidates=candidates)
    assert client.post("/api/v1/sessions", json=payload, headers=headers).status_code == 201
    db.execute("UPDATE sessions SET review_status = 'confirmed'")
    assert calibration.measure_registry(db)["genuine"] == 1


def test_a_distance_past_what_the_model_allows_refuses_the_session(app, db, client, token):
    citizen = helpers.enrol(db, "barack_obama")
    payload = greeted_payload(db, citizen, candidates=[{"key": key_of(db, citizen), "distance": 2.5}])
    response = client.post("/api/v1/sessions", json=payload, headers=helpers.bearer(token))
    assert response.status_code == 400 and "from 0 to 2" in response.get_json()["error"]["message"]


@on_dlib
def test_a_row_id_given_again_to_another_face_never_takes_the_staged_encoding(app, db, runner, tmp_path, monkeypatch):
    """Staged, then killed before the switch; meanwhile Biden's template is withdrawn and
    SQLite gives its id (the largest) to Rose's new one: Rose must be encoded as Rose."""
    import_people(runner, tmp_path, {"barack_obama": 1, "joe_biden": 1})

    def killed(*args):
        raise KeyboardInterrupt
    monkeypatch.setattr(reencode, "_switch", killed)
    runner.invoke(args=["reencode", "--model", "mobilefacenet"])
    monkeypatch.undo()
    biden = db.execute("SELECT id FROM citizens WHERE name = 'joe_biden'").fetchone()[0]
    shutil.copy(PEOPLE / "rose_leslie" / "1.jpg", os.path.join(app.config["PHOTOS_DIR"], "rose.jpg"))
    with transaction(db):
        db.execute("DELETE FROM face_templates WHERE citizen_id = ?", [biden])
        rose = helpers.add_citizen(app, db, name="rose", id_number="110101199003070000", photo=None)
        faces.add_template(db, rose, DLIB, person_encoding("rose_leslie", 1), photo_path="rose.jpg")
    result = runner.invoke(args=["reencode", "--model", "mobilefacenet"])
    assert result.exit_code == 0, result.output
    [blob] = db.execute("SELECT encoding FROM face_templates WHERE citizen_id = ?", [rose]).fetchone()
    assert MFN.distance(MFN.from_blob(blob), person_encoding("rose_leslie", 1, "mobilefacenet")) < 1e-4


def test_a_device_that_does_not_run_the_registrys_model_gets_no_threshold_and_no_templates(
        app, db, client, token):
    """A kiosk from before face models (it sends no X-Face-Models header) reads dlib's 128-d
    templates only: on a MobileFaceNet registry it must neither keep its old cache nor get a
    threshold on MobileFaceNet's scale, where every dlib distance would name someone."""
    helpers.enrol(db, "barack_obama")
    old = {"Authorization": f"Bearer {token}"}
    delta = client.get("/api/v1/gallery?since=0", headers=old).get_json()
    assert delta["full"] is True and delta["upserts"] == [] and delta["model"] == MFN.id
    assert client.get("/api/v1/config", headers=old).get_json()["threshold"] == 0.0
    current = helpers.bearer(token)
    assert len(client.get("/api/v1/gallery?since=0", headers=current).get_json()["upserts"]) == 1
    assert client.get("/api/v1/config", headers=current).get_json()["threshold"] > 0.6


@on_dlib
def test_an_old_device_keeps_working_on_a_dlib_registry(app, db, client, token):
    helpers.enrol(db, "barack_obama")
    old = {"Authorization": f"Bearer {token}"}
    assert len(client.get("/api/v1/gallery?since=0", headers=old).get_json()["upserts"]) == 1
    assert client.get("/api/v1/config", headers=old).get_json()["threshold"] > 0.3


@on_dlib
def test_a_running_device_follows_a_reencode_at_its_next_sync(app, db, runner, tmp_path, token, live_server):
    """The agent's greeter is made anew on the new model, with the new config's threshold,
    and swapped in whole; until then it keeps greeting on the old one."""
    from device.agent import Agent, FrontEnd
    from device.camera import open_source
    import_people(runner, tmp_path)
    store, log = Store(tmp_path / "kiosk.db"), EventLog()
    syncer = Syncer(store, ApiClient(live_server.url, token), log)
    agent = Agent(open_source(str(helpers.blinking_clip(tmp_path / "clip.avi"))), store, syncer, log,
                  FrontEnd())
    agent.prepare()
    old = agent.greeter
    assert old.model is DLIB and len(old.gallery) == 5 and old.policy.threshold < 0.6
    assert runner.invoke(args=["reencode", "--model", "mobilefacenet"]).exit_code == 0
    syncer.sync_gallery()
    assert agent.greeter is not old and agent.greeter.model is MFN
    assert len(agent.greeter.gallery) == 5 and agent.greeter.policy.threshold > 0.6
    agent.camera.close()
    store.close()


def test_an_upgraded_device_started_offline_keeps_its_dlib_cache(tmp_path):
    """A store filled before face models were named holds dlib's templates: it still greets
    from them while the registry cannot be reached."""
    import sqlite3
    store = Store(tmp_path / "kiosk.db")
    store.close()
    conn = sqlite3.connect(tmp_path / "kiosk.db")
    conn.execute("INSERT INTO gallery VALUES ('c_1', 'Barack Obama', 'en', ?)",
                 [DLIB.to_blob(person_encoding("barack_obama", 1, "dlib"))])
    conn.commit()
    conn.close()
    reopened = Store(tmp_path / "kiosk.db")
    assert reopened.gallery_model == DLIB.id and len(reopened.gallery(DLIB)) == 1
    reopened.close()
