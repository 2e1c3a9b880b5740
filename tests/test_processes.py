"""Two server processes on one registry (the SQLite file, or PostgreSQL with
CIVIC_TEST_DATABASE=postgres), served as scripts/run.sh serves it (gunicorn, loopback only):
a visit started at one and finished at the other, a clerk signed in at one working at the
other, wrong passwords at one slowing sign-in at the other, and the scheduled purge run by one
of them only. Bounded: every wait has a deadline."""
import json
import os
import socket
import subprocess
import time
from datetime import datetime, timedelta, timezone
from http.client import HTTPConnection
from pathlib import Path

import pytest

import helpers
from conftest import PASSWORD
from helpers import add_device, blink_evidence, enrol_her, greeted_payload, her_snapshot
from loopback import Desk, multipart
from test_signin_race import try_sign_in

ROOT = Path(__file__).resolve().parent.parent
CONFIG = """\
PASSWORD_HASH_METHOD = "pbkdf2:sha256:1000"
FACE_WORKERS = 1                    # two processes, one face worker each
PURGE_FIRST_DELAY_SECONDS = 1       # both processes' schedules come due at once
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One gunicorn process (one worker) on the test's instance folder and database."""

    def __init__(self, app):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "CIVIC_INSTANCE_PATH": app.instance_path}
        if app.config["DATABASE"].startswith("postgresql://"):
            env["CIVIC_DATABASE_URL"] = app.config["DATABASE"]
        self.process = subprocess.Popen(
            [str(ROOT / ".venv/bin/gunicorn"), "--bind", f"127.0.0.1:{self.port}", "--workers", "1",
             "--worker-class", "gthread", "--threads", "4", "--forwarded-allow-ips", "",
             "app:create_app()"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def wait_up(self, limit_s=60):
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.process.stderr.read().decode()[-2000:]
            try:
                if self.request("GET", "/login")[0] == 200:
                    return self
            except OSError:
                time.sleep(0.2)
        raise AssertionError("the server did not start")

    def request(self, method, path, body=None, headers=None):
        conn = HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def kiosk(app, db):
    """(token, a snapshot of 40 days ago): made before the servers start, whose purge comes
    due a second after."""
    device_id, token = add_device(db, site="")
    return token, old_snapshot(app, db, device_id)


@pytest.fixture
def two_servers(app, kiosk):
    with open(os.path.join(app.instance_path, "config.py"), "w") as f:
        f.write(CONFIG)
    servers = [Server(app), Server(app)]
    try:
        yield [server.wait_up() for server in servers]
    finally:
        for server in servers:
            server.stop()


def device_headers(token, content_type="application/json"):
    return {**helpers.bearer(token), "Content-Type": content_type}


def old_snapshot(app, db, device_id):
    """A visit of 40 days ago whose snapshot the purge (30 days by default) deletes."""
    session_id = helpers.add_session(app, db, device_id, snapshot=("rose_leslie", 1),
                                     received_at=datetime.now(timezone.utc) - timedelta(days=40))
    return os.path.join(app.config["SNAPSHOTS_DIR"], f"{session_id}.jpg")


def test_two_processes_serve_one_registry(app, db, kiosk, two_servers):
    first, second = two_servers
    her = enrol_her(db)
    token, stale = kiosk

    # a visit uploaded to one process, its blink and its case file at the other: each
    # process's face worker looks at the faces of the one registry
    body = greeted_payload(db, her, started_at=(datetime.now(timezone.utc) - timedelta(seconds=5)).isoformat())
    upload, content_type = multipart({"session": json.dumps(body)}, [("snapshot", "face.jpg", her_snapshot())])
    assert first.request("POST", "/api/v1/sessions", upload, device_headers(token, content_type))[0] == 201
    blink = json.dumps({"result": "passed", "t": 3.2, "evidence": blink_evidence()})
    assert second.request("POST", f"/api/v1/sessions/{body['id']}/liveness", blink,
                          device_headers(token))[0] == 201
    status, opened = first.request("POST", f"/api/v1/sessions/{body['id']}/casefile",
                                   json.dumps({"citizen_key": body["citizen_key"]}), device_headers(token))
    assert status == 200 and json.loads(opened)["cases"]
    # each process's gallery delta is the same registry's
    deltas = [json.loads(s.request("GET", "/api/v1/gallery?since=0", headers=helpers.bearer(token))[1])
              for s in two_servers]
    assert deltas[0]["registry_id"] == deltas[1]["registry_id"] and \
        [u["key"] for u in deltas[0]["upserts"]] == [u["key"] for u in deltas[1]["upserts"]]

    # a clerk signed in at one process works at the other (the sign-in is kept in the database)
    clerk = Desk(first)
    assert clerk.sign_in("clerk", PASSWORD)[0] == 302
    at_second = Desk(second)
    at_second.cookie = clerk.cookie
    status, _, page = at_second.request("GET", "/console/sessions.json?since=2000-01-01T00:00:00Z")
    assert status == 200 and body["id"] in page

    # wrong passwords at one process slow the next sign-in at the other
    attacker = Desk(first, "127.0.0.7")
    for _ in range(3):
        assert try_sign_in(attacker, "admin", "wrong-password")[1] == "wrong"
    assert try_sign_in(Desk(second, "127.0.0.7"), "admin", PASSWORD)[1].startswith("wait")

    # both processes' purge came due at the same second; one of them ran it
    deadline = time.monotonic() + 20
    while os.path.exists(stale) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1)       # the other process's turn, had it won one too
    purges = db.execute("SELECT detail FROM audit_log WHERE action = 'snapshots.purge'").fetchall()
    assert not os.path.exists(stale)
    assert [json.loads(p[0])["purged"] for p in purges] == [1]
