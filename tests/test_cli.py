"""Server commands and the README: every command and setting a user needs is documented."""
import re
from pathlib import Path

from kiosk.__main__ import build_parser

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_init_db_marks_import_jobs_of_a_stopped_server_failed(runner, db):
    db.execute("INSERT INTO import_jobs (status, created_at) VALUES ('running', '2026-01-01T00:00:00Z')")
    result = runner.invoke(args=["init-db"])
    assert result.exit_code == 0 and "1 import job(s) interrupted" in result.output
    assert db.execute("SELECT status FROM import_jobs").fetchone()[0] == "failed"



def test_every_server_command_is_documented(app):
    commands = set(app.cli.list_commands(None)) - {"run", "shell", "routes"}
    assert {"create-user", "import-records", "register-device", "revoke-device", "purge",
            "init-db"} <= commands
    missing = [c for c in commands if c not in README]
    assert not missing, f"commands not in the README: {missing}"


def test_every_kiosk_option_is_documented():
    options = [o for action in build_parser("kiosk", "")._actions for o in action.option_strings
               if o.startswith("--") and o != "--help"]
    missing = [o for o in options if o not in README]
    assert not missing, f"kiosk options not in the README: {missing}"


def test_every_server_setting_is_documented(app):
    from app import _defaults
    settings = [k for k in _defaults(app.instance_path) if not k.startswith("SESSION_COOKIE")
                and k not in ("DATABASE", "PHOTOS_DIR", "SNAPSHOTS_DIR", "REPORTS_DIR",
                              "UPLOADS_DIR", "MAX_CONTENT_LENGTH")]
    missing = [k for k in settings if not re.search(rf"\b{k}\b", README)]
    assert not missing, f"settings not in the README: {missing}"
