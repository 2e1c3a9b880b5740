"""The case file from a device: only after liveness, only for its own recent session, details
behind the last four phone digits, queue tickets per site per day."""
from datetime import datetime, timedelta, timezone

import pytest

from db import now_iso, open_db, transaction
from db.queries import set_setting
from helpers import (bearer, blink_evidence, enrol, greeted_payload, her_encoding, key_of, new_device,
                     post_visit, session_payload)

PHONE = "138-1234-5678"


@pytest.fixture
def citizen_id(db):
    """A citizen with two open cases, one closed case, a note and a phone on file."""
    cid = enrol(db, "blinking", name="李娜", language="zh", encodings=[her_encoding()])
    stamp = now_iso()
    with transaction(db):
        db.execute("UPDATE citizens SET phone = ? WHERE id = ?", [PHONE, cid])
        for number, kind, status, counter, at, summary in [
                ("TX-2026-0001", "Individual income tax", "ready", "3", "2026-03-02T09:30", "Refund 1,280.00 CNY"),
                ("TX-2026-0002", "Invoice application", "waiting_documents", "", "", "Missing lease contract"),
                ("TX-2025-0099", "Property tax", "closed", "5", "", "Paid 3,400.00 CNY")]:
            case_id = db.insert(
                "INSERT INTO cases (case_number, citizen_id, type, status, counter, appointment_at,"
                " summary, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                [number, cid, kind, status, counter, at, summary, stamp, stamp])
            db.execute("INSERT INTO case_notes (case_id, body, created_at) VALUES (?, ?, ?)",
                       [case_id, "clerk-only note", stamp])
    return cid


def key(client, citizen_id):
    """The key the device knows citizen_id by (read from the app's database)."""
    db = open_db(client.application.config["DATABASE"], migrate_now=False)
    try:
        return key_of(db, citizen_id)
    finally:
        db.close()


def post_session(client, token, citizen_id, started_at=None, snapshot_of=("blinking", 1), **fields):
    """Post a visit: a greeting of citizen_id, or an unknown visitor when it is None; the
    snapshot is a photo of snapshot_of (person, index)."""
    started_at = (started_at or datetime.now(timezone.utc)).isoformat()
    if citizen_id is None:
        body = session_payload(started_at=started_at, **fields)
    else:
        db = open_db(client.application.config["DATABASE"], migrate_now=False)
        body = greeted_payload(db, citizen_id, time_to_greet=0.4, started_at=started_at, **fields)
        db.close()
    response = post_visit(client, token, body, snapshot_of=snapshot_of)
    assert response.status_code == 201, response.get_json()
    return body["id"]


def report(client, token, session_id, result="passed", evidence=None):
    """The device's blink verdict; a pass with its evidence (her real blink unless given)."""
    body = {"result": result, "t": 3.2}
    if result == "passed":
        body["evidence"] = blink_evidence() if evidence is None else evidence
    return client.post(f"/api/v1/sessions/{session_id}/liveness", json=body, headers=bearer(token))


def open_file(client, token, session_id, citizen_id):
    return client.post(f"/api/v1/sessions/{session_id}/casefile",
                       json={"citizen_key": key(client, citizen_id)}, headers=bearer(token))


def details(client, token, session_id, digits=None):
    body = {} if digits is None else {"phone_last4": digits}
    return client.post(f"/api/v1/sessions/{session_id}/casefile/details", json=body,
                       headers=bearer(token))


@pytest.fixture
def opened(client, token, citizen_id):
    """A session whose case file is open (liveness passed)."""
    session_id = post_session(client, token, citizen_id)
    assert report(client, token, session_id).status_code == 201
    assert open_file(client, token, session_id, citizen_id).status_code == 200
    return session_id


def audit_actions(db, action):
    return db.execute("SELECT * FROM audit_log WHERE action = ? ORDER BY id", [action]).fetchall()


# --- opening ----------------------------------------------------------------------------------

def test_case_file_opens_only_after_liveness(client, db, token, citizen_id):
    session_id = post_session(client, token, citizen_id)
    refused = open_file(client, token, session_id, citizen_id)
    assert refused.status_code == 403
    assert "liveness" in refused.get_json()["error"]["message"]

    assert report(client, token, session_id).status_code == 201
    response = open_file(client, token, session_id, citizen_id)
    assert response.status_code == 200
    body = response.get_json()
    assert [c["case_number"] for c in body["cases"]] == ["TX-2026-0001", "TX-2026-0002"]
    assert body["cases"][0] == {"case_number": "TX-2026-0001", "type": "Individual income tax",
                                "status": "ready", "counter": "3", "appointment_at": "2026-03-02T09:30"}
    assert body["name"] == "李娜" and body["second_factor"] is True
    row = db.execute("SELECT * FROM sessions WHERE id = ?", [session_id]).fetchone()
    assert row["liveness"] == "passed" and row["case_opened_at"]
    assert len(audit_actions(db, "casefile.open")) == 1
    assert len(audit_actions(db, "casefile.refused")) == 1


def test_summary_holds_no_id_number_phone_notes_or_amounts(client, db, token, citizen_id, opened):
    text = open_file(client, token, opened, citizen_id).get_data(as_text=True)
    id_number = db.execute("SELECT id_number FROM citizens WHERE id = ?", [citizen_id]).fetchone()[0]
    for secret in (id_number, PHONE, "13812345678", "phone", "clerk-only note", "Refund", "CNY",
                   "lease"):
        assert secret not in text


def test_failed_liveness_keeps_the_file_closed_for_good(client, token, citizen_id):
    session_id = post_session(client, token, citizen_id)
    assert report(client, token, session_id, "failed").status_code == 201
    assert open_file(client, token, session_id, citizen_id).status_code == 403
    # A second report cannot turn the failure into a pass.
    assert report(client, token, session_id, "passed").status_code == 409
    assert open_file(client, token, session_id, citizen_id).status_code == 403


def test_session_from_another_device_cannot_open(client, db, token, citizen_id):
    session_id = post_session(client, token, citizen_id)
    assert report(client, token, session_id).status_code == 201
    other = new_device(db, "kiosk-2")
    assert open_file(client, other, session_id, citizen_id).status_code == 404
    assert report(client, other, session_id).status_code == 404
    assert open_file(client, token, session_id, citizen_id).status_code == 200


def test_old_session_cannot_open(client, db, token, citizen_id):
    started = datetime.now(timezone.utc) - timedelta(minutes=10)
    session_id = post_session(client, token, citizen_id, started_at=started, liveness="passed")
    response = open_file(client, token, session_id, citizen_id)
    assert response.status_code == 403
    assert "ago" in response.get_json()["error"]["message"]
    refusal = audit_actions(db, "casefile.refused")[-1]
    assert "session_too_old" in refusal["detail"]


def test_session_for_another_citizen_cannot_open(client, db, token, citizen_id):
    someone_else = enrol(db, "joe_biden", encodings=[])
    session_id = post_session(client, token, someone_else, liveness="passed")
    assert open_file(client, token, session_id, citizen_id).status_code == 403


def test_an_upload_that_says_passed_is_not_a_pass(client, db, token, citizen_id):
    """Only the server's look at the blink's evidence passes a visit: a stolen token that
    uploads "passed" opens nothing, and the clerk sees the visit as not checked."""
    session_id = post_session(client, token, citizen_id, liveness="passed")
    assert db.execute("SELECT liveness FROM sessions WHERE id = ?", [session_id]).fetchone()[0] == "not_run"
    response = open_file(client, token, session_id, citizen_id)
    assert response.status_code == 403 and "liveness" in response.get_json()["error"]["message"]


def test_re_opening_one_visit_is_paced_as_opening_others(app, client, db, token, citizen_id):
    """Each re-open shows the file again and is put on record, so each takes the device's
    pace: a stolen token re-opening one session wrote an audit entry a request, unbounded."""
    app.config["CASEFILE_DEVICE_LIMIT"] = 5
    session_id = post_session(client, token, citizen_id)
    assert report(client, token, session_id).status_code == 201
    answers = [open_file(client, token, session_id, citizen_id).status_code for _ in range(9)]
    assert answers == [200] * 5 + [429] * 4
    assert len(audit_actions(db, "casefile.open")) == 5
    assert len(audit_actions(db, "device.throttled")) == 1


def test_unknown_visitor_session_cannot_open(client, token, citizen_id):
    body = session_payload(liveness="passed")
    client.post("/api/v1/sessions", json=body, headers=bearer(token))
    assert open_file(client, token, body["id"], citizen_id).status_code == 403


@pytest.mark.parametrize("path, body", [
    ("liveness", {"result": "maybe"}),
    ("liveness", {"result": "passed", "t": "soon"}),
    ("casefile", {"citizen_key": 7}),
    ("casefile", {"citizen_id": 1}),
    ("casefile", {}),
])
def test_bad_bodies_get_a_json_error(client, token, citizen_id, path, body):
    session_id = post_session(client, token, citizen_id)
    response = client.post(f"/api/v1/sessions/{session_id}/{path}", json=body, headers=bearer(token))
    assert response.status_code == 400
    assert response.get_json()["error"]["status"] == 400


@pytest.mark.parametrize("path", ["liveness", "casefile", "casefile/details", "ticket"])
def test_every_endpoint_needs_a_device_token(client, path):
    response = client.post(f"/api/v1/sessions/00000000-0000-4000-8000-000000000000/{path}", json={})
    assert response.status_code == 401


# --- details behind the second factor ---------------------------------------------------------

def test_right_digits_show_details(client, db, token, opened):
    assert details(client, token, opened).status_code == 400  # no digits typed
    response = details(client, token, opened, "5678")
    assert response.status_code == 200
    cases = response.get_json()["cases"]
    assert cases[0]["summary"] == "Refund 1,280.00 CNY"
    assert "clerk-only note" not in response.get_data(as_text=True)
    # Once passed, the session's details stay open without typing again.
    assert details(client, token, opened).status_code == 200
    assert len(audit_actions(db, "casefile.details")) == 2


def test_four_wrong_digits_lock_the_details(app, client, db, token, opened):
    app.config["SECOND_FACTOR_WAIT_S"] = 0
    first, second = details(client, token, opened, "0000"), details(client, token, opened, "1111")
    assert (first.status_code, second.status_code) == (403, 403)
    assert [first.get_json()["error"]["tries_left"], second.get_json()["error"]["tries_left"]] == [2, 1]
    assert details(client, token, opened, "2222").status_code == 423
    assert details(client, token, opened, "3333").status_code == 423
    # Locked for this session: even the right digits are refused now.
    locked = details(client, token, opened, "5678")
    assert locked.status_code == 423
    assert "clerk" in locked.get_json()["error"]["message"]
    assert len(audit_actions(db, "casefile.second_factor_failed")) == 3


def test_a_quick_retry_after_wrong_digits_must_wait(app, client, db, token, opened):
    app.config["SECOND_FACTOR_WAIT_S"] = 30
    assert details(client, token, opened, "0000").status_code == 403
    retry = details(client, token, opened, "5678")
    assert retry.status_code == 429
    assert "wait" in retry.get_json()["error"]["message"]
    failures = db.execute("SELECT factor_failures FROM sessions WHERE id = ?", [opened]).fetchone()
    assert failures[0] == 1


def test_second_factor_can_be_turned_off(client, db, token, citizen_id):
    with transaction(db):
        set_setting(db, "second_factor", False)
    session_id = post_session(client, token, citizen_id)
    assert report(client, token, session_id).status_code == 201
    summary = open_file(client, token, session_id, citizen_id).get_json()
    assert summary["second_factor"] is False
    assert details(client, token, session_id).status_code == 200


def test_details_need_the_file_opened_first(client, token, citizen_id):
    session_id = post_session(client, token, citizen_id)
    assert details(client, token, session_id, "5678").status_code == 409


# --- queue tickets ----------------------------------------------------------------------------

def ticket(client, token, session_id):
    return client.post(f"/api/v1/sessions/{session_id}/ticket", headers=bearer(token))


def test_tickets_are_sequential_per_site_and_stable_per_visit(client, db, token, citizen_id):
    first, second = post_session(client, token, citizen_id), post_session(client, token, None)
    assert ticket(client, token, first).get_json()["ticket_number"] == "001"
    assert ticket(client, token, second).get_json()["ticket_number"] == "002"
    again = ticket(client, token, first)
    assert (again.status_code, again.get_json()["ticket_number"]) == (200, "001")
    stored = db.execute("SELECT ticket_number FROM sessions WHERE id = ?", [second]).fetchone()
    assert stored[0] == "002"
    # Another hall counts from one.
    from server.devices import register_device
    elsewhere = register_device(db, "robot-b", "robot", site="Hall B")
    third = post_session(client, elsewhere, citizen_id)
    assert ticket(client, elsewhere, third).get_json()["ticket_number"] == "001"


def test_no_ticket_for_an_old_session(client, token, citizen_id):
    started = datetime.now(timezone.utc) - timedelta(hours=2)
    session_id = post_session(client, token, citizen_id, started_at=started)
    assert ticket(client, token, session_id).status_code == 403


# --- the kiosk: real video, real agent, the case file on the screen in Chromium ---------------

from browser import screenshot  # noqa: E402


@pytest.fixture
def kiosk_screen():
    """The kiosk's screen server with the case-file desk; the desk is made with the client."""
    from kiosk.casefile_screen import CaseFileDesk, desk_blueprint
    from kiosk.presenter import KioskCaseFilePresenter
    from kiosk.screen import ScreenServer, ScreenState
    parts = {"state": ScreenState(hold_s=120)}

    def make_presenter(log, client):
        parts["desk"] = CaseFileDesk(client)
        parts["server"] = ScreenServer(parts["state"], 0, [desk_blueprint(parts["desk"])]).start()
        return KioskCaseFilePresenter(parts["state"], None, parts["desk"])
    yield make_presenter, parts
    if "server" in parts:
        parts["server"].stop()


@pytest.mark.video
def test_kiosk_opens_the_case_file_after_a_blink_and_shows_details_after_the_phone_check(
        app, live_server, db, tmp_path, kiosk_screen, chromium_page):
    from helpers import PHONE, blinking_clip, enrol_her, of_kind, run_flow
    app.config["SECOND_FACTOR_WAIT_S"] = 0
    enrol_her(db, name="林小姐", language="zh")
    token = new_device(db, "kiosk-hall-a")
    make_presenter, parts = kiosk_screen
    events = run_flow(live_server.url, token, blinking_clip(tmp_path / "clip.mp4"),
                      tmp_path / "kiosk.db", make_presenter)
    assert [e["event"] for e in events if e["event"].startswith(("greeted", "liveness", "case_"))] == [
        "greeted", "liveness_passed", "case_file_opened"]
    assert of_kind(events, "case_file_opened")[0]["case_numbers"] == ["TX-2026-0107"]

    page = chromium_page
    page.goto(parts["server"].url)
    page.wait_for_selector('#screen[data-mode="casefile"]')
    page.wait_for_selector('#cf-cases td:text-is("TX-2026-0107")')
    text = page.inner_text("#screen")
    assert "林小姐" in text and "3号窗口" in text
    assert PHONE not in text and "4321" not in text and "refund" not in text
    size = page.eval_on_selector("#cf-cases td", "e => parseFloat(getComputedStyle(e).fontSize)")
    assert size >= 20
    screenshot(page, "kiosk_casefile_zh")

    def type_digits(digits):
        for d in digits:
            page.click(f'#cf-keypad button:text-is("{d}")')
        page.click("#cf-keypad button.cf-ok")

    type_digits("1111")
    page.wait_for_selector('#cf-message:has-text("Wrong digits")')
    type_digits("4321")
    page.wait_for_selector('#cf-details:has-text("refund 1,280.00 CNY")')
    assert page.is_hidden("#cf-factor")
    screenshot(page, "kiosk_casefile_details")
    assert len(audit_actions(db, "casefile.details")) == 1


def test_case_file_leaves_the_kiosk_screen_when_held_too_long():
    from kiosk.casefile_screen import CaseFileDesk
    from types import SimpleNamespace
    now = [0.0]
    desk = CaseFileDesk(client=None, hold_s=90, clock=lambda: now[0])
    visit = SimpleNamespace(track=object(), greeting="林小姐，您好！", name="林小姐", language="zh",
                            session={"id": "s"})
    desk.show(visit, {"cases": [{"case_number": "TX-1"}], "second_factor": True}, "next step")
    now[0] = 60.0
    assert desk.expire() is False and desk.state()["cases"]
    now[0] = 91.0
    assert desk.expire() is True
    assert desk.state()["mode"] is None and desk.state()["cases"] == []
    assert desk.clear(visit.track) is False  # nothing left to clear


def test_case_file_leaves_the_kiosk_screen_when_the_citizen_walks_away():
    from kiosk.casefile_screen import CaseFileDesk
    from kiosk.presenter import KioskCaseFilePresenter
    from kiosk.screen import ScreenState
    from types import SimpleNamespace
    state, desk = ScreenState(hold_s=120), CaseFileDesk(client=None)
    presenter = KioskCaseFilePresenter(state, None, desk)
    theirs, someone_else = object(), object()
    visit = SimpleNamespace(track=theirs, greeting="Hello, Ms Lin!", name="Ms Lin", language="en",
                            session={"id": "s"})
    presenter.on_case_file(visit, {"cases": [], "second_factor": True})
    assert state.snapshot()["mode"] == "casefile"
    presenter.on_left(someone_else)
    assert state.snapshot()["mode"] == "casefile"
    presenter.on_left(theirs)
    assert state.snapshot()["mode"] == "idle" and desk.state()["mode"] is None
    presenter.close()
