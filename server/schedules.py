"""Scheduled work that must run once per interval however many server processes run it.

Each process keeps its own timer thread; before running, it claims the interval in the
database. The claim is one conditional UPDATE of the task's row (`next_at` still in the past):
on SQLite the write lock, on PostgreSQL the row lock makes the processes take turns, and the
second one to get there finds `next_at` already moved and skips the run.
"""
import os
import socket
from datetime import datetime, timedelta, timezone

from db import transaction

from .times import utc_stamp


def claim(db, name, owner, every_s, now=None):
    """True when this caller won the run of `name` now (then next due in every_s seconds)."""
    now = now or datetime.now(timezone.utc)
    with transaction(db):
        db.execute("INSERT INTO schedule_runs (name) VALUES (?) ON CONFLICT(name) DO NOTHING", [name])
        won = db.execute(
            "UPDATE schedule_runs SET owner = ?, ran_at = ?, next_at = ? WHERE name = ? AND next_at <= ?",
            [owner, utc_stamp(now), utc_stamp(now + timedelta(seconds=every_s)), name,
             utc_stamp(now)]).rowcount
    return won == 1


def this_process():
    """The owner written on a claim: which host and process ran the task (for people)."""
    return f"{socket.gethostname()}:{os.getpid()}"
