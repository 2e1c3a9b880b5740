"""The clerk console: queue, filters and keyset pages, review, templates, case files, dashboard."""
import shutil
from datetime import date, datetime, timedelta, timezone

import pytest

import pgcluster

from helpers import (add_case, add_citizen, add_device, add_session, bulk_sessions,
                     iso)
from conftest import FACES, csrf_from
from db.queries import set_setting
from server.dashboard import dashboard_stats
from server.queue import QueueFilter, queue_page, queue_sql
from test_translations import zh_catalogue


def audit_actions(db, target_id):
    return [row[0] for row in db.execute(
        "SELECT action FROM audit_log WHERE target_id = ? ORDER BY id", [str(target_id)])]


@pytest.fixture
def hall(app, db):
    """Two sites, three devices, one enrolled citizen with a case."""
    kiosk, _ = add_device(db, "kiosk-1", "kiosk", "hall-a")
    robot, _ = add_device(db, "robot-1", "robot", "hall-a")
    other, _ = add_device(db, "kiosk-9", "kiosk", "hall-b")
    citizen = add_citizen(app, db)
    case = add_case(db, citizen)
    return {"kiosk": kiosk, "robot": robot, "other": other, "citizen": citizen, "case": case}


def in_english(client, auth):
    client.post("/lang/en", data={"csrf_token": auth.csrf_token()})


def post_form(client, page_url, url, data):
    token = csrf_from(client.get(page_url).get_data(as_text=True))
    return client.post(url, data={**data, "csrf_token": token})


# --- queue ------------------------------------------------------------------------------------

def test_queue_lists_sessions_newest_first_with_names(app, db, client, auth, hall):
    now = datetime.now(timezone.utc)
    older = add_session(app, db, hall["kiosk"], hall["citizen"], received_at=now - timedelta(minutes=5))
    newer = add_session(app, db, hall["robot"], received_at=now)
    auth.login("clerk")
    page = client.get("/console/").get_data(as_text=True)
    assert page.index(newer) < page.index(older)
    assert "王小明" in page and "robot-1" in page


def test_poll_returns_arrivals_since_the_newest_shown_oldest_first(app, db, client, auth, hall):
    now = datetime.now(timezone.utc)
    seen = add_session(app, db, hall["kiosk"], received_at=now - timedelta(minutes=1))
    first = add_session(app, db, hall["kiosk"], received_at=now)
    second = add_session(app, db, hall["robot"], hall["citizen"], received_at=now + timedelta(seconds=1))
    auth.login("clerk")
    data = client.get("/console/sessions.json?since=" + iso(now)).get_json()
    ids = [s["id"] for s in data["sessions"]]
    assert ids == [first, second] and seen not in ids
    assert data["sessions"][1]["name"] == "王小明"


def test_poll_reports_reviews_of_rows_on_screen(app, db, client, auth, hall):
    pending = add_session(app, db, hall["kiosk"], hall["citizen"])
    reviewed = add_session(app, db, hall["kiosk"], hall["citizen"], status="confirmed")
    auth.login("clerk")
    data = client.get(f"/console/sessions.json?since={iso(datetime.now(timezone.utc))}"
                      f"&watch={pending},{reviewed},no-such").get_json()
    assert {k: v["status"] for k, v in data["statuses"].items()} == \
        {pending: "pending", reviewed: "confirmed"}


@pytest.mark.parametrize("query,expected", [
    ("device={kiosk}", {"k-greeted", "k-unknown"}),
    ("site=hall-a", {"k-greeted", "k-unknown", "r-confirmed"}),
    ("site=hall-b", {"o-rejected"}),
    ("status=confirmed", {"r-confirmed"}),
    ("status=rejected", {"o-rejected"}),
    ("unknown=1", {"k-unknown"}),
    ("day={yesterday}", {"o-rejected"}),
    ("site=hall-a&status=pending", {"k-greeted", "k-unknown"}),
])
def test_queue_filters(app, db, client, auth, hall, query, expected):
    now = datetime.now(timezone.utc)
    add_session(app, db, hall["kiosk"], hall["citizen"], session_id="k-greeted", received_at=now)
    add_session(app, db, hall["kiosk"], session_id="k-unknown", received_at=now)
    add_session(app, db, hall["robot"], hall["citizen"], session_id="r-confirmed", status="confirmed",
                received_at=now)
    add_session(app, db, hall["other"], hall["citizen"], session_id="o-rejected", status="rejected",
                received_at=now - timedelta(days=1))
    yesterday = (datetime.now().astimezone() - timedelta(days=1)).date().isoformat()
    auth.login("clerk")
    url = "/console/sessions.json?" + query.format(kiosk=hall["kiosk"], yesterday=yesterday)
    assert {s["id"] for s in client.get(url).get_json()["sessions"]} == expected


@pytest.mark.parametrize("query", ["status=lost", "device=abc", "day=23/11/2026",
                                   "before=garbage", "since=yesterday"])
def test_bad_filter_values_get_a_clear_400(client, auth, query):
    auth.login("clerk")
    response = client.get("/console/sessions.json?" + query, headers={"Accept": "application/json"})
    assert response.status_code == 400
    assert response.get_json()["error"]["status"] == 400


def test_keyset_pages_cover_every_session_once(app, db, client, auth, hall):
    bulk_sessions(db, [hall["kiosk"], hall["robot"]], 250)
    auth.login("clerk")
    seen, cursor = [], None
    while True:
        url = "/console/sessions.json?per_page=100" + (f"&before={cursor}" if cursor else "")
        data = client.get(url).get_json()
        assert len(data["sessions"]) <= 100
        seen += [s["id"] for s in data["sessions"]]
        cursor = data["next"]
        if not data["sessions"]:
            break
    assert len(seen) == 250 and len(set(seen)) == 250
    assert seen == sorted(seen, reverse=True)  # bulk ids rise with received_at


def test_page_size_is_clamped_to_100(app, db, client, auth, hall):
    bulk_sessions(db, [hall["kiosk"]], 150)
    auth.login("clerk")
    assert len(client.get("/console/sessions.json?per_page=100000").get_json()["sessions"]) == 100
    assert len(client.get("/console/sessions.json?per_page=-5").get_json()["sessions"]) == 1


def test_site_filter_merges_devices_in_order(app, db, hall):
    bulk_sessions(db, [hall["kiosk"], hall["robot"], hall["other"]], 300)
    rows = queue_page(db, QueueFilter(site="hall-a"), limit=40)
    expected = db.execute(
        "SELECT s.id FROM sessions s JOIN devices d ON d.id = s.device_id WHERE d.site = 'hall-a'"
        " ORDER BY s.received_at DESC, s.id DESC LIMIT 40").fetchall()
    assert [r["id"] for r in rows] == [r[0] for r in expected]


QUERY_PLAN_FILTERS = [
    QueueFilter(),
    QueueFilter(device_id=1),
    QueueFilter(status="pending"),
    QueueFilter(unknown=True),
    QueueFilter(day=date(2026, 1, 2)),
    QueueFilter(device_id=2, status="rejected"),
]


@pytest.mark.skipif(pgcluster.enabled(), reason="reads SQLite's EXPLAIN QUERY PLAN")
def test_queue_queries_walk_an_index_on_200k_sessions(app, db):
    """A million-session table must not be scanned or sorted to show one page."""
    devices = [add_device(db, f"kiosk-{i}", "kiosk", f"site-{i % 3}")[0] for i in range(6)]
    bulk_sessions(db, devices, 200_000)
    db.execute("ANALYZE")
    for flt in QUERY_PLAN_FILTERS:
        for before in (None, ("2026-01-02T10:00:00Z", "bulk-0100000")):
            sql, params = queue_sql(db, flt, before)
            plan = " | ".join(row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql, params))
            assert "SEARCH s USING INDEX" in plan or "SCAN s USING INDEX" in plan, (flt, plan)
            assert "TEMP B-TREE" not in plan, (flt, plan)
    assert len(queue_page(db, QueueFilter(site="site-1"), limit=100)) == 100


# --- session review ---------------------------------------------------------------------------

def test_session_page_shows_the_match_and_is_audited(app, db, client, auth, hall):
    session = add_session(app, db, hall["kiosk"], hall["citizen"], snapshot=("barack_obama", 2),
                          distance=0.318, margin=0.241, time_to_greet=0.74)
    auth.login("clerk")
    page = client.get(f"/console/sessions/{session}").get_data(as_text=True)
    from server.review import greeting_threshold
    from server.privacy import mask
    for text in ("王小明", "0.318", "0.241", "0.74", "kiosk-1", mask("110101199003074514"),
                 str(greeting_threshold(db))):
        assert text in page
    # the full number is on the case file (its own audited view), not on every session page
    assert "110101199003074514" not in page
    assert f"/console/sessions/{session}/snapshot" in page
    assert f"/citizens/{hall['citizen']}/photo" in page
    assert audit_actions(db, session) == ["session.view"]


def test_snapshot_and_photo_are_served_privately_and_audited(app, db, client, auth, hall):
    session = add_session(app, db, hall["kiosk"], hall["citizen"], snapshot=("barack_obama", 2))
    auth.login("clerk")
    snapshot = client.get(f"/console/sessions/{session}/snapshot")
    photo = client.get(f"/citizens/{hall['citizen']}/photo")
    for response in (snapshot, photo):
        assert response.status_code == 200 and response.data[:3] == b"\xff\xd8\xff"
        assert "no-store" in response.headers["Cache-Control"]
    assert audit_actions(db, session) == ["session.snapshot.view"]
    assert "citizen.photo.view" in audit_actions(db, hall["citizen"])
    actor = db.execute("SELECT actor_name FROM audit_log WHERE action = 'session.snapshot.view'")
    assert actor.fetchone()[0] == "clerk"


def test_purged_snapshot_is_a_404_and_the_page_says_so(app, db, client, auth, hall):
    session = add_session(app, db, hall["kiosk"], hall["citizen"])
    auth.login("clerk")
    in_english(client, auth)
    assert client.get(f"/console/sessions/{session}/snapshot").status_code == 404
    assert "No snapshot" in client.get(f"/console/sessions/{session}").get_data(as_text=True)


def review(client, session, decision, note=""):
    return post_form(client, f"/console/sessions/{session}", f"/console/sessions/{session}/review",
                     {"decision": decision, "note": note})


def templates_of(db, citizen):
    return db.execute("SELECT source, session_id FROM face_templates WHERE citizen_id = ?",
                      [citizen]).fetchall()


def sync_seq(db, citizen):
    return db.execute("SELECT sync_seq FROM citizens WHERE id = ?", [citizen]).fetchone()[0]


def test_confirm_records_the_clerk_and_note(app, db, client, auth, hall):
    session = add_session(app, db, hall["kiosk"], hall["citizen"], snapshot=("barack_obama", 2))
    auth.login("clerk")
    assert review(client, session, "confirm", "matches the ID card").status_code == 302
    row = db.execute("SELECT s.*, u.username FROM sessions s JOIN users u"
                     " ON u.id = s.reviewed_by WHERE s.id = ?", [session]).fetchone()
    assert (row["review_status"], row["username"], row["review_note"]) == \
        ("confirmed", "clerk", "matches the ID card")
    assert "session.confirm" in audit_actions(db, session)
    assert templates_of(db, hall["citizen"]) == []  # the setting is off by default


def test_confirmed_snapshot_becomes_a_template_when_enabled_and_rejection_withdraws_it(
        app, db, client, auth, hall):
    set_setting(db, "add_confirmed_templates", True)
    session = add_session(app, db, hall["kiosk"], hall["citizen"], snapshot=("barack_obama", 2))
    before = sync_seq(db, hall["citizen"])
    auth.login("clerk")
    review(client, session, "confirm")
    assert [tuple(r) for r in templates_of(db, hall["citizen"])] == [("confirmed_session", session)]
    after_confirm = sync_seq(db, hall["citizen"])
    assert after_confirm > before
    review(client, session, "reject", "second look: not him")
    assert templates_of(db, hall["citizen"]) == []
    assert sync_seq(db, hall["citizen"]) > after_confirm  # devices drop it at the next sync


def test_rejected_match_is_never_a_template(app, db, client, auth, hall):
    set_setting(db, "add_confirmed_templates", True)
    session = add_session(app, db, hall["kiosk"], hall["citizen"], snapshot=("joe_biden", 1))
    auth.login("clerk")
    review(client, session, "reject", "not this person")
    assert db.execute("SELECT review_status FROM sessions WHERE id = ?",
                      [session]).fetchone()[0] == "rejected"
    assert templates_of(db, hall["citizen"]) == []


def test_no_template_without_consent(app, db, client, auth, hall):
    set_setting(db, "add_confirmed_templates", True)
    db.execute("UPDATE citizens SET consent = 0 WHERE id = ?", [hall["citizen"]])
    session = add_session(app, db, hall["kiosk"], hall["citizen"], snapshot=("barack_obama", 2))
    auth.login("clerk")
    in_english(client, auth)
    page = client.get(review(client, session, "confirm").headers["Location"]).get_data(as_text=True)
    assert "has not consented" in page
    assert templates_of(db, hall["citizen"]) == []


def test_unusable_snapshot_confirms_but_explains_why_no_template(app, db, client, auth, hall):
    set_setting(db, "add_confirmed_templates", True)
    session = add_session(app, db, hall["kiosk"], hall["citizen"])
    shutil.copy(sorted((FACES / "group").glob("*.jpg"))[0], app.config["SNAPSHOTS_DIR"] + "/two.jpg")
    db.execute("UPDATE sessions SET snapshot_path = 'two.jpg' WHERE id = ?", [session])
    auth.login("clerk")
    page = client.get(review(client, session, "confirm").headers["Location"]).get_data(as_text=True)
    assert "faces found" in page
    assert templates_of(db, hall["citizen"]) == []
    assert db.execute("SELECT review_status FROM sessions WHERE id = ?",
                      [session]).fetchone()[0] == "confirmed"


def test_unknown_visitor_cannot_be_confirmed_only_closed(app, db, client, auth, hall):
    session = add_session(app, db, hall["kiosk"])
    auth.login("clerk")
    review(client, session, "confirm")
    status = lambda: db.execute("SELECT review_status FROM sessions WHERE id = ?",  # noqa
                                [session]).fetchone()[0]
    assert status() == "pending"
    review(client, session, "close", "served at counter 2")
    assert status() == "closed"


def test_a_review_made_meanwhile_by_another_clerk_is_not_overwritten(app, db, client, auth, hall):
    session = add_session(app, db, hall["kiosk"], hall["citizen"])
    auth.login("clerk")
    in_english(client, auth)
    page = client.get(f"/console/sessions/{session}").get_data(as_text=True)
    admin_id = db.execute("SELECT id FROM users WHERE username = 'admin'").fetchone()[0]
    db.execute("UPDATE sessions SET review_status = 'rejected', reviewed_by = ? WHERE id = ?",
               [admin_id, session])
    response = client.post(f"/console/sessions/{session}/review", data={
        "csrf_token": csrf_from(page), "decision": "confirm", "seen_status": "pending"})
    assert "admin has already marked this session as Rejected" in \
        client.get(response.headers["Location"]).get_data(as_text=True)
    assert db.execute("SELECT review_status FROM sessions WHERE id = ?",
                      [session]).fetchone()[0] == "rejected"


def test_review_needs_a_csrf_token(app, db, client, auth, hall):
    session = add_session(app, db, hall["kiosk"], hall["citizen"])
    auth.login("clerk")
    response = client.post(f"/console/sessions/{session}/review", data={"decision": "confirm"})
    assert response.status_code == 400
    assert db.execute("SELECT review_status FROM sessions WHERE id = ?",
                      [session]).fetchone()[0] == "pending"


# --- case file --------------------------------------------------------------------------------

def test_case_file_shows_cases_and_notes_and_is_audited(app, db, client, auth, hall):
    auth.login("clerk")
    url = f"/console/citizens/{hall['citizen']}/cases"
    page = client.get(url).get_data(as_text=True)
    assert "TAX-2026-0001" in page and "Annual reconciliation" in page
    assert audit_actions(db, hall["citizen"]) == ["casefile.view"]


def test_clerk_adds_a_note_and_sets_status_and_counter(app, db, client, auth, hall):
    auth.login("clerk")
    url = f"/console/citizens/{hall['citizen']}/cases"
    post_form(client, url, f"/console/cases/{hall['case']}/notes", {"body": "带了身份证原件"})
    post_form(client, url, f"/console/cases/{hall['case']}",
              {"status": "ready", "counter": "3"})
    case = db.execute("SELECT status, counter FROM cases WHERE id = ?", [hall["case"]]).fetchone()
    assert tuple(case) == ("ready", "3")
    page = client.get(url).get_data(as_text=True)
    assert "带了身份证原件" in page and "clerk" in page
    assert {"case.note", "case.update"} <= set(audit_actions(db, hall["case"]))


def test_a_case_change_made_meanwhile_by_another_clerk_is_not_overwritten(app, db, client, auth, hall):
    import re
    auth.login("clerk")
    in_english(client, auth)
    url = f"/console/citizens/{hall['citizen']}/cases"
    page = client.get(url).get_data(as_text=True)
    seen = dict(re.findall(r'name="(seen_\w+)" value="([^"]*)"', page))
    assert seen == {"seen_status": "open", "seen_counter": ""}
    # another clerk sends the citizen to counter 5 while this page is open
    db.execute("UPDATE cases SET status = 'ready', counter = '5' WHERE id = ?", [hall["case"]])
    response = client.post(f"/console/cases/{hall['case']}", data={
        "csrf_token": csrf_from(page), "status": "waiting_documents", "counter": "", **seen})
    shown = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Another clerk changed this case" in shown and "counter 5" in shown
    case = db.execute("SELECT status, counter FROM cases WHERE id = ?", [hall["case"]]).fetchone()
    assert tuple(case) == ("ready", "5")
    assert "case.update" not in audit_actions(db, hall["case"])
    # looked again: the page now shows counter 5, and the change is saved over it
    page = client.get(url).get_data(as_text=True)
    seen = dict(re.findall(r'name="(seen_\w+)" value="([^"]*)"', page))
    for _ in range(2):      # a double click sends it twice: the second is not "another clerk"
        response = client.post(f"/console/cases/{hall['case']}", data={
            "csrf_token": csrf_from(page), "status": "waiting_documents", "counter": "5", **seen})
        assert "Case updated." in client.get(response.headers["Location"]).get_data(as_text=True)
    case = db.execute("SELECT status, counter FROM cases WHERE id = ?", [hall["case"]]).fetchone()
    assert tuple(case) == ("waiting_documents", "5")
    assert audit_actions(db, hall["case"]).count("case.update") == 1


@pytest.mark.parametrize("data,message", [
    ({"status": "bribed"}, "Unknown case status"),
    ({"counter": "x" * 21}, "a number like 11"),
    ({"counter": "请到前台"}, "a number like 11"),
])
def test_bad_case_updates_change_nothing(app, db, client, auth, hall, data, message):
    auth.login("clerk")
    in_english(client, auth)
    url = f"/console/citizens/{hall['citizen']}/cases"
    response = post_form(client, url, f"/console/cases/{hall['case']}", data)
    assert message in client.get(response.headers["Location"]).get_data(as_text=True)
    case = db.execute("SELECT status, counter FROM cases WHERE id = ?", [hall["case"]]).fetchone()
    assert tuple(case) == ("open", "")


def test_empty_note_is_refused(app, db, client, auth, hall):
    auth.login("clerk")
    url = f"/console/citizens/{hall['citizen']}/cases"
    post_form(client, url, f"/console/cases/{hall['case']}/notes", {"body": "   "})
    assert db.execute("SELECT count(*) FROM case_notes").fetchone()[0] == 0


def test_a_removed_citizens_cases_stay_readable_as_history(app, db, client, auth, hall):
    """Removal keeps cases and visits as history; the case file answered 404, so a clerk
    could no longer read or close them."""
    from helpers import remove_citizen
    remove_citizen(db, hall["citizen"])
    auth.login("clerk")
    in_english(client, auth)
    url = f"/console/citizens/{hall['citizen']}/cases"
    page = client.get(url)
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "Removed from the registry on" in text and 'id="case-' in text
    post_form(client, url, f"/console/cases/{hall['case']}", {"status": "closed", "counter": "",
                                                              "seen_status": "open", "seen_counter": ""})
    assert db.execute("SELECT status FROM cases WHERE id = ?", [hall["case"]]).fetchone()[0] == "closed"
    assert "casefile.view" in audit_actions(db, hall["citizen"])


def test_case_link_lands_on_the_case_file(app, db, client, auth, hall):
    auth.login("clerk")
    response = client.get(f"/console/cases/{hall['case']}")
    assert response.headers["Location"].endswith(
        f"/console/citizens/{hall['citizen']}/cases#case-{hall['case']}")


# --- dashboard --------------------------------------------------------------------------------

def test_dashboard_numbers(app, db, hall):
    with app.test_request_context():
        today = datetime.now().astimezone().date()
        noon = datetime.combine(today, datetime.min.time()).astimezone() + timedelta(hours=12)
        for minutes, device, citizen, status, seconds in [
                (0, "kiosk", True, "confirmed", 0.6), (5, "kiosk", True, "rejected", 1.0),
                (10, "kiosk", False, "pending", None), (70, "robot", True, "confirmed", 1.4),
                (75, "robot", True, "pending", 2.0)]:
            add_session(app, db, hall[device], hall["citizen"] if citizen else None,
                        received_at=noon + timedelta(minutes=minutes), status=status,
                        time_to_greet=seconds)
        add_session(app, db, hall["kiosk"], received_at=noon - timedelta(days=1))  # not today
        stats = dashboard_stats(db, today)
    assert stats["total"] == 5
    assert stats["unknown_share"] == 0.2
    assert stats["median_time_to_greet"] == 1.2
    assert (stats["rejected"], stats["reviewed"]) == (1, 3)
    assert stats["per_hour"]["kiosk-1"][12] == 3 and stats["per_hour"]["robot-1"][13] == 2
    assert sum(stats["per_hour"]["kiosk-1"]) == 3


def test_dashboard_page_has_chart_and_table(app, db, client, auth, hall):
    add_session(app, db, hall["kiosk"], hall["citizen"])
    auth.login("clerk")
    page = client.get("/console/dashboard").get_data(as_text=True)
    assert 'id="hourly-chart"' in page and 'id="hourly-table"' in page
    assert "js/charts.js" in page and "kiosk-1" in page
    assert "http" not in page.split("charts.js")[0].split("<script")[-1]  # no CDN


def test_dashboard_writes_the_median_time_in_the_page_language(app, db, client, auth, hall):
    add_session(app, db, hall["kiosk"], hall["citizen"], time_to_greet=0.55)
    auth.login("clerk")
    zh = client.get("/console/dashboard", headers={"Accept-Language": "zh"}).get_data(as_text=True)
    assert "0.55 秒" in zh and "0.55 s" not in zh
    in_english(client, auth)
    assert "0.55 s" in client.get("/console/dashboard").get_data(as_text=True)


@pytest.mark.parametrize("value, grouping, shown", [
    (1e-05, True, "0.00001"), (0.01, True, "0.01"), (1.0, True, "1"), (0.0, True, "0"),
    (3650, True, "3,650"), (3650, False, "3650"), (12000.5, True, "12,000.5"),
    (0.005, True, "0.005"), (float("inf"), True, "—"), ("0.4", True, "0.4"),
])
def test_numbers_are_written_for_people(value, grouping, shown):
    from server.i18n import number
    assert number(value, grouping) == shown


def test_durations_and_counts_follow_the_page_language(app):
    from server.i18n import counted, duration
    one, many = "threshold for {n} citizen", "threshold for {n} citizens"
    with app.test_request_context(headers={"Accept-Language": "zh"}):
        assert duration(0.55) == "0.55 秒" and duration(None) == "—"
        assert counted(1, one, many) == "1 位市民时的阈值"
    with app.test_request_context(headers={"Accept-Language": "en"}):
        assert duration(1.2, 1) == "1.2 s"
        assert counted(1, one, many) == "threshold for 1 citizen"
        assert counted(1200, one, many) == "threshold for 1,200 citizens"


# --- language ---------------------------------------------------------------------------------

def test_every_console_and_admin_text_has_a_chinese_translation():
    import re
    from pathlib import Path

    from server.i18n import LABELS
    ZH = zh_catalogue()
    from server.settings import ON_FORM
    root = Path(__file__).resolve().parents[1]
    files = [*root.glob("templates/**/*.html"), *root.glob("server/*.py")]
    texts = {m.group(2) for f in files
             for m in re.finditer(r'\bt\((["\'])(.+?)\1\)', f.read_text(encoding="utf-8"))}
    texts |= set(LABELS.values()) | {s.label for s in ON_FORM} | {s.help for s in ON_FORM}
    assert len(texts) > 100
    assert sorted(text for text in texts if text not in ZH) == []


def test_pages_switch_to_chinese(app, db, client, auth, hall):
    auth.login("clerk")
    client.post("/lang/zh", data={"csrf_token": auth.csrf_token()})
    page = client.get("/console/").get_data(as_text=True)
    assert "实时接待队列" in page and "仅显示未识别访客" in page


@pytest.mark.parametrize("language, shown", [("zh", "2026年3月1日 09:15:02"), ("en", "1 Mar 2026 09:15:02")])
def test_times_are_written_the_way_the_pages_language_writes_them(app, language, shown):
    from server.times import localtime
    app.config["TIMEZONE"] = "Asia/Shanghai"
    with app.test_request_context(headers={"Accept-Language": language}):
        assert localtime("2026-03-01T01:15:02Z") == shown


def reason_templates():
    """Every reason the import and the citizen forms can give, as a catalogue key: read from
    the code (the f-strings raised or recorded), each {expression} numbered {0}, {1}, ..."""
    from pathlib import Path

    from server.i18n_extract import reason_templates as of_source
    root = Path(__file__).resolve().parents[1]
    files = ["server/importer.py", "server/enrolment.py", "server/vocabulary.py",
             "recognition/images.py", "recognition/quality.py", "recognition/align.py"]
    return set().union(*(of_source((root / name).read_text(encoding="utf-8")) for name in files))


def test_every_import_reason_has_a_chinese_translation():
    ZH = zh_catalogue()
    texts = reason_templates()
    assert len(texts) > 40 and "face is too small ({0} px across; at least {1} px)" in texts
    assert sorted(text for text in texts if text not in ZH) == []


@pytest.mark.parametrize("stored, zh", [
    ("face is too small (41 px across; at least 80 px)", "人脸太小（宽 41 像素，至少需要 80 像素）"),
    ("ID number 110101199003074514 is also on line 3", "身份证号码 110101199003074514 在第 3 行已出现"),
    ("photo is empty", "照片为空"),
    ("a reason nobody wrote down", "a reason nobody wrote down"),        # shown as stored
])
def test_a_stored_reason_is_shown_in_chinese_with_its_values(app, stored, zh):
    from server.i18n import reason
    with app.test_request_context(headers={"Accept-Language": "zh"}):
        assert reason(stored) == zh
    with app.test_request_context(headers={"Accept-Language": "en"}):
        assert reason(stored) == stored


def test_every_audit_action_and_kind_the_code_writes_is_labelled_in_chinese():
    import re
    from pathlib import Path

    from server.i18n import KINDS, LABELS
    ZH = zh_catalogue()
    from server.identify import ACTIONS as IDENTIFY
    from server.enrolment import DECISIONS as DUPLICATE
    from server.review import DECISIONS as REVIEW
    root = Path(__file__).resolve().parents[1]
    source = "\n".join(f.read_text(encoding="utf-8") for f in root.glob("server/*.py"))
    written = set(re.findall(r'audit_(?:user|device)\(\s*"([a-z_.]+)"', source))
    written |= set(re.findall(r'audit\.record\((?:[^()"]|\([^()]*\))*?,\s*"([a-z_.]+)"', source))
    written |= set(re.findall(r'_forget_face\([^"]*"([a-z_.]+)"', source))
    written |= {*IDENTIFY, *(f"duplicate.{d}" for d in DUPLICATE), *(f"session.{d}" for d in REVIEW)}
    assert {"login", "citizen.remove", "session.attach", "duplicate.import"} <= written
    assert sorted(a for a in written if a not in LABELS or LABELS[a] not in ZH) == []
    kinds = set(re.findall(r'audit_(?:user|device)\(\s*[^,]+, "([a-z_]+)"', source)) | {"user", "device", "system"}
    assert sorted(k for k in kinds if k not in KINDS or KINDS[k] not in ZH) == []
