import pytest

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


def test_repeated_failures_lock_the_account_even_for_the_right_password(client, auth, db):
    for _ in range(6):
        # wait out each slow-down (as a patient attacker would) before the next guess
        db.execute("UPDATE users SET locked_until = NULL WHERE username='admin'")
        auth.login(password="wrong-password")
    row = db.execute("SELECT failed_logins, locked_until FROM users WHERE username='admin'").fetchone()
    assert row["failed_logins"] == 6 and row["locked_until"] > "2026"
    response = auth.login()
    assert response.status_code == 401
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

