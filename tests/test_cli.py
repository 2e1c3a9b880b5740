"""Server commands and the README: every command and setting a user needs is documented."""
from pathlib import Path

from kiosk.__main__ import kiosk_parser

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_every_server_command_is_documented(app):
    commands = set(app.cli.list_commands(None)) - {"run", "shell", "routes"}
    assert {"create-user", "import-records", "register-device", "revoke-device", "purge",
            "init-db"} <= commands
    missing = [c for c in commands if c not in README]
    assert not missing, f"commands not in the README: {missing}"


def test_every_kiosk_option_is_documented():
    options = [o for action in kiosk_parser()._actions for o in action.option_strings
               if o.startswith("--") and o != "--help"]
    missing = [o for o in options if o not in README]
    assert not missing, f"kiosk options not in the README: {missing}"


def test_every_server_setting_is_documented():
    """docs/settings.md is generated from the settings registry and kept current."""
    from server.settings import ADMIN, CONFIG, markdown
    docs = (Path(__file__).resolve().parents[1] / "docs" / "settings.md").read_text()
    assert docs == markdown(), "run: python -m server.settings > docs/settings.md"
    assert all(f"`{s.name}`" in docs for s in CONFIG + ADMIN)
    assert "docs/settings.md" in README
