"""Fixtures: the app on a temp instance folder, client, runner, auth helper, a live server."""
import os
import re
import shutil
import threading
from pathlib import Path

import pytest
from werkzeug.security import generate_password_hash
from werkzeug.serving import make_server

from app import create_app
from db import now_iso, open_db

import pgcluster

# Real photos and a real clip committed with the tests (sources and licences: tests/data/README.md).
DATA = Path(__file__).resolve().parent / "data"
FACES = DATA / "faces"
PEOPLE = FACES / "people"
# 17 s at 640x360: a woman faces the camera from 1.5 s, blinks from 2.17 s on, leaves at 16 s.
VIDEO = DATA / "video" / "blinking_clip.mp4"
PASSWORD = "test-password-123"
pytest_plugins = ["browser"]  # the chromium_page fixture


# Tests hash with few rounds (scrypt takes ~70 ms a hash), and the two staff accounts every
# test starts with share one hash computed once per run.
TEST_HASH_METHOD = "pbkdf2:sha256:1000"
PASSWORD_HASH = generate_password_hash(PASSWORD, method=TEST_HASH_METHOD)


@pytest.fixture(scope="session")
def postgres_cluster():
    """A throwaway PostgreSQL server for the run (only with CIVIC_TEST_DATABASE=postgres)."""
    cluster = pgcluster.Cluster().start()
    yield cluster
    cluster.stop()


@pytest.fixture
def database_url(request, monkeypatch):
    """The app's database: None (the SQLite file in the instance folder) or, with
    CIVIC_TEST_DATABASE=postgres, a new migrated PostgreSQL database for this test. The
    environment names it too, so commands run in a child process use the same one."""
    if not pgcluster.enabled():
        yield None
        return
    cluster = request.getfixturevalue("postgres_cluster")
    url = cluster.new_database()
    monkeypatch.setenv("CIVIC_DATABASE_URL", url)
    yield url
    cluster.drop_database(url)


@pytest.fixture
def face_model(request):
    """The face model of the test's registry: @pytest.mark.face_model("dlib"), or the default."""
    import helpers
    from recognition import models
    marker = request.node.get_closest_marker("face_model")
    name = marker.args[0] if marker else models.DEFAULT
    helpers.use_model(name)
    yield models.get(name)
    helpers.use_model(models.DEFAULT)


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory):
    """One SQLite registry migrated for the run: each test's app starts from a copy of it (a
    fresh migration is ~40 ms, a copy ~3), as PostgreSQL's tests copy a template database."""
    path = tmp_path_factory.mktemp("template") / "civic.db"
    open_db(str(path)).close()
    return path


@pytest.fixture
def app(tmp_path, monkeypatch, database_url, face_model, migrated_sqlite):
    monkeypatch.setenv("CIVIC_INSTANCE_PATH", str(tmp_path / "instance"))
    if not database_url:
        (tmp_path / "instance").mkdir(exist_ok=True)
        shutil.copy(migrated_sqlite, tmp_path / "instance" / "civic.db")
    overrides = {"DATABASE": database_url} if database_url else {}
    app = create_app({"TESTING": True, "IMPORT_WORKERS": 1, "PASSWORD_HASH_METHOD": TEST_HASH_METHOD,
                      "FACE_MODEL": face_model.name, **overrides})
    db = open_db(app.config["DATABASE"])
    for role in ("admin", "clerk"):
        db.execute("INSERT INTO users (username, password_hash, role, created_at) VALUES (?, ?, ?, ?)",
                   [role, PASSWORD_HASH, role, now_iso()])
    db.close()
    yield app
    if database_url:  # whatever the test did (imports, visits, pages), PostgreSQL held it all
        assert not os.path.exists(os.path.join(app.instance_path, "civic.db"))


@pytest.fixture
def db(app):
    handle = open_db(app.config["DATABASE"])
    yield handle
    handle.close()


@pytest.fixture
def token(db):
    """The bearer token of a registered kiosk ("kiosk-1")."""
    from server.devices import register_device
    return register_device(db, "kiosk-1", "kiosk", site="Hall A")


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


class AuthActions:
    def __init__(self, client):
        self._client = client

    def login(self, username="admin", password=PASSWORD):
        """Log in through the real form (the CSRF token is read off the page)."""
        token = csrf_from(self._client.get("/login").get_data(as_text=True))
        return self._client.post("/login", data={"username": username, "password": password,
                                                 "csrf_token": token})

    def logout(self):
        return self._client.post("/logout", data={"csrf_token": self.csrf_token()})

    def csrf_token(self, path="/login"):
        return csrf_from(self._client.get(path).get_data(as_text=True))


def csrf_from(page):
    """The CSRF token in a rendered page (any form on it)."""
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    assert match, "page has no CSRF token"
    return match.group(1)


@pytest.fixture
def auth(client):
    return AuthActions(client)


@pytest.fixture
def live_server(app):
    """The app served for real on 127.0.0.1 (a free port) in a background thread."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_port}"
    yield server
    server.shutdown()
    thread.join(timeout=5)


def person_photo(name, index=1):
    return PEOPLE / name / f"{index}.jpg"


def pytest_collection_modifyitems(items):
    """Every test that opens Chromium is a browser test (pytest -m "not browser" skips them)."""
    for item in items:
        if "chromium_page" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.browser)
