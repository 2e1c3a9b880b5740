"""Every URL of the citizens and imports blueprints: login required, and the right roles.

URLS is the registry; test_registry_lists_every_url fails when a route is added to either
blueprint without being listed here, so no page escapes the permission checks.
"""
import pytest

# endpoint -> (URL with sample ids, who may open it)
URLS = {
    "citizens.index": ("/citizens/", "clerk"),
    "citizens.detail": ("/citizens/1", "clerk"),
    "citizens.photo": ("/citizens/1/photo", "clerk"),
    "imports.index": ("/imports/", "admin"),
    "imports.job": ("/imports/1", "admin"),
    "imports.progress": ("/imports/1/progress", "admin"),
    "imports.report": ("/imports/1/report", "admin"),
}
BLUEPRINTS = ("citizens.", "imports.")


def test_registry_lists_every_url(app):
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()
                 if rule.endpoint.startswith(BLUEPRINTS)}
    assert endpoints == set(URLS)


@pytest.mark.parametrize("endpoint", sorted(URLS))
def test_login_required(client, endpoint):
    response = client.get(URLS[endpoint][0])
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


@pytest.mark.parametrize("endpoint", sorted(e for e, (_, role) in URLS.items() if role == "admin"))
def test_admin_only_pages_refuse_clerks(client, auth, endpoint):
    auth.login("clerk")
    assert client.get(URLS[endpoint][0]).status_code == 403


@pytest.mark.parametrize("endpoint", sorted(e for e, (_, role) in URLS.items() if role == "clerk"))
def test_clerk_pages_open_for_clerks(client, auth, endpoint):
    auth.login("clerk")
    assert client.get(URLS[endpoint][0]).status_code in (200, 404)  # 404: no citizen 1 yet


@pytest.mark.parametrize("endpoint", sorted(URLS))
def test_admins_may_open_every_page(client, auth, endpoint):
    auth.login("admin")
    assert client.get(URLS[endpoint][0]).status_code in (200, 404)


def test_upload_needs_csrf_token(client, auth):
    auth.login("admin")
    response = client.post("/imports/", data={}, content_type="multipart/form-data")
    assert response.status_code == 400
