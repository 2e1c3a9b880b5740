"""Admin pages: users, devices, settings, the audit log; the snapshot purge (CLI and schedule)."""
import os
import re
from datetime import datetime, timedelta, timezone

import pytest

import helpers
from helpers import add_citizen, add_device, add_session
from conftest import PASSWORD, csrf_from
from db import now_iso
from db.queries import get_setting, set_setting
from server.purge import Schedule, init_app as start_purge_schedule, purge_snapshots
from server.settings import ON_FORM as SETTINGS


def post_form(client, page_url, url, data):
    token = csrf_from(client.get(page_url).get_data(as_text=True))
    return client.post(url, data={**data, "csrf_token": token})


def in_english(client, auth):
    client.post("/lang/en", data={"csrf_token": auth.csrf_token()})


def user(db, username):
    return db.execute("SELECT * FROM users WHERE username = ?", [username]).fetchone()


# --- settings ---------------------------------------------------------------------------------

def settings_form(**overrides):
    form = {"policy.threshold": "0.42", "policy.margin": "0.08", "policy.min_frames": "4",
            "greeting.templates.zh": "{surname}{honorific}，您好！", "greeting.templates.yue": "{name}，你好！",
            "greeting.templates.en": "Good morning, {name}.", "retention_days": "14",
            "add_confirmed_templates": "1", "duplicates.review_budget": "0.1",
            "calibration.target_fpir": "0.005"}
    form.update(overrides)
    return {key: value for key, value in form.items() if value is not None}


@pytest.mark.face_model("dlib")
def test_settings_are_saved_audited_and_reach_the_device_config(app, db, client, auth):
    auth.login("admin")
    response = post_form(client, "/admin/settings", "/admin/settings", settings_form())
    assert response.status_code == 302
    assert get_setting(db, "policy.threshold@dlib") == 0.42
    assert get_setting(db, "retention_days") == 14
    assert get_setting(db, "add_confirmed_templates") is True
    assert get_setting(db, "second_factor") is False  # unchecked box
    from server.api import device_config
    config = device_config(db, {"name": "kiosk-1", "kind": "kiosk", "site": ""})
    assert (config["threshold"], config["margin"], config["min_frames"]) == (0.42, 0.08, 4)
    assert config["greeting_templates"]["en"] == "Good morning, {name}."
    entry = db.execute("SELECT actor_name, detail FROM audit_log WHERE action = 'settings.update'")
    actor, detail = entry.fetchone()
    assert actor == "admin" and "policy.threshold" in detail and "0.5" in detail


@pytest.mark.face_model("dlib")
@pytest.mark.parametrize("key,value,message", [
    ("policy.threshold", "0.9", "between 0.2 and 0.6"),
    ("policy.threshold", "abc", "Enter a number"),
    ("policy.margin", "-0.1", "between 0 and 0.3"),
    ("policy.min_frames", "0", "between 1 and 30"),
    ("policy.min_frames", "2.5", "Enter a number"),
    ("retention_days", "0", "between 1 and 3650"),
    ("greeting.templates.en", "Hello {id_number}", "Unknown placeholder: id_number"),
    ("greeting.templates.zh", "{name", "Unbalanced braces"),
    ("greeting.templates.yue", "", "1 to 120 characters"),
])
def test_invalid_settings_are_refused_and_nothing_is_saved(app, db, client, auth, key, value,
                                                           message):
    auth.login("admin")
    in_english(client, auth)
    response = post_form(client, "/admin/settings", "/admin/settings", settings_form(**{key: value}))
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert get_setting(db, "policy.margin@dlib") is None  # the valid fields were not saved either


@pytest.mark.face_model("dlib")
def test_a_settings_page_opened_before_another_admins_change_cannot_undo_it(app, db, client, auth):
    """The form sends every setting back: a page opened before another admin tightened the
    match threshold would have loosened it again."""
    import re
    from db.queries import set_setting
    auth.login("admin")
    in_english(client, auth)
    page = client.get("/admin/settings").get_data(as_text=True)
    seen = re.search(r'name="seen_settings" value="([^"]+)"', page).group(1)
    set_setting(db, "policy.threshold@dlib", 0.40)                 # the other admin, meanwhile
    response = client.post("/admin/settings", data={**settings_form(**{"policy.threshold": "0.5",
                                                                      "retention_days": "21"}),
                                                    "seen_settings": seen, "csrf_token": csrf_from(page)})
    shown = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Another admin changed the settings while this page was open" in shown
    assert get_setting(db, "policy.threshold@dlib") == 0.40 and get_setting(db, "retention_days") is None
    fresh = re.search(r'name="seen_settings" value="([^"]+)"', shown).group(1)
    client.post("/admin/settings", data={**settings_form(**{"policy.threshold": "0.40",
                                                          "retention_days": "21"}),
                                         "seen_settings": fresh, "csrf_token": csrf_from(shown)})
    assert get_setting(db, "retention_days") == 21 and get_setting(db, "policy.threshold@dlib") == 0.40


def test_distance_settings_are_on_the_registrys_face_model_scale(app, db, client, auth):
    """On MobileFaceNet (distances 0 to 2 between unit vectors) 0.9 is a sound threshold and
    0.42 would greet almost no one; dlib's stored threshold does not carry over."""
    from db.queries import set_setting
    set_setting(db, "policy.threshold@dlib", 0.42)        # saved while the registry was on dlib
    auth.login("admin")
    in_english(client, auth)
    page = client.get("/admin/settings").get_data(as_text=True)
    assert "0.5 – 1.2" in page and "MobileFaceNet" in page
    response = post_form(client, "/admin/settings", "/admin/settings",
                         settings_form(**{"policy.threshold": "0.9", "policy.margin": "0.12"}))
    assert response.status_code == 302
    assert get_setting(db, "policy.threshold@mobilefacenet") == 0.9
    assert get_setting(db, "policy.threshold@dlib") == 0.42          # dlib's is kept as dlib's
    refused = post_form(client, "/admin/settings", "/admin/settings",
                        settings_form(**{"policy.threshold": "1.5"}))
    assert refused.status_code == 400 and "between 0.5 and 1.2" in refused.get_data(as_text=True)


def test_every_setting_has_a_form_field(client, auth):
    auth.login("admin")
    page = client.get("/admin/settings").get_data(as_text=True)
    for spec in SETTINGS:
        assert f'name="{spec.name}' in page


# --- users ------------------------------------------------------------------------------------

def test_admin_creates_a_clerk_who_can_then_log_in(app, db, client, auth):
    auth.login("admin")
    post_form(client, "/admin/users", "/admin/users",
              {"username": "lin", "password": "a-long-password", "role": "clerk"})
    assert user(db, "lin")["role"] == "clerk"
    auth.logout()
    assert auth.login("lin", "a-long-password").status_code == 302


def test_disabling_a_user_ends_their_access_at_once(app, db, client, auth):
    clerk_client = app.test_client()
    from conftest import AuthActions
    AuthActions(clerk_client).login("clerk")
    assert clerk_client.get("/console/").status_code == 200
    auth.login("admin")
    post_form(client, "/admin/users", f"/admin/users/{user(db, 'clerk')['id']}",
              {"action": "disable"})
    assert user(db, "clerk")["disabled"] == 1
    assert clerk_client.get("/console/").status_code == 302  # back to the login page


def test_reset_password_unlocks_and_replaces_the_old_one(app, db, client, auth):
    db.executemany("INSERT INTO login_failures (username, ip, at) VALUES ('clerk', '127.0.0.1', ?)",
                   [(now_iso(),)] * 6)
    auth.login("admin")
    post_form(client, "/admin/users", f"/admin/users/{user(db, 'clerk')['id']}",
              {"action": "password", "password": "brand-new-password"})
    assert db.execute("SELECT count(*) FROM login_failures").fetchone()[0] == 0
    auth.logout()
    assert auth.login("clerk", PASSWORD).status_code == 401
    assert auth.login("clerk", "brand-new-password").status_code == 302


def test_role_change_and_audit(app, db, client, auth):
    auth.login("admin")
    post_form(client, "/admin/users", f"/admin/users/{user(db, 'clerk')['id']}",
              {"action": "role", "role": "admin"})
    assert user(db, "clerk")["role"] == "admin"
    assert db.execute("SELECT count(*) FROM audit_log WHERE action = 'user.update'"
                      " AND target_id = 'clerk'").fetchone()[0] == 1


@pytest.mark.parametrize("data", [{"action": "disable"}, {"action": "role", "role": "clerk"}])
def test_admin_cannot_lock_themselves_out(app, db, client, auth, data):
    auth.login("admin")
    post_form(client, "/admin/users", f"/admin/users/{user(db, 'admin')['id']}", data)
    assert (user(db, "admin")["role"], user(db, "admin")["disabled"]) == ("admin", 0)


@pytest.mark.parametrize("data,message", [
    ({"username": "x", "password": "short", "role": "clerk"}, "at least 10"),
    ({"username": "clerk", "password": "long-enough-pw", "role": "clerk"}, "already exists"),
    ({"username": "y", "password": "long-enough-pw", "role": "root"}, "role must be"),
])
def test_bad_new_users_are_refused_with_a_reason(client, auth, data, message):
    auth.login("admin")
    response = post_form(client, "/admin/users", "/admin/users", data)
    assert response.status_code == 400 and message in response.get_data(as_text=True)


# --- devices ----------------------------------------------------------------------------------

def test_registered_token_is_shown_once_works_and_revocation_stops_it(app, db, client, auth):
    auth.login("admin")
    response = post_form(client, "/admin/devices", "/admin/devices",
                         {"name": "robot-7", "kind": "robot", "site": "hall-c"})
    assert response.status_code == 201 and response.headers["Cache-Control"] == "no-store"
    token = re.search(r'id="token-value">([^<]+)<', response.get_data(as_text=True)).group(1)
    assert token not in client.get("/admin/devices").get_data(as_text=True)
    device = app.test_client()
    bearer = helpers.bearer(token)
    assert device.get("/api/v1/config", headers=bearer).status_code == 200
    assert db.execute("SELECT last_seen_at FROM devices WHERE name = 'robot-7'").fetchone()[0]
    device_id = db.execute("SELECT id FROM devices WHERE name = 'robot-7'").fetchone()[0]
    post_form(client, "/admin/devices", f"/admin/devices/{device_id}/revoke", {})
    assert device.get("/api/v1/config", headers=bearer).status_code == 401
    assert db.execute("SELECT count(*) FROM audit_log WHERE actor_name = 'admin' AND action IN"
                      " ('device.register', 'device.revoke')").fetchone()[0] == 2


def test_duplicate_device_name_is_refused(app, db, client, auth):
    add_device(db, "kiosk-1")
    auth.login("admin")
    response = post_form(client, "/admin/devices", "/admin/devices",
                         {"name": "kiosk-1", "kind": "kiosk", "site": ""})
    assert response.status_code == 400 and "already exists" in response.get_data(as_text=True)
    assert 'id="token-value"' not in response.get_data(as_text=True)


def test_device_list_shows_last_seen_and_revoked(app, db, client, auth):
    add_device(db, "kiosk-1")
    add_device(db, "kiosk-2")
    db.execute("UPDATE devices SET last_seen_at = '2026-03-01T08:00:00Z' WHERE name = 'kiosk-1'")
    db.execute("UPDATE devices SET revoked_at = '2026-03-02T08:00:00Z' WHERE name = 'kiosk-2'")
    auth.login("admin")
    in_english(client, auth)
    page = client.get("/admin/devices").get_data(as_text=True)
    row1 = page[page.index('data-device="kiosk-1"'):page.index('data-device="kiosk-2"')]
    assert "1 Mar 2026" in row1                        # last seen, as English writes dates
    assert "Revoked" in page[page.index('data-device="kiosk-2"'):]


# --- audit log --------------------------------------------------------------------------------

def test_audit_log_filters_and_pages(app, db, client, auth):
    from db.queries import audit
    for i in range(130):
        audit(db, "user", 2, "clerk", "session.view", "session", f"s-{i:03d}")
    audit(db, "user", 1, "admin", "case.note", "case", "7")
    auth.login("admin")
    page = client.get("/admin/audit?actor=admin&action=case.note").get_data(as_text=True)
    assert "case.note" in page and "s-129" not in page
    assert "s-042" in client.get("/admin/audit?target_type=session&target_id=s-042").get_data(as_text=True)
    seen, before = [], ""
    while True:
        page = client.get(f"/admin/audit?actor=clerk&action=session.view&per_page=50{before}")
        text = page.get_data(as_text=True)
        seen += re.findall(r">(s-\d{3})<", text)
        older = re.search(r'href="[^"]*before=(\d+)[^"]*"', text)
        if not older:
            break
        before = f"&before={older.group(1)}"
    assert sorted(seen) == [f"s-{i:03d}" for i in range(130)]


def test_audit_log_day_filter(app, db, client, auth):
    db.execute("INSERT INTO audit_log (at, actor_type, actor_name, action) VALUES"
               " ('2020-05-05T12:00:00Z', 'user', 'old-clerk', 'session.view')")
    auth.login("admin")
    page = client.get("/admin/audit?day=2020-05-05").get_data(as_text=True)
    assert "old-clerk" in page
    assert "old-clerk" not in client.get("/admin/audit").get_data(as_text=True).split("</thead>")[0]


def test_audit_log_reads_for_people(app, db, client, auth):
    from db.queries import audit
    audit(db, "user", 1, "admin", "settings.update", "setting", "calibration.target_fmr_1to1",
          {"calibration.target_fmr_1to1": [0.0001, 1e-05]})
    audit(db, "user", 1, "admin", "user.update", "user", "clerk", {"role": ["admin", "clerk"]})
    audit(db, "user", 2, "clerk", "case.update", "case", "7", {"status": ["open", "ready"], "counter": ["", "5"]})
    audit(db, "user", 2, "clerk", "session.confirm", "session", "s-1", {"note": "Face and ID match",
                                                                        "template_added": False})
    audit(db, "system", None, "purge", "snapshots.purge", "session", "", {"purged": 1200})
    auth.login("admin")
    page = client.get("/admin/audit", headers={"Accept-Language": "zh"}).get_data(as_text=True)
    table = page.split('id="audit"')[1]
    assert "admin</span> <span class=\"muted nowrap\">(管理员)" in table      # the user's role, not "staff"
    assert "clerk</span> <span class=\"muted nowrap\">(工作人员)" in table
    assert "0.0001 → 0.00001" in table and "管理员 → 工作人员" in table       # [old, new], codes by name
    assert "已受理 → 可办理" in table and "— → 5" in table
    assert "Face and ID match" in table and "{&#34;" not in table and '{"' not in table
    assert "定时清理" in table and "1,200" in table
    assert 'placeholder="session.view"' not in page
    assert '<option value="session.confirm"' in page                        # actions offered by name


def test_audit_filter_keeps_an_unlabelled_action(app, db, client, auth):
    from db.queries import audit
    audit(db, "user", 1, "admin", "made.up", "", "")
    auth.login("admin")
    page = client.get("/admin/audit?action=made.up").get_data(as_text=True)
    assert '<option value="made.up" selected' in page


@pytest.mark.face_model("dlib")
def test_settings_page_writes_ranges_as_people_do(app, db, client, auth):
    auth.login("admin")
    page = client.get("/admin/settings", headers={"Accept-Language": "zh"}).get_data(as_text=True)
    assert "0.00001 – 0.01" in page and "1e-05" not in page and "e-0" not in page


def test_devices_page_in_chinese_names_kinds_and_the_device_column(app, db, client, auth):
    helpers.add_device(db, "east-01", "robot", "hall-a")
    auth.login("admin")
    page = client.get("/admin/devices", headers={"Accept-Language": "zh"}).get_data(as_text=True)
    assert "<th>设备名称</th>" in page and "<th>姓名</th>" not in page
    assert '<option value="kiosk">自助机</option><option value="robot">机器人</option>' in page
    assert ">机器人</td>" in page


def test_import_page_lists_the_chinese_headers_the_importer_reads(client, auth):
    from server.importer import HEADER_ALIASES
    auth.login("admin")
    page = client.get("/imports/", headers={"Accept-Language": "zh"}).get_data(as_text=True)
    columns = page.split('id="import-columns"')[1].split("</table>")[0]
    assert all(alias in columns for alias in HEADER_ALIASES)
    assert 'data-column="id_number"' in columns and "身份证号、身份证号码" in columns


@pytest.mark.parametrize("top, integer, ticks", [
    (7, True, [0, 2, 4, 6, 8]), (1, True, [0, 1]), (60, True, [0, 10, 20, 30, 40, 50, 60]),
    (22.4, False, [0, 5, 10, 15, 20, 25]), (0.3, False, [0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3]),
])
def test_chart_ticks_are_round_and_cover_the_top(top, integer, ticks):
    from server.charts import nice_ticks
    assert nice_ticks(top, integer=integer) == ticks


# --- purge ------------------------------------------------------------------------------------

@pytest.fixture
def aged_sessions(app, db):
    """Sessions with snapshots received 40 days ago and 2 days ago."""
    device, _ = add_device(db)
    citizen = add_citizen(app, db)
    now = datetime.now(timezone.utc)
    old = add_session(app, db, device, citizen, snapshot=("barack_obama", 2),
                      received_at=now - timedelta(days=40))
    new = add_session(app, db, device, citizen, snapshot=("barack_obama", 3),
                      received_at=now - timedelta(days=2))
    return old, new


def snapshot_file(app, db, session):
    path = db.execute("SELECT snapshot_path FROM sessions WHERE id = ?", [session]).fetchone()[0]
    return path and os.path.join(app.config["SNAPSHOTS_DIR"], path)


def test_purge_command_deletes_old_snapshots_and_keeps_the_session(app, db, runner, aged_sessions):
    old, new = aged_sessions
    old_file = snapshot_file(app, db, old)
    result = runner.invoke(args=["purge"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "purged 1 snapshots older than 30 days"
    assert not os.path.exists(old_file)
    row = db.execute("SELECT * FROM sessions WHERE id = ?", [old]).fetchone()
    assert row["snapshot_path"] is None
    assert (row["outcome"], row["distance"], row["citizen_id"]) == ("greeted", 0.62, 1)
    assert os.path.exists(snapshot_file(app, db, new))
    assert db.execute("SELECT count(*) FROM audit_log WHERE action = 'snapshots.purge'"
                      ).fetchone()[0] == 1


def test_purge_follows_the_retention_setting(app, db, runner, aged_sessions):
    set_setting(db, "retention_days", 60)
    assert runner.invoke(args=["purge"]).output.startswith("purged 0 snapshots older than 60")
    set_setting(db, "retention_days", 1)
    assert runner.invoke(args=["purge"]).output.startswith("purged 2 snapshots")


def test_purge_clears_rows_whose_file_is_already_gone(app, db, aged_sessions):
    old, _ = aged_sessions
    os.remove(snapshot_file(app, db, old))
    assert purge_snapshots(db, app.config["SNAPSHOTS_DIR"], 30) == (1, 0)
    assert snapshot_file(app, db, old) is None


def test_purged_session_page_still_shows_its_metadata(app, db, client, auth, runner, aged_sessions):
    old, _ = aged_sessions
    runner.invoke(args=["purge"])
    auth.login("clerk")
    page = client.get(f"/console/sessions/{old}").get_data(as_text=True)
    assert "王小明" in page and "0.620" in page
    assert client.get(f"/console/sessions/{old}/snapshot").status_code == 404


def test_purge_runs_on_a_schedule_when_the_server_runs(app, db, aged_sessions):
    old, _ = aged_sessions
    old_file = snapshot_file(app, db, old)
    app.config.update(TESTING=False, PURGE_FIRST_DELAY_SECONDS=0, PURGE_INTERVAL_SECONDS=3600)
    schedule = start_purge_schedule(app)
    assert schedule is not None and schedule.thread.daemon
    assert schedule.ran.wait(60)
    assert not os.path.exists(old_file)
    assert db.execute("SELECT snapshot_path FROM sessions WHERE id = ?", [old]).fetchone()[0] is None


def test_only_one_of_several_server_processes_purges_in_an_interval(app, db, aged_sessions):
    """Each process has its own Schedule; the database gives each interval to one of them."""
    old, _ = aged_sessions
    first, second = (Schedule(app, 3600, 0) for _ in range(2))
    now = datetime.now(timezone.utc)
    assert first.run_once(now) is True
    assert second.run_once(now + timedelta(seconds=5)) is False
    assert first.run_once(now + timedelta(minutes=30)) is False
    assert second.run_once(now + timedelta(hours=1)) is True       # the next interval
    assert snapshot_file(app, db, old) is None
    owner = db.execute("SELECT owner FROM schedule_runs WHERE name = 'snapshots.purge'").fetchone()[0]
    assert owner.endswith(f":{os.getpid()}")


def test_no_schedule_under_testing(app):
    assert start_purge_schedule(app) is None
