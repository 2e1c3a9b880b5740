"""Who did what: one audit entry per view or change of personal data, with the real actor.

An Actor is a signed-in user, a device (by its token) or the system (a command line, a
schedule). Views take theirs from the request (user_actor, device_actor in server/devices.py);
plain functions get one passed in, so the same function called from a page and from the
command line records who really did it.
"""
from dataclasses import dataclass

from db.queries import audit


@dataclass(frozen=True)
class Actor:
    type: str = "system"      # "user", "device" or "system"
    id: int = None
    name: str = "cli"
    ip: str = ""


CLI = Actor("system", None, "cli")


def record(db, actor, action, target_type="", target_id="", detail=""):
    """Append one audit entry (call inside the transaction of the change it records)."""
    audit(db, actor.type, actor.id, actor.name, action, target_type, target_id, detail, actor.ip)
