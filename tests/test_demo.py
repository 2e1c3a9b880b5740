"""scripts/demo.sh, as a new user runs it: from the files in demo/, a kiosk greets someone
and the session reaches the registry (offline, on free loopback ports)."""
import os
import socket
import sqlite3
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.video


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_demo_greets_the_woman_of_the_demo_video_and_files_her_session(tmp_path):
    instance = tmp_path / "demo-instance"
    env = {**os.environ, "DEMO_SKIP_SETUP": "1", "DEMO_INSTANCE": str(instance),
           "DEMO_PORT": str(free_port()), "DEMO_SCREEN_PORT": str(free_port())}
    result = subprocess.run(["bash", "scripts/demo.sh", "--once"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "imported 6, updated 0, unchanged 0, rejected 0" in result.stdout
    assert "greeted 林晓梅" in result.stdout and "session in the registry" in result.stdout
    assert f"http://127.0.0.1:{env['DEMO_PORT']}/" in result.stdout and "demo-password" in result.stdout
    with sqlite3.connect(instance / "civic.db") as db:
        rows = db.execute("SELECT c.name, s.outcome FROM sessions s JOIN citizens c"
                          " ON c.id = s.citizen_id").fetchall()
    assert rows == [("林晓梅", "greeted")]
    assert list((instance / "speech").glob("said*.wav"))   # the greeting was spoken (to a file)
