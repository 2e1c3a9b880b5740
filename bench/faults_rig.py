"""The harness of bench/faults.py: a deadline, child processes that are always ended, temporary
folders that are always removed, real server processes on 127.0.0.1 and a browser for them.

Kept apart from the fault experiments so that each part of bench/faults.py reads as what it
does to the registry, not how it keeps its processes in check.
"""
import contextlib
import csv
import http.client
import io
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from http.cookies import SimpleCookie
from urllib.parse import urlencode

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))     # relay: the kill proxy's bytes
from relay import forward, read_request  # noqa: E402
VENV_BIN = os.path.join(ROOT, ".venv", "bin")
PASSWORD = "faults-password-123"
REQUEST_TIMEOUT_S = 60
SERVER_START_S = 90          # a cold start on two busy cores: imports, the app, migrations


class OutOfTime(Exception):
    """The run's global deadline passed: the part stops where it is and reports so far."""


def progress(message):
    """One line to stderr, so stdout holds only the JSON."""
    print(f"faults: {message}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _terminate(*_):
    raise KeyboardInterrupt      # SIGTERM and SIGHUP end the run as Ctrl-C does: cleaned up


class Rig:
    """Everything a run starts, ended when it ends (also on Ctrl-C or a deadline):
    each child is the leader of its own process group and the whole group is killed; each
    cleanup (an unmount, a PostgreSQL cluster) runs last-in first-out; the temporary root
    folder is removed."""

    def __init__(self, deadline_s):
        self.end = time.monotonic() + deadline_s
        self.root = tempfile.mkdtemp(prefix="civic-faults-")
        self.logs = os.path.join(self.root, "logs")
        os.makedirs(self.logs)
        self.children, self.cleanups = [], []

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, _terminate)
        return self

    def __exit__(self, *exc):
        self.close()

    # --- time ---------------------------------------------------------------------------------

    def left(self):
        return self.end - time.monotonic()

    def check(self):
        if self.left() <= 0:
            raise OutOfTime()

    def bounded(self, seconds):
        """seconds, cut to what is left of the run (OutOfTime when nothing is)."""
        self.check()
        return max(0.05, min(seconds, self.left()))

    def sleep(self, seconds):
        time.sleep(self.bounded(seconds))

    def wait_for(self, condition, timeout, every=0.2):
        """condition()'s first true value within timeout (and the deadline), else None."""
        until = time.monotonic() + self.bounded(timeout)
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() >= until:
                return None
            time.sleep(every)

    # --- folders and processes ------------------------------------------------------------------

    def folder(self, name):
        return tempfile.mkdtemp(prefix=f"{name}-", dir=self.root)

    def spawn(self, args, env, name, cwd=ROOT):
        """A child in its own process group (a kill reaches its workers); output to a log file,
        never to a pipe nobody reads (a full pipe would stall it)."""
        log = open(os.path.join(self.logs, f"{name}-{uuid.uuid4().hex[:6]}.log"), "wb")
        child = subprocess.Popen(args, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                 stderr=subprocess.STDOUT, start_new_session=True)
        child.log_path = log.name
        log.close()
        self.children.append(child)
        return child

    def run(self, args, env, name, timeout):
        """spawn() and wait: (return code, its output); the group is killed on a timeout."""
        child = self.spawn(args, env, name)
        try:
            code = child.wait(self.bounded(timeout))
        except subprocess.TimeoutExpired:
            code = None
        self.end_group(child)
        with open(child.log_path, encoding="utf-8", errors="replace") as f:
            return code, f.read()

    def end_group(self, child, grace_s=0.0):
        """SIGTERM (after grace_s, SIGKILL) to the child's whole process group."""
        if grace_s:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(grace_s)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(10)
        if child in self.children:
            self.children.remove(child)

    def on_close(self, cleanup):
        self.cleanups.append(cleanup)

    def close(self):
        for child in list(self.children):
            self.end_group(child)
        while self.cleanups:
            try:
                self.cleanups.pop()()
            except Exception as e:      # one failed cleanup must not keep the others from running
                progress(f"cleanup failed: {e!r}")
        shutil.rmtree(self.root, ignore_errors=True)


def group_members(pgid):
    """Pids still alive in a process group (Linux /proc)."""
    alive = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(int(name))
    return alive


def sigkill_leader(rig, child, settle_s=5.0):
    """SIGKILL the child alone, as a crash kills a process; then how many of its workers were
    still alive settle_s later (they should end with it: PR_SET_PDEATHSIG). The rest of the
    group is killed after that count."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(child.pid, signal.SIGKILL)
    child.wait(10)
    left = rig.wait_for(lambda: not group_members(child.pid) or None, settle_s, every=0.1)
    behind = 0 if left else len(group_members(child.pid))
    rig.end_group(child)
    return behind


# --- an instance folder and its commands -------------------------------------------------------

class Instance:
    """One registry: an instance folder (CIVIC_INSTANCE_PATH) and, optionally, a PostgreSQL
    database (CIVIC_DATABASE_URL); `flask --app app ...` commands run against it."""

    def __init__(self, rig, folder, database_url=None, config=None):
        self.rig, self.path, self.database_url = rig, folder, database_url
        os.makedirs(folder, mode=0o700, exist_ok=True)
        if config:
            with open(os.path.join(folder, "config.py"), "w") as f:
                f.writelines(f"{k} = {v!r}\n" for k, v in config.items())
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CIVIC_")}
        self.env.update(CIVIC_INSTANCE_PATH=folder, PYTHONUNBUFFERED="1")
        if database_url:
            self.env["CIVIC_DATABASE_URL"] = database_url

    @property
    def database(self):
        return self.database_url or os.path.join(self.path, "civic.db")

    def sub(self, name):
        return os.path.join(self.path, name)

    def flask_args(self, *args):
        return [os.path.join(VENV_BIN, "flask"), "--app", "app", *args]

    def flask(self, *args, timeout=120, env=None):
        """(return code, output) of one command."""
        return self.rig.run(self.flask_args(*args), {**self.env, **(env or {})},
                            f"flask-{args[0]}", timeout)

    def create_user(self, username, role):
        code, out = self.flask("create-user", username, "--role", role, env={"CIVIC_PASSWORD": PASSWORD})
        if code != 0:
            raise RuntimeError(f"create-user {username}: {out[-500:]}")

    def register_device(self, name, site="Hall A"):
        """The device's token (the command prints it as its last line)."""
        code, out = self.flask("register-device", name, "--kind", "kiosk", "--site", site)
        if code != 0:
            raise RuntimeError(f"register-device: {out[-500:]}")
        return out.strip().splitlines()[-1].strip()

    def open_db(self):
        from db import open_db
        return open_db(self.database, migrate_now=False)


class Server:
    """One waitress process serving an instance on 127.0.0.1 (a single process: a SIGKILL ends
    the server, where gunicorn's master would replace the worker). hostname: run it in a UTS
    namespace of its own (unshare, root) under that host name, as a process of another machine
    on one shared database would be."""

    def __init__(self, rig, instance, name="server", port=None, hostname=None, threads=6):
        self.rig, self.instance, self.name = rig, instance, name
        self.port = port or free_port()
        self.hostname, self.threads = hostname, threads
        self.process = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def command(self):
        serve = [os.path.join(VENV_BIN, "waitress-serve"), f"--listen=127.0.0.1:{self.port}",
                 f"--threads={self.threads}", "--max-request-body-size=536870912",
                 "--call", "app:create_app"]
        if not self.hostname:
            return serve
        return ["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', self.hostname, *serve]

    def start(self, wait=True):
        self.process = self.rig.spawn(self.command(), self.instance.env, self.name)
        return self.wait_up() if wait else self

    def wait_up(self, limit_s=SERVER_START_S):
        until = time.monotonic() + self.rig.bounded(limit_s)
        while time.monotonic() < until:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} stopped at start: {self.log_tail()}")
            with contextlib.suppress(OSError):
                if Browser(self).request("GET", "/login")[0] == 200:
                    return self
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not answer within {limit_s} s")

    def kill(self, settle_s=5.0):
        """SIGKILL the server process (not its group); its workers left behind after settle_s."""
        return sigkill_leader(self.rig, self.process, settle_s)

    def stop(self):
        if self.process is not None:
            self.rig.end_group(self.process, grace_s=20)

    def log_tail(self, chars=1500):
        with open(self.process.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()[-chars:]


# --- a browser and a device on loopback ----------------------------------------------------------

class Browser:
    """A person's browser of one server: its cookie, forms with their CSRF token, uploads. The
    sign-in is kept on the server side (in the database), so its cookie works at any process
    of one registry: `at(other)` is the same browser pointed at another."""

    def __init__(self, server, cookie=""):
        self.server, self.cookie = server, cookie

    def at(self, server):
        return Browser(server, self.cookie)

    def request(self, method, path, body=None, headers=None, timeout=REQUEST_TIMEOUT_S):
        """(status, headers, body bytes) over a new connection."""
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=timeout)
        sent = {"Accept-Language": "en", **({"Cookie": self.cookie} if self.cookie else {}),
                **(headers or {})}
        try:
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            data = response.read()
        finally:
            conn.close()
        cookie = SimpleCookie(response.getheader("Set-Cookie") or "")
        if "session" in cookie:
            self.cookie = f"session={cookie['session'].value}"
        return response.status, response.headers, data

    def csrf(self, path):
        page = self.request("GET", path)[2].decode("utf-8", "replace")
        found = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
        if not found:
            raise RuntimeError(f"no CSRF token on {path}")
        return found.group(1)

    def sign_in(self, username, password=PASSWORD):
        """The status of the sign-in form's POST (302: signed in)."""
        body = urlencode({"username": username, "password": password, "csrf_token": self.csrf("/login")})
        return self.request("POST", "/login", body, {"Content-Type": "application/x-www-form-urlencoded"})[0]

    def post_files(self, path, files, token):
        """A multipart form with files [(field, file name, bytes)] and the CSRF token."""
        body, content_type = multipart({"csrf_token": token}, files)
        return self.request("POST", path, body, {"Content-Type": content_type})

    def json(self, path):
        status, _, data = self.request("GET", path)
        if status != 200:
            raise RuntimeError(f"GET {path}: {status}")
        import json
        return json.loads(data)


def multipart(fields, files, file_type="application/octet-stream"):
    """(body, content type) of a multipart form: fields {name: text}, files [(field, name, bytes)]."""
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
             for name, value in fields.items()]
    for field, filename, data in files:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{field}";'
                     f' filename="{filename}"\r\nContent-Type: {file_type}\r\n\r\n'.encode() + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def device_headers(token, content_type=None):
    """What a device of this version sends: its token and the face models it runs."""
    from device.client import FACE_MODELS_HEADER
    from recognition import models
    headers = {"Authorization": f"Bearer {token}",
               FACE_MODELS_HEADER: ",".join(m.id for m in models.PROFILES.values())}
    if content_type:
        headers["Content-Type"] = content_type
    return headers


def report_rows(csv_text):
    """An import report (CSV, as the importer writes it) as dicts."""
    return list(csv.DictReader(io.StringIO(csv_text.lstrip("\ufeff"))))


# --- a server killed at one request --------------------------------------------------------------

class KillProxy:
    """A TCP proxy on 127.0.0.1 in front of a server's port (one request per connection, as
    the device's urllib sends them). arm(suffix, when, kill): the first POST whose path ends
    with suffix calls kill() "before" it is forwarded (the server dies with the request unseen)
    or "after" the server answered (it dies with its answer on the way: the device never gets
    it); that connection is then cut. While the server is down every connection fails as it
    would without the proxy: refused."""

    def __init__(self, upstream_port):
        import socketserver
        import threading
        self.upstream_port = upstream_port
        self.killed = None           # the request line the server was killed at
        self._armed, self._lock = None, threading.Lock()
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                with contextlib.suppress(OSError):
                    proxy._relay(self.request)

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def arm(self, suffix, when, kill):
        with self._lock:
            self._armed, self.killed = (suffix, when, kill), None

    def close(self):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def _relay(self, conn):
        conn.settimeout(REQUEST_TIMEOUT_S)
        request = read_request(conn)
        if not request:
            return
        line = request.split(b"\r\n", 1)[0].decode("latin-1")
        strike = self._strikes(line)
        if strike and strike[0] == "before":
            strike[1]()
            return
        answer = forward(("127.0.0.1", self.upstream_port), request, REQUEST_TIMEOUT_S)
        if strike:
            strike[1]()
            return
        conn.sendall(answer)

    def _strikes(self, line):
        """(when, kill) if this request is the armed point (disarmed then), else None."""
        method, path = (line.split(" ") + ["", ""])[:2]
        with self._lock:
            if self._armed is None or method != "POST" or not path.split("?")[0].endswith(self._armed[0]):
                return None
            # unpacked first: one tuple assignment evaluates its right side before binding `when`
            _, when, kill = self._armed
            self._armed, self.killed = None, f"{when} {method} {path}"
        return when, kill


