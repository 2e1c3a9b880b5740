"""Sign-in throttling under concurrency, on a real server (loopback only): parallel wrong
passwords from one address and from eight, the password checks they get counted at the real
check_password_hash, and a clerk signing in from their own desk through the storm."""
import heapq
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest

from conftest import PASSWORD
from loopback import Desk
from server import auth, logins
from server.settings import config_defaults

STORM_ADDRESSES = [f"127.0.0.{i}" for i in range(2, 10)]     # eight attackers' machines
DESK = "127.0.0.1"                                            # the clerk's own desk


def try_sign_in(desk, username, password, token=None):
    """(status, what the page said): "wrong", "wait N" or "" (signed in: 302)."""
    status, _, page = desk.sign_in(username, password, token)
    return status, _said(page)


def _said(page):
    if "Wrong username or password" in page:
        return "wrong"
    wait = re.search(r"Try again in (\d+) seconds", page)
    return f"wait {wait.group(1)}" if wait else ""


@pytest.fixture
def checks(monkeypatch):
    """Password hashes checked by the sign-in, counted at the real check."""
    counted, lock = [0], threading.Lock()
    real = auth.check_password_hash

    def counting(*args):
        with lock:
            counted[0] += 1
        return real(*args)
    monkeypatch.setattr(auth, "check_password_hash", counting)
    return counted


def storm(server, addresses, until, per_address=8, username="clerk"):
    """Wrong passwords for username from every address, per_address at once, until `until`
    (a monotonic time); returns what each answer said."""
    said, lock = [], threading.Lock()

    def guesser(address):
        desk = Desk(server, address)
        while time.monotonic() < until:
            answer = try_sign_in(desk, username, "not-the-password")[1]
            with lock:
                said.append(answer)
            if answer.startswith("wait"):
                time.sleep(0.05)      # a polite attacker still polls twenty times a second
    with ThreadPoolExecutor(len(addresses) * per_address) as pool:
        list(pool.map(guesser, [a for a in addresses for _ in range(per_address)]))
    return said


def test_64_parallel_wrong_passwords_get_no_more_checks_than_the_policy(app, live_server, checks):
    desks = [Desk(live_server, DESK) for _ in range(64)]
    forms = [(desk, desk.csrf()) for desk in desks]
    start = threading.Barrier(64)

    def guess(desk_form):
        desk, token = desk_form
        start.wait()
        return try_sign_in(desk, "clerk", "not-the-password", token)[1]
    with ThreadPoolExecutor(64) as pool:
        said = list(pool.map(guess, forms))
    assert checks[0] == said.count("wrong") == app.config["LOGIN_SLOW_AFTER"]    # 3
    assert checks[0] <= app.config["LOGIN_LOCK_AFTER"]
    assert all(answer == "wrong" or answer.startswith("wait") for answer in said)


def test_eight_addresses_get_at_most_the_usernames_limit(app, live_server, checks, db):
    said = storm(live_server, STORM_ADDRESSES, time.monotonic() + 8)
    assert len(said) > 200                      # the storm was one: hundreds of tries
    assert checks[0] == said.count("wrong") <= app.config["LOGIN_USER_LIMIT"]
    assert db.execute("SELECT count(*) FROM login_failures").fetchone()[0] == checks[0]


def test_a_clerk_at_their_desk_signs_in_through_a_storm_after_the_delay(app, live_server, checks):
    desk = Desk(live_server, DESK)
    assert try_sign_in(desk, "clerk", PASSWORD)[0] == 302      # this desk is now the clerk's own
    desk.post_form("/logout", {}, desk.csrf())
    done = time.monotonic() + 12
    attack = threading.Thread(target=storm, args=(live_server, STORM_ADDRESSES, done))
    attack.start()
    try:
        time.sleep(1)                                          # the storm is on
        mistyped = [try_sign_in(desk, "clerk", "typo-password")[1] for _ in range(3)]
        assert mistyped == ["wrong"] * 3                      # the storm does not hold this desk
        typed = time.monotonic()
        status, answer = try_sign_in(desk, "clerk", PASSWORD)
        if answer.startswith("wait"):       # its own three typos slow it (2 s, unless spent)
            time.sleep(int(answer.split()[1]))
            status, answer = try_sign_in(desk, "clerk", PASSWORD)
        assert status == 302 and desk.request("GET", "/console/")[0] == 200
        assert time.monotonic() - typed < 2 + 3 and time.monotonic() < done   # in the storm
    finally:
        attack.join()


# --- the policy over hours, on the real store with its own clock ------------------------------

def test_over_three_hours_eight_addresses_get_at_most_ten_checks_in_any_15_minutes(db):
    """Each address tries again the moment it is told it may (an attacker polling nonstop)."""
    config = config_defaults("unused")
    start = datetime(2026, 3, 1, 9, tzinfo=timezone.utc)
    due = [(start, ip) for ip in STORM_ADDRESSES]
    checked = []
    while due:
        now, ip = heapq.heappop(due)
        wait = logins.reserve(db, config, "clerk", ip, now)
        if not wait:
            checked.append(now)
        if now < start + timedelta(hours=3):
            heapq.heappush(due, (now + timedelta(seconds=wait or 1), ip))
    most = max(sum(1 for b in checked if timedelta(0) <= b - a <= timedelta(minutes=15))
               for a in checked)
    assert most == config["LOGIN_USER_LIMIT"] and len(checked) >= 3 * 4 * 10


def test_the_usernames_wait_is_never_a_lock_for_the_users_own_address(app, db):
    from server import user_sessions
    config = app.config
    now = datetime.now(timezone.utc)
    for i in range(config["LOGIN_USER_LIMIT"]):      # one a minute, each past the doubling wait
        tried = now - timedelta(minutes=config["LOGIN_USER_LIMIT"] - i)
        assert not logins.reserve(db, config, "clerk", STORM_ADDRESSES[i % 8], tried)
    # a new address waits, never long: ten requests a quarter of an hour from anywhere kept
    # a clerk at a new desk out for 830 s
    assert 0 < logins.wait_seconds(db, config, "clerk", "192.0.2.1", now) <= logins.USER_WAIT_MAX_S
    clerk = db.execute("SELECT id FROM users WHERE username = 'clerk'").fetchone()[0]
    user_sessions.start(db, clerk, "192.0.2.1")                 # signed in from there before
    assert logins.wait_seconds(db, config, "clerk", "192.0.2.1", now) == 0
