"""What one device token, one browser cookie or one hostile request can still do: bounded.

A stolen token cannot try phone digits without limit (a budget per citizen across devices and
per device), cannot open case files in bulk (throttled, and the admins see an alert), cannot
date a visit to suit itself (the server's clock), and cannot open a file for a session without
a snapshot or for a citizen of another site. Every page carries security headers; hostile
bodies are refused before they are read or parsed.
"""
import json
import os
import stat
from datetime import datetime, timedelta, timezone

import pytest

from db.queries import set_setting
import helpers
from helpers import bearer, enrol, greeted_payload, key_of, post_visit

PHONE = "139 0000 4321"


@pytest.fixture
def lin(db):
    citizen_id = enrol(db, "rose_leslie", name="林娜", language="zh")
    db.execute("UPDATE citizens SET phone = ? WHERE id = ?", [PHONE, citizen_id])
    db.execute("INSERT INTO cases (case_number, citizen_id, type, status, created_at, updated_at)"
               " VALUES ('TX-1', ?, 'tax', 'ready', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
               [citizen_id])
    return citizen_id


def opened_session(client, db, token, citizen_id, snapshot=True, snapshot_of=("rose_leslie", 1),
                   **fields):
    """A visit whose liveness passed and whose case file was asked for: (session id, answer)."""
    payload = greeted_payload(db, citizen_id, **fields)
    assert post_visit(client, token, payload, snapshot=snapshot, snapshot_of=snapshot_of).status_code == 201
    sid = payload["id"]
    helpers.pass_liveness(db, sid)
    answer = client.post(f"/api/v1/sessions/{sid}/casefile",
                         json={"citizen_key": key_of(db, citizen_id)}, headers=bearer(token))
    return sid, answer


def wrong_digits(client, token, sid):
    return client.post(f"/api/v1/sessions/{sid}/casefile/details", json={"phone_last4": "0000"},
                       headers=bearer(token))


# --- the second factor's budget ------------------------------------------------------------------

def test_one_token_gets_at_most_five_wrong_answers_per_citizen_a_day_however_many_sessions(
        app, client, db, token, lin):
    app.config["SECOND_FACTOR_WAIT_S"] = 0
    judged = 0
    for _ in range(12):                    # a fresh session each time: the per-session lock is no help
        sid, answer = opened_session(client, db, token, lin)
        assert answer.status_code == 200
        response = wrong_digits(client, token, sid)
        judged += response.status_code in (403, 423) and "locked until a clerk" not in \
            response.get_json()["error"]["message"]
        if response.status_code == 423:
            break
    assert judged == app.config["SECOND_FACTOR_CITIZEN_DAILY"]
    assert db.execute("SELECT count(*) FROM factor_failures").fetchone()[0] == judged
    sid, _ = opened_session(client, db, token, lin)
    right = client.post(f"/api/v1/sessions/{sid}/casefile/details", json={"phone_last4": "4321"},
                        headers=bearer(token))
    assert right.status_code == 423           # even the right digits: locked until a clerk acts
    assert db.execute("SELECT factor_locked_at FROM citizens WHERE id = ?", [lin]).fetchone()[0]


def test_a_clerk_unlocks_the_phone_check_from_the_citizens_page(app, client, db, auth, lin):
    db.execute("UPDATE citizens SET factor_locked_at = '2026-01-01T00:00:00Z' WHERE id = ?", [lin])
    auth.login("clerk")
    page = client.get(f"/citizens/{lin}").get_data(as_text=True)
    assert 'id="factor-locked"' in page
    client.post(f"/citizens/{lin}/unlock-factor", data={"csrf_token": auth.csrf_token(f"/citizens/{lin}")})
    assert db.execute("SELECT factor_locked_at FROM citizens WHERE id = ?", [lin]).fetchone()[0] is None
    entry = db.execute("SELECT actor_name FROM audit_log WHERE action = 'citizen.factor_unlocked'").fetchone()
    assert entry["actor_name"] == "clerk"


def test_a_device_has_a_daily_budget_of_wrong_answers_across_citizens(app, client, db, token):
    app.config.update(SECOND_FACTOR_WAIT_S=0, SECOND_FACTOR_DEVICE_DAILY=3)
    people = []
    for person in ("rose_leslie", "kit_harington", "joe_biden", "alex_lacamoire"):
        citizen_id = enrol(db, person)
        db.execute("UPDATE citizens SET phone = ? WHERE id = ?", [PHONE, citizen_id])
        people.append((person, citizen_id))
    statuses = []
    for person, citizen_id in people:
        sid, _ = opened_session(client, db, token, citizen_id, snapshot_of=(person, 1))
        statuses.append(wrong_digits(client, token, sid).status_code)
    assert statuses == [403, 403, 403, 429]


# --- tries sent at the same moment -----------------------------------------------------------

def at_once(url, token, bodies):
    """POST each (path, body) to the live server, one thread each, all released together."""
    import threading
    import urllib.error
    import urllib.request
    barrier, answers = threading.Barrier(len(bodies)), [None] * len(bodies)

    def send(i, path, body):
        request = urllib.request.Request(url + path, data=json.dumps(body).encode(), method="POST",
                                         headers={**bearer(token), "Content-Type": "application/json"})
        barrier.wait(timeout=30)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                answers[i] = response.status
        except urllib.error.HTTPError as error:
            answers[i] = error.code
    workers = [threading.Thread(target=send, args=(i, *pb)) for i, pb in enumerate(bodies)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=90)
    return answers


def test_wrong_digits_sent_together_count_one_by_one(app, client, db, token, live_server, lin):
    """A stolen token sending 12 tries at once used to get 12 checks of the same count."""
    app.config.update(SECOND_FACTOR_WAIT_S=0)
    sid, answer = opened_session(client, db, token, lin)
    assert answer.status_code == 200
    answers = at_once(live_server.url, token,
                      [(f"/api/v1/sessions/{sid}/casefile/details", {"phone_last4": f"{i:04d}"})
                       for i in range(12)])
    assert sorted(answers) == [403] * 2 + [423] * 10     # two wrong, the third locks the details
    row = db.execute("SELECT factor_failures FROM sessions WHERE id = ?", [sid]).fetchone()
    assert row[0] == 3 == db.execute("SELECT count(*) FROM factor_failures").fetchone()[0]


def test_case_files_opened_together_keep_to_the_devices_pace(app, client, db, token, live_server, lin):
    app.config["CASEFILE_DEVICE_LIMIT"] = 2
    sessions = []
    for _ in range(12):
        payload = greeted_payload(db, lin)
        assert post_visit(client, token, payload).status_code == 201
        helpers.pass_liveness(db, payload["id"])
        sessions.append(payload["id"])
    answers = at_once(live_server.url, token, [(f"/api/v1/sessions/{sid}/casefile",
                                                {"citizen_key": key_of(db, lin)}) for sid in sessions])
    assert sorted(answers) == [200, 200] + [429] * 10
    opened = db.execute("SELECT count(*) FROM audit_log WHERE action = 'casefile.open'").fetchone()[0]
    assert opened == 2
    assert db.execute("SELECT count(*) FROM audit_log WHERE action = 'device.throttled'").fetchone()[0] == 1


# --- case files -------------------------------------------------------------------------------

def test_a_device_opening_case_files_fast_is_paused_and_the_admins_see_it(app, client, db, token,
                                                                         auth, lin):
    app.config["CASEFILE_DEVICE_LIMIT"] = 3
    answers = [opened_session(client, db, token, lin)[1].status_code for _ in range(5)]
    assert answers == [200, 200, 200, 429, 429]
    alerts = db.execute("SELECT * FROM audit_log WHERE action = 'device.throttled'").fetchall()
    assert len(alerts) == 1 and alerts[0]["target_id"] == "kiosk-1"
    auth.login("admin")
    page = client.get("/admin/").get_data(as_text=True)
    assert 'class="alert-row"' in page and "kiosk-1" in page


def test_no_case_file_for_a_session_without_its_snapshot(client, db, token, lin):
    _, answer = opened_session(client, db, token, lin, snapshot=False)
    assert answer.status_code == 403 and "snapshot" in answer.get_json()["error"]["message"]


def black_jpeg():
    import io
    from PIL import Image
    out = io.BytesIO()
    Image.new("RGB", (64, 64)).save(out, "JPEG")
    return out.getvalue()


@pytest.mark.parametrize("snapshot", ["another face", "no face"])
def test_a_greeting_whose_snapshot_is_not_the_citizen_opens_nothing(client, db, token, lin, snapshot):
    """A stolen token posting "I greeted Lin" with another face, or with no face at all."""
    import io
    payload = greeted_payload(db, lin)
    picture = helpers.snapshot_jpeg("joe_biden", 1) if snapshot == "another face" else black_jpeg()
    posted = client.post("/api/v1/sessions", headers=bearer(token), content_type="multipart/form-data",
                         data={"session": json.dumps(payload), "snapshot": (io.BytesIO(picture), "f.jpg")})
    assert posted.status_code == 201
    sid = payload["id"]
    helpers.pass_liveness(db, sid)
    answer = client.post(f"/api/v1/sessions/{sid}/casefile", json={"citizen_key": key_of(db, lin)},
                         headers=bearer(token))
    assert answer.status_code == 403 and "snapshot" in answer.get_json()["error"]["message"]
    row = db.execute("SELECT snapshot_distance, case_opened_at FROM sessions WHERE id = ?", [sid]).fetchone()
    assert row["snapshot_distance"] > helpers.one_to_one_limit() and row["case_opened_at"] is None
    refusal = db.execute("SELECT detail FROM audit_log WHERE action = 'casefile.refused'").fetchone()
    assert "snapshot_not_citizen" in refusal[0]
    details = client.post(f"/api/v1/sessions/{sid}/casefile/details", json={"phone_last4": "4321"},
                          headers=bearer(token))
    assert details.status_code in (403, 409) and "cases" not in details.get_json()


def test_the_citizens_own_face_opens_the_file_and_the_distance_is_kept(client, db, token, lin):
    # her enrolment photo as the device crops and sends it: the same face, only rescaled
    sid, answer = opened_session(client, db, token, lin, snapshot_of=("rose_leslie", 1))
    assert answer.status_code == 200
    kept = db.execute("SELECT snapshot_distance FROM sessions WHERE id = ?", [sid]).fetchone()[0]
    assert 0 <= kept < 0.2


def test_the_snapshot_check_never_goes_past_the_admins_1to1_ceiling(client, db, token, lin):
    """Her other photo is 0.67 from her template. With the 1:1 ceiling at 0.60 the server
    refuses it, although the device greets at the prior's 0.975 for a one-citizen gallery."""
    set_setting(db, "calibration.max_threshold_1to1@mobilefacenet", 0.60)
    _, answer = opened_session(client, db, token, lin, snapshot_of=("rose_leslie", 2))
    assert answer.status_code == 403 and "snapshot" in answer.get_json()["error"]["message"]


def test_refusals_count_towards_a_devices_pace_and_stop_the_server_looking(app, client, db, token, lin):
    """A token posting greetings with pictures that are not the citizen: each refusal cost
    the server a look at a picture; past the pace, it is throttled before looking."""
    app.config["CASEFILE_DEVICE_LIMIT"] = 2
    answers = [opened_session(client, db, token, lin, snapshot_of=("joe_biden", 1))
               for _ in range(4)]
    assert [a.status_code for _, a in answers] == [403, 403, 429, 429]
    looked = db.execute("SELECT count(*) FROM sessions WHERE snapshot_distance IS NOT NULL").fetchone()[0]
    assert looked == 2


def test_with_site_galleries_no_case_file_of_another_sites_citizen(client, db, token, lin):
    _, answer = opened_session(client, db, token, lin)       # before: any site
    assert answer.status_code == 200
    set_setting(db, "gallery.by_site", True)
    db.execute("UPDATE citizens SET district = 'Hall B' WHERE id = ?", [lin])   # the kiosk: Hall A
    payload = greeted_payload(db, lin)
    assert post_visit(client, token, payload).status_code == 409


def test_the_server_dates_a_visit_a_device_cannot_move_it(client, db, token, lin):
    future = (datetime.now(timezone.utc) + timedelta(days=2)).isoformat()
    sid, answer = opened_session(client, db, token, lin, started_at=future)
    row = db.execute("SELECT started_at, received_at, device_started_at FROM sessions WHERE id = ?",
                     [sid]).fetchone()
    assert row["started_at"] == row["received_at"] and row["device_started_at"] > row["received_at"]
    old = (datetime.now(timezone.utc) - timedelta(hours=2)).isoformat()
    _, answer = opened_session(client, db, token, lin, started_at=old)
    assert answer.status_code == 403 and "greet again" in answer.get_json()["error"]["message"]


# --- every response and request -------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/login", "/console/", "/api/v1/config", "/no-such-page"])
def test_every_answer_carries_security_headers(client, path):
    response = client.get(path)
    csp = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in \
        csp.split("script-src")[1].split(";")[0]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"


def test_no_page_has_inline_script():
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    for page in [*root.glob("templates/**/*.html"), *root.glob("kiosk/templates/**/*.html")]:
        text = page.read_text(encoding="utf-8")
        for handler in ("onclick=", "onsubmit=", "onchange=", "onload=", "javascript:"):
            assert handler not in text, (page.name, handler)
        for tag in text.split("<script")[1:]:
            assert 'src="' in tag.split(">")[0] or 'type="application/json"' in tag.split(">")[0], page.name


@pytest.mark.parametrize("body", ["[" * 100_000 + "]" * 100_000, json.dumps({"a": [[[[[[[[[[[[[[[[
    [[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]})])
def test_deeply_nested_json_is_a_400_in_the_one_error_shape(client, token, body):
    response = client.post("/api/v1/sessions", data=body, content_type="application/json",
                           headers=bearer(token))
    assert response.status_code == 400 and response.get_json()["error"]["status"] == 400


def test_an_anonymous_upload_is_refused_before_its_body_is_read(client):
    response = client.post("/imports/", data=b"x" * (5 * 1024 * 1024),
                           content_type="multipart/form-data; boundary=x")
    assert response.status_code == 413


def test_the_instance_folder_and_database_are_the_servers_alone(app):
    assert stat.S_IMODE(os.stat(app.instance_path).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(app.config["PHOTOS_DIR"]).st_mode) == 0o700
    if not app.config["DATABASE"].startswith("postgresql:"):   # on PostgreSQL: no file here
        assert stat.S_IMODE(os.stat(app.config["DATABASE"]).st_mode) == 0o600


def test_the_device_store_is_its_owners_alone(tmp_path):
    from device.store import Store
    store = Store(tmp_path / "kiosk.db")
    store.close()
    assert stat.S_IMODE(os.stat(tmp_path / "kiosk.db").st_mode) == 0o600


def test_the_kiosk_screen_answers_only_its_own_host():
    from kiosk.screen import ScreenState, create_screen_app
    screen = create_screen_app(ScreenState()).test_client()
    assert screen.get("/state", headers={"Host": "127.0.0.1:8765"}).status_code == 200
    assert screen.get("/state", headers={"Host": "localhost:8765"}).status_code == 200
    assert screen.get("/state", headers={"Host": "evil.example:8765"}).status_code == 400
