"""Hostile and broken input, end to end: every bad request gets a clear error in the one shape
(JSON {"error": {"status", "message"}} under /api/, a page for people, one line and a non-zero
exit on the command line), never a 500, and nothing is written or lost.

Each case here once produced a 500, a misleading success or unbounded reading, unless it says
it pins behaviour that was already right and is easy to break.
"""
import base64
import http.client
import io
import json
import time
import zipfile

import pytest
from PIL import Image

from conftest import PASSWORD, AuthActions, person_photo
from db import open_db
from helpers import (RECORD_HEADER, add_case, bearer, add_citizen, add_device, add_session, add_template,
                     greeted_payload, huge_png_header, id_number, key_of, make_zip, new_device,
                     pass_liveness, people_photo, photo_folder, post_visit, record, session_count,
                     session_payload, write_csv)

HUGE = 10 ** 30          # beyond SQLite's 64-bit integers and beyond float's exact range
SQLITE_MAX = 2 ** 63 - 1


def assert_error(response, status, word=""):
    """The one JSON error shape, with this status (and a message naming `word`)."""
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    assert response.is_json, response.get_data(as_text=True)[:300]
    body = response.get_json()
    assert set(body) == {"error"} and set(body["error"]) == {"status", "message"}
    assert body["error"]["status"] == status
    assert word in body["error"]["message"]
    assert "Traceback" not in body["error"]["message"]


def assert_page(response, status):
    """An error page for people: the status, HTML, no traceback."""
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    text = response.get_data(as_text=True)
    assert "Traceback" not in text and "Internal error" not in text


def jpeg(path=None, size=(320, 240)):
    img = Image.open(path) if path else Image.new("RGB", size, (120, 90, 60))
    out = io.BytesIO()
    img.convert("RGB").save(out, "JPEG", quality=85)
    return out.getvalue()


def raw_json(client, token, body, path="/api/v1/sessions"):
    """POST text as application/json exactly as given (NaN, huge numbers: what json.dumps writes)."""
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post(path, data=data, content_type="application/json", headers=bearer(token))


@pytest.fixture
def citizen_id(app, db):
    cid = add_citizen(app, db, phone="138 1234 5678")
    add_template(db, cid, "barack_obama", 1)
    add_case(db, cid)
    return cid


def snapshots(app):
    import os
    return sorted(os.listdir(app.config["SNAPSHOTS_DIR"]))


# --- device API: the gallery ----------------------------------------------------------------

def test_gallery_since_must_be_plain_digits(client, token):
    # "²".isdigit() is True and int("²") raised: a 500
    for since in ["-1", "1e9", "abc", "", " 1", "0x10", "²", "١٢٣", "1.0"]:
        response = client.get("/api/v1/gallery", query_string={"since": since}, headers=bearer(token))
        assert_error(response, 400, "since")


def test_gallery_since_beyond_the_server_starts_the_device_over(client, token):
    response = client.get("/api/v1/gallery", query_string={"since": str(HUGE)}, headers=bearer(token))
    assert response.status_code == 200 and response.get_json()["full"] is True


# --- device API: tokens and methods ---------------------------------------------------------

def test_odd_authorization_headers_get_401(client, token):
    for header in ["", "Bearer", "Bearer ", "Bearer    ", "Token abc", "Bearer " + "x" * 20_000,
                   "Bearer \u00e9\u00ff\u00a0", "Bearer a b c", "Bearer\tabc", f"Basic {token}"]:
        response = client.get("/api/v1/config", headers={"Authorization": header})
        assert_error(response, 401)


def test_revoked_token_gets_401_on_every_endpoint(runner, client, db, token):
    payload = session_payload()
    assert client.post("/api/v1/sessions", json=payload, headers=bearer(token)).status_code == 201
    assert runner.invoke(args=["revoke-device", "kiosk-1"]).exit_code == 0
    for method, path in [("get", "/api/v1/gallery"), ("get", "/api/v1/config"),
                         ("post", "/api/v1/sessions"), ("get", f"/api/v1/sessions/{payload['id']}"),
                         ("post", f"/api/v1/sessions/{payload['id']}/liveness"),
                         ("post", f"/api/v1/sessions/{payload['id']}/ticket")]:
        response = getattr(client, method)(path, json=session_payload(), headers=bearer(token))
        assert_error(response, 401, "revoked")
    assert session_count(db) == 1


def test_wrong_methods_get_405_json(client, token):
    for method, path in [("get", "/api/v1/sessions"), ("put", "/api/v1/sessions"),
                         ("delete", "/api/v1/gallery"), ("post", "/api/v1/config"),
                         ("get", "/api/v1/sessions/x/ticket"), ("get", "/api/v1/sessions/x/liveness")]:
        assert_error(getattr(client, method)(path, headers=bearer(token)), 405)


@pytest.mark.parametrize("session_id", ["%00", "a" * 20_000, "%E2%80%AE", "..%2F..%2Fetc", "' OR 1=1 --"])
def test_odd_session_ids_in_the_url_are_404(client, token, session_id):
    for path in (f"/api/v1/sessions/{session_id}", ):
        assert_error(client.get(path, headers=bearer(token)), 404)
    assert_error(client.post(f"/api/v1/sessions/{session_id}/casefile", json={"citizen_key": "c_nobody"},
                             headers=bearer(token)), 404)


# --- device API: session bodies -------------------------------------------------------------

@pytest.mark.parametrize("body, word", [
    ("[1, 2, 3]", "object"),
    ('"a session"', "object"),
    ("42", "object"),
    ("true", "object"),
    ("null", "JSON"),
    ("{", "JSON"),
    ("", "JSON"),
    ('{"id": NaN}', "id"),
    ('{"distance": Infinity}', "distance"),   # refused by the parser, which names the field
    ("\ufeff{}", "id"),                 # a BOM is read past; then the fields are checked
    ('{"outcome": "greeted", "citizen_key": "c_\\ud800x"}', "JSON"),   # a lone surrogate: no 500
])
def test_session_bodies_that_are_not_a_json_object(client, db, token, body, word):
    assert_error(raw_json(client, token, body), 400, word)
    assert session_count(db) == 0


@pytest.mark.parametrize("fields, word", [
    ({"distance": HUGE}, "distance"),             # math.isfinite(10**30) fine, 10**400 overflowed
    ({"distance": 10 ** 400}, "distance"),
    ({"distance": float("nan")}, "distance"),
    ({"margin": float("inf")}, "margin"),
    ({"margin": float("-inf")}, "margin"),
    ({"time_to_greet": -0.5}, "time_to_greet"),
    ({"time_to_greet": 1e300}, "time_to_greet"),
    ({"time_to_greet": "0.4"}, "time_to_greet"),
    ({"outcome": "greeted", "citizen_key": HUGE}, "citizen_key"),
    ({"outcome": "greeted", "citizen_key": "k" * 65}, "citizen_key"),
    ({"outcome": "greeted", "citizen_key": -3}, "citizen_key"),
    ({"outcome": "greeted", "citizen_key": 1.0}, "citizen_key"),
    ({"outcome": "greeted", "citizen_key": ["c_1"]}, "citizen_key"),
    ({"registry_id": ["r"]}, "registry_id"),
    ({"candidates": "c_1"}, "candidates"),
    ({"candidates": [{"key": "c_1", "distance": HUGE}]}, "distance"),
    ({"candidates": [{"key": ["c_1"], "distance": 0.3}]}, "candidate"),
    ({"outcome": ["greeted"]}, "outcome"),
    ({"outcome": {"greeted": 1}}, "outcome"),
    ({"liveness": None}, "liveness"),
    ({"liveness": "PASSED"}, "liveness"),
    ({"started_at": "0001-01-01T00:00:00+05:00"}, "started_at"),   # no UTC form: was a 500
    ({"started_at": "9999-12-31T23:59:59-05:00"}, "started_at"),
    ({"started_at": "2026-02-30T10:00:00Z"}, "started_at"),
    ({"started_at": ["2026-01-01T10:00:00Z"]}, "started_at"),
    ({"id": "\x00"}, "id"),
    ({"id": "x" * 100_000}, "id"),
    ({"id": ["a"]}, "id"),
])
def test_session_fields_of_wrong_type_or_range(client, db, token, fields, word):
    assert_error(raw_json(client, token, session_payload(**fields)), 400, word)
    assert session_count(db) == 0


def test_replay_with_other_content_is_a_conflict_and_keeps_the_first(client, db, token, citizen_id):
    payload = session_payload()
    first = client.post("/api/v1/sessions", json=payload, headers=bearer(token))
    assert first.status_code == 201
    # Answering 200 here told the device its greeting was stored: it would delete the only copy.
    other = greeted_payload(db, citizen_id, id=payload["id"], started_at=payload["started_at"],
                            distance=0.2, margin=0.3)
    assert_error(client.post("/api/v1/sessions", json=other, headers=bearer(token)), 409, "different")
    row = db.execute("SELECT outcome, citizen_id, distance FROM sessions").fetchone()
    assert tuple(row) == ("unknown", None, 1.2) and session_count(db) == 1
    # the same visit again, even with the id in capitals and after liveness was reported
    assert client.post(f"/api/v1/sessions/{payload['id']}/liveness", json={"result": "failed"},
                       headers=bearer(token)).status_code == 201
    same = dict(payload, id=payload["id"].upper())
    replay = client.post("/api/v1/sessions", json=same, headers=bearer(token))
    assert replay.status_code == 200 and replay.get_json()["liveness"] == "failed"


def test_session_id_of_another_device_changes_nothing(client, db, token):
    other = new_device(db, "kiosk-2")
    payload = session_payload()
    assert client.post("/api/v1/sessions", json=payload, headers=bearer(token)).status_code == 201
    for path, body in [("/api/v1/sessions", payload),
                       (f"/api/v1/sessions/{payload['id']}/liveness", {"result": "passed"})]:
        response = client.post(path, json=body, headers=bearer(other))
        assert response.status_code in (404, 409) and response.get_json()["error"]
    row = db.execute("SELECT device_id, liveness FROM sessions").fetchone()
    assert tuple(row) == (1, "not_run")


def multipart(client, token, parts):
    return client.post("/api/v1/sessions", data=parts, headers=bearer(token),
                       content_type="multipart/form-data")


def test_two_snapshots_keep_the_first_and_a_bad_second_is_ignored(app, client, db, token):
    good = jpeg(person_photo("kit_harington", 2))
    payload = session_payload()
    response = multipart(client, token, {"session": json.dumps(payload),
                                         "snapshot": [(io.BytesIO(good), "a.jpg"),
                                                      (io.BytesIO(b"junk"), "b.jpg")]})
    assert response.status_code == 201
    assert snapshots(app) == [f"{payload['id']}.jpg"]
    with open(f"{app.config['SNAPSHOTS_DIR']}/{payload['id']}.jpg", "rb") as f:
        assert f.read() == good


@pytest.mark.parametrize("parts, status, word", [
    ({"snapshot": (io.BytesIO(b"\xff\xd8\xff"), "s.jpg")}, 400, "session"),
    ({"session": (io.BytesIO(b"{}"), "session.json")}, 400, "session"),  # a file, not a field
    ({"session": b"\xff\xfe{"}, 400, "JSON"),
    ({"session": "[]"}, 400, "object"),
    ({"session": "SESSION", "snapshot": (io.BytesIO(b""), "s.jpg")}, 400, "JPEG"),
    ({"session": "SESSION", "snapshot": (io.BytesIO(huge_png_header()), "s.jpg")}, 400, "JPEG"),
    ({"session": "SESSION", "snapshot": (io.BytesIO(b"\xff\xd8\xff\xdb" + b"\x00" * 300), "s.jpg")},
     400, "snapshot"),
])
def test_bad_multipart_uploads_store_nothing(app, client, db, token, parts, status, word):
    parts = {k: (json.dumps(session_payload()) if v == "SESSION" else v) for k, v in parts.items()}
    response = multipart(client, token, parts)
    assert_error(response, status, word)
    assert session_count(db) == 0 and snapshots(app) == []


@pytest.mark.parametrize("text, word", [
    ("[" * 1000, "nested"),                                              # was a RecursionError: 500
    ('{"a": ' * 40 + "1" + "}" * 40, "nested"),
    ('{"outcome": "greeted", "citizen_key": "c_\\ud800"}', "surrogate"),  # was a 500
    ('{"\\ud800": 1}', "surrogate"),                                       # in a key
    ('{"distance": NaN}', "distance"),
    ('{"margin": 1e400}', "margin"),
    ('{"time_to_greet": ' + "1" * 5000 + "}", "time_to_greet"),
    ("x" * 300_000, "KB"),
])
def test_the_session_part_goes_through_the_one_parser(app, client, db, token, text, word):
    response = multipart(client, token, {"session": text, "snapshot": (io.BytesIO(jpeg()), "s.jpg")})
    assert_error(response, 413 if word == "KB" else 400, word)
    assert session_count(db) == 0 and snapshots(app) == []


@pytest.mark.parametrize("key", ["c_\\udbff", "c_ x", "c_é", "../c", "", "k" * 65, "c_<b>"])
def test_an_unknown_visit_whose_candidate_key_no_citizen_can_have_is_not_stored(client, db, token, key):
    """A lone surrogate here was stored (201), and the clerks' page of the session answered 500
    from then on: a candidate key is a key's characters only."""
    text = json.dumps(session_payload(candidates=[{"key": "KEY", "distance": 0.5}])).replace(
        '"KEY"', f'"{key}"')
    response = multipart(client, token, {"session": text, "snapshot": (io.BytesIO(jpeg()), "s.jpg")})
    assert response.status_code == 400
    assert session_count(db) == 0


def jpeg_claiming(width, height):
    """A small real JPEG whose frame header (SOF0) claims width x height pixels."""
    data = bytearray(jpeg(size=(64, 48)))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)


def test_jpeg_bomb_snapshot_is_refused_from_its_header(app, client, db, token):
    """A JPEG whose header claims 20000 x 20000 pixels: refused before decoding."""
    data = jpeg_claiming(20000, 20000)
    response = multipart(client, token, {"session": json.dumps(session_payload()),
                                         "snapshot": (io.BytesIO(data), "s.jpg")})
    assert_error(response, 400, "too large")
    assert session_count(db) == 0 and snapshots(app) == []


class CountingInput:
    """wsgi.input that counts what the app reads from it."""

    def __init__(self, stream, counter):
        self.stream, self.counter = stream, counter

    def _count(self, data):
        self.counter[0] += len(data)
        return data

    def read(self, *args):
        return self._count(self.stream.read(*args))

    def readline(self, *args):
        return self._count(self.stream.readline(*args))

    def readinto(self, buffer):
        n = self.stream.readinto(buffer)
        self.counter[0] += n or 0
        return n


def _chunked_post(server, path, token, content_type, megabytes):
    """POST `megabytes` of spaces with Transfer-Encoding: chunked (no Content-Length)."""
    def body():
        for _ in range(megabytes):
            yield b" " * (1 << 20)
    conn = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=30)
    try:
        conn.request("POST", path, body=body(), encode_chunked=True,
                     headers={"Authorization": f"Bearer {token}", "Content-Type": content_type})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.mark.parametrize("path, content_type, statuses", [
    ("/api/v1/sessions", "application/json", (413,)),
    ("/api/v1/sessions", "multipart/form-data; boundary=xyz", (413,)),
    ("/login", "application/x-www-form-urlencoded", (400, 413)),  # cut at the cap: no CSRF token
    ("/login", "multipart/form-data; boundary=xyz", (413,)),
])
def test_a_chunked_body_without_length_is_capped(app, live_server, db, token, path, content_type,
                                                 statuses):
    # A chunked body has no Content-Length for the upfront check: before the cap it was read
    # whole, up to MAX_CONTENT_LENGTH (512 MB), into memory before anything looked at it.
    read = [0]
    wsgi_app = app.wsgi_app

    def counting(environ, start_response):
        environ["wsgi.input"] = CountingInput(environ["wsgi.input"], read)
        return wsgi_app(environ, start_response)

    app.wsgi_app = counting
    try:
        status, body = _chunked_post(live_server, path, token, content_type, megabytes=12)
    finally:
        app.wsgi_app = wsgi_app
    assert status in statuses, (status, body[:200])
    assert read[0] <= 4 * 2 ** 20 + 64 * 1024, f"the app read {read[0]} bytes"
    if path.startswith("/api/"):
        assert json.loads(body)["error"]["status"] == 413
    assert session_count(db) == 0


# --- device API: liveness, case file, second factor -----------------------------------------

def greeted_session(client, token, citizen_id):
    db = open_db(client.application.config["DATABASE"], migrate_now=False)
    payload = greeted_payload(db, citizen_id, time_to_greet=0.4)
    db.close()
    assert post_visit(client, token, payload, snapshot_of=("barack_obama", 2)).status_code == 201
    return payload["id"]


@pytest.mark.parametrize("body, word", [
    ('{"result": "passed", "t": NaN}', "seconds"),     # the parser refuses NaN: the body's shape
    ('{"result": "passed", "t": -1}', "t must"),
    pytest.param('{"result": "passed", "t": 1' + "0" * 400 + "}", "seconds", id="t-10**400"),
    ('{"result": "passed", "t": "3"}', "t must"),
    ('{"result": "passed", "t": true}', "t must"),
    ('{"result": "PASSED"}', "result"),
    ('{"result": ["passed"]}', "result"),
    ('["passed"]', "result"),
    ("passed", "result"),
])
def test_bad_liveness_reports_change_nothing(client, db, token, citizen_id, body, word):
    session_id = greeted_session(client, token, citizen_id)
    assert_error(raw_json(client, token, body, f"/api/v1/sessions/{session_id}/liveness"), 400, word)
    assert db.execute("SELECT liveness FROM sessions").fetchone()[0] == "not_run"


def test_liveness_twice_same_is_200_and_different_is_409(client, db, token, citizen_id):
    session_id = greeted_session(client, token, citizen_id)
    path = f"/api/v1/sessions/{session_id}/liveness"
    assert client.post(path, json={"result": "failed", "t": 3}, headers=bearer(token)).status_code == 201
    assert client.post(path, json={"result": "failed", "t": 3}, headers=bearer(token)).status_code == 200
    assert_error(client.post(path, json={"result": "passed"}, headers=bearer(token)), 409, "failed")
    assert db.execute("SELECT liveness FROM sessions").fetchone()[0] == "failed"


@pytest.mark.parametrize("body, status", [
    ({"citizen_key": HUGE}, 400), ({"citizen_key": "k" * 65}, 400), ({"citizen_key": 1.0}, 400),
    ({"citizen_key": None}, 400), ({}, 400), ([1], 400), ({"citizen_key": "c_nobody"}, 403),
    ({"citizen_id": 1}, 400),
])
def test_odd_case_file_requests_never_open_it(client, db, token, citizen_id, body, status):
    session_id = greeted_session(client, token, citizen_id)
    client.post(f"/api/v1/sessions/{session_id}/liveness", json={"result": "passed"}, headers=bearer(token))
    response = client.post(f"/api/v1/sessions/{session_id}/casefile", json=body, headers=bearer(token))
    assert_error(response, status)
    assert db.execute("SELECT case_opened_at FROM sessions").fetchone()[0] is None


@pytest.fixture
def opened(client, db, token, citizen_id):
    session_id = greeted_session(client, token, citizen_id)
    pass_liveness(db, session_id)     # the blink's evidence is tested in test_liveness_evidence.py
    response = client.post(f"/api/v1/sessions/{session_id}/casefile",
                           json={"citizen_key": key_of(db, citizen_id)}, headers=bearer(token))
    assert response.status_code == 200
    return session_id


def details(client, token, session_id, digits):
    return client.post(f"/api/v1/sessions/{session_id}/casefile/details",
                       json={"phone_last4": digits}, headers=bearer(token))


def test_not_four_ascii_digits_is_refused_without_using_a_try(client, db, token, opened):
    # "١٢٣٤" and "²³⁴⁵" pass str.isdigit(): each counted as a wrong try until the details locked
    for digits in ["١٢٣٤", "²³⁴⁵", "①②③④", "12345", "123", "", "abcd", "12 4", "5678\n", 5678, None, ["5678"]]:
        assert_error(details(client, token, opened, digits), 400, "four digits")
    assert db.execute("SELECT factor_failures FROM sessions").fetchone()[0] == 0
    response = details(client, token, opened, "5678")
    assert response.status_code == 200 and response.get_json()["cases"]


def test_full_width_digits_count_as_the_digits_they_are(client, token, opened):
    """A Chinese input method types "５６７８"; it is the right answer, not a wrong try."""
    response = details(client, token, opened, "５６７８")
    assert response.status_code == 200 and response.get_json()["cases"]


# --- web pages: query strings, ids, forms ---------------------------------------------------

@pytest.fixture
def staff(app, client, db):
    """Logged in as admin, with a device, a citizen, a session and a case to look at."""
    device_id, _ = add_device(db, "kiosk-9")
    cid = add_citizen(app, db)
    add_session(app, db, device_id, cid)
    add_case(db, cid)
    AuthActions(client).login("admin")
    return cid


LIST_PARAMS = {
    "/console/": ["device", "per_page", "before", "day", "status", "site"],
    "/console/sessions.json": ["since", "watch", "before", "device", "day"],
    "/console/dashboard": ["day"],
    "/admin/audit": ["before", "day", "per_page", "target_id", "actor"],
    "/citizens/": ["after", "q"],
}
ODD_VALUES = ["-1", "0", "abc", str(HUGE), str(SQLITE_MAX), "²", "１２", "1e3", "2026-02-30",
              "0001-01-01", "9999-12-31", "\x00", "x" * 3000, "2026-01-01T00:00:00Z|", "|", "%"]


@pytest.mark.parametrize("path", list(LIST_PARAMS))
def test_list_pages_answer_odd_query_values_without_a_500(app, client, staff, path):
    app.config["TIMEZONE"] = "Asia/Shanghai"  # east of UTC: 0001-01-01 has no UTC start
    for param in LIST_PARAMS[path]:
        for value in ODD_VALUES:
            response = client.get(path, query_string={param: value})
            assert response.status_code in (200, 400), (param, value, response.status_code)
            assert "Internal error" not in response.get_data(as_text=True)


def test_dates_without_a_utc_day_are_a_400(app, client, staff):
    app.config["TIMEZONE"] = "Asia/Shanghai"
    for path in ["/console/?day=9999-12-31", "/console/?day=0001-01-01",
                 "/console/dashboard?day=9999-12-31", "/admin/audit?day=0001-01-01",
                 "/console/sessions.json?day=9999-12-31"]:
        response = client.get(path, headers={"Accept": "application/json", "Accept-Language": "en"})
        assert_error(response, 400, "out of range")


def test_device_filter_that_is_no_device_id_is_a_400(client, staff):
    for value in [str(HUGE), "²", "-1", "1.5"]:
        response = client.get("/console/sessions.json", query_string={"device": value},
                              headers={"Accept": "application/json", "Accept-Language": "en"})
        assert_error(response, 400, "Unknown device filter")


@pytest.mark.parametrize("method, paths", [
    ("get", [f"/citizens/{HUGE}", f"/citizens/{HUGE}/photo", f"/console/citizens/{HUGE}/cases",
             f"/citizens/{HUGE}/photo", f"/console/cases/{HUGE}", f"/imports/{HUGE}",
             f"/imports/{HUGE}/progress", f"/imports/{HUGE}/report", f"/citizens/{SQLITE_MAX}",
             "/citizens/-1", "/console/sessions/%00"]),
    ("post", [f"/admin/users/{HUGE}", f"/admin/devices/{HUGE}/revoke",
              f"/console/cases/{HUGE}/notes", "/console/sessions/nope/review"]),
])
def test_ids_that_do_not_exist_are_404_pages(client, staff, method, paths):
    # ids beyond SQLite's integer range raised OverflowError in the query: a 500
    kwargs = {}
    if method == "post":
        kwargs["data"] = {"csrf_token": AuthActions(client).csrf_token("/admin/users")}
    for path in paths:
        assert_page(getattr(client, method)(path, **kwargs), 404)


def test_a_case_update_for_an_id_beyond_sqlite_is_refused(client, db, staff):
    token = AuthActions(client).csrf_token("/admin/users")
    response = client.post(f"/console/cases/{HUGE}", data={"csrf_token": token, "status": "closed"})
    assert response.status_code in (404, 405)  # werkzeug answers 405: no POST rule matched either
    assert_page(response, response.status_code)
    assert db.execute("SELECT status FROM cases").fetchone()[0] == "open"


TABLES = ("users", "devices", "case_notes", "import_jobs", "settings")


@pytest.mark.parametrize("path, data", [
    ("/admin/users", {"username": "mallory", "password": "x" * 12, "role": "admin"}),
    ("/admin/settings", {"policy.threshold": "0.6"}),
    ("/admin/devices", {"name": "evil", "kind": "kiosk"}),
    ("/console/cases/1/notes", {"body": "note"}),
    ("/console/cases/1", {"status": "closed"}),
    ("/imports/", {}),
    ("/logout", {}),
])
def test_forms_without_a_valid_csrf_token_change_nothing(client, db, staff, path, data):
    before = [db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in TABLES]
    for csrf in (None, "", "forged-token"):
        form = data if csrf is None else dict(data, csrf_token=csrf)
        assert_page(client.post(path, data=form), 400)
    after = [db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in TABLES]
    assert after == before
    assert db.execute("SELECT status FROM cases").fetchone()[0] == "open"
    assert client.get("/admin/").status_code == 200  # still logged in


def settings_form(client, **fields):
    form = {"csrf_token": AuthActions(client).csrf_token("/admin/settings"), "policy.threshold": "0.9",
            "policy.margin": "0.06", "policy.min_frames": "3", "retention_days": "30",
            "duplicates.review_budget": "0.05",
            "greeting.templates.zh": "{name}", "greeting.templates.yue": "{name}",
            "greeting.templates.en": "Hello, {name}!"}
    form.update(fields)
    return form


def test_greeting_templates_with_formats_or_odd_fields_are_refused(client, db, staff):
    # "{name:>999999999}" was saved, and every device then built a 1 GB string to greet
    for greeting in ["{name:>999999999}", "{name!r}", "{name:{surname}}", "{name.__class__}",
                     "{0}", "{}", "{name[0]}", "{", "x" * 121]:
        response = client.post("/admin/settings",
                               data=settings_form(client, **{"greeting.templates.zh": greeting}))
        assert_page(response, 400)
        assert db.execute("SELECT count(*) FROM settings WHERE key NOT IN ('registry.id', 'face.model')").fetchone()[0] == 0, greeting


def test_settings_out_of_range_save_nothing(client, db, staff):
    for field, value in [("policy.threshold", "nan"), ("policy.threshold", "inf"),
                         ("policy.min_frames", str(HUGE)), ("retention_days", "-1"),
                         ("policy.margin", "0x10"), ("policy.min_frames", "2.5")]:
        assert_page(client.post("/admin/settings", data=settings_form(client, **{field: value})), 400)
        assert db.execute("SELECT count(*) FROM settings WHERE key NOT IN ('registry.id', 'face.model')").fetchone()[0] == 0, (field, value)


def test_a_big_body_outside_the_bulk_upload_is_refused_before_it_is_read(client, staff):
    note = {"csrf_token": AuthActions(client).csrf_token("/admin/users"), "body": "x" * (5 * 2 ** 20)}
    assert_page(client.post("/console/cases/1/notes", data=note), 413)


# --- bulk import: the web page and the command ----------------------------------------------

def upload(client, records, photos):
    token = AuthActions(client).csrf_token("/imports/")
    return client.post("/imports/", content_type="multipart/form-data",
                       data={"csrf_token": token, "records": (io.BytesIO(records), "RECORDS.csv"),
                             "photos": (io.BytesIO(photos), "photos.zip")})


def wait_for_job(client, response, timeout=120):
    """The job the upload started, once it has ended: (job id, its progress JSON)."""
    from server.imports import wait_for_job as join_job
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    job_id = int(response.headers["Location"].rstrip("/").split("/")[-1])
    assert join_job(job_id, timeout), "the import did not finish"
    return job_id, client.get(f"/imports/{job_id}/progress").get_json()


def records_csv(tmp_path, rows):
    return write_csv(tmp_path / "records.csv", RECORD_HEADER, rows).read_bytes()


def citizens(db):
    return db.execute("SELECT count(*) FROM citizens").fetchone()[0]


@pytest.mark.parametrize("photos", [b"", b"PK\x03\x04 not really a zip",
                                    (person_photo("joe_biden")).read_bytes()],
                         ids=["empty", "zip-magic-only", "a-photo"])
def test_photos_that_are_not_a_zip_start_no_import(app, client, db, staff, tmp_path, photos):
    before = citizens(db)
    response = upload(client, records_csv(tmp_path, [record(1, "A", "a.jpg")]), photos)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "not a zip" in page or "不是 zip" in page
    assert citizens(db) == before
    assert list((tmp_path / "instance" / "uploads").iterdir()) == []


@pytest.mark.parametrize("records, reason", [
    ((person_photo("joe_biden")).read_bytes(), "records"),          # a photo sent as the CSV
    ((person_photo("joe_biden")).read_bytes()[:64], "records"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "records"),
    (b"", "empty"),
    (b"\xff\xfe\x00", "records"),                                   # a broken UTF-16 BOM
], ids=["a-photo", "a-photo-cut", "png-header", "empty", "broken-utf16"])
def test_a_records_file_that_is_no_csv_fails_the_job_with_its_reason(client, db, staff, tmp_path,
                                                                    records, reason):
    before = citizens(db)
    photos = make_zip(tmp_path / "p.zip", {"a.jpg": b"x"}).read_bytes()
    _, state = wait_for_job(client, upload(client, records, photos))
    assert state["status"] == "failed" and reason in state["error"]
    assert citizens(db) == before


def corrupt_member_zip(path, data):
    """A zip whose one deflated member has damaged compressed bytes (the CRC cannot save it:
    zlib raises first)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("broken.jpg", data)
    raw = bytearray(path.read_bytes())
    start = raw.find(b"broken.jpg") + len("broken.jpg")
    for i in range(start + 10, start + 200):
        raw[i] ^= 0x55
    path.write_bytes(bytes(raw))
    return path


def hostile_zip(tmp_path):
    """One good photo beside every kind of bad entry."""
    path = tmp_path / "hostile.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("good.jpg", people_photo("joe_biden"))
        zf.writestr(zipfile.ZipInfo("../escape.jpg"), people_photo("rose_leslie"))
        zf.writestr(zipfile.ZipInfo("/abs/root.jpg"), people_photo("rose_leslie"))
        zf.writestr(zipfile.ZipInfo("C:/win.jpg"), people_photo("rose_leslie"))
        zf.writestr("bomb.jpg", b"\xff\xd8\xff" + b"\x00" * (40 * 2 ** 20))   # ~40 KB zipped
        zf.writestr("pngbomb.png", huge_png_header(30000, 30000))
        zf.writestr("lzma.jpg", people_photo("kit_harington"), compress_type=zipfile.ZIP_LZMA)
    # damage the LZMA member's data after writing (its header stays valid)
    raw = bytearray(path.read_bytes())
    start = raw.find(b"lzma.jpg") + len("lzma.jpg")
    for i in range(start + 30, start + 300):
        raw[i] ^= 0x55
    path.write_bytes(bytes(raw))
    return path


HOSTILE_ROWS = [
    (record(1, "Good", "good.jpg"), "imported", ""),
    (record(2, "Escape", "escape.jpg"), "rejected", "refused"),
    (record(3, "Root", "root.jpg"), "rejected", "refused"),
    (record(4, "Win", "win.jpg"), "rejected", "refused"),
    (record(5, "Bomb", "bomb.jpg"), "rejected", "larger than"),
    (record(6, "PngBomb", "pngbomb.png"), "rejected", "too large"),
    (record(7, "Lzma", "lzma.jpg"), "rejected", "cannot be read"),
    (record(8, "Dots", "../good.jpg"), "rejected", "refused"),
]


def test_web_import_of_a_hostile_zip_rejects_each_bad_entry_and_keeps_the_good(
        client, db, staff, tmp_path):
    before = citizens(db)
    records = records_csv(tmp_path, [row for row, _, _ in HOSTILE_ROWS])
    job_id, state = wait_for_job(client, upload(client, records, hostile_zip(tmp_path).read_bytes()))
    assert state["status"] == "done", state
    assert (state["imported"], state["rejected"]) == (1, len(HOSTILE_ROWS) - 1)
    page = client.get(f"/imports/{job_id}", headers={"Accept-Language": "en"}).get_data(as_text=True)
    for _, outcome, reason in HOSTILE_ROWS:
        assert reason in page
    assert citizens(db) == before + 1
    # nothing was extracted anywhere: the instance folder holds one new photo, no escapees
    instance = tmp_path / "instance"
    assert not (tmp_path / "escape.jpg").exists() and not (instance / "escape.jpg").exists()
    assert len([p for p in (instance / "photos").iterdir() if p.name.endswith(".jpg")]) == 2


def test_cli_import_with_a_corrupt_zip_member_rejects_that_row_only(runner, db, tmp_path):
    # a damaged deflate stream raised zlib.error: a traceback, and the rows after it never ran
    photos = corrupt_member_zip(tmp_path / "p.zip", people_photo("joe_biden"))
    with zipfile.ZipFile(photos, "a") as zf:
        zf.writestr("fine.jpg", b"")  # an empty member: its own reason
    records = write_csv(tmp_path / "r.csv", RECORD_HEADER,
                        [record(1, "Broken", "broken.jpg"), record(2, "Empty", "fine.jpg"),
                         record(3, "No photo", "", consent="no")])
    result = runner.invoke(args=["import-records", str(records), "--photos", str(photos)])
    assert result.exit_code == 0, result.output
    assert "imported 1, updated 0, unchanged 0, rejected 2" in result.output
    assert "cannot be read" in result.output and "Traceback" not in result.output
    assert citizens(db) == 1


def cli_lines(result):
    return [line for line in result.output.splitlines() if line.strip()]


@pytest.mark.parametrize("problem, message", [
    ("records-is-a-folder", "is a folder"),
    ("cases-is-a-folder", "is a folder"),
    ("records-is-a-photo", "records"),
    ("photos-truncated-zip", "not a readable zip"),
    ("photos-empty-file", "not a readable zip"),
    ("photos-missing", "not found"),
    ("report-folder-missing", "folder does not exist"),
])
def test_cli_import_that_cannot_run_says_so_in_one_line(runner, db, tmp_path, problem, message):
    records = write_csv(tmp_path / "r.csv", RECORD_HEADER, [record(1, "A", "", consent="no")])
    photos = make_zip(tmp_path / "p.zip", {"a.jpg": people_photo("joe_biden")})
    args = ["import-records", str(records), "--photos", str(photos)]
    if problem == "records-is-a-folder":
        args[1] = str(tmp_path)
    elif problem == "cases-is-a-folder":
        args += ["--cases", str(tmp_path)]
    elif problem == "records-is-a-photo":
        args[1] = str(person_photo("joe_biden"))
    elif problem == "photos-truncated-zip":
        (tmp_path / "t.zip").write_bytes(photos.read_bytes()[:200])
        args[3] = str(tmp_path / "t.zip")
    elif problem == "photos-empty-file":
        (tmp_path / "e.zip").write_bytes(b"")
        args[3] = str(tmp_path / "e.zip")
    elif problem == "photos-missing":
        args[3] = str(tmp_path / "nowhere")
    elif problem == "report-folder-missing":
        args += ["--report", str(tmp_path / "no" / "such" / "report.csv")]
    result = runner.invoke(args=args)
    assert result.exit_code != 0
    lines = cli_lines(result)
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], result.output
    assert citizens(db) == 0


def test_a_disk_that_fills_mid_import_leaves_no_stray_photo_and_says_so_in_one_line(
        app, runner, db, tmp_path, monkeypatch):
    import errno
    import os
    from server import importer
    rows = [record(1, "Rose", "rose.jpg"), record(2, "Kit", "kit.jpg")]
    records = write_csv(tmp_path / "r.csv", RECORD_HEADER, rows)
    photos = photo_folder(tmp_path / "p", {"rose.jpg": people_photo("rose_leslie"),
                                           "kit.jpg": people_photo("kit_harington")})
    from server import faces
    real_add = faces.add_template

    def add_template(db, citizen_id, model, encoding, photo_path=None, **other):
        if photo_path.startswith(importer.hashlib.sha256(people_photo("kit_harington")).hexdigest()):
            raise OSError(errno.ENOSPC, "No space left on device")   # Kit's row, after Rose's
        return real_add(db, citizen_id, model, encoding, photo_path=photo_path, **other)
    monkeypatch.setattr(faces, "add_template", add_template)
    result = runner.invoke(args=["import-records", str(records), "--photos", str(photos)])
    lines = cli_lines(result)
    assert result.exit_code != 0 and len(lines) == 1 and "No space left on device" in lines[0]
    assert "run the same import again" in lines[0]
    assert citizens(db) == 0                              # the batch was undone whole
    assert os.listdir(app.config["PHOTOS_DIR"]) == []     # and so were the photos it wrote
    monkeypatch.setattr(faces, "add_template", real_add)
    assert runner.invoke(args=["import-records", str(records), "--photos", str(photos)]).exit_code == 0
    assert citizens(db) == 2 and len(os.listdir(app.config["PHOTOS_DIR"])) == 2


def test_full_width_id_numbers_and_phones_are_stored_as_ascii(runner, db, tmp_path):
    """A full-width ID number ending in X passed \\d and became a second citizen beside the
    same ASCII number; a full-width phone never matched the kiosk keypad's digits."""
    number = next(id_number(n) for n in range(1000) if id_number(n).endswith("X"))
    wide = "".join(chr(ord(c) + 0xFEE0) if c.isdigit() else c for c in number)
    photos = make_zip(tmp_path / "p.zip", {})
    for n, (id_text, phone) in enumerate([(wide, "１３８ ００１３ ８０００"), (number, "13800138000")]):
        records = write_csv(tmp_path / f"r{n}.csv", RECORD_HEADER,
                            [{"id_number": id_text, "name": "王小明", "phone": phone, "consent": "no"}])
        result = runner.invoke(args=["import-records", str(records), "--photos", str(photos)])
        assert result.exit_code == 0, result.output
    rows = db.execute("SELECT id_number, phone FROM citizens").fetchall()
    assert [tuple(r) for r in rows] == [(number, "13800138000")]


@pytest.mark.parametrize("id_text, phone, reason", [
    ("١" * 17 + "X", "13800138000", "resident ID"),
    (id_number(1), "١٣٨٠٠١٣٨٠٠٠", "phone"),
])
def test_other_digit_characters_reject_the_row(runner, db, tmp_path, id_text, phone, reason):
    records = write_csv(tmp_path / "r.csv", RECORD_HEADER,
                        [{"id_number": id_text, "name": "A", "phone": phone, "consent": "no"}])
    photos = make_zip(tmp_path / "p.zip", {})
    result = runner.invoke(args=["import-records", str(records), "--photos", str(photos)])
    assert result.exit_code == 0 and "rejected 1" in result.output and reason in result.output
    assert citizens(db) == 0


def lying_zip(path, size=40 * 2 ** 20, claimed=1000):
    """A zip whose one member inflates to `size` bytes but whose headers claim `claimed`."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("liar.jpg", b"\xff\xd8\xff" + b"\x00" * size)
    raw = bytearray(path.read_bytes())
    central = raw.index(b"PK\x01\x02")
    raw[22:26] = claimed.to_bytes(4, "little")                  # local header: uncompressed size
    raw[central + 24:central + 28] = claimed.to_bytes(4, "little")
    path.write_bytes(bytes(raw))
    return path


def test_cli_import_with_a_zip_whose_sizes_lie_inflates_no_more_than_the_cap(runner, db, tmp_path):
    # pins: the reader caps what it inflates whatever the header says, and the CRC catches the lie
    photos = lying_zip(tmp_path / "p.zip")
    records = write_csv(tmp_path / "r.csv", RECORD_HEADER, [record(1, "Liar", "liar.jpg")])
    result = runner.invoke(args=["import-records", str(records), "--photos", str(photos)])
    assert result.exit_code == 0, result.output
    assert "rejected 1" in result.output and "cannot be read" in result.output
    assert citizens(db) == 0


# --- login: where it sends you afterwards ---------------------------------------------------

@pytest.mark.parametrize("target", ["/\t/evil.com", "/\\evil.com", "/\\/evil.com", "//evil.com",
                                    "/\n/evil.com", "https://evil.com", "/\x00/x"])
def test_login_never_redirects_off_site(client, target):
    # "/<TAB>/evil.com" was accepted, and werkzeug's redirect dropped the tab: "//evil.com"
    token = AuthActions(client).csrf_token()
    response = client.post("/login", query_string={"next": target},
                           data={"username": "admin", "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith("/") and not location.startswith("//") and "evil" not in location


# --- the device agent against a server that answers nonsense --------------------------------

class NonsenseServer:
    """A server on 127.0.0.1 that answers every GET with 200 and the body it is given, and
    every POST with what answer(body) returns: the raw bytes of a whole HTTP response."""

    def __init__(self):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        import threading
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(owner.body)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.wfile.write(owner.answer(body))
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.body = b"{}"
        self.answer = lambda body: b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}"
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def nonsense_server():
    server = NonsenseServer()
    yield server
    server.close()


@pytest.mark.parametrize("body", [
    b"[]", b'"text"', b"{}", b'{"registry_id": "r_test", "seq": "x", "upserts": [], "removals": []}',
    b'{"registry_id": "r_test", "seq": 5, "upserts": [{"key": "c_1"}], "removals": []}',
    b'{"registry_id": "r_test", "seq": 5, "upserts": [{"key": "c_1", "display_name": "A",'
    b' "language": "en", "templates": ["!!"]}], "removals": []}',
    b'{"registry_id": "r_test", "seq": 5, "upserts": [], "removals": [["c_1"]]}',
    b'{"registry_id": "r_test", "seq": 1e400, "upserts": [], "removals": []}',
], ids=["list", "string", "empty", "seq-text", "upsert-short", "template-junk", "removal-list",
        "seq-inf"])
def test_a_gallery_of_the_wrong_shape_keeps_the_cache_and_the_sync_worker(nonsense_server, tmp_path,
                                                                         body):
    # each of these raised out of Syncer.sync_gallery and ended the sync thread: the kiosk
    # then never synced or delivered its outbox again until restarted
    from device.client import ApiClient
    from device.events import EventLog
    from device.store import Store
    from device.sync import Syncer
    events = []
    log = EventLog()
    log.add_listener(events.append)
    store = Store(tmp_path / "device.db")
    try:
        store.bind("r_test", "kiosk-1")
        store.apply_delta({"registry_id": "r_test", "seq": 3, "full": True, "removals": [], "upserts": [
            {"key": "c_7", "display_name": "Kept", "language": "en",
             "templates": [base64.b64encode(bytes(512)).decode()]}]})
        nonsense_server.body = body
        syncer = Syncer(store, ApiClient(nonsense_server.url, "token", timeout=2), log)
        assert syncer.sync_gallery() is False
        assert [e["event"] for e in events] == ["offline"]
        assert store.sync_seq == 3 and list(store.citizens()) == ["c_7"]
    finally:
        store.close()


def outbox_with(tmp_path, count):
    from device.store import Store
    store = Store(tmp_path / "device.db")
    store.bind("r_test", "kiosk-1")
    sessions = [session_payload(registry_id="r_test") for _ in range(count)]
    for session in sessions:
        store.add_session(session)
    return store, sessions


PROXY_413 = (b"HTTP/1.1 413 Request Entity Too Large\r\nContent-Type: text/html\r\n"
             b"Content-Length: 45\r\n\r\n<html><h1>413 Request Entity Too Large</h1>")


@pytest.mark.parametrize("answer", [
    PROXY_413,
    b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot here.",
    b"garbage\r\n\r\n",                                                     # no status line
    b"HTTP/1.1 201 Created\r\nContent-Length: 100\r\n\r\n{\"id\"",           # cut short
], ids=["proxy-413", "proxy-404", "bad-status-line", "cut-short"])
def test_an_answer_that_is_not_the_registrys_keeps_the_session_for_later(nonsense_server, tmp_path,
                                                                          answer):
    # a proxy's 413 page dead-lettered the session for good; a garbled answer ended the sync
    # thread, and nothing was delivered again until a restart
    from device.client import ApiClient
    from device.events import EventLog
    from device.sync import Syncer
    store, _ = outbox_with(tmp_path, 1)
    try:
        nonsense_server.answer = lambda body: answer
        syncer = Syncer(store, ApiClient(nonsense_server.url, "token", timeout=2), EventLog(),
                        retry_s=0.05)
        syncer.start()
        time.sleep(0.5)                     # several rounds against the broken answer
        assert syncer._thread.is_alive() and store.outbox_count() == 1 and store.dead_letters() == []
        nonsense_server.answer = lambda body: b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}"
        syncer.nudge()
        deadline = time.monotonic() + 10
        while store.outbox_count() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert store.outbox_count() == 0    # delivered once the path is clear
        syncer.stop()
    finally:
        store.close()


ERROR_500 = b'{"error": {"status": 500, "message": "Internal error"}}'
SERVER_500 = (b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n%s" % (len(ERROR_500), ERROR_500))
CREATED = b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}"


@pytest.mark.parametrize("failing", [SERVER_500, PROXY_413], ids=["server-500", "proxy-413"])
def test_a_session_the_server_fails_on_does_not_hold_the_ones_behind_it(nonsense_server, tmp_path,
                                                                         failing):
    from device.client import ApiClient
    from device.events import EventLog
    from device.sync import Syncer
    store, (first, bad, *good) = outbox_with(tmp_path, 5)
    nonsense_server.answer = lambda body: failing if bad["id"].encode() in body else CREATED
    events = []
    log = EventLog()
    log.add_listener(events.append)
    try:
        syncer = Syncer(store, ApiClient(nonsense_server.url, "token", timeout=2), log)
        assert syncer.flush_outbox() == 1           # the three behind it were delivered
        assert [s["id"] for s, _ in store.pending()] == [bad["id"]] and store.dead_letters() == []
        assert "offline" not in [e["event"] for e in events]   # the registry is there
    finally:
        store.close()


def test_a_registry_that_fails_on_everything_is_not_sent_the_whole_outbox_each_round(
        nonsense_server, tmp_path):
    from device.client import ApiClient
    from device.events import EventLog
    from device.sync import FAILING_RUN, Syncer
    store, _ = outbox_with(tmp_path, 10)
    posts = []
    nonsense_server.answer = lambda body: posts.append(body) or SERVER_500
    events = []
    log = EventLog()
    log.add_listener(events.append)
    try:
        syncer = Syncer(store, ApiClient(nonsense_server.url, "token", timeout=2), log)
        assert syncer.flush_outbox() == 10 and len(posts) == FAILING_RUN
        assert [e["event"] for e in events] == ["offline"]
    finally:
        store.close()


# --- photos with damaged EXIF ----------------------------------------------------------------

def damaged_exif_jpeg(person, max_side=400):
    """A real photo stored sideways with EXIF orientation 6 (as phones do), whose EXIF block
    also holds XResolution written as text: exif_transpose raised TypeError rewriting it."""
    import struct
    img = Image.open(person_photo(person)).convert("RGB")
    img.thumbnail((max_side, max_side))
    sideways = img.transpose(Image.Transpose.ROTATE_90)  # orientation 6 turns it back upright
    entries = [(0x0112, 3, 1, struct.pack("<HH", 6, 0)), (0x011A, 2, 4, b"abc\x00")]
    tiff = b"II*\x00" + struct.pack("<IH", 8, len(entries))
    for tag, kind, count, value in entries:
        tiff += struct.pack("<HHI", tag, kind, count) + value
    tiff += struct.pack("<I", 0)
    out = io.BytesIO()
    sideways.save(out, "JPEG", quality=90, exif=b"Exif\x00\x00" + tiff)
    return out.getvalue()


def test_snapshot_with_damaged_exif_is_stored_upright(app, client, db, token):
    # was a 500 (TypeError from Pillow's EXIF rewrite) and the session was never stored
    data = damaged_exif_jpeg("kit_harington")
    payload = session_payload()
    response = multipart(client, token, {"session": json.dumps(payload),
                                         "snapshot": (io.BytesIO(data), "s.jpg")})
    assert response.status_code == 201, response.get_data(as_text=True)
    assert session_count(db) == 1 and snapshots(app) == [f"{payload['id']}.jpg"]


def test_import_of_a_photo_with_damaged_exif_enrols_it_upright(runner, db, tmp_path):
    # was a traceback: the import stopped at that photo
    photos = make_zip(tmp_path / "p.zip", {"joe.jpg": damaged_exif_jpeg("joe_biden")})
    records = write_csv(tmp_path / "r.csv", RECORD_HEADER, [record(1, "Joe", "joe.jpg")])
    result = runner.invoke(args=["import-records", str(records), "--photos", str(photos)])
    assert result.exit_code == 0, result.output
    assert "imported 1, updated 0, unchanged 0, rejected 0" in result.output
    assert db.execute("SELECT count(*) FROM face_templates").fetchone()[0] == 1
