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

# What the keys of an entry's detail (a JSON object) mean, for the audit page; a key not listed
# is shown as written. Values that are [old, new] (CHANGES) read "old → new".
DETAIL_KEYS = {
    "role": "Role", "disabled": "Disabled", "kind": "Kind", "site": "Site", "source": "Source",
    "people": "People", "case_number": "Case number", "status": "Status", "counter": "Counter",
    "note": "Note", "template_added": "Template added", "templates_withdrawn": "Templates withdrawn",
    "citizen_id": "Citizen", "id_document_checked": "ID document checked",
    "ticket_number": "Ticket number", "q": "Search", "after": "After citizen", "shown": "Shown",
    "page": "Page", "template": "Face template", "id_number": "ID number",
    "match_citizen_id": "Matched citizen", "distance": "Distance", "photos": "Photos",
    "consent": "Consent", "photo_sha256": "Photo fingerprint (SHA-256)",
    "templates_deleted": "Face templates deleted", "photos_deleted": "Photos deleted",
    "changed": "Changed", "records": "Records file", "cases": "Cases file",
    "cases_counts": "Case rows", "imported": "Imported", "updated": "Updated",
    "unchanged": "Unchanged", "rejected": "Rejected", "flagged": "Flagged",
    "matches": "Matches ID number", "review": "Duplicate review", "wrong_today": "Wrong tries today",
    "session_id": "Session", "purged": "Purged", "failed": "Failed",
    "received_before": "Received before", "from": "From", "to": "To", "dropped": "Dropped",
    "held_kept": "Held records kept", "failures": "Failed sign-ins", "pulls": "Pulls",
    "citizens": "Citizens", "full": "Full galleries", "since": "From sync number",
    "case_files_opened": "Case files opened", "refused": "Refused", "minutes": "Minutes",
    "sessions": "Sessions", "limit": "Limit",
}
# Detail keys whose value is a code (a status, a role): read through i18n.label, or these words.
CODED_KEYS = ("role", "status", "kind", "source", "page")
CODE_WORDS = {"manage": "Manage citizen", "measured": "Measured on this registry",
              "prior": "The face model's prior"}
CHANGES = ("settings.update", "user.update", "case.update")
# The system's own actors (CLI above, the purge schedule, a re-encode) as people read them.
SYSTEM_ACTORS = {"cli": "Command line", "purge": "Scheduled purge",
                 "reencode": "Face model change"}


def record(db, actor, action, target_type="", target_id="", detail=""):
    """Append one audit entry (call inside the transaction of the change it records)."""
    audit(db, actor.type, actor.id, actor.name, action, target_type, target_id, detail, actor.ip)
