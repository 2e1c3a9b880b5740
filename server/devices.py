"""Devices (kiosks, robots): registration, revocation and their bearer tokens.

A token is shown once, when the device is registered; the server keeps only its SHA-256, so
a leaked database does not let anyone pose as a device. A revoked device gets 401 at once.
register_device() and revoke_device() are what the command line and the admin page both
call, with their own actor: one audit entry each, naming who really did it.
"""
import functools
import hashlib
import logging
import secrets
from datetime import datetime, timezone

from flask import g, request

from db import now_iso, transaction

from . import audit
from .database import get_db
from .errors import ApiError
from .requests import client_ip
from .times import parse_stamp

DEVICE_KINDS = ("kiosk", "robot")
SEEN_EVERY_S = 60       # last_seen_at is written at most this often per device
log = logging.getLogger(__name__)


class DeviceError(ValueError):
    """A device command that cannot be done (unknown name, duplicate, bad kind)."""


def hash_token(token):
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token():
    # The prefix keeps a token from starting with "-", which a command line (`--token -x...`)
    # would read as an option; it also makes a leaked token recognisable in logs.
    return "civic_" + secrets.token_urlsafe(32)


def register_device(db, name, kind, site="", actor=audit.CLI):
    """Add a device and return its new bearer token (shown once; only the hash is kept)."""
    name, site = (name or "").strip(), (site or "").strip()
    if not name or len(name) > 64:
        raise DeviceError("device name must be 1 to 64 characters")
    if kind not in DEVICE_KINDS:
        raise DeviceError(f"kind must be one of: {', '.join(DEVICE_KINDS)}")
    token = new_token()
    with transaction(db):
        if db.execute("SELECT 1 FROM devices WHERE name = ?", [name]).fetchone():
            raise DeviceError(f"device {name!r} already exists")
        db.execute("INSERT INTO devices (name, kind, site, token_hash, created_at)"
                   " VALUES (?, ?, ?, ?, ?)", [name, kind, site, hash_token(token), now_iso()])
        audit.record(db, actor, "device.register", "device", name, {"kind": kind, "site": site})
    return token


def revoke_device(db, name, actor=audit.CLI):
    """Revoke a device: its token fails with 401 from the next request on."""
    with transaction(db):
        row = db.execute("SELECT id, revoked_at FROM devices WHERE name = ?", [name]).fetchone()
        if row is None:
            raise DeviceError(f"no device named {name!r}")
        if row["revoked_at"]:
            raise DeviceError(f"device {name!r} was already revoked at {row['revoked_at']}")
        db.execute("UPDATE devices SET revoked_at = ? WHERE id = ?", [now_iso(), row["id"]])
        audit.record(db, actor, "device.revoke", "device", name)


def device_rows(db):
    return db.execute("SELECT * FROM devices ORDER BY revoked_at IS NOT NULL, name").fetchall()


def _bearer_token():
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "missing bearer token (Authorization: Bearer TOKEN)")
    return token.strip()


def device_required(view):
    """The request must carry a live device's token; the device is g.device."""
    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        db = get_db()
        row = db.execute("SELECT * FROM devices WHERE token_hash = ?",
                         [hash_token(_bearer_token())]).fetchone()
        if row is None:
            raise ApiError(401, "unknown device token")
        if row["revoked_at"]:
            raise ApiError(401, "device token revoked")
        _seen(db, row)
        g.device = row
        return view(*args, **kwargs)
    return wrapped


def _seen(db, device):
    """Note when the device was last heard from, at most once a SEEN_EVERY_S: a poll that
    reads (a gallery delta, the config) then writes nothing, where every request of every
    kiosk wrote a row before. The admin's "last seen" is a minute coarse. Only a stamp: when
    it cannot be written (a full disk, a locked file) the request goes on without it."""
    now = datetime.now(timezone.utc)
    last = device["last_seen_at"]
    if last and (now - parse_stamp(last)).total_seconds() < SEEN_EVERY_S:
        return
    try:
        # the condition keeps two requests of one device from both writing in one minute
        db.execute("UPDATE devices SET last_seen_at = ? WHERE id = ? AND (last_seen_at IS NULL"
                   " OR last_seen_at = ?)", [now_iso(), device["id"], last])
    except db.OperationalError:
        log.warning("could not note that device %s was seen", device["name"], exc_info=True)


def device_actor():
    """The device making this request, as an audit actor."""
    return audit.Actor("device", g.device["id"], g.device["name"], client_ip())


def audit_device(action, target_type="", target_id="", detail=""):
    audit.record(get_db(), device_actor(), action, target_type, target_id, detail)
