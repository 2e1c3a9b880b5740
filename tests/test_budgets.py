"""Exact budgets under concurrency: 64 requests of one token released at the same moment
against the real server never get more through than the limit, for case files opened (and
the snapshots the server looks at for them), phone-digit tries and session uploads.

Before: the case-file pace was checked before the snapshot was looked at and counted after
it, so tries sent together all passed the check: 37 snapshots looked at for a limit of 30.
"""
import json
import threading
import urllib.error
import urllib.request

import pytest

from db import now_iso, transaction
from helpers import add_session, bearer, enrol, key_of, session_payload

TOGETHER = 64


def at_once(url, token, requests):
    """POST each (path, body) to the live server, one thread each, all released together;
    the answers' (status, headers) in order."""
    barrier, answers = threading.Barrier(len(requests)), [None] * len(requests)

    def send(i, path, body):
        request = urllib.request.Request(url + path, data=json.dumps(body).encode(), method="POST",
                                         headers={**bearer(token), "Content-Type": "application/json"})
        barrier.wait(timeout=30)
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                answers[i] = (response.status, response.headers)
        except urllib.error.HTTPError as error:
            answers[i] = (error.code, error.headers)
    workers = [threading.Thread(target=send, args=(i, *r)) for i, r in enumerate(requests)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=180)
    assert all(answers), "every request answered"
    return answers


def statuses(answers):
    return sorted(status for status, _ in answers)


@pytest.fixture
def obama(db):
    return enrol(db, "barack_obama")


def greeted_sessions(app, db, device_id, citizen, snapshots):
    """Sessions of a greeting with a real snapshot each and the blink seen (the case file's
    other checks are tested in test_casefile.py and test_liveness_evidence.py)."""
    ids = [add_session(app, db, device_id, citizen, snapshot=snapshot) for snapshot in snapshots]
    return ids


def device_id_of(db, name="kiosk-1"):
    return db.execute("SELECT id FROM devices WHERE name = ?", [name]).fetchall()[0][0]


def test_case_files_asked_together_look_at_no_more_snapshots_than_the_limit(
        app, db, token, obama, live_server):
    app.config["CASEFILE_DEVICE_LIMIT"] = 30
    # half show the citizen (they open), half another person (refused): both cost a look
    snapshots = [("barack_obama", 2)] * (TOGETHER // 2) + [("rose_leslie", 1)] * (TOGETHER // 2)
    sessions = greeted_sessions(app, db, device_id_of(db), obama, snapshots)
    answers = at_once(live_server.url, token, [(f"/api/v1/sessions/{sid}/casefile",
                                                {"citizen_key": key_of(db, obama)}) for sid in sessions])
    looked = db.execute("SELECT count(*) FROM sessions WHERE snapshot_distance IS NOT NULL").fetchone()[0]
    opened = db.execute("SELECT count(*) FROM sessions WHERE case_opened_at IS NOT NULL").fetchone()[0]
    refused = db.execute("SELECT count(*) FROM audit_log WHERE action = 'casefile.refused'").fetchone()[0]
    print(f"{TOGETHER} case files asked at once, limit 30: {looked} snapshots looked at,"
          f" {opened} opened, {refused} refused, {statuses(answers).count(429)} answered 429")
    assert looked <= 30 and opened + refused <= 30
    assert statuses(answers).count(429) == TOGETHER - (opened + refused)
    assert all(int(headers["Retry-After"]) > 500 for status, headers in answers if status == 429)
    alerts = db.execute("SELECT count(*) FROM audit_log WHERE action = 'device.throttled'").fetchone()[0]
    assert alerts == 1


def opened_sessions(app, db, device_id, citizen, count):
    """Sessions whose case file is open, the snapshot already looked at (so each try below is
    only a phone-digit try)."""
    ids = [add_session(app, db, device_id, citizen, snapshot=("barack_obama", 2)) for _ in range(count)]
    with transaction(db):
        db.execute("UPDATE sessions SET snapshot_distance = 0.1, case_opened_at = ?", [now_iso()])
    return ids


def wrong_digits_rows(db):
    return db.execute("SELECT count(*) FROM factor_failures").fetchone()[0]


def test_wrong_digits_sent_together_for_one_visit_count_to_its_three(app, db, token, obama, live_server):
    app.config.update(SECOND_FACTOR_WAIT_S=0, SECOND_FACTOR_TRIES=3)
    [sid] = opened_sessions(app, db, device_id_of(db), obama, 1)
    wrong = [f"{i:04d}" for i in range(1, TOGETHER + 1)]      # the phone on file ends 0000
    answers = at_once(live_server.url, token, [(f"/api/v1/sessions/{sid}/casefile/details",
                                                {"phone_last4": digits}) for digits in wrong])
    failures = db.execute("SELECT factor_failures FROM sessions WHERE id = ?", [sid]).fetchone()[0]
    print(f"{TOGETHER} wrong tries at once for one visit (3 allowed): {failures} counted")
    assert failures == 3 == wrong_digits_rows(db)
    assert statuses(answers) == [403] * 2 + [423] * (TOGETHER - 2)


def test_wrong_digits_sent_together_across_visits_keep_to_the_citizens_day(app, db, token, obama,
                                                                          live_server):
    app.config.update(SECOND_FACTOR_WAIT_S=0, SECOND_FACTOR_CITIZEN_DAILY=5)
    sessions = opened_sessions(app, db, device_id_of(db), obama, TOGETHER)
    answers = at_once(live_server.url, token, [(f"/api/v1/sessions/{sid}/casefile/details",
                                                {"phone_last4": "1111"}) for sid in sessions])   # not 0000
    print(f"{TOGETHER} wrong tries at once across visits (5 a day per citizen):"
          f" {wrong_digits_rows(db)} counted")
    assert wrong_digits_rows(db) == 5
    assert statuses(answers) == [403] * 4 + [423] * (TOGETHER - 4)
    assert db.execute("SELECT factor_locked_at FROM citizens WHERE id = ?", [obama]).fetchone()[0]


def test_sessions_uploaded_together_keep_to_the_limit(app, db, token, live_server):
    app.config["SESSION_DEVICE_LIMIT"] = 30
    answers = at_once(live_server.url, token, [("/api/v1/sessions", session_payload())
                                               for _ in range(TOGETHER)])
    stored = db.execute("SELECT count(*) FROM sessions").fetchone()[0]
    print(f"{TOGETHER} uploads at once, limit 30: {stored} stored")
    assert stored == 30 and statuses(answers) == [201] * 30 + [429] * (TOGETHER - 30)
    assert all(int(headers["Retry-After"]) > 500 for status, headers in answers if status == 429)
