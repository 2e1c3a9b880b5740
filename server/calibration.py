"""The registry measures its own false-match curve and sets each device's threshold from it.

`measure_registry(db)` reads the enrolled templates (citizens matched by a flagged
possible duplicate left out), the distances devices reported to the nearest *other*
citizens, and the distances of greetings a clerk confirmed; recognition.calibration does
the maths; the report (curve, histograms, thresholds per gallery size and per device) is
stored in `calibrations`. It runs after every import, on the purge schedule and from
`flask --app app calibrate`. Until a registry is big enough to measure, the prior of its
face model (the most cautious of the bounds measured on East-Asian and on mixed faces)
decides, and the report says so; after, it still bounds the tail the registry's own pairs
are too few for. Everything here is on the registry's active face model: its templates, the
session distances devices reported on it, its reports (calibrations.face_model); a report
or a distance of another model is never read.

Plain functions for other modules:
  threshold_for_size(db, n)  the threshold for a gallery of n citizens (latest curve)
  device_threshold(db, site) (threshold, gallery size) for a device of that site
  one_to_one_threshold(db)   the distance for the ID-number check (one comparison)
  latest_curve(db)           the latest recognition.calibration.Curve (the prior if none)
"""
import hashlib
import json

from db import now_iso, transaction
from recognition import calibration as maths

from . import faces, settings
from .gallery import device_scope, in_scope
from .i18n import N_

GALLERY_SIZES = (10, 50, 100, 500, 1_000, 5_000, 10_000, 100_000)
MAX_SESSIONS = 20_000     # most recent sessions read for device-reported distances


# --- what is measured ---------------------------------------------------------------------

def flagged_citizens(db):
    """Ids of citizens a held record's face matched, while an admin has not decided: their
    pairs may be the same person under two ID numbers, not two different people. Once
    decided (another person, the same one, discarded) the doubt is gone; left out for good,
    a registry with many held records lost so many people that it fell back to the prior."""
    rows = db.execute("SELECT DISTINCT match_citizen_id FROM duplicate_reviews WHERE status = 'pending'")
    return {r[0] for r in rows}


def _candidates(text):
    try:
        values = json.loads(text or "[]")
    except ValueError:
        return []
    return [c for c in values if isinstance(c, dict) and isinstance(c.get("key"), str)
            and isinstance(c.get("distance"), (int, float)) and not isinstance(c.get("distance"), bool)]


def operational(db, gallery_sizes, model):
    """Device-reported non-mated distances of sessions a clerk reviewed (a greeting
    confirmed, or any session closed): of a greeting, the candidates other than the greeted
    citizen; of an unknown visitor, those after the first (the nearest may be the visitor
    themself). Each session made (its device's gallery size - 1) comparisons; a list of 5 is
    cut there (censored).
    A device's word alone does not count: a stolen token posting 300 made-up sessions of
    far-away candidates moved the 1:1 distance from 0.31 to 0.445 before this (and the
    maths lets such reports only tighten the curve, never loosen it: recognition/calibration)."""
    rows = db.execute(
        "SELECT s.outcome, s.candidates, c.key, d.site FROM sessions s"
        " JOIN devices d ON d.id = s.device_id LEFT JOIN citizens c ON c.id = s.citizen_id"
        " WHERE s.review_status IN ('confirmed', 'closed') AND s.face_model = ?"
        " ORDER BY s.received_at DESC LIMIT ?", [model.id, MAX_SESSIONS]).fetchall()
    sessions = []
    for outcome, text, key, site in rows:
        candidates = _candidates(text)
        if outcome == "greeted":
            others = [c["distance"] for c in candidates if c["key"] != key]
        else:
            others = [c["distance"] for c in candidates[1:]]
        comparisons = gallery_sizes.get(site, 0) - 1
        distances = tuple(float(d) for d in maths.finite(others) if model.plausible(float(d)))
        if comparisons > 0 and distances:
            sessions.append((distances, comparisons, len(candidates) >= 5))
    return maths.Operational(tuple(sessions))


def genuine_distances(db, model):
    """Distances of greetings a clerk confirmed (the right citizen was named), on the model."""
    rows = db.execute("SELECT distance FROM sessions WHERE outcome = 'greeted'"
                      " AND review_status = 'confirmed' AND distance IS NOT NULL"
                      " AND face_model = ?", [model.id]).fetchall()
    return maths.finite([r[0] for r in rows if model.plausible(r[0])])


# --- gallery sizes ------------------------------------------------------------------------

def gallery_size(db, site=None):
    """Citizens a device of `site` holds (site None: the whole registry): enrolled with
    consent and a template; with the gallery.by_site setting on, those of its site and
    those without a district."""
    rows = db.execute(
        "SELECT c.district, count(DISTINCT c.id) FROM citizens c"
        " JOIN face_templates t ON t.citizen_id = c.id"
        " WHERE c.removed_at IS NULL AND c.consent = 1 GROUP BY c.district").fetchall()
    scope = None if site is None else device_scope(db, site)
    return sum(n for district, n in rows if in_scope(district, scope))


def _device_sites(db):
    return [dict(r) for r in db.execute(
        "SELECT name, site FROM devices WHERE revoked_at IS NULL ORDER BY name").fetchall()]


# --- the measurement ----------------------------------------------------------------------

def _limits(db):
    return (float(settings.value(db, "calibration.target_fpir")),
            float(settings.value(db, "policy.threshold")))


def measure_registry(db, index=None):
    """Measure the curve now, store the report, and return it (a JSON-ready dict). index: the
    import's face index, kept current with the database (its templates are not read again).
    The report names the sync counter it describes: a decision that needs the curve of the
    registry as committed measures again when it is another (current_report)."""
    model = faces.active(db)
    if index is not None and index.model.id == model.id:
        owners, matrix, rows = index.live_rows()
    else:
        (owners, matrix), rows = faces.live_templates(db, model), None
    flagged = flagged_citizens(db)
    distances = maths.enrolled_non_mated(model, owners, matrix, exclude=flagged, rows=rows)
    people = len(set(owners) - flagged)
    devices = _device_sites(db)
    sizes = {d["site"]: gallery_size(db, d["site"]) for d in devices}
    ops = operational(db, sizes, model)
    curve = maths.measure(model, distances, people, ops)
    genuine = genuine_distances(db, model)
    report = _report(db, model, curve, distances, ops, genuine, devices, sizes, flagged)
    with transaction(db):
        db.insert("INSERT INTO calibrations (measured_at, source, people, pairs, operational,"
                  " genuine, report, face_model) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                  [report["measured_at"], curve.source, curve.people, curve.pairs,
                   curve.operational, int(genuine.size), json.dumps(report), model.id])
    return report


def _report(db, model, curve, distances, ops, genuine, devices, sizes, flagged):
    target, loosest = _limits(db)
    floor = model.bounds.threshold_floor
    notes = list(curve.notes)
    if flagged:
        notes.append(("{n} citizens flagged as possible duplicates are left out.", {"n": len(flagged)}))
    if not genuine.size:
        notes.append((N_("No confirmed greetings yet: the share of citizens greeted is unknown."), {}))
    ops_distances = [d for s in ops.sessions for d in s[0]]

    def row(n):
        t = maths.threshold_for(curve, n, target, loosest, floor)
        return {"gallery_size": n, "threshold": t,
                "expected_fpir": round(maths.expected_fpir(curve, n, t), 6),
                "share_greeted": maths.share_within(genuine, t)}

    return {
        "measured_at": now_iso(), **curve.as_dict(), "face_model": model.describe(),
        "sync_seq": _sync_seq(db), "flagged_digest": _digest(flagged),
        "one_to_one": _one_to_one(db, model, curve, genuine),
        "notes": [text.format(**args) for text, args in notes],
        "note_parts": [[text, args] for text, args in notes],
        "target_fpir": target, "max_threshold": loosest, "flagged_left_out": len(flagged),
        "genuine": int(genuine.size), "bins": list(model.histogram_bins),
        "histogram": {"non_mated": maths.histogram(distances, model.histogram_bins),
                      "operational": maths.histogram(ops_distances, model.histogram_bins),
                      "genuine": maths.histogram(genuine, model.histogram_bins)},
        # what a small registry falls back to, and the populations it was measured on
        "prior_bound": list(maths.prior_curve(model).fmr_upper),
        "priors": {name: list(table) for name, table in model.priors().items()},
        "registry": row(gallery_size(db)),
        "by_size": [row(n) for n in GALLERY_SIZES],
        "devices": [{"name": d["name"], "site": d["site"], **row(sizes[d["site"]])} for d in devices],
    }


def _one_to_one(db, model, curve, genuine):
    target, ceiling = _one_to_one_limits(db)
    t = maths.one_to_one_threshold(curve, target, ceiling, model.bounds.threshold_floor)
    return {"threshold": t, "target_fmr": target, "max_threshold": ceiling,
            "fmr_upper": maths.fmr_at(curve, t)[1], "share_accepted": maths.share_within(genuine, t)}


def _one_to_one_limits(db):
    return (float(settings.value(db, "calibration.target_fmr_1to1")),
            float(settings.value(db, "calibration.max_threshold_1to1")))


# --- what others read ---------------------------------------------------------------------

def _sync_seq(db):
    return db.execute("SELECT seq FROM sync_counter WHERE id = 1").fetchone()[0]


def _digest(citizen_ids):
    """A short fingerprint of a set of citizen ids (the flagged ones a report left out)."""
    text = ",".join(str(i) for i in sorted(citizen_ids))
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:16]


def current_report(db, index=None):
    """The report of the registry as it is committed now (inside the caller's transaction):
    the latest one if it describes this sync counter and these flagged citizens, else
    measured now and stored with the caller's writes. So an import's duplicate decisions rest
    on the registry's committed faces, never on whether an earlier calibration happened to
    finish before a crash. The flagged set is part of the key: holding a record bumps no
    sync counter, yet leaves its matched citizen out of the next measurement."""
    report = latest_report(db)
    if report is not None and report.get("sync_seq") == _sync_seq(db) \
            and report.get("flagged_digest") == _digest(flagged_citizens(db)):
        return report
    return measure_registry(db, index)


def latest_report(db, model=None):
    """The last stored report on the registry's face model, or None."""
    model = model or faces.active(db)
    row = db.execute("SELECT report FROM calibrations WHERE face_model = ? ORDER BY id DESC LIMIT 1",
                     [model.id]).fetchone()
    return json.loads(row[0]) if row else None


def latest_curve(db, model=None):
    """The curve of the last measurement, or the model's prior when there is none."""
    model = model or faces.active(db)
    return curve_of(latest_report(db, model), model)


def curve_of(report, model):
    """The recognition.calibration.Curve a stored report describes (None: the model's prior)."""
    if not report or report.get("source") != "measured":
        return maths.prior_curve(model, [tuple(n) for n in report["note_parts"]] if report
                                 else [(N_("Not measured yet."), {})])
    points = report["curve"]
    return maths.Curve("measured", model.id, tuple(p["t"] for p in points),
                       tuple(p["matches"] for p in points), tuple(p["comparisons"] for p in points),
                       tuple(p["fmr"] for p in points), tuple(p["fmr_upper"] for p in points),
                       people=report["people"], pairs=report["pairs"],
                       operational=report["operational_comparisons"], slope=report["tail_slope"],
                       notes=tuple(tuple(n) for n in report["note_parts"]))


def threshold_for_size(db, n, curve=None):
    """The threshold for a gallery of n citizens: on `curve` (default: the latest one), the
    target FPIR setting, never looser than the admin's maximum (policy.threshold) nor under
    the model's floor."""
    target, loosest = _limits(db)
    model = faces.active(db)
    return maths.threshold_for(curve or latest_curve(db, model), n, target, loosest,
                               model.bounds.threshold_floor)


def device_threshold(db, site=None):
    """(threshold, gallery size) for a device of `site` (None: one holding every citizen)."""
    n = gallery_size(db, site)
    return threshold_for_size(db, n), n


def one_to_one_threshold(db):
    """The largest distance accepted when a visitor typed their ID number: the latest curve
    at the 1:1 target FMR, never looser than the admin's ceiling for it."""
    target, ceiling = _one_to_one_limits(db)
    model = faces.active(db)
    return maths.one_to_one_threshold(latest_curve(db, model), target, ceiling,
                                      model.bounds.threshold_floor)


