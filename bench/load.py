"""A hall full of kiosks and a few clerks against a real registry, the old way and the new, in
one run.

    python -m bench.load [--devices 16] [--clerks 2] [--seconds 60] [--processes N]
                         [--postgres] [--pace 2.0] [--clerk-pace 0.5] [--sweep 2,4,8]
                         [--sweep-seconds 20] [--sweep-pace 0] [--setups old,new]
                         [--citizens 150]

Each set-up gets a registry of its own in a temporary instance folder, on a SQLite file or,
with --postgres, on a throwaway PostgreSQL cluster (tests/pgcluster.py), served on 127.0.0.1
(loopback only):
  - old: what scripts/run.sh started before: one waitress process with 8 threads, faces
         looked at in the request's thread (FACE_WORKERS 0), a PostgreSQL connection opened
         for every request (CIVIC_DB_POOL_SIZE 0);
  - new: scripts/run.sh itself: --processes gunicorn processes (default: a core each), each
         with its face-work pool and its kept connections.
(Both run today's queries: the gallery sync's one template query and the once-a-minute
last_seen_at apply to both; "old" is the old way of serving them.)

Every kiosk loops over real visits of the blinking woman of tests/data/video: its gallery
delta (a full pull the first time), a session upload with her snapshot, a liveness pass with
the face crops of her real blink (tests/helpers.py blink_evidence, as device/evidence.py cuts
them), and her case file; the config every 10th visit. It starts visits at random moments,
one every --pace seconds on average (exponential gaps, as citizens walk up independently; 0:
back to back). Every clerk signs in and loops over the queue page, the live
queue's poll and the newest session's page (the dashboard every 10th time), every
--clerk-pace seconds. Requests come from threads of this process, a new connection each, as the devices'
urllib client does.

Prints JSON: per set-up requests_per_s, visits_per_s (visits begun), errors (any answer but the expected one, or none in
30 s) and their kinds, p50_ms/p95_ms/p99_ms per endpoint, the CPU the server (and PostgreSQL)
used in cores, and the machine's load (cores, load averages, share of CPU busy). --sweep runs
each number of kiosks for --sweep-seconds (visits back to back unless --sweep-pace) and
reports the most requests per second with no error and every endpoint's p95 within 500 ms:
the max sustainable.

Targets (16 kiosks + 2 clerks, 60 s): 0 errors; p95 <= 150 ms on every endpoint but the case
file, case file p95 <= 400 ms; max sustainable >= 2.5x the old way's.
"""
import argparse
import json
import math
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from http.client import HTTPConnection
from urllib.parse import urlencode

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))     # helpers (her visit), pgcluster

SUSTAINABLE_P95_MS = 500
HER_NAMESAKES = 100       # citizens with her face, one picked at random per visit
TARGET_P95_MS, TARGET_CASEFILE_P95_MS, TARGET_SPEEDUP = 150, 400, 2.5
PASSWORD = "bench-password-123"
REQUEST_TIMEOUT_S = 30
SETUPS = {
    "old": "one waitress process, faces in the request thread, a connection per request",
    "new": "scripts/run.sh: a gunicorn process per --processes, face-work pools, kept connections",
}


# --- the registry ------------------------------------------------------------------------

def budgets(seconds):
    """The per-device budgets of the bench's registry. A kiosk here visits every few seconds
    for the whole run, where a hall's kiosk greets a few citizens an hour: the budgets
    (PULL_DEVICE_LIMIT, CASEFILE_DEVICE_LIMIT, SESSION_DEVICE_LIMIT per 10 minutes) are a
    stolen token's brake, and would pause every kiosk within a minute. They are raised to
    what the run can use and no further: a budget of L slots reads L / 500 rows of slots a
    request (server/limits.py take_slot), so "unlimited" would cost the server what a real
    registry never pays."""
    limit = 500 * math.ceil(max(1.0, seconds * 8 / 500))     # 8 visits a second at most
    return {"PULL_DEVICE_LIMIT": limit, "CASEFILE_DEVICE_LIMIT": limit,
            "SESSION_DEVICE_LIMIT": limit}


def write_config(instance, seconds):
    os.makedirs(instance, mode=0o700, exist_ok=True)
    with open(os.path.join(instance, "config.py"), "w") as f:
        for name, value in budgets(seconds).items():
            f.write(f"{name} = {value!r}\n")


def build_registry(instance, database, devices, clerks, citizens, seconds):
    """Migrate and fill a registry: her (with cases) and the test photos' people enrolled
    from real photos, synthetic citizens up to `citizens`, the kiosks and the clerks.
    Returns {"tokens": [...], "her_key": key, "registry_id": id}."""
    os.environ["CIVIC_INSTANCE_PATH"] = instance
    if database:
        os.environ["CIVIC_DATABASE_URL"] = database
    else:
        os.environ.pop("CIVIC_DATABASE_URL", None)
    write_config(instance, seconds)
    import helpers
    from app import create_app
    from db import open_db
    from db.queries import registry_id
    app = create_app()
    db = open_db(app.config["DATABASE"])
    try:
        hers = _her_namesakes(db, helpers, min(HER_NAMESAKES, max(1, citizens - 5)))
        for person in ("alex_lacamoire", "barack_obama", "joe_biden", "kit_harington", "rose_leslie"):
            helpers.enrol(db, person)
        _pad_citizens(db, citizens - 5 - len(hers))
        tokens = [helpers.add_device(db, f"kiosk-{i + 1:02d}", site="Hall A")[1] for i in range(devices)]
        _add_clerks(db, clerks)
        return {"tokens": tokens, "her_keys": [helpers.key_of(db, her) for her in hers],
                "registry_id": registry_id(db)}
    finally:
        db.close()


def _her_namesakes(db, helpers, count):
    """`count` citizens with her face and cases of their own: the only real blink the bench
    has is hers, and a hall's visits are of many citizens, each with a few passes a month
    (the registry compares a pass with the citizen's earlier ones, and sends a citizen with
    more than evidence.REPLAY_PASSES of them to a clerk)."""
    return [helpers.enrol_her(db, name=f"林小姐{i + 1}",
                              cases=((f"TX-2026-{1000 + i}", "个人所得税", "ready", "3"),))
            for i in range(count)]


def _pad_citizens(db, count):
    """Citizens with a synthetic template each (unit vectors: the gallery sync's weight)."""
    if count <= 0:
        return
    from db import now_iso, transaction
    from db.queries import new_citizen_key, next_sync_seq
    from server import faces
    model = faces.active(db)
    vectors = np.random.default_rng(0).normal(size=(count, model.dims)).astype(np.float32)
    stamp = now_iso()
    with transaction(db):
        seq = next_sync_seq(db)
        for i, vector in enumerate(vectors):
            cid = db.insert("INSERT INTO citizens (id_number, key, name, language, sync_seq,"
                            " created_at, updated_at) VALUES (?, ?, ?, 'zh', ?, ?, ?) RETURNING id",
                            [f"B{i:09d}", new_citizen_key(), f"市民{i}", seq, stamp, stamp])
            db.execute("INSERT INTO face_templates (citizen_id, encoding, face_model, created_at)"
                       " VALUES (?, ?, ?, ?)",
                       [cid, model.to_blob(vector / np.linalg.norm(vector)), model.id, stamp])


def _add_clerks(db, count):
    from werkzeug.security import generate_password_hash
    from db import now_iso
    hashed = generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")
    for i in range(count):
        db.execute("INSERT INTO users (username, password_hash, role, created_at) VALUES (?, ?, ?, ?)",
                   [f"clerk{i + 1}", hashed, "clerk", now_iso()])


# --- the server ---------------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(setup, port, processes, env):
    """The set-up's server process (the root of its process tree)."""
    if setup == "old":
        env = {**env, "CIVIC_FACE_WORKERS": "0", "CIVIC_DB_POOL_SIZE": "0"}
        command = [os.path.join(ROOT, ".venv/bin/waitress-serve"), "--host", "127.0.0.1",
                   "--port", str(port), "--threads", "8", "--max-request-body-size=536870912",
                   "--call", "app:create_app"]
    else:
        env = {**env, "HOST": "127.0.0.1", "PORT": str(port), "WORKERS": str(processes)}
        command = [os.path.join(ROOT, "scripts/run.sh")]
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, start_new_session=True)
    _wait_until_up(server, port)
    return server


def _wait_until_up(server, port, limit_s=120):
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server stopped: {server.stderr.read().decode()[-2000:]}")
        try:
            if request(port, "GET", "/login")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise SystemExit("the server did not answer within two minutes")


def stop_server(server):
    """SIGTERM to the server's process group (gunicorn's master and workers, the face
    workers), then SIGKILL after 30 s."""
    import signal
    try:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(10)
    except ProcessLookupError:
        pass


# --- CPU -----------------------------------------------------------------------------------

def tree_cpu_s(root):
    """CPU seconds used by a process and all its descendants, including reaped ones."""
    ticks = os.sysconf("SC_CLK_TCK")
    total, pending = 0.0, [root]
    children = _children_map()
    while pending:
        pid = pending.pop()
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        total += sum(int(v) for v in fields[11:15]) / ticks     # utime stime cutime cstime
        pending.extend(children.get(pid, ()))
    return total


def _children_map():
    children = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    parent = int(f.read().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
            children.setdefault(parent, []).append(int(name))
    return children


def busy_ticks():
    """(busy, total) CPU ticks of the machine since boot (/proc/stat)."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


# --- HTTP ----------------------------------------------------------------------------------

def request(port, method, path, body=None, headers=None):
    """(status, response headers, body bytes) over a new connection, as urllib does."""
    conn = HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT_S)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()


class Recorder:
    """Each request's endpoint, milliseconds and outcome, kept from `start` on."""

    def __init__(self):
        self.rows, self.errors, self.lock = [], {}, threading.Lock()
        self.start = self.end = None
        self.visits = 0          # visits begun between start and end

    def measuring(self, began):
        return self.start is not None and began >= self.start and (self.end is None or began < self.end)

    def visit_begun(self):
        if self.measuring(time.perf_counter()):
            with self.lock:
                self.visits += 1

    def timed(self, name, port, method, path, expected, body=None, headers=None):
        began = time.perf_counter()
        try:
            status, _headers, data = request(port, method, path, body, headers)
        except OSError as e:
            status, data = type(e).__name__, b""
        ms = (time.perf_counter() - began) * 1000
        if self.measuring(began):
            with self.lock:
                self.rows.append((name, ms))
                if status not in expected:
                    key = f"{name} {status}"
                    self.errors[key] = self.errors.get(key, 0) + 1
        return status, data


class Kiosk:
    """One device looping over her visits (module docstring)."""

    def __init__(self, port, token, her_keys, registry, visit, seed):
        from device.client import FACE_MODELS_HEADER
        from recognition import models
        self.port, self.her_keys, self.registry, self.visit = port, her_keys, registry, visit
        # seeded by the kiosk's number: the old and the new way see the same walk-ups
        self.arrivals, self.who = random.Random(seed), random.Random(seed + 10_000)
        self.headers = {"Authorization": f"Bearer {token}",
                        FACE_MODELS_HEADER: ",".join(m.id for m in models.PROFILES.values())}
        self.seq, self.model = 0, models.get(models.DEFAULT).id

    def run(self, rec, stop, pace):
        """Visits at random moments, one every `pace` seconds on average (0: back to back).
        Citizens walk up independently: kiosks started together and paced alike would all
        send their blinks in the same second, a burst a hall never sees."""
        gap = (lambda: self.arrivals.expovariate(1 / pace)) if pace else (lambda: 0.0)
        due = time.monotonic() + gap()
        for n in range(10 ** 9):
            if stop.wait(max(0.0, due - time.monotonic())):
                return
            self.one_visit(rec, n)
            due = max(due + gap(), time.monotonic())

    def one_visit(self, rec, n):
        if n % 10 == 0:
            rec.timed("config", self.port, "GET", "/api/v1/config", {200}, headers=self.headers)
        status, data = rec.timed("gallery", self.port, "GET", f"/api/v1/gallery?since={self.seq}",
                                 {200}, headers=self.headers)
        if status == 200:
            self.seq = json.loads(data)["seq"]
        session_id, her_key = str(uuid.uuid4()), self.who.choice(self.her_keys)
        rec.visit_begun()
        body, content_type = self.visit.upload(session_id, her_key, self.registry, self.model)
        status, _ = rec.timed("session upload", self.port, "POST", "/api/v1/sessions", {201}, body,
                              {**self.headers, "Content-Type": content_type})
        if status != 201:
            return
        json_headers = {**self.headers, "Content-Type": "application/json"}
        status, _ = rec.timed("liveness", self.port, "POST", f"/api/v1/sessions/{session_id}/liveness",
                              {201}, self.visit.liveness(), json_headers)
        if status == 201:
            rec.timed("case file", self.port, "POST", f"/api/v1/sessions/{session_id}/casefile", {200},
                      json.dumps({"citizen_key": her_key}).encode(), json_headers)


class Visit:
    """Her snapshot, encoded once for every request, and her blink's evidence."""

    def __init__(self):
        import helpers
        self.snapshot = helpers.her_snapshot()
        self.crops = helpers._blink_crops()

    def liveness(self):
        """Her real blink as another visit's camera would see it: each crop with fresh sensor
        noise. The registry refuses crops it accepted for another visit of hers (a replay),
        and every visit of a real hall is new frames."""
        import helpers
        crops = [(t, self._noisy(data)) for t, data in self.crops]
        return json.dumps({"result": "passed", "t": 3.2, "evidence": helpers.blink_evidence(crops)}).encode()

    def _noisy(self, jpeg):
        import cv2
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).astype(np.float32)
        image += np.random.default_rng().normal(0, 2.0, image.shape)   # kiosks' threads: one each
        return cv2.imencode(".jpg", np.clip(image, 0, 255).astype(np.uint8),
                            [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()

    def upload(self, session_id, her_key, registry, model):
        """(multipart body, content type) of a greeting of her, begun 5 s ago (her crops'
        times must fall within the visit)."""
        started = (datetime.now(timezone.utc) - timedelta(seconds=5)).isoformat()
        session = {"id": session_id, "outcome": "greeted", "citizen_key": her_key,
                   "registry_id": registry, "distance": 0.3, "margin": 0.2, "time_to_greet": 0.4,
                   "liveness": "not_run", "model": model, "started_at": started}
        boundary = uuid.uuid4().hex
        body = (f'--{boundary}\r\nContent-Disposition: form-data; name="session"\r\n\r\n'
                f"{json.dumps(session)}\r\n--{boundary}\r\nContent-Disposition: form-data;"
                f' name="snapshot"; filename="face.jpg"\r\nContent-Type: image/jpeg\r\n\r\n').encode() \
            + self.snapshot + f"\r\n--{boundary}--\r\n".encode()
        return body, f"multipart/form-data; boundary={boundary}"


class Clerk:
    """A clerk at the console: the queue, its live poll, the newest visit's page."""

    def __init__(self, port, username):
        self.port, self.username, self.cookie = port, username, ""

    def sign_in(self):
        import re
        status, headers, page = request(self.port, "GET", "/login")
        self._keep_cookie(headers)
        token = re.search(rb'name="csrf_token"[^>]*value="([^"]+)"', page).group(1).decode()
        body = urlencode({"username": self.username, "password": PASSWORD, "csrf_token": token})
        status, headers, _ = request(self.port, "POST", "/login", body,
                                     {"Content-Type": "application/x-www-form-urlencoded",
                                      "Cookie": self.cookie})
        self._keep_cookie(headers)
        if status != 302:
            raise SystemExit(f"clerk sign-in answered {status}")

    def _keep_cookie(self, headers):
        from http.cookies import SimpleCookie
        cookie = SimpleCookie(headers.get("Set-Cookie") or "")
        if "session" in cookie:
            self.cookie = f"session={cookie['session'].value}"

    def run(self, rec, stop, pace):
        since = (datetime.now(timezone.utc) - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        for n in range(10 ** 9):
            started = time.monotonic()
            if stop.is_set():
                return
            since = self.one_round(rec, n, since)
            time.sleep(max(0.0, pace - (time.monotonic() - started)))

    def one_round(self, rec, n, since):
        headers = {"Cookie": self.cookie, "Accept-Language": "en"}
        rec.timed("queue page", self.port, "GET", "/console/", {200}, headers=headers)
        status, data = rec.timed("queue poll", self.port, "GET", f"/console/sessions.json?since={since}",
                                 {200}, headers=headers)
        arrived = json.loads(data)["sessions"] if status == 200 else []
        if arrived:
            rec.timed("session page", self.port, "GET", f"/console/sessions/{arrived[-1]['id']}",
                      {200}, headers=headers)
            since = arrived[-1]["received_at"]
        if n % 10 == 0:
            rec.timed("dashboard", self.port, "GET", "/console/dashboard", {200}, headers=headers)
        return since


# --- one measured run ------------------------------------------------------------------------

def drive(port, registry, visit, devices, clerks, seconds, pace, clerk_pace, probe):
    """Run the kiosks and clerks for `seconds` after one unmeasured visit each (the face
    workers start, each kiosk holds its gallery). Returns the Recorder, with probe()'s
    readings (CPU used so far) at the start and the end of the measured time."""
    rec = Recorder()
    kiosks = [Kiosk(port, token, registry["her_keys"], registry["registry_id"], visit, seed)
              for seed, token in enumerate(registry["tokens"][:devices])]
    desks = [Clerk(port, f"clerk{i + 1}") for i in range(clerks)]
    for desk in desks:
        desk.sign_in()
    for kiosk in kiosks:
        kiosk.one_visit(rec, 1)
    stop = threading.Event()
    threads = [threading.Thread(target=k.run, args=(rec, stop, pace)) for k in kiosks] + \
        [threading.Thread(target=c.run, args=(rec, stop, clerk_pace)) for c in desks]
    rec.probed = [probe()]
    rec.start = time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    rec.end = time.perf_counter()
    rec.probed.append(probe())
    for thread in threads:
        thread.join(REQUEST_TIMEOUT_S + 5)
    return rec


def summary(rec, seconds):
    """requests_per_s, errors and the percentiles per endpoint of a Recorder's rows."""
    rows = [(name, ms) for name, ms in rec.rows]
    endpoints = {}
    for name in sorted({name for name, _ in rows}):
        ms = np.array([m for n, m in rows if n == name])
        endpoints[name] = {"requests": int(ms.size),
                           **{f"p{q}_ms": round(float(np.percentile(ms, q)), 1) for q in (50, 95, 99)}}
    return {"requests": len(rows), "requests_per_s": round(len(rows) / seconds, 1),
            "visits_per_s": round(rec.visits / seconds, 2),
            "errors": sum(rec.errors.values()), "error_kinds": rec.errors, "endpoints": endpoints}


def measured(setup, args, visit, devices, seconds, pace, cluster):
    """One set-up on a registry of its own: its summary, CPU used and the machine's load."""
    instance = tempfile.mkdtemp(prefix=f"civic-load-{setup}-")
    database = cluster.new_database() if cluster else None
    registry = build_registry(instance, database, args.devices_max, args.clerks, args.citizens, seconds)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKERS", "CIVIC_FACE", "CIVIC_DB"))}
    port = free_port()
    server = start_server(setup, port, args.processes, env)
    try:
        rec = drive(port, registry, visit, devices, args.clerks, seconds, pace, args.clerk_pace,
                    lambda: _cpu(server, cluster))
    finally:
        stop_server(server)
        if cluster:
            cluster.drop_database(database)
    elapsed = rec.end - rec.start
    result = summary(rec, elapsed)
    (before, machine_before), (after, machine_after) = rec.probed
    result["cpu_cores"] = {part: round((after[part] - before[part]) / elapsed, 2) for part in before}
    busy, total = (a - b for a, b in zip(machine_after, machine_before))
    result["machine"] = {"cpu_busy_share": round(busy / total, 2), "load_1m": os.getloadavg()[0]}
    return result


def _cpu(server, cluster):
    """(CPU seconds of the server's processes and PostgreSQL's, the machine's CPU ticks)."""
    parts = {"server": tree_cpu_s(server.pid)}
    if cluster:
        parts["postgres"] = tree_cpu_s(cluster.postmaster_pid())
    return parts, busy_ticks()


def max_sustainable(points):
    """The most requests per second among sweep points with every endpoint's p95 within
    SUSTAINABLE_P95_MS and no errors (None when no point holds)."""
    held = [p for p in points if p["errors"] == 0 and all(
        e["p95_ms"] <= SUSTAINABLE_P95_MS for e in p["endpoints"].values())]
    return max((p["requests_per_s"] for p in held), default=None)


def targets(result):
    """Which targets the run met (on the latency run of the new set-up)."""
    new = result["setups"].get("new", {}).get("run")
    if not new:
        return {}
    others = [e["p95_ms"] for name, e in new["endpoints"].items() if name != "case file"]
    met = {"zero_errors": new["errors"] == 0,
           "p95_le_150ms_but_case_file": max(others, default=0) <= TARGET_P95_MS,
           "case_file_p95_le_400ms": new["endpoints"].get("case file", {}).get("p95_ms", 1e9)
           <= TARGET_CASEFILE_P95_MS}
    old_max = result["setups"].get("old", {}).get("max_sustainable_requests_per_s")
    new_max = result["setups"]["new"].get("max_sustainable_requests_per_s")
    if old_max and new_max:
        met["max_sustainable_ge_2.5x"] = new_max >= TARGET_SPEEDUP * old_max
    return met


def main(argv=None):
    args = parse_args(argv)
    cluster = _cluster() if args.postgres else None
    visit = Visit()
    result = {"database": "postgresql" if cluster else "sqlite", "devices": args.devices,
              "clerks": args.clerks, "seconds": args.seconds, "pace_s": args.pace,
              "processes": args.processes, "citizens": args.citizens, "cores": os.cpu_count(),
              "load_before": os.getloadavg(), "budgets": budgets(args.seconds), "setups": {}}
    try:
        for setup in args.setups:
            result["setups"][setup] = run_setup(setup, args, visit, cluster)
            print(json.dumps({setup: result["setups"][setup]}), file=sys.stderr, flush=True)
    finally:
        if cluster:
            cluster.stop()
    _compare(result)
    result["load_after"] = os.getloadavg()
    result["targets_met"] = targets(result)
    print(json.dumps(result, indent=2, ensure_ascii=False))


def run_setup(setup, args, visit, cluster):
    out = {"what": SETUPS[setup]}
    if args.seconds > 0:
        out["run"] = measured(setup, args, visit, args.devices, args.seconds, args.pace, cluster)
    if args.sweep:
        points = []
        for devices in args.sweep:
            point = measured(setup, args, visit, devices, args.sweep_seconds, args.sweep_pace, cluster)
            points.append({"devices": devices, **point})
        out["sweep"] = points
        out["max_sustainable_requests_per_s"] = max_sustainable(points)
    return out


def _compare(result):
    setups = result["setups"]
    if "old" in setups and "new" in setups:
        ratio = {}
        if "run" in setups["old"]:
            ratio["requests_per_s"] = round(setups["new"]["run"]["requests_per_s"]
                                            / max(setups["old"]["run"]["requests_per_s"], 1e-9), 2)
        old_max, new_max = (setups[s].get("max_sustainable_requests_per_s") for s in ("old", "new"))
        if old_max and new_max:
            ratio["max_sustainable"] = round(new_max / old_max, 2)
        result["new_over_old"] = ratio


def _cluster():
    import pgcluster

    class Cluster(pgcluster.Cluster):
        def postmaster_pid(self):
            with open(self.data / "postmaster.pid") as f:
                return int(f.readline())

    return Cluster().start()


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=16)
    parser.add_argument("--clerks", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=60.0,
                        help="measured seconds of the main run per set-up (0: sweep only)")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1,
                        help="server processes of the new set-up")
    parser.add_argument("--postgres", action="store_true", help="a throwaway PostgreSQL cluster")
    parser.add_argument("--pace", type=float, default=2.0,
                        help="seconds from one visit's start to the next, per kiosk (0: back to back)")
    parser.add_argument("--sweep", type=lambda s: [int(v) for v in s.split(",") if v], default=[],
                        help="numbers of kiosks run back to back, for the max sustainable")
    parser.add_argument("--sweep-seconds", type=float, default=20.0)
    parser.add_argument("--sweep-pace", type=float, default=0.0,
                        help="--pace of the sweep's kiosks (0: back to back)")
    parser.add_argument("--clerk-pace", type=float, default=0.5,
                        help="seconds from one round of a clerk's pages to the next")
    parser.add_argument("--setups", type=lambda s: [v for v in s.split(",") if v], default=["old", "new"])
    parser.add_argument("--citizens", type=int, default=150, help="citizens in each registry")
    args = parser.parse_args(argv)
    unknown = [s for s in args.setups if s not in SETUPS]
    if unknown or args.seconds > 600 or args.sweep_seconds > 600:
        parser.error(f"set-ups are {', '.join(SETUPS)}; at most 600 seconds a run")
    args.devices_max = max([args.devices, *args.sweep])
    return args


if __name__ == "__main__":
    main()
