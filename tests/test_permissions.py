"""Who reaches what: every URL of the app × every kind of caller, generated from the url_map.

A route added later is checked without anyone listing it here; a route of a blueprint this
file does not know fails test_every_blueprint_has_an_owner until someone says who may use it.
Rules: staff pages need a login (clerk, or admin for admin pages), the device API a live
device token; nobody else gets data, and a caller who is allowed gets the page itself.
"""
import re
import tempfile

import pytest

from app import create_app
from conftest import AuthActions, csrf_from
from db import now_iso, transaction
from helpers import MODEL, add_case, add_citizen, add_device, add_session, person_encoding
from server import faces

# Who may use each blueprint's routes.
OWNERS = {"queue": "clerk", "review": "clerk", "cases": "clerk", "dashboard": "clerk",
          "citizens": "clerk", "imports": "admin", "admin": "admin", "api": "device",
          "casefile": "device", "records": "admin", "tickets": "clerk", "ticket_api": "device",
          "identify": "device"}
PUBLIC = {"static", "auth.login", "auth.logout", "auth.index", "set_language"}
CALLERS = ("anonymous", "device", "clerk", "admin")
# GET pages that answer other than 200 to a caller who may use them, and why
EXPECTED = {"imports.report": 404,      # the world's import job failed: it has no report
            "cases.detail": 302}        # a case number link lands on its citizen's case file
SECRETS = ("王小明", "110101199003074514", "13800138000")  # must never reach an outsider


def _routes():
    """(endpoint, rule, method) for every route but the public ones, from a fresh app."""
    with tempfile.TemporaryDirectory() as folder, pytest.MonkeyPatch.context() as patch:
        patch.setenv("CIVIC_INSTANCE_PATH", folder)
        app = create_app({"TESTING": True})
        return sorted((rule.endpoint, rule.rule, method) for rule in app.url_map.iter_rules()
                      if rule.endpoint not in PUBLIC
                      for method in sorted(rule.methods - {"HEAD", "OPTIONS"}))


ROUTES = _routes()


def owner(endpoint):
    return OWNERS.get(endpoint.split(".")[0])


def allowed(endpoint, caller):
    needed = owner(endpoint)
    return caller == needed or (needed == "clerk" and caller == "admin")


@pytest.fixture
def world(app, db):
    """One row of everything a URL can name, and a live device token."""
    device_id, token = add_device(db, "kiosk-1", "kiosk", "hall-a")
    citizen = add_citizen(app, db)
    session = add_session(app, db, device_id, citizen, snapshot=("barack_obama", 2))
    case = add_case(db, citizen)
    job = db.insert("INSERT INTO import_jobs (status, created_at) VALUES ('failed', ?)"
                    " RETURNING id", ["2026-01-01T00:00:00Z"])
    clerk = db.execute("SELECT id FROM users WHERE username = 'clerk'").fetchone()[0]
    photo = db.execute("SELECT photo_path FROM citizens WHERE id = ?", [citizen]).fetchone()[0]
    with transaction(db):
        template = faces.add_template(db, citizen, MODEL, person_encoding("barack_obama"),
                                      photo_path=photo)
    review = db.insert("INSERT INTO duplicate_reviews (id_number, record, photo_path, photo_sha256,"
                       " encoding, face_model, match_citizen_id, distance, threshold, created_at)"
                       " VALUES (?, ?, ?, '', ?, ?, ?, 0.2, 0.6, ?) RETURNING id",
                       ["440106198001010019", '{"id_number": "440106198001010019", "name": "x"}',
                        photo, MODEL.to_blob(person_encoding("barack_obama")), MODEL.id, citizen,
                        now_iso()])
    return {"token": token, "values": {"session_id": session, "citizen_id": citizen,
                                       "case_id": case, "user_id": clerk, "device_id": device_id,
                                       "job_id": job, "code": "en", "template_id": template,
                                       "review_id": review}}


def url_for_rule(rule, values):
    """The rule with its <converter:name> parts filled from values (a missing name fails loudly)."""

    def fill(match):
        name = match.group(1)
        assert name in values, f"route {rule} takes <{name}>: add a row for it to the world fixture"
        return str(values[name])
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", fill, rule)


def caller_client(app, caller, token):
    """A test client acting as caller, its headers and a CSRF token (so POSTs reach the check)."""
    client = app.test_client()
    if caller in ("clerk", "admin"):
        AuthActions(client).login(caller)
    headers = {"Authorization": f"Bearer {token}"} if caller == "device" else {}
    csrf = csrf_from(client.get("/login").get_data(as_text=True))
    return client, headers, csrf


def call(client, method, url, headers, csrf):
    if method == "GET":
        return client.get(url, headers=headers)
    return client.post(url, headers=headers, data={"csrf_token": csrf})


def refused(response):
    """A login redirect, 401 or 403."""
    login = response.status_code == 302 and "/login" in response.headers.get("Location", "")
    return login or response.status_code in (401, 403)


def test_every_blueprint_has_an_owner():
    assert {endpoint for endpoint, _, _ in ROUTES if owner(endpoint) is None} == set()


def test_the_matrix_covers_the_pages_users_rely_on():
    endpoints = {endpoint for endpoint, _, _ in ROUTES}
    assert {"queue.index", "review.session_detail", "review.snapshot", "cases.case_file",
            "dashboard.index", "citizens.index", "citizens.photo", "imports.index",
            "admin.index", "admin.users", "admin.devices", "admin.settings", "admin.audit_log",
            "api.gallery", "api.post_session", "casefile.open_case_file"} <= endpoints


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("endpoint,rule,method", ROUTES)
def test_access(app, world, endpoint, rule, method, caller):
    client, headers, csrf = caller_client(app, caller, world["token"])
    response = call(client, method, url_for_rule(rule, world["values"]), headers, csrf)
    if not allowed(endpoint, caller):
        assert refused(response), response.status_code
        body = "" if response.mimetype.startswith("image/") else response.get_data(as_text=True)
        assert not any(secret in body for secret in SECRETS)
        assert not response.mimetype.startswith(("image/", "text/csv"))
    elif method == "GET" and owner(endpoint) != "device":
        # every page a user may open works on a registry with one of everything
        assert response.status_code == EXPECTED.get(endpoint, 200), \
            response.get_data(as_text=True)[:300]
    else:
        assert not refused(response) and response.status_code < 500, response.status_code


ID_ROUTES = [(endpoint, rule) for endpoint, rule, method in ROUTES
             if "<" in rule and method == "GET" and owner(endpoint) != "device"]


@pytest.mark.parametrize("endpoint,rule", ID_ROUTES)
def test_guessed_ids_tell_an_outsider_nothing(app, world, endpoint, rule):
    """Existing and made-up ids look the same to anonymous callers and device tokens."""
    made_up = {name: (999999 if isinstance(value, int) else "no-such-session")
               for name, value in world["values"].items()}
    for caller in ("anonymous", "device"):
        client, headers, _ = caller_client(app, caller, world["token"])
        real = client.get(url_for_rule(rule, world["values"]), headers=headers)
        fake = client.get(url_for_rule(rule, made_up), headers=headers)
        assert (real.status_code, real.headers.get("Location", "").split("?")[0]) == \
            (fake.status_code, fake.headers.get("Location", "").split("?")[0])


@pytest.mark.parametrize("endpoint,rule", ID_ROUTES)
def test_made_up_ids_are_404_for_staff(app, world, endpoint, rule):
    made_up = {name: (999999 if isinstance(value, int) else "no-such-session")
               for name, value in world["values"].items()}
    client, headers, _ = caller_client(app, "admin", world["token"])
    assert client.get(url_for_rule(rule, made_up)).status_code == 404


def test_a_device_token_on_the_json_queue_gets_no_data(app, world):
    """Even the JSON queue (the likeliest target for a script holding a device token)."""
    client = app.test_client()
    response = client.get("/console/sessions.json", headers={
        "Authorization": f"Bearer {world['token']}", "Accept": "application/json"})
    assert refused(response)
    assert world["values"]["session_id"] not in response.get_data(as_text=True)


def test_upload_needs_csrf_token(client, auth):
    auth.login("admin")
    response = client.post("/imports/", data={}, content_type="multipart/form-data")
    assert response.status_code == 400
