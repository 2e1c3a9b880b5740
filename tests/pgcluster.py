"""A throwaway PostgreSQL cluster for the test suite (CIVIC_TEST_DATABASE=postgres).

initdb + pg_ctl in a temporary folder, on a free loopback port with its socket in /tmp,
stopped and deleted at the end of the run. PostgreSQL refuses to run as root, so as root the
cluster runs as the `postgres` system user (created by Debian's package) or `nobody`. Each
test gets a fresh database copied from one migrated template (CREATE DATABASE ... TEMPLATE).
"""
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg

from db import open_db

BIN_DIRS = ["/usr/lib/postgresql/{v}/bin".format(v=v) for v in (17, 16, 15, 14, 13)]


def enabled():
    return os.environ.get("CIVIC_TEST_DATABASE", "sqlite") == "postgres"


def _binary(name):
    for folder in BIN_DIRS:
        if os.access(os.path.join(folder, name), os.X_OK):
            return os.path.join(folder, name)
    found = shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} not found: install PostgreSQL (scripts/setup.sh --dev --postgres)")
    return found


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_as():
    """The unprivileged user the server runs as when the tests run as root (else None)."""
    if os.getuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("no unprivileged user to run PostgreSQL as")


class Cluster:
    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix="civic-pg-", dir="/tmp"))
        self.port = _free_port()
        self.user = _run_as()
        self._names = itertools.count(1)
        if self.user:
            os.chmod(self.root, 0o755)
            os.chown(self.root, self.user.pw_uid, self.user.pw_gid)
        self.data = self.root / "data"

    def _cmd(self, *args):
        prefix = ["runuser", "-u", self.user.pw_name, "--"] if self.user else []
        subprocess.run([*prefix, *args], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, cwd=self.root)

    def start(self):
        self._cmd(_binary("initdb"), "-D", str(self.data), "-U", "civic", "--auth=trust",
                  "--encoding=UTF8", "--locale=C.UTF-8")
        # a throwaway cluster: durability settings off, the tests never crash the server
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
                   " -c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self._cmd(_binary("pg_ctl"), "-D", str(self.data), "-o", options, "-w", "-l",
                  str(self.root / "log"), "start")
        self._admin("CREATE DATABASE civic_template")
        open_db(self.url("civic_template")).close()  # migrated once; each test copies it
        return self

    def url(self, name):
        return f"postgresql://civic@127.0.0.1:{self.port}/{name}"

    def _admin(self, sql):
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(sql)

    def new_database(self):
        """The URL of a new, empty, migrated database."""
        name = f"test_{next(self._names)}"
        self._admin(f"CREATE DATABASE {name} TEMPLATE civic_template")
        return self.url(name)

    def drop_database(self, url):
        self._admin(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")

    def stop(self):
        try:
            self._cmd(_binary("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
