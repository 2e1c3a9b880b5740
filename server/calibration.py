"""The registry measures its own false-match curve and sets each device's threshold from it.

`measure_registry(db)` reads the enrolled templates (citizens matched by a flagged
possible duplicate left out), the distances devices reported to the nearest *other*
citizens, and the distances of greetings a clerk confirmed; recognition.calibration does
the maths; the report (curve, histograms, thresholds per gallery size and per device) is
stored in `calibrations`. It runs after every import, on the purge schedule and from
`flask --app app calibrate`. Until a registry is big enough to measure, the prior (the
more cautious of the LFW fit and the bound measured on East-Asian faces) decides, and the
report says so; after, it still bounds the tail the registry's own pairs are too few for.

Plain functions for other modules:
  threshold_for_size(db, n)  the threshold for a gallery of n citizens (latest curve)
  device_threshold(db, site) (threshold, gallery size) for a device of that site
  measured_fmr(db, t)        (FMR, 95 % upper bound) of different people within distance t
  one_to_one_threshold(db)   the distance for the ID-number check (one comparison)
  latest_curve(db)           the latest recognition.calibration.Curve (the prior if none)
"""
import json

import numpy as np

from db import now_iso, transaction
from recognition import calibration as maths
from recognition.templates import from_blob

from . import settings
from .gallery import device_scope, in_scope

GALLERY_SIZES = (10, 50, 100, 500, 1_000, 5_000, 10_000, 100_000)
MAX_SESSIONS = 20_000     # most recent sessions read for device-reported distances


# --- what is measured ---------------------------------------------------------------------

def _templates(db):
    """(owner ids, n x 128 matrix) of enrolled citizens with consent."""
    rows = db.execute(
        "SELECT t.citizen_id, t.encoding FROM face_templates t JOIN citizens c ON c.id = t.citizen_id"
        " WHERE c.removed_at IS NULL AND c.consent = 1 ORDER BY t.id").fetchall()
    owners = [r[0] for r in rows]
    matrix = np.stack([from_blob(r[1]) for r in rows]) if rows else np.empty((0, 128), np.float32)
    return owners, matrix


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


def operational(db, gallery_sizes):
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
        " WHERE s.review_status IN ('confirmed', 'closed') ORDER BY s.received_at DESC LIMIT ?",
        [MAX_SESSIONS]).fetchall()
    sessions = []
    for outcome, text, key, site in rows:
        candidates = _candidates(text)
        if outcome == "greeted":
            others = [c["distance"] for c in candidates if c["key"] != key]
        else:
            others = [c["distance"] for c in candidates[1:]]
        comparisons = gallery_sizes.get(site, 0) - 1
        distances = tuple(float(d) for d in maths.finite(others))
        if comparisons > 0 and distances:
            sessions.append((distances, comparisons, len(candidates) >= 5))
    return maths.Operational(tuple(sessions))


def genuine_distances(db):
    """Distances of greetings a clerk confirmed (the right citizen was named)."""
    rows = db.execute("SELECT distance FROM sessions WHERE outcome = 'greeted'"
                      " AND review_status = 'confirmed' AND distance IS NOT NULL").fetchall()
    return maths.finite([r[0] for r in rows])


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


def measure_registry(db):
    """Measure the curve now, store the report, and return it (a JSON-ready dict)."""
    owners, matrix = _templates(db)
    flagged = flagged_citizens(db)
    distances = maths.enrolled_non_mated(owners, matrix, exclude=flagged)
    people = len(set(owners) - flagged)
    devices = _device_sites(db)
    sizes = {d["site"]: gallery_size(db, d["site"]) for d in devices}
    ops = operational(db, sizes)
    curve = maths.measure(distances, people, ops)
    genuine = genuine_distances(db)
    report = _report(db, curve, distances, ops, genuine, devices, sizes, len(flagged))
    with transaction(db):
        db.insert("INSERT INTO calibrations (measured_at, source, people, pairs, operational,"
                  " genuine, report) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                  [report["measured_at"], curve.source, curve.people, curve.pairs,
                   curve.operational, int(genuine.size), json.dumps(report)])
    return report


def _report(db, curve, distances, ops, genuine, devices, sizes, flagged):
    target, loosest = _limits(db)
    notes = list(curve.notes)
    if flagged:
        notes.append(("{n} citizens flagged as possible duplicates are left out.", {"n": flagged}))
    if not genuine.size:
        notes.append(("No confirmed greetings yet: the share of citizens greeted is unknown.", {}))
    ops_distances = [d for s in ops.sessions for d in s[0]]

    def row(n):
        t = maths.threshold_for(curve, n, target, loosest)
        return {"gallery_size": n, "threshold": t,
                "expected_fpir": round(maths.expected_fpir(curve, n, t), 6),
                "share_greeted": maths.share_within(genuine, t)}

    return {
        "measured_at": now_iso(), **curve.as_dict(),
        "one_to_one": _one_to_one(db, curve, genuine),
        "notes": [text.format(**args) for text, args in notes],
        "note_parts": [[text, args] for text, args in notes],
        "target_fpir": target, "max_threshold": loosest, "flagged_left_out": flagged,
        "genuine": int(genuine.size), "bins": list(maths.HISTOGRAM_BINS),
        "histogram": {"non_mated": maths.histogram(distances),
                      "operational": maths.histogram(ops_distances),
                      "genuine": maths.histogram(genuine)},
        "prior": [min(1.0, maths.false_match_rate(t)) for t in curve.grid],    # the LFW fit
        "prior_bound": list(maths.prior_curve().fmr_upper),   # what a small registry falls back to
        "registry": row(gallery_size(db)),
        "by_size": [row(n) for n in GALLERY_SIZES],
        "devices": [{"name": d["name"], "site": d["site"], **row(sizes[d["site"]])} for d in devices],
    }


def _one_to_one(db, curve, genuine):
    target, ceiling = _one_to_one_limits(db)
    t = maths.one_to_one_threshold(curve, target, ceiling)
    return {"threshold": t, "target_fmr": target, "max_threshold": ceiling,
            "fmr_upper": maths.fmr_at(curve, t)[1], "share_accepted": maths.share_within(genuine, t)}


def _one_to_one_limits(db):
    return (float(settings.value(db, "calibration.target_fmr_1to1")),
            float(settings.value(db, "calibration.max_threshold_1to1")))


# --- what others read ---------------------------------------------------------------------

def latest_report(db):
    """The last stored report, or None."""
    row = db.execute("SELECT report FROM calibrations ORDER BY id DESC LIMIT 1").fetchone()
    return json.loads(row[0]) if row else None


def latest_curve(db):
    """The curve of the last measurement, or the prior when there is none."""
    report = latest_report(db)
    if not report or report.get("source") != "measured":
        return maths.prior_curve([tuple(n) for n in report["note_parts"]] if report
                                 else [("Not measured yet.", {})])
    points = report["curve"]
    return maths.Curve("measured", tuple(p["t"] for p in points),
                       tuple(p["matches"] for p in points), tuple(p["comparisons"] for p in points),
                       tuple(p["fmr"] for p in points), tuple(p["fmr_upper"] for p in points),
                       people=report["people"], pairs=report["pairs"],
                       operational=report["operational_comparisons"], slope=report["tail_slope"],
                       notes=tuple(tuple(n) for n in report["note_parts"]))


def threshold_for_size(db, n):
    """The threshold for a gallery of n citizens: the latest curve, the target FPIR setting,
    never looser than the admin's maximum (policy.threshold)."""
    target, loosest = _limits(db)
    return maths.threshold_for(latest_curve(db), n, target, loosest)


def device_threshold(db, site=None):
    """(threshold, gallery size) for a device of `site` (None: one holding every citizen)."""
    n = gallery_size(db, site)
    return threshold_for_size(db, n), n


def one_to_one_threshold(db):
    """The largest distance accepted when a visitor typed their ID number: the latest curve
    at the 1:1 target FMR, never looser than the admin's ceiling for it."""
    target, ceiling = _one_to_one_limits(db)
    return maths.one_to_one_threshold(latest_curve(db), target, ceiling)


def measured_fmr(db, t):
    """(FMR, 95 % upper bound) that two different people's faces come within distance t,
    on the registry's latest curve (the prior before it can be measured)."""
    return maths.fmr_at(latest_curve(db), t)
