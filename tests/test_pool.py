"""Face work off the request path (server/facecheck.py) and kept PostgreSQL connections
(db/postgres.py): worker processes that load the models once, a request that waits for its own
face only and is answered 503 with Retry-After past its time, workers that die with their
server, and a bounded pool of checked connections with a clear error when the server is gone."""
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import pgcluster
from db import postgres, transaction
from helpers import bearer, blink_evidence, enrol_her
from server import facecheck
from test_casefile import open_file, post_session, report


@pytest.fixture(autouse=True, scope="module")
def no_workers_left_behind():
    yield
    facecheck.shutdown()
    assert multiprocessing.active_children() == []


def models_loaded():
    """(pid, dlib's models loaded, face networks loaded) of a face worker (run in it)."""
    from recognition import engine
    from recognition.models import profile
    return os.getpid(), engine._models.cache_info().currsize, sorted(profile._nets)


def slow_face(seconds):
    time.sleep(seconds)
    return os.getpid()


def test_face_work_runs_in_worker_processes_that_loaded_the_models_at_start(app, face_model):
    with app.app_context():
        pids = {facecheck.in_pool(models_loaded)[0] for _ in range(6)}
        _pid, dlib_loaded, nets = facecheck.in_pool(models_loaded)
    assert os.getpid() not in pids and len(pids) <= app.config["FACE_WORKERS"]
    # by the worker's start, before any face was asked of it
    assert dlib_loaded == 1 and face_model.id in nets


def test_a_request_waits_for_its_own_face_not_for_another(app):
    """A slow face in one worker leaves the other worker free: a second request is answered
    while the first is still being looked at."""
    if app.config["FACE_WORKERS"] < 2:
        pytest.skip("one face worker")
    with app.app_context():
        facecheck.in_pool(os.getpid)          # started
    done = {}

    def slow():
        with app.app_context():
            done["slow"] = (facecheck.in_pool(slow_face, 1.5), time.monotonic())

    thread = threading.Thread(target=slow)
    thread.start()
    time.sleep(0.2)
    with app.app_context():
        facecheck.in_pool(slow_face, 0)
    quick_done = time.monotonic()
    thread.join()
    assert quick_done < done["slow"][1] - 0.5


@pytest.fixture
def her(db):
    return enrol_her(db)


def test_a_face_not_looked_at_in_time_is_503_with_retry_after_and_nothing_is_kept(
        app, client, db, token, her):
    session_id = post_session(client, token, her)
    assert report(client, token, session_id).status_code == 201
    # the blink's report looked at the snapshot beside the crops: undo, as when its look
    # was too late, so the case file must look itself
    with transaction(db):
        db.execute("UPDATE sessions SET snapshot_distance = NULL WHERE id = ?", [session_id])
    app.config["FACE_TIMEOUT_S"] = 0.001       # the pool cannot answer within a millisecond
    response = open_file(client, token, session_id, her)
    assert response.status_code == 503 and int(response.headers["Retry-After"]) >= 1
    assert response.get_json()["error"]["status"] == 503
    kept = db.execute("SELECT snapshot_distance, case_opened_at FROM sessions WHERE id = ?",
                      [session_id]).fetchone()
    assert tuple(kept) == (None, None)       # nothing concluded from a face not looked at
    app.config["FACE_TIMEOUT_S"] = 5.0
    assert open_file(client, token, session_id, her).status_code == 200


def test_a_blink_looks_at_the_snapshot_beside_its_crops_so_the_case_file_needs_no_face(
        app, client, db, token, her):
    session_id = post_session(client, token, her)
    assert report(client, token, session_id).status_code == 201
    distance = db.execute("SELECT snapshot_distance FROM sessions WHERE id = ?", [session_id]).fetchone()[0]
    assert distance is not None and distance < 0.2        # her own face, measured once
    app.config["FACE_TIMEOUT_S"] = 0.001       # no face could be looked at now
    assert open_file(client, token, session_id, her).status_code == 200


def test_an_early_look_that_fails_leaves_the_blink_passed(app, client, db, token, her, monkeypatch):
    """The look at the snapshot beside the crops is a head start: when it breaks (here a
    database error), the blink's verdict stands and the case file looks itself."""
    from server import casefile
    real, broke = casefile.snapshot_distance, []

    def breaks_once(*args, **kwargs):
        if not broke:
            broke.append(True)
            raise RuntimeError("the database went away for a moment")
        return real(*args, **kwargs)
    monkeypatch.setattr(casefile, "snapshot_distance", breaks_once)
    session_id = post_session(client, token, her)
    assert report(client, token, session_id).status_code == 201 and broke
    row = db.execute("SELECT liveness, snapshot_distance FROM sessions WHERE id = ?", [session_id]).fetchone()
    assert tuple(row) == ("passed", None)
    assert open_file(client, token, session_id, her).status_code == 200


def test_a_distance_measured_on_a_model_the_registry_left_is_not_kept(app, client, db, token, her):
    from recognition import models
    from server import faces
    session_id = post_session(client, token, her)
    with app.app_context():
        other = next(m for m in models.PROFILES.values() if m.id != faces.active_id(db))
        row = db.execute("SELECT * FROM sessions WHERE id = ?", [session_id]).fetchone()
        facecheck.snapshot_distance(db, row, her, facecheck.start_snapshot(row, other))
    assert db.execute("SELECT snapshot_distance FROM sessions WHERE id = ?",
                      [session_id]).fetchone()[0] is None


def test_a_blink_not_looked_at_in_time_leaves_liveness_to_report_again(app, client, db, token, her):
    session_id = post_session(client, token, her)
    app.config["FACE_TIMEOUT_S"] = 0.001
    body = {"result": "passed", "t": 3.2, "evidence": blink_evidence()}
    response = client.post(f"/api/v1/sessions/{session_id}/liveness", json=body, headers=bearer(token))
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert db.execute("SELECT liveness FROM sessions WHERE id = ?", [session_id]).fetchone()[0] == "not_run"
    app.config["FACE_TIMEOUT_S"] = 5.0
    assert report(client, token, session_id).status_code == 201


def test_a_killed_worker_costs_one_503_then_a_new_pool_serves(app, client, token, her):
    with app.app_context():
        victim = facecheck.in_pool(os.getpid)
    os.kill(victim, signal.SIGKILL)
    session_id = post_session(client, token, her)
    answers = []
    for _ in range(4):     # the death is noticed by the pool's thread within moments
        answers.append(report(client, token, session_id).status_code)
        if answers[-1] != 503:
            break
        time.sleep(0.3)
    assert answers[-1] == 201 and set(answers[:-1]) <= {503}


def test_workers_die_with_a_server_process_killed_outright(app, tmp_path):
    """SIGKILL leaves the server no atexit: its face workers see it gone and end."""
    script = textwrap.dedent("""
        import multiprocessing, os, time
        from app import create_app
        from server import facecheck
        app = create_app({"TESTING": True, "FACE_WORKERS": 2})
        with app.app_context():
            facecheck.in_pool(os.getpid)
        print(" ".join(str(p.pid) for p in multiprocessing.active_children()), flush=True)
        time.sleep(60)
    """)
    env = {**os.environ, "CIVIC_INSTANCE_PATH": str(tmp_path / "other")}
    server = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                              env=env, cwd=os.path.dirname(os.path.dirname(__file__)))
    try:
        workers = [int(p) for p in server.stdout.readline().split()]
    finally:
        server.kill()
        server.wait(10)
    assert workers
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(p) for p in workers):
        time.sleep(0.2)
    assert not any(_alive(p) for p in workers)


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_no_pool_is_started_where_face_work_runs_in_the_request(app):
    app.config["FACE_WORKERS"] = 0
    with app.app_context():
        assert facecheck.in_pool(os.getpid) == os.getpid()


# --- kept PostgreSQL connections -------------------------------------------------------------

def test_a_server_that_is_gone_is_one_clear_error_at_once():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]        # nothing listens there once closed
    started = time.monotonic()
    with pytest.raises(postgres.DatabaseUnavailable, match=f"127.0.0.1:{port}/civic cannot be reached"):
        postgres.PostgresDatabase(f"postgresql://civic:secret@127.0.0.1:{port}/civic", pooled=True)
    assert time.monotonic() - started < postgres.CONNECT_TIMEOUT_S
    try:
        postgres.connect(f"postgresql://civic:secret@127.0.0.1:{port}/civic")
    except postgres.DatabaseUnavailable as e:
        assert "secret" not in str(e)


postgres_only = pytest.mark.skipif(not pgcluster.enabled(), reason="CIVIC_TEST_DATABASE=postgres only")


def backend(db):
    return db.execute("SELECT pg_backend_pid()").fetchone()[0]


@postgres_only
def test_requests_reuse_kept_connections(database_url):
    first = postgres.PostgresDatabase(database_url, pooled=True)
    pid = backend(first)
    first.close()
    again = postgres.PostgresDatabase(database_url, pooled=True)
    assert backend(again) == pid
    again.close()


@postgres_only
def test_the_pool_is_bounded_and_says_so_when_all_are_taken(database_url, monkeypatch):
    monkeypatch.setattr(postgres, "POOL_WAIT_S", 0.3)
    pool = postgres.Pool(database_url, 2)
    taken = [pool.take(), pool.take()]
    with pytest.raises(postgres.DatabaseUnavailable, match="all 2 PostgreSQL connections"):
        pool.take()
    threading.Timer(0.1, pool.give_back, [taken.pop()]).start()
    taken.append(pool.take())        # waits for the one given back, opens no third
    assert pool.count == 2
    for conn in taken:
        pool.give_back(conn)
    pool.close()


@postgres_only
def test_a_connection_the_server_closed_is_replaced_before_a_request_gets_it(database_url, monkeypatch):
    monkeypatch.setattr(postgres, "CHECK_IDLE_S", 0.0)
    pool = postgres.Pool(database_url, 2)
    conn = pool.take()
    pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    pool.give_back(conn)
    killer = postgres.connect(database_url)
    killer.execute("SELECT pg_terminate_backend(%s)", (pid,))
    killer.close()
    time.sleep(0.2)
    fresh = pool.take()
    assert fresh.execute("SELECT pg_backend_pid()").fetchone()[0] != pid
    pool.give_back(fresh)
    assert pool.count == 1
    pool.close()


@postgres_only
def test_a_transaction_left_open_is_rolled_back_before_the_connection_is_kept(database_url):
    pool = postgres.Pool(database_url, 1)
    conn = pool.take()
    conn.execute("BEGIN")
    conn.execute("INSERT INTO settings (key, value) VALUES ('left.open', '1')")
    pool.give_back(conn)
    again = pool.take()
    assert again.execute("SELECT count(*) FROM settings WHERE key = 'left.open'").fetchone()[0] == 0
    pool.give_back(again)
    pool.close()


@postgres_only
def test_a_lost_connection_is_said_in_one_line_and_the_next_request_is_served(database_url):
    db = postgres.PostgresDatabase(database_url, pooled=True)
    killer = postgres.connect(database_url)
    killer.execute("SELECT pg_terminate_backend(%s)", (backend(db),))
    killer.close()
    with pytest.raises(postgres.DatabaseUnavailable, match="lost the connection to PostgreSQL"):
        backend(db)
    db.close()                               # dropped, not kept
    again = postgres.PostgresDatabase(database_url, pooled=True)
    assert backend(again)
    again.close()


@postgres_only
def test_a_process_holds_at_most_its_pool_however_many_requests_at_once(database_url):
    def requests():
        for _ in range(5):
            db = postgres.PostgresDatabase(database_url, pooled=True)
            db.execute("SELECT pg_sleep(0.01)")
            db.close()

    threads = [threading.Thread(target=requests) for _ in range(3 * postgres.POOL_SIZE)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    watcher = postgres.connect(database_url)
    held = watcher.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                           " AND pid != pg_backend_pid()").fetchone()[0]
    watcher.close()
    assert 1 <= held <= postgres.POOL_SIZE and postgres.pool_for(database_url).count <= postgres.POOL_SIZE


def test_a_database_that_is_away_is_a_503_a_device_retries_not_an_internal_error(app, client, token,
                                                                                 monkeypatch):
    from helpers import bearer
    import server.devices
    def away():
        raise postgres.DatabaseUnavailable("PostgreSQL at 127.0.0.1:5432/civic cannot be reached")
    monkeypatch.setattr(server.devices, "get_db", away)
    answer = client.get("/api/v1/config", headers=bearer(token))
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "5"
    assert "database cannot be reached" in answer.get_json()["error"]["message"]
