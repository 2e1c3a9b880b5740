"""Headers: no cached copy of any answer that may hold personal data, and HSTS over HTTPS
(directly, or behind the documented proxy's X-Forwarded-Proto, never a client's own).

Before: a citizen's page (full ID number and phone) and the device API's JSON carried no
Cache-Control, so a browser's back button or a shared proxy kept them; no HSTS anywhere.
"""
import os

import pytest

from helpers import add_case, add_citizen, add_device, add_session, bearer

HSTS = "max-age=31536000"


@pytest.fixture
def hall(app, db):
    device_id, token = add_device(db)
    citizen = add_citizen(app, db)
    add_case(db, citizen)
    session = add_session(app, db, device_id, citizen, snapshot=("barack_obama", 2))
    return {"token": token, "citizen": citizen, "session": session}


def signed_in_pages(hall):
    c, s = hall["citizen"], hall["session"]
    return ["/console/", "/console/sessions.json", f"/console/sessions/{s}",
            f"/console/sessions/{s}/snapshot", f"/citizens/{c}", f"/citizens/{c}/photo",
            f"/console/citizens/{c}/cases", "/citizens/?q=110101", "/console/dashboard",
            "/console/tickets", f"/admin/citizens/{c}", "/admin/audit", "/admin/",
            "/admin/devices", "/console/sessions/nope"]


def test_every_page_and_api_answer_is_no_store(client, auth, hall):
    auth.login("admin")
    for path in signed_in_pages(hall):
        response = client.get(path)
        assert response.status_code in (200, 404), path
        assert "no-store" in response.headers.get("Cache-Control", ""), path
    auth.logout()
    for path in ["/api/v1/config", "/api/v1/gallery?since=0", f"/api/v1/sessions/{hall['session']}",
                 "/api/v1/nothing"]:
        response = client.get(path, headers=bearer(hall["token"]))
        assert response.headers["Cache-Control"] == "no-store", path
    assert client.get("/login").headers["Cache-Control"] == "no-store"


def test_a_stricter_cache_control_of_a_view_is_kept(client, auth, hall):
    auth.login("clerk")
    photo = client.get(f"/citizens/{hall['citizen']}/photo")
    assert photo.headers["Cache-Control"] == "no-store, private"


def test_static_files_may_be_cached(client):
    # scripts and styles are the same for everyone: the browser may keep them
    name = sorted(os.listdir(os.path.join(client.application.static_folder, "css")))[0]
    response = client.get(f"/static/css/{name}")
    assert response.status_code == 200
    assert "no-store" not in response.headers.get("Cache-Control", "")


def test_no_hsts_over_plain_http_even_if_a_client_says_https(client):
    # PROXY_HOPS is 0: X-Forwarded-Proto is the client's own word, not a proxy's
    response = client.get("/login", headers={"X-Forwarded-Proto": "https"})
    assert "Strict-Transport-Security" not in response.headers
    assert "Strict-Transport-Security" not in client.get("/login").headers


def test_hsts_when_served_over_https_directly(client):
    response = client.get("/login", base_url="https://registry.example")
    assert response.headers["Strict-Transport-Security"] == HSTS


@pytest.fixture
def behind_proxy(monkeypatch, request):
    """The app as README's production layout runs it: one nginx in front (CIVIC_PROXY_HOPS=1)."""
    monkeypatch.setenv("CIVIC_PROXY_HOPS", "1")
    return request.getfixturevalue("app")


@pytest.mark.parametrize("proto, hsts", [("https", True), ("http", False), (None, False)])
def test_hsts_behind_the_documented_proxy(behind_proxy, proto, hsts):
    client = behind_proxy.test_client()
    headers = {"X-Forwarded-For": "10.0.0.7", **({"X-Forwarded-Proto": proto} if proto else {})}
    for path in ["/login", "/api/v1/config"]:
        response = client.get(path, headers=headers)
        assert ("Strict-Transport-Security" in response.headers) is hsts, path
        if hsts:
            assert response.headers["Strict-Transport-Security"] == HSTS


def test_hsts_can_be_turned_off(app, client):
    app.config["HSTS_MAX_AGE_S"] = 0
    assert "Strict-Transport-Security" not in client.get("/login", base_url="https://x").headers
