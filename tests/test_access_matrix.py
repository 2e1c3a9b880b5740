"""Who reaches what: every console and admin URL × every kind of caller.

The URL list is read from the app's url_map, so a route added later is checked without anyone
remembering to list it here. Rules: anonymous callers and device tokens get a login redirect
(or 401) and never data; clerks reach the console but get 403 on admin pages; admins reach all.
"""
import re
import tempfile

import pytest

from app import create_app
from console_helpers import add_case, add_citizen, add_device, add_session
from conftest import AuthActions, csrf_from

BLUEPRINTS = ("console", "admin")
ROLES = ("anonymous", "device", "clerk", "admin")
SECRETS = ("王小明", "110101199003074514", "13800138000")  # must never reach an outsider


def _routes():
    """(endpoint, rule, method) for every console/admin route, read from a fresh app's url_map."""
    with tempfile.TemporaryDirectory() as folder, pytest.MonkeyPatch.context() as patch:
        patch.setenv("CIVIC_INSTANCE_PATH", folder)
        app = create_app({"TESTING": True})
        rules = [(rule.endpoint, rule.rule, method) for rule in app.url_map.iter_rules()
                 if rule.endpoint.split(".")[0] in BLUEPRINTS
                 for method in sorted(rule.methods - {"HEAD", "OPTIONS"})]
    return sorted(rules)


ROUTES = _routes()


@pytest.fixture
def world(app, db):
    """One row of everything a URL can name, and a live device token."""
    device_id, token = add_device(db, "kiosk-1", "kiosk", "hall-a")
    citizen = add_citizen(app, db)
    session = add_session(app, db, device_id, citizen, snapshot=("barack_obama", 2))
    case = add_case(db, citizen)
    clerk = db.execute("SELECT id FROM users WHERE username = 'clerk'").fetchone()[0]
    return {"token": token, "values": {"session_id": session, "citizen_id": citizen,
                                       "case_id": case, "user_id": clerk, "device_id": device_id}}


def url_for_rule(rule, values):
    """The rule with its <converter:name> parts filled from values (a missing name fails loudly)."""

    def fill(match):
        name = match.group(1)
        assert name in values, f"route {rule} takes <{name}>: add a row for it to the world fixture"
        return str(values[name])
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", fill, rule)


def caller(app, role, token):
    """A test client acting as role, and its CSRF token (so POSTs reach the access check)."""
    client = app.test_client()
    if role in ("clerk", "admin"):
        AuthActions(client).login(role)
    headers = {"Authorization": f"Bearer {token}"} if role == "device" else {}
    csrf = csrf_from(client.get("/login" if role in ("anonymous", "device") else "/console/",
                                headers=headers).get_data(as_text=True))
    return client, headers, csrf


def request(client, method, url, headers, csrf):
    if method == "GET":
        return client.get(url, headers=headers)
    return client.post(url, headers=headers, data={"csrf_token": csrf})


def is_login_redirect(response):
    return response.status_code == 302 and "/login" in response.headers["Location"]


def test_the_matrix_covers_the_pages_users_rely_on():
    endpoints = {endpoint for endpoint, _, _ in ROUTES}
    assert {"console.queue", "console.session_detail", "console.snapshot", "console.case_file",
            "console.dashboard", "admin.index", "admin.users", "admin.devices", "admin.settings",
            "admin.audit_log"} <= endpoints


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("endpoint,rule,method", ROUTES)
def test_access(app, world, endpoint, rule, method, role):
    client, headers, csrf = caller(app, role, world["token"])
    response = request(client, method, url_for_rule(rule, world["values"]), headers, csrf)
    body = response.get_data(as_text=True) if not response.mimetype.startswith("image/") else ""
    if role in ("anonymous", "device"):
        assert is_login_redirect(response) or response.status_code == 401, response.status_code
        assert not any(secret in body for secret in SECRETS)
        assert not response.mimetype.startswith("image/")
    elif role == "clerk" and endpoint.startswith("admin."):
        assert response.status_code == 403
        assert not any(secret in body for secret in SECRETS)
    else:
        assert response.status_code not in (401, 403) and not is_login_redirect(response)
        assert response.status_code < 500, body[:500]


ID_ROUTES = [(endpoint, rule) for endpoint, rule, method in ROUTES
             if "<" in rule and method == "GET"]


@pytest.mark.parametrize("endpoint,rule", ID_ROUTES)
def test_guessed_ids_tell_an_outsider_nothing(app, world, endpoint, rule):
    """Existing and made-up ids look the same to anonymous callers and device tokens."""
    made_up = {name: (999999 if isinstance(value, int) else "no-such-session")
               for name, value in world["values"].items()}
    for role in ("anonymous", "device"):
        client, headers, _ = caller(app, role, world["token"])
        real = client.get(url_for_rule(rule, world["values"]), headers=headers)
        fake = client.get(url_for_rule(rule, made_up), headers=headers)
        assert (real.status_code, real.headers.get("Location", "").split("?")[0]) == \
            (fake.status_code, fake.headers.get("Location", "").split("?")[0])


@pytest.mark.parametrize("endpoint,rule", [r for r in ID_ROUTES if r[0].startswith("console.")])
def test_made_up_ids_are_404_for_clerks(app, world, endpoint, rule):
    made_up = {name: (999999 if isinstance(value, int) else "no-such-session")
               for name, value in world["values"].items()}
    client, headers, _ = caller(app, "clerk", world["token"])
    assert client.get(url_for_rule(rule, made_up)).status_code == 404


def test_a_device_token_on_the_json_queue_gets_no_data(app, world):
    """Even the JSON queue (the likeliest target for a script holding a device token)."""
    client = app.test_client()
    response = client.get("/console/sessions.json", headers={
        "Authorization": f"Bearer {world['token']}", "Accept": "application/json"})
    assert is_login_redirect(response) or response.status_code == 401
    assert world["values"]["session_id"] not in response.get_data(as_text=True)
