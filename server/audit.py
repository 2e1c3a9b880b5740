"""Who did what: one audit entry per view or change of personal data, with the real actor.

An Actor is a signed-in user, a device (by its token) or the system (a command line, a
schedule). Views take theirs from the request (user_actor, device_actor in server/devices.py);
plain functions get one passed in, so the same function called from a page and from the
command line records who really did it.
"""
from dataclasses import dataclass

from db.queries import audit

from .i18n import N_


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
    "role": N_("Role"), "disabled": N_("Disabled"), "kind": N_("Kind"), "site": N_("Site"), "source": N_("Source"),
    "people": N_("People"), "case_number": N_("Case number"), "status": N_("Status"), "counter": N_("Counter"),
    "note": N_("Note"), "template_added": N_("Template added"), "templates_withdrawn": N_("Templates withdrawn"),
    "citizen_id": N_("Citizen"), "id_document_checked": N_("ID document checked"),
    "ticket_number": N_("Ticket number"), "q": N_("Search"), "after": N_("After citizen"), "shown": N_("Shown"),
    "page": N_("Page"), "template": N_("Face template"), "id_number": N_("ID number"),
    "match_citizen_id": N_("Matched citizen"), "distance": N_("Distance"), "photos": N_("Photos"),
    "consent": N_("Consent"), "photo_sha256": N_("Photo fingerprint (SHA-256)"),
    "templates_deleted": N_("Face templates deleted"), "photos_deleted": N_("Photos deleted"),
    "changed": N_("Changed"), "records": N_("Records file"), "cases": N_("Cases file"),
    "cases_counts": N_("Case rows"), "imported": N_("Imported"), "updated": N_("Updated"),
    "unchanged": N_("Unchanged"), "rejected": N_("Rejected"), "flagged": N_("Flagged"),
    "matches": N_("Matches ID number"), "review": N_("Duplicate review"), "wrong_today": N_("Wrong tries today"),
    "session_id": N_("Session"), "purged": N_("Purged"), "failed": N_("Failed"),
    "received_before": N_("Received before"), "from": N_("From"), "to": N_("To"), "dropped": N_("Dropped"),
    "held_kept": N_("Held records kept"), "failures": N_("Failed sign-ins"), "pulls": N_("Pulls"),
    "citizens": N_("Citizens"), "full": N_("Full galleries"), "since": N_("From sync number"),
    "case_files_opened": N_("Case files opened"), "refused": N_("Refused"), "minutes": N_("Minutes"),
    "sessions": N_("Sessions"), "limit": N_("Limit"),
}
# Detail keys whose value is a code (a status, a role): read through i18n.label, or these words.
CODED_KEYS = ("role", "status", "kind", "source", "page")
CODE_WORDS = {"manage": N_("Manage citizen"), "measured": N_("Measured on this registry"),
              "prior": N_("The face model's prior")}
CHANGES = ("settings.update", "user.update", "case.update")
# The system's own actors (CLI above, the purge schedule, a re-encode) as people read them.
SYSTEM_ACTORS = {"cli": N_("Command line"), "purge": N_("Scheduled purge"),
                 "reencode": N_("Face model change")}


def record(db, actor, action, target_type="", target_id="", detail=""):
    """Append one audit entry (call inside the transaction of the change it records)."""
    audit(db, actor.type, actor.id, actor.name, action, target_type, target_id, detail, actor.ip)
