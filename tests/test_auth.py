from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest

from conftest import AuthActions
from server.auth import UserError, create_user


def test_login_and_logout(client, auth):
    response = auth.login()
    assert response.status_code == 302
    assert client.get("/citizens/").status_code == 200
    auth.logout()
    assert client.get("/citizens/").status_code == 302


def test_wrong_password_is_refused_with_a_message(client, auth):
    response = auth.login(password="not-the-password")
    assert response.status_code == 401
    assert "Wrong username or password" in response.get_data(as_text=True) or \
        "用户名或密码错误" in response.get_data(as_text=True)


def test_repeated_failures_lock_the_account_for_that_address_even_for_the_right_password(
        app, client, auth, db):
    for _ in range(6):
        auth.login(password="wrong-password")
        db.execute("UPDATE login_failures SET at = ?", [recent(60)])  # waited out the slow-down
    assert db.execute("SELECT count(*) FROM login_failures WHERE username = 'admin'").fetchone()[0] == 6
    response = auth.login()
    assert response.status_code == 401 and client.get("/citizens/").status_code == 302
    # the real admin at another desk is not locked out by whoever guessed from this one
    other_desk = app.test_client()
    other_desk.environ_base["REMOTE_ADDR"] = "10.1.2.3"
    assert AuthActions(other_desk).login().status_code == 302


@pytest.mark.parametrize("hops", [1, 0])
def test_behind_a_proxy_one_strangers_guesses_do_not_make_every_client_wait(app, hops):
    """Behind nginx every request comes from 127.0.0.1. With PROXY_HOPS=1 the address budget
    is each client's own; without it, a forged X-Forwarded-For buys no fresh budget."""
    from app import create_app
    from conftest import TEST_HASH_METHOD
    proxied = create_app({"TESTING": True, "DATABASE": app.config["DATABASE"], "PROXY_HOPS": hops,
                          "LOGIN_ADDRESS_LIMIT": 3, "PASSWORD_HASH_METHOD": TEST_HASH_METHOD})

    def desk(address):
        client = proxied.test_client()
        client.environ_base.update(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=address)
        return AuthActions(client)
    for i in range(3):     # one stranger; without trusted hops, one who forges a new address each time
        assert desk(f"203.0.113.{i if not hops else 9}").login(f"nobody{i}", "guess").status_code == 401
    clerk = desk("198.51.100.7").login("clerk")
    assert clerk.status_code == (302 if hops else 401)


def test_a_signed_out_pages_poll_gets_the_json_error_not_the_login_page(client):
    answer = client.get("/console/sessions.json", headers={"Accept": "application/json"})
    assert answer.status_code == 401 and answer.get_json()["error"]["status"] == 401
    assert client.get("/console/").status_code == 302     # a person still goes to the login


def test_an_empty_secret_key_file_left_by_a_crash_is_replaced(tmp_path, monkeypatch):
    from app import create_app
    instance = tmp_path / "instance"
    instance.mkdir()
    (instance / "secret_key").write_text("")          # killed between create and write
    monkeypatch.setenv("CIVIC_INSTANCE_PATH", str(instance))
    app = create_app({"TESTING": True})
    assert app.test_client().get("/login").status_code == 200     # every page was a 500
    kept = (instance / "secret_key").read_text()
    assert len(kept) == 64 and create_app({"TESTING": True}).config["SECRET_KEY"] == kept
    assert (instance / "secret_key").stat().st_mode & 0o777 == 0o600     # signs every session
    assert not list(instance.glob("*.tmp"))


def test_two_servers_starting_at_once_share_one_secret_key(tmp_path):
    """The second to write its key keeps the first one's: sessions signed by either verify."""
    from server import files
    path = tmp_path / "secret_key"
    assert files.write_whole(str(path), b"first", 0o600, replace=False) is True
    assert files.write_whole(str(path), b"second", 0o600, replace=False) is False
    assert path.read_bytes() == b"first" and not list(tmp_path.glob("*.tmp"))


def recent(seconds_ago):
    return (datetime.now(timezone.utc) - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_parallel_wrong_passwords_all_count(app, db):
    """Every guess that was judged (not turned away to wait) is a failure on record: parallel
    guesses can no longer overwrite each other's count."""
    def guess(_):
        with app.test_client() as c:
            c.post("/lang/en", data={"csrf_token": AuthActions(c).csrf_token()})
            return "Wrong username or password" in AuthActions(c).login(
                password="wrong-password").get_data(as_text=True)
    with ThreadPoolExecutor(8) as pool:
        judged = sum(pool.map(guess, range(16)))
    assert judged >= 3
    assert db.execute("SELECT count(*) FROM login_failures").fetchone()[0] == judged


def test_unknown_and_known_usernames_are_answered_alike(client, auth):
    """Neither the message nor the lock tells whether a username exists."""
    def answers(username):
        pages = [auth.login(username, "wrong-password").get_data(as_text=True) for _ in range(4)]
        return [_message(page) for page in pages]
    assert answers("admin") == answers("no-such-user")


def _message(page):
    import re
    return re.sub(r"\d+", "N", re.search(r'class="flash[^"]*"[^>]*>([^<]*)<', page).group(1))


def test_logout_ends_the_session_on_the_server(app, client, auth):
    auth.login()
    copied = client.get_cookie("session").value
    auth.logout()
    thief = app.test_client()
    thief.set_cookie("session", copied)
    assert thief.get("/citizens/").status_code == 302


def test_a_password_change_ends_other_sessions(app, client, auth, db):
    auth.login("clerk")
    copied = client.get_cookie("session").value
    admin = app.test_client()
    admin_auth = AuthActions(admin)
    admin_auth.login("admin")
    clerk_id = db.execute("SELECT id FROM users WHERE username = 'clerk'").fetchone()[0]
    token = admin_auth.csrf_token("/admin/users")
    admin.post(f"/admin/users/{clerk_id}", data={"action": "password", "password": "a-new-password-9",
                                                 "csrf_token": token})
    thief = app.test_client()
    thief.set_cookie("session", copied)
    assert thief.get("/citizens/").status_code == 302


@pytest.mark.parametrize("column, minutes", [("last_seen_at", 31), ("created_at", 12 * 60 + 1)])
def test_idle_and_old_sessions_end(client, auth, db, column, minutes):
    auth.login()
    assert client.get("/citizens/").status_code == 200
    db.execute(f"UPDATE user_sessions SET {column} = ?", [recent(minutes * 60)])
    assert client.get("/citizens/").status_code == 302


def test_slowed_after_three_failures(auth, db):
    for _ in range(3):
        auth.login(password="wrong-password")
    assert auth.login().status_code == 401  # must wait before trying again


def test_login_form_requires_csrf_token(client):
    response = client.post("/login", data={"username": "admin", "password": "x"})
    assert response.status_code == 400


def test_passwords_are_hashed(db):
    row = db.execute("SELECT password_hash FROM users WHERE username='admin'").fetchone()
    assert "test-password-123" not in row["password_hash"]
    assert row["password_hash"].startswith(("scrypt:", "pbkdf2:"))


@pytest.mark.parametrize("username,password,role,message", [
    ("x", "long-enough-pw", "boss", "role must be"),
    ("", "long-enough-pw", "clerk", "username must be"),
    ("bob", "short", "clerk", "at least 10"),
    ("admin", "long-enough-pw", "clerk", "already exists"),
])
def test_create_user_validation(db, username, password, role, message):
    with pytest.raises(UserError, match=message):
        create_user(db, username, password, role)


def test_create_user_cli_reads_password_from_environment(runner, db, monkeypatch):
    monkeypatch.setenv("CIVIC_PASSWORD", "another-password-1")
    result = runner.invoke(args=["create-user", "carol", "--role", "clerk"])
    assert result.exit_code == 0, result.output
    assert db.execute("SELECT role FROM users WHERE username='carol'").fetchone()[0] == "clerk"


def test_create_user_cli_without_terminal_or_password_fails_cleanly(runner, monkeypatch):
    monkeypatch.delenv("CIVIC_PASSWORD", raising=False)
    result = runner.invoke(args=["create-user", "dave", "--role", "clerk"])
    assert result.exit_code != 0
    assert "CIVIC_PASSWORD" in result.output



def test_a_huge_username_is_refused_before_it_is_counted_or_stored(client, db, auth):
    """A 1 MB username was stored twice a try (the failure row and the audit entry)."""
    page = client.get("/login").get_data(as_text=True)
    from conftest import csrf_from
    response = client.post("/login", data={"csrf_token": csrf_from(page), "username": "x" * 1_000_000,
                                           "password": "wrong password"})
    assert response.status_code == 401
    assert db.execute("SELECT count(*) FROM login_failures").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM audit_log WHERE length(actor_name) > 100").fetchone()[0] == 0
