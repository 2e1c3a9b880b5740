"""What each device holds to greet: face templates, display name and language, as deltas.

Every change a device must see (new face, new name, removal) gives the citizen a new
sync_seq; a device asks for everything after the last seq it holds. Never ID numbers or
phones: a device in a public hall can be stolen.
"""
import base64

from db import snapshot
from db.queries import next_sync_seq, registry_id

from . import faces, settings

GALLERY_PAGE = 500                      # citizens per delta response; the device asks again for more


def gallery_delta(db, since, limit=GALLERY_PAGE, site=""):
    """Citizens changed after sync seq `since`: upserts (templates to hold) and removals,
    both naming citizens by their key, with the registry's id (the device binds to it) and
    its face model's id (a device holding another model's templates drops them and starts
    over: every template is only comparable with its own model's).

    A citizen removed, without consent, or with no template is a removal: the device must
    forget them. With the gallery.by_site setting on, so is a citizen of another site than
    the device's (district set and different). "full" tells the device to drop its whole
    cache first (since=0). About `limit` citizens come per call; "more" says to ask again
    from the returned "seq".
    """
    with snapshot(db):  # the counter and the rows it covers agree
        current = _current_seq(db)
        if since > current:  # the server's database was replaced: start the device over
            since = 0
        scope = device_scope(db, site)
        held_only, args = _full_sync_filter(since, scope)
        upto = _page_end(db, since, current, limit, held_only, args)
        rows = db.execute(
            "SELECT id, key, name, language, consent, removed_at, district FROM citizens"
            " WHERE sync_seq > ? AND sync_seq <= ?" + held_only + " ORDER BY sync_seq, id",
            [since, upto, *args]).fetchall()
        model = faces.active(db)
        templates = _page_templates(db, since, upto, model)
        upserts, removals = _split_changes(rows, templates, scope, model)
        registry = registry_id(db)
    return {"registry_id": registry, "model": model.id, "seq": upto, "upserts": upserts,
            "removals": removals, "full": since == 0, "more": upto < current}


def _full_sync_filter(since, scope):
    """(SQL, args) that keep a full sync (since 0) to the citizens the device holds. A device
    starting over drops its whole cache, so a removal tells it nothing: without this a new
    kiosk of one hall walked every citizen of every site, page after page, each page a pull
    its pace counts (a million-citizen registry: 2,000 pulls against a pace of 120 per 10
    minutes). A delta (since > 0) still names every change, removals included."""
    if since:
        return "", []
    held = " AND consent = 1 AND removed_at IS NULL"
    if scope is None:
        return held, []
    return held + " AND (district = '' OR district = ?)", [scope]


def _page_end(db, since, current, limit, held_only="", args=()):
    """The seq that ends a page of about `limit` citizens. A page ends on a whole seq,
    never inside one: an import may give many citizens the same seq."""
    row = db.execute(
        "SELECT sync_seq FROM citizens WHERE sync_seq > ? AND sync_seq <= ?" + held_only +
        " ORDER BY sync_seq LIMIT 1 OFFSET ?", [since, current, *args, limit - 1]).fetchone()
    return row[0] if row else current


def _split_changes(rows, templates, site, model):
    upserts, removals = [], []
    for row in rows:
        wanted = row["consent"] and not row["removed_at"] and in_scope(row["district"], site)
        held = templates.get(row["id"], []) if wanted else []
        if held:
            upserts.append({"key": row["key"], "display_name": row["name"],
                            "language": row["language"],
                            "templates": [_text(model, blob) for blob in held]})
        else:
            removals.append(row["key"])
    return upserts, removals


def in_scope(district, site):
    """Whether a device of `site` holds a citizen of `district` (site None: every device holds all)."""
    return site is None or not district or district == site


def device_scope(db, site):
    """The site a device's gallery is limited to (in_scope's second argument): None while
    every device holds every citizen; with per-site galleries on, its site, where a device
    registered without one holds only the citizens without a district, never the registry."""
    return (site or "") if settings.value(db, "gallery.by_site") else None


def resend_gallery(db):
    """Mark every citizen changed (call inside a transaction): after a change of scope each
    device gets every citizen again, as an upsert or a removal."""
    db.execute("UPDATE citizens SET sync_seq = ?", [next_sync_seq(db)])


def _page_templates(db, since, upto, model):
    """{citizen id: [template blobs, oldest first]} of the page's citizens, in one query
    whatever their number (one query per citizen made a full sync of 145 citizens 146
    statements: 113 ms on PostgreSQL)."""
    rows = db.execute(
        "SELECT t.citizen_id, t.encoding FROM face_templates t JOIN citizens c ON c.id = t.citizen_id"
        " WHERE c.sync_seq > ? AND c.sync_seq <= ? AND t.face_model = ? ORDER BY t.id",
        [since, upto, model.id]).fetchall()
    held = {}
    for citizen_id, blob in rows:
        held.setdefault(citizen_id, []).append(blob)
    return held


def _text(model, blob):
    """A stored template as the device receives it: base64 of the model's float32 blob,
    decoded and encoded again so a stored blob of the wrong size fails here, not on a kiosk."""
    return base64.b64encode(model.to_blob(model.from_blob(blob))).decode("ascii")


def _current_seq(db):
    return db.execute("SELECT seq FROM sync_counter WHERE id = 1").fetchone()[0]
