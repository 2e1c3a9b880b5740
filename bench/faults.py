"""Faults on loopback: a crash, a second server process or a full disk must leave the registry
exactly as a clean run would (issue 24's targets), measured on real processes.

    python -m bench.faults [--part imports|processes|disk|kiosk|all] [--kills 20] [--seed 1]
                           [--runs 5] [--photos DIR] [--deadline-s 1200]

Every registry lives in a temporary instance folder (CIVIC_INSTANCE_PATH), every server is a
waitress process on 127.0.0.1 with a free port, every request goes to 127.0.0.1. Every wait has
a timeout and the whole run a deadline; every child process is killed and every temporary
folder (and mount, and PostgreSQL cluster) removed at the end, also on Ctrl-C.

  imports    --kills SIGKILLs (half of the CLI import `flask --app app import-records`, half of
             a web import: a server process, an admin signed in, the files uploaded through
             POST /imports/ with the CSRF token) at a seeded random moment of the run, each
             followed by the same import run to completion. Each final state is compared with
             a clean run of the same files into a fresh instance: citizens (id_number, name,
             photo_sha256), template counts, duplicate reviews (id_number, status, matched
             citizen's id_number, threshold to 6 places), cases, and the report's rows (line,
             outcome; a row the killed run had committed is "unchanged" in the run again).
             Then orphans: photos no citizens/face_templates/duplicate_reviews row names, and
             any *.tmp under the instance folder. Target: equal every time, 0 orphans.
  processes  two server processes on one throwaway PostgreSQL cluster (tests/pgcluster.py),
             one instance folder: a web import on A, A SIGKILLed mid-import, and the seconds
             until B reports the job failed (interrupted) and uploads/job-N is gone, --runs
             times with A on this host (B sees its pid is gone) and --runs times with A in a
             UTS namespace of its own (another host name: only the lease tells). Target:
             within the stale limit (server/imports.py STALE_S).
  disk       an instance folder on a 20 MB tmpfs (root; skipped, with the reason, if the
             mount fails) filled to 0, 100 KB and 1 MB free: a device's config and gallery, a
             clerk's sign-in, a session upload with its snapshot and a web import upload
             against a server process there, with the default disk reserve and with a 1 MB
             one. Target: 0 answers of 500, config and sign-in answer, 0 partial files (upload
             folders, *.tmp, jobs left queued) after the refusals.
  kiosk      the server SIGKILLed at 10 points of a real kiosk visit (the agent over the
             blinking clip, its case-file flow, her digits at the keypad, the ticket): before and
             after the session upload, the blink, the case file, the second factor and the
             ticket; restarted; every report must reach the registry exactly once.

Photos: --photos names a folder of <person>/<N>.jpg folders (default: the repository's own
tests/data/faces/people, so a fresh clone runs it; ../shared/faces/people holds the same).
The group and edge photos beside it, when there, add rows the quality gate rejects.

Prints one JSON object; progress lines go to stderr. Only the test photos' names are printed.
"""
import argparse
import contextlib
import csv
import errno
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from datetime import datetime, timezone

from bench.faults_rig import (ROOT, Browser, Instance, OutOfTime, Rig, Server,
                              device_headers, multipart, progress, report_rows, sigkill_leader)

PARTS = ("imports", "processes", "disk", "kiosk")
PEOPLE = os.path.join(ROOT, "tests", "data", "faces", "people")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".avif")
RECORD_HEADER = ["id_number", "name", "phone", "photo", "language", "district", "consent"]
CASE_HEADER = ["case_number", "id_number", "type", "status", "summary", "counter"]
BATCHES = 4                  # the records file fills this many of the importer's batches
IMPORT_LIMIT_S = 300         # one import run, start to end
MB = 1024 * 1024


# --- the files every import part loads --------------------------------------------------------

def image_files(folder):
    if not os.path.isdir(folder):
        return []
    return sorted(os.path.join(folder, n) for n in os.listdir(folder) if n.lower().endswith(IMAGE_SUFFIXES))


def id_number(n):
    """A valid PRC resident ID number, unique for n below 1000."""
    from server.importer import prc_check_digit
    first17 = f"44010619800101{n % 1000:03d}"
    return first17 + prc_check_digit(first17)


class ImportFiles:
    """RECORDS.csv, CASES.csv and the photos (a folder for the CLI, a zip for the web page):

    - each person's first photo: a citizen;
    - each further photo of a person under a new ID number: the duplicate check holds it;
    - the group and edge photos beside the people folder: the quality gate rejects them;
    - citizens without consent (no photo) up to BATCHES batches of the importer's rows, the
      photo rows spread among them so every batch encodes faces;
    - a row with a wrong check digit and an ID number given twice: rejected before any batch.
    The cases: one for each citizen with a photo and for the first fillers, one for an ID
    number that is not in the file."""

    def __init__(self, folder, people_dir):
        from server.importer import BATCH_SIZE
        self.folder, self.numbers = folder, iter(range(100, 1000))
        photo_rows, self.members = self._photo_rows(people_dir)
        fillers = max(10, BATCHES * BATCH_SIZE - len(photo_rows))
        rows = self._spread(photo_rows, [self._row(f"no-photo {i}", "", "no") for i in range(fillers)])
        rows += self._bad_rows(rows)
        self.citizens = [r for r in rows if r[0] and r[6] == "yes"]
        self.records = self._write("records.csv", RECORD_HEADER, rows)
        self.cases = self._write("cases.csv", CASE_HEADER, self._case_rows(rows))
        self.photos = self._photo_folder()
        self.zip = self._photo_zip()
        self.summary = {"records": len(rows), "photo_rows": len(photo_rows), "no_photo_rows": fillers,
                        "batch_size": BATCH_SIZE, "distinct_photos": len(self.members),
                        "zip_bytes": os.path.getsize(self.zip)}

    def _row(self, name, photo, consent="yes"):
        n = next(self.numbers)
        return [id_number(n), name, f"138 0013 {n:04d}", photo, "en", "", consent]

    def _photo_rows(self, people_dir):
        rows, members = [], {}
        people = sorted(p for p in os.listdir(people_dir) if image_files(os.path.join(people_dir, p)))
        for person in people:
            for index, path in enumerate(image_files(os.path.join(people_dir, person)), start=1):
                name = f"{person}-{index}{os.path.splitext(path)[1].lower()}"
                members[name] = path
                rows.append(self._row(f"{person} {index}", name))
        for kind in ("group", "edge"):     # beside the people folder: rejected by the gate
            for path in image_files(os.path.join(os.path.dirname(people_dir), kind)):
                name = f"{kind}-{os.path.basename(path)}"
                members[name] = path
                rows.append(self._row(f"{kind} {os.path.splitext(os.path.basename(path))[0]}", name))
        return rows, members

    @staticmethod
    def _spread(spread, among):
        """`spread` rows evenly among the `among` rows (order within each kept)."""
        out, step = [], (len(spread) + len(among)) / max(1, len(spread))
        pending = list(spread)
        for row in among:
            while pending and len(out) >= step * (len(spread) - len(pending)):
                out.append(pending.pop(0))
            out.append(row)
        return out + pending

    def _bad_rows(self, rows):
        wrong = self._row("wrong check digit", "", "no")
        wrong[0] = wrong[0][:-1] + ("0" if wrong[0][-1] != "0" else "1")
        again = list(rows[-1])
        again[1] = "given twice"
        return [wrong, again]

    def _case_rows(self, rows):
        statuses = ("open", "in_progress", "waiting_documents", "ready", "closed")
        holders = [r for r in rows if r[6] == "yes"][:12] + [r for r in rows if r[6] == "no"][:20]
        cases = [[f"TX-2026-{i:04d}", r[0], "individual income tax", statuses[i % 5],
                  f"case {i}", str(1 + i % 9) if i % 5 == 3 else ""] for i, r in enumerate(holders)]
        cases.append(["TX-2026-9999", id_number(999), "property tax", "open", "nobody's", ""])
        return cases

    def _write(self, name, header, rows):
        path = os.path.join(self.folder, name)
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(rows)
        return path

    def _photo_folder(self):
        folder = os.path.join(self.folder, "photos")
        os.makedirs(folder)
        for name, path in self.members.items():
            shutil.copyfile(path, os.path.join(folder, name))
        return folder

    def _photo_zip(self):
        path = os.path.join(self.folder, "photos.zip")
        with zipfile.ZipFile(path, "w") as zf:
            for name, source in self.members.items():
                zf.write(source, name)
        return path

    def uploads(self):
        """The web form's files: [(field, file name, bytes)]."""
        def read(path):
            with open(path, "rb") as f:
                return f.read()
        return [("records", "records.csv", read(self.records)), ("photos", "photos.zip", read(self.zip)),
                ("cases", "cases.csv", read(self.cases))]


# --- what an import leaves ------------------------------------------------------------------------

def registry_state(instance):
    """Citizens, template counts, duplicate reviews and cases: what the comparison compares."""
    db = instance.open_db()
    try:
        rows = lambda sql: sorted(tuple(r) for r in db.execute(sql))  # noqa: E731
        return {
            "citizens": rows("SELECT id_number, name, photo_sha256 FROM citizens"),
            "templates": rows("SELECT c.id_number, count(t.id) FROM citizens c JOIN face_templates t"
                              " ON t.citizen_id = c.id GROUP BY c.id_number"),
            "reviews": rows("SELECT r.id_number, r.status, m.id_number, round(r.threshold, 6)"
                            " FROM duplicate_reviews r LEFT JOIN citizens m ON m.id = r.match_citizen_id"),
            "cases": rows("SELECT k.case_number, c.id_number, k.status, k.counter FROM cases k"
                          " JOIN citizens c ON c.id = k.citizen_id"),
        }
    finally:
        db.close()


def committed_rows(instance):
    """Citizens plus held reviews in the registry now (after a kill: what the run had written).
    A run killed before its first migration committed left no schema (or no file): 0 rows, and
    the run again creates it (each migration is one transaction: db/migrations.py)."""
    if not instance.database_url and not os.path.exists(instance.database):
        return 0            # opening it here would create the file the run again must make
    db = instance.open_db()
    try:
        if not has_schema(db):
            return 0
        return db.execute("SELECT (SELECT count(*) FROM citizens) + (SELECT count(*) FROM duplicate_reviews)"
                          ).fetchone()[0]
    finally:
        db.close()


def has_schema(db):
    """Whether the first migration (the citizens table among them) is committed."""
    try:
        return db.execute("SELECT 1 FROM _migrations WHERE name = 'm001_initial'").fetchone() is not None
    except Exception as e:      # sqlite3 or psycopg: the _migrations table is not there yet
        if "_migrations" not in str(e):
            raise
        with contextlib.suppress(Exception):   # PostgreSQL: end the failed statement's transaction
            db.rollback()
        return False


class Timeline:
    """What a run has committed, read every 30 ms from start() on from the SQLite file
    (read-only: reading never creates it): the rows (citizens, reviews, cases) with the moments
    they changed, and whether an import job is done."""

    def __init__(self, instance):
        self.path, self.changes, self.t0 = instance.database, [], None
        self.job_done = False
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def start(self):
        self.t0 = time.monotonic()
        self.thread.start()
        return self

    def stop(self):
        self.stopped.set()
        if self.t0 is not None:
            self.thread.join(5)

    def _loop(self):
        last = None
        while not self.stopped.wait(0.03):
            count, self.job_done = self._read() or (last, self.job_done)
            if count is not None and count != last:
                self.changes.append((round(time.monotonic() - self.t0, 2), count))
                last = count

    def _read(self):
        import sqlite3
        if not os.path.exists(self.path):
            return None
        try:
            with contextlib.closing(sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=1)) as conn:
                return conn.execute(
                    "SELECT (SELECT count(*) FROM citizens) + (SELECT count(*) FROM duplicate_reviews)"
                    " + (SELECT count(*) FROM cases), EXISTS (SELECT 1 FROM import_jobs WHERE status = 'done')"
                ).fetchone()
        except sqlite3.Error:       # not migrated yet
            return None

    def first_commit(self):
        """Seconds from start() to the first commit seen, or None."""
        return next((t for t, count in self.changes if count), None)

    def writes(self):
        """(seconds to the first commit, to the last one) after start()."""
        moments = [t for t, count in self.changes if count]
        return (moments[0], moments[-1]) if moments else (None, None)


class KillPlan:
    """When a run is SIGKILLed: `from_start_s` seconds after it starts (drawn before a clean
    run's first commit: the start, the upload, the models loading, the first batch's encoding
    and its transaction), or `into_s` seconds after its own first commit (the later batches and
    the cases). Tied to the run's own first commit, not to a clean run's clock: two busy cores make
    one run's start take twice another's, and a fixed delay missed the writes."""

    def __init__(self, from_start_s=None, into_s=None):
        self.from_start_s, self.into_s = from_start_s, into_s

    @classmethod
    def drawn(cls, rng, clean, before_share=0.2):
        """A seeded random point of a run like the clean one (its first commit, its write span)."""
        first, last = clean["writes_s"]
        if rng.random() < before_share:
            return cls(from_start_s=round(rng.uniform(0.1, first), 2))
        return cls(into_s=round(rng.uniform(0.0, max(0.2, last - first)), 2))

    def describe(self):
        return {"from_start_s": self.from_start_s} if self.from_start_s is not None \
            else {"after_first_commit_s": self.into_s}

    def reached(self, timeline):
        now = time.monotonic() - timeline.t0
        if self.from_start_s is not None:
            return now >= self.from_start_s
        first = timeline.first_commit()
        return first is not None and now >= first + self.into_s


def wait_for_point(rig, plan, timeline, ended):
    """True once the plan's point is reached while the run goes on; False when it ended first."""
    until = time.monotonic() + rig.bounded(IMPORT_LIMIT_S)
    while time.monotonic() < until:
        if ended():
            return False
        if plan.reached(timeline):
            return True
        time.sleep(0.01)
    return True


def orphans(instance):
    """Photos no row names, *.tmp anywhere under the instance folder, upload folders left, and
    import jobs not ended."""
    db = instance.open_db()
    try:
        named = {os.path.basename(r[0]) for r in db.execute(
            "SELECT photo_path FROM citizens UNION SELECT photo_path FROM face_templates"
            " UNION SELECT photo_path FROM duplicate_reviews") if r[0]}
        jobs = open_jobs(db)
    finally:
        db.close()
    photos = instance.sub("photos")
    stored = [n for n in os.listdir(photos) if not n.endswith(".tmp")] if os.path.isdir(photos) else []
    return {"photos": len([n for n in stored if n not in named]), **partial_files(instance), "jobs_open": jobs}


def open_jobs(db):
    return db.execute("SELECT count(*) FROM import_jobs WHERE status IN ('queued', 'running')").fetchone()[0]


def partial_files(instance):
    """*.tmp anywhere under the instance folder and upload folders left: read from the file
    system alone (on a full disk even a reader of the database cannot open it)."""
    tmp = [os.path.relpath(os.path.join(d, n), instance.path) for d, _, names in os.walk(instance.path)
           for n in names if n.endswith(".tmp")]
    uploads = instance.sub("uploads")
    return {"tmp": len(tmp), "uploads": len(os.listdir(uploads)) if os.path.isdir(uploads) else 0,
            "tmp_files": sorted(tmp)[:5]}


def outcomes(rows):
    return {(r["file"], int(r["line"])): r["outcome"] for r in rows}


def report_differences(rerun, clean):
    """Rows whose outcome differs from the clean run's. "unchanged" in the run again stands for
    a row the killed run had committed (imported or updated in the clean run)."""
    clean_outcomes, rerun_outcomes = outcomes(clean), outcomes(rerun)
    differ = []
    for key in sorted(set(clean_outcomes) | set(rerun_outcomes)):
        was, now = clean_outcomes.get(key), rerun_outcomes.get(key)
        if now != was and not (now == "unchanged" and was in ("imported", "updated")):
            differ.append(f"{key[0]} line {key[1]}: {now} (clean: {was})")
    return differ


def differences(state, clean_state, rerun_report, clean_report):
    """{what: how it differs} between a run again and the clean run; empty when equal."""
    out = {}
    for key in clean_state:
        if state[key] != clean_state[key]:
            only_here = sorted(set(state[key]) - set(clean_state[key]))
            only_clean = sorted(set(clean_state[key]) - set(state[key]))
            # the same records held, with the same matches and status, at other thresholds
            same_held = key == "reviews" and [r[:3] for r in state[key]] == [r[:3] for r in clean_state[key]]
            out["review_thresholds" if same_held else key] = {
                "rows": len(only_here), "only_here": _shown(only_here), "only_clean": _shown(only_clean)}
    report = report_differences(rerun_report, clean_report)
    if report:
        out["report"] = report[:10]
    return out


def _shown(rows):
    """Rows for the JSON: ID numbers are synthetic, names are the test photos' names."""
    return [list(r) for r in rows[:5]]


# --- one CLI import, one web import ---------------------------------------------------------------

def cli_import(rig, instance, files, kill=None):
    """The CLI import of the files: to its end ({"seconds", "writes_s", "report"}) or SIGKILLed
    at the KillPlan's point ({"killed_at_s", "workers_left"}, or {"finished_first"})."""
    report = os.path.join(rig.folder("report"), "report.csv")
    args = instance.flask_args("import-records", files.records, "--photos", files.photos,
                               "--cases", files.cases, "--report", report)
    child = rig.spawn(args, instance.env, "cli-import")
    timeline = Timeline(instance).start()
    try:
        if kill is not None:
            if not wait_for_point(rig, kill, timeline, lambda: child.poll() is not None):
                rig.end_group(child)
                return {"finished_first": True}
            at = round(time.monotonic() - timeline.t0, 2)
            return {"killed_at_s": at, "workers_left": sigkill_leader(rig, child)}
        try:
            code = child.wait(rig.bounded(IMPORT_LIMIT_S))
        except subprocess.TimeoutExpired:
            raise RuntimeError("the CLI import did not end within its limit")
        seconds = round(time.monotonic() - timeline.t0, 2)
    finally:
        timeline.stop()
        rig.end_group(child)
    if code != 0:
        with open(child.log_path, encoding="utf-8", errors="replace") as f:
            raise RuntimeError(f"the CLI import failed ({code}): {f.read()[-800:]}")
    with open(report, encoding="utf-8-sig") as f:
        return {"seconds": seconds, "writes_s": timeline.writes(), "report": report_rows(f.read())}


def web_import(rig, instance, files, kill=None):
    """A web import on a server process of the instance, as an admin's browser makes it: to its
    end ({"seconds", "writes_s", "report"}; seconds from the upload's start), or with the server
    SIGKILLed at the KillPlan's point ({"killed_at_s", "phase", "workers_left"})."""
    server = Server(rig, instance, "web-import").start()
    timeline = Timeline(instance)
    try:
        admin = Browser(server)
        if admin.sign_in("admin") != 302:
            raise RuntimeError("the admin could not sign in")
        token, uploads = admin.csrf("/imports/"), files.uploads()
        if kill is not None:
            return _killed_web_import(rig, server, admin, token, uploads, kill, timeline)
        timeline.start()
        job = _upload(admin, token, uploads)
        row = _job_end(rig, admin, job)
        seconds = round(time.monotonic() - timeline.t0, 2)
        if row["status"] != "done":
            raise RuntimeError(f"the web import ended {row['status']}: {row['error']}")
        status, _, data = admin.request("GET", f"/imports/{job}/report")
        if status != 200:
            raise RuntimeError(f"the report answered {status}")
        return {"seconds": seconds, "writes_s": timeline.writes(), "job": job,
                "report": report_rows(data.decode("utf-8-sig"))}
    finally:
        timeline.stop()
        server.stop()


def _upload(browser, token, uploads):
    """The job id of an upload through the import page (its answer: a redirect to the job)."""
    status, headers, page = browser.post_files("/imports/", uploads, token)
    location = headers.get("Location") or ""
    if status != 302 or "/imports/" not in location:
        raise RuntimeError(f"the upload answered {status}: {page[:300]!r}")
    return int(location.rstrip("/").rsplit("/", 1)[1])


def _job_end(rig, browser, job, timeout=IMPORT_LIMIT_S):
    row = rig.wait_for(lambda: _finished(browser.json(f"/imports/{job}/progress")), timeout, every=0.3)
    if row is None:
        raise RuntimeError(f"import job {job} did not end within {timeout} s")
    return row


def _finished(row):
    return row if row["status"] in ("done", "failed") else None


def _killed_web_import(rig, server, admin, token, uploads, kill, timeline):
    """Upload in a thread (a kill may land in the upload itself) and SIGKILL the server at the
    plan's point, unless the job was done first."""
    answered = {}

    def upload():
        with contextlib.suppress(Exception):     # the connection dies with the server
            answered["job"] = _upload(admin, token, uploads)
    thread = threading.Thread(target=upload, daemon=True)
    timeline.start()
    thread.start()
    reached = wait_for_point(rig, kill, timeline, lambda: timeline.job_done)
    at = round(time.monotonic() - timeline.t0, 2)
    phase = "job" if "job" in answered else "upload"
    workers_left = server.kill()
    thread.join(30)
    if not reached:
        return {"finished_first": True}
    return {"killed_at_s": at, "phase": phase, "workers_left": workers_left}


# --- part 1: imports killed and run again -------------------------------------------------------

def fresh_instance(rig, name, admin=False, **kw):
    instance = Instance(rig, os.path.join(rig.folder(name), "instance"), **kw)
    if admin:
        instance.create_user("admin", "admin")
    return instance


def part_imports(rig, args, files):
    runs = {"cli": cli_import, "web": web_import}
    clean = {kind: _clean_run(rig, kind, run, files) for kind, run in runs.items()}
    out = {"files": files.summary,
           "clean": {k: {key: v[key] for key in ("seconds", "writes_s", "outcomes", "orphans")}
                     for k, v in clean.items()},
           "clean_cli_equals_clean_web": not differences(clean["cli"]["state"], clean["web"]["state"],
                                                         clean["cli"]["report"], clean["web"]["report"]),
           "kills": []}
    rng = random.Random(args.seed)
    try:
        for i in range(args.kills):
            kind = ("cli", "web")[i % 2]
            plan = KillPlan.drawn(rng, clean[kind])
            out["kills"].append(_kill_and_rerun(rig, kind, runs[kind], files, plan, clean[kind], i))
    except OutOfTime:
        out["stopped"] = "deadline"
    out["summary"] = _kills_summary(out["kills"], args.kills)
    return out


def _clean_run(rig, kind, run, files):
    """A clean run into a fresh instance: its state, report and when it committed."""
    instance = fresh_instance(rig, f"clean-{kind}", admin=kind == "web")
    result = run(rig, instance, files)
    if result["writes_s"][0] is None:
        raise RuntimeError(f"the clean {kind} run wrote nothing")
    progress(f"imports: clean {kind} run {result['seconds']} s (commits from {result['writes_s'][0]} s"
             f" to {result['writes_s'][1]} s), {_counts(result['report'])}")
    return {"seconds": result["seconds"], "writes_s": list(result["writes_s"]), "report": result["report"],
            "state": registry_state(instance), "outcomes": _counts(result["report"]),
            "orphans": _orphan_count(orphans(instance))}


def _kill_and_rerun(rig, kind, run, files, plan, clean, i):
    instance = fresh_instance(rig, f"kill-{i}-{kind}", admin=kind == "web")
    killed = run(rig, instance, files, kill=plan)
    committed = committed_rows(instance)
    again = run(rig, instance, files)
    diff = differences(registry_state(instance), clean["state"], again["report"], clean["report"])
    left = orphans(instance)
    result = {"kind": kind, "point": plan.describe(), **killed, "committed_before_rerun": committed,
              "rerun": _counts(again["report"]), "equal": not diff, "differ_in": sorted(diff),
              "orphans": _orphan_count(left)}
    if diff:
        result["differences"] = diff
    if left["tmp_files"]:
        result["tmp_files"] = left["tmp_files"]
    where = "finished before the kill" if killed.get("finished_first") else \
        f"killed at {killed['killed_at_s']} s{' in the upload' if killed.get('phase') == 'upload' else ''}"
    progress(f"imports: {i + 1} {kind} {where} ({plan.describe()}), {committed} rows committed; run again:"
             f" {'equal' if not diff else 'differs in ' + ', '.join(sorted(diff))}, orphans {result['orphans']}")
    shutil.rmtree(os.path.dirname(instance.path), ignore_errors=True)
    return result


def _counts(report):
    counts = {}
    for row in report:
        key = f"{row['file']} {row['outcome']}"
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


def _orphan_count(found):
    return {k: v for k, v in found.items() if k != "tmp_files"}


def _kills_summary(kills, asked):
    landed = [k for k in kills if not k.get("finished_first")]
    aspects = ("citizens", "templates", "reviews", "review_thresholds", "cases", "report")
    return {"asked": asked, "ran": len(kills), "equal": sum(k["equal"] for k in kills),
            "equal_by_aspect": {a: sum(a not in k["differ_in"] for k in kills) for a in aspects},
            "killed_mid_import": sum(1 for k in landed if k["committed_before_rerun"] > 0),
            "finished_before_the_kill": len(kills) - len(landed),
            "orphan_photos": sum(k["orphans"]["photos"] for k in kills),
            "orphan_tmp": sum(k["orphans"]["tmp"] for k in kills),
            "uploads_left": sum(k["orphans"]["uploads"] for k in kills),
            "workers_left_behind": sum(k.get("workers_left", 0) for k in kills)}


# --- part 2: two server processes, one killed mid-import ------------------------------------------

def part_processes(rig, args, files):
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    import pgcluster
    from server import imports
    cluster = pgcluster.Cluster()
    rig.on_close(cluster.stop)
    cluster.start()
    limits = {"STALE_S": imports.STALE_S, "HEARTBEAT_S": imports.HEARTBEAT_S, "WATCH_S": imports.WATCH_S}
    out = {"limits": limits, "postgresql": _pg_version(cluster), "runs": []}
    try:
        for host in ("same", "other"):
            for i in range(args.runs):
                out["runs"].append(_one_process_killed(rig, cluster, files, host, i))
    except OutOfTime:
        out["stopped"] = "deadline"
    out["summary"] = {host: _process_summary([r for r in out["runs"] if r["a_host"] == host], imports.STALE_S,
                                             imports.WATCH_S)
                      for host in ("same", "other")}
    return out


def _pg_version(cluster):
    import psycopg
    with psycopg.connect(cluster.url("postgres")) as conn:
        return conn.execute("SHOW server_version").fetchone()[0]


def _one_process_killed(rig, cluster, files, host, i):
    """A and B on one database and one instance folder; A's import killed; B's view timed."""
    url = cluster.new_database()
    instance = fresh_instance(rig, f"processes-{host}-{i}", admin=True, database_url=url)
    b = Server(rig, instance, "server-b").start()
    a = Server(rig, instance, "server-a", hostname="faults-host-a" if host == "other" else None).start()
    try:
        admin = Browser(a)
        if admin.sign_in("admin") != 302:
            raise RuntimeError("the admin could not sign in at A")
        job = _upload(admin, admin.csrf("/imports/"), files.uploads())
        at_b = admin.at(b)               # the same sign-in, at the other process
        running = rig.wait_for(lambda: _running(at_b, job), 120, every=0.1)
        if running is None:
            raise RuntimeError(f"job {job} never ran at A")
        killed_at, beat = time.monotonic(), _heartbeat_age(instance, job)
        a.kill()
        seen = _until_ended(rig, at_b, instance.sub(f"uploads/job-{job}"), job, killed_at)
        result = {"a_host": host, "job": job, "processed_at_kill": running["processed"],
                  "total": running["total"], "heartbeat_age_at_kill_s": beat, **seen}
        progress(f"processes: A on {host} host killed at {running['processed']}/{running['total']} rows;"
                 f" B: failed after {seen['failed_after_s']} s, uploads gone after {seen['uploads_gone_after_s']} s")
        return result
    finally:
        b.stop()
        a.stop()
        cluster.drop_database(url)


def _running(browser, job):
    row = browser.json(f"/imports/{job}/progress")
    return row if row["status"] == "running" and (row["processed"] or 0) > 0 else None


def _heartbeat_age(instance, job):
    db = instance.open_db()
    try:
        stamp = db.execute("SELECT heartbeat_at FROM import_jobs WHERE id = ?", [job]).fetchone()[0]
    finally:
        db.close()
    from server.times import parse_stamp
    return round((datetime.now(timezone.utc) - parse_stamp(stamp)).total_seconds(), 2)


def _until_ended(rig, at_b, folder, job, killed_at, limit_s=120):
    """Seconds after the kill until B reports the job failed and until its upload folder is gone
    (None: not within limit_s), and B's error text."""
    failed = gone = None
    row = {}

    def both():
        nonlocal failed, gone, row
        now = round(time.monotonic() - killed_at, 2)
        row = at_b.json(f"/imports/{job}/progress")
        if failed is None and row["status"] == "failed":
            failed = now
        if gone is None and not os.path.exists(folder):
            gone = now
        return failed is not None and gone is not None
    rig.wait_for(both, limit_s, every=0.25)
    return {"failed_after_s": failed, "uploads_gone_after_s": gone, "status_at_b": row.get("status"),
            "error_at_b": (row.get("error") or "")[:120]}


def _process_summary(runs, stale_s, watch_s):
    ended = [max(r["failed_after_s"], r["uploads_gone_after_s"]) for r in runs
             if r["failed_after_s"] is not None and r["uploads_gone_after_s"] is not None]
    return {"runs": len(runs), "ended": len(ended),
            "within_stale_limit": sum(1 for s in ended if s <= stale_s),
            # the lease runs out at STALE_S after the last beat; a watch turn notices it
            "within_stale_limit_plus_a_watch_turn": sum(1 for s in ended if s <= stale_s + watch_s),
            "seconds": sorted(ended), "max_s": max(ended, default=None)}


# --- part 3: a full disk --------------------------------------------------------------------------

DISK_MB = 20
FREE_LEVELS = (("0", 0), ("100 KB", 100 * 1024), ("1 MB", MB))
DISK_CONFIGS = (("default reserve", {}), ("1 MB reserve", {"DISK_RESERVE_MB": 1, "DISK_WARN_MB": 0}))


def part_disk(rig, args, files):
    mount_point = rig.folder("tmpfs")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m,mode=0700", "tmpfs", mount_point],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        return {"skipped": f"mount failed: {(mounted.stderr or mounted.stdout).strip()[:200]}"}
    rig.on_close(lambda: _unmount(mount_point))
    out = {"filesystem": f"tmpfs {DISK_MB} MB", "configs": {}}
    small = _small_files(rig, files)
    try:
        for name, config in DISK_CONFIGS:
            out["configs"][name] = _disk_config(rig, mount_point, name, config, small)
    except OutOfTime:
        out["stopped"] = "deadline"
    levels = [lv for c in out["configs"].values() for lv in c["levels"].values()]
    out["summary"] = {"answers_500": sum(lv["answers_500"] for lv in levels),
                      "config_and_sign_in_ok": sum(lv["config_ok"] and lv["sign_in_ok"] for lv in levels),
                      "levels": len(levels), "partial_files": sum(lv["partial_files"] for lv in levels)}
    return out


def _unmount(mount_point):
    if subprocess.run(["umount", mount_point], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", mount_point], capture_output=True)   # busy: detach it


class SmallImport:
    """Five citizens (each person's first photo): the disk part's registry and its web upload."""

    def __init__(self, folder, files):
        with open(files.records, newline="", encoding="utf-8") as f:
            rows = [r for r in csv.reader(f)][1:]
        chosen = [r for r in rows if r[3].endswith(("-1.jpg", "-1.jpeg", "-1.png"))][:5]
        self.records = os.path.join(folder, "records.csv")
        with open(self.records, "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows([RECORD_HEADER, *chosen])
        self.photos = os.path.join(folder, "photos")
        os.makedirs(self.photos)
        for row in chosen:
            shutil.copyfile(os.path.join(files.photos, row[3]), os.path.join(self.photos, row[3]))
        self.zip = os.path.join(folder, "photos.zip")
        with zipfile.ZipFile(self.zip, "w") as zf:
            for row in chosen:
                zf.write(os.path.join(self.photos, row[3]), row[3])

    def uploads(self):
        with open(self.records, "rb") as r, open(self.zip, "rb") as z:
            return [("records", "records.csv", r.read()), ("photos", "photos.zip", z.read())]


def _small_files(rig, files):
    return SmallImport(rig.folder("small-import"), files)


def _disk_config(rig, mount_point, name, config, small):
    """One registry on the small disk, its server up, probed at each level of free space."""
    folder = os.path.join(mount_point, name.replace(" ", "-"))
    instance = Instance(rig, folder, config=config)
    for user, role in (("admin", "admin"), ("clerk", "clerk")):
        instance.create_user(user, role)
    token = instance.register_device("kiosk-disk")
    code, out = instance.flask("import-records", small.records, "--photos", small.photos)
    if code != 0:
        raise RuntimeError(f"the disk part's import failed: {out[-500:]}")
    server = Server(rig, instance, "disk-server").start()
    filler = os.path.join(mount_point, "filler")
    result = {"reserve_in_place_at_start": os.path.exists(instance.sub("disk-reserve")), "levels": {}}
    try:
        admin = Browser(server)
        if admin.sign_in("admin") != 302:        # signed in while there was room, as an admin would be
            raise RuntimeError("the admin could not sign in")
        for label, free in FREE_LEVELS:
            rig.check()
            result["levels"][label] = _probe_level(rig, instance, server, admin, token, small, filler, free)
            level = result["levels"][label]
            progress(f"disk: {name}, {label} free: {level['answers']}, 500s {level['answers_500']},"
                     f" partial files {level['partial_files']}")
    finally:
        server.stop()
        with contextlib.suppress(FileNotFoundError):
            os.remove(filler)
        shutil.rmtree(folder, ignore_errors=True)
    return result


def fill(path, filler, free_bytes):
    """Write the filler file until the file system holds free_bytes free (0: until ENOSPC)."""
    chunk = b"\0" * (64 * 1024)
    with open(filler, "ab") as f:
        while True:
            room = _free(path) - free_bytes
            if room <= 0:
                break
            try:
                f.write(chunk[:min(len(chunk), room)])
                f.flush()
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                break
    return _free(path)


def _free(path):
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


def _probe_level(rig, instance, server, admin, token, small, filler, free):
    """Every probe against the server with the disk filled to `free` bytes; then what was left."""
    with contextlib.suppress(FileNotFoundError):
        os.remove(filler)
    free_before = fill(instance.path, filler, free)
    answers = {}
    answers["config"] = _status(lambda: Browser(server).request("GET", "/api/v1/config", headers=device_headers(token)))
    answers["gallery"] = _status(lambda: Browser(server).request("GET", "/api/v1/gallery?since=0",
                                                                 headers=device_headers(token)))
    clerk = Browser(server)
    answers["clerk sign-in"] = _status(lambda: (clerk.sign_in("clerk"),))
    answers["clerk queue"] = _status(lambda: clerk.request("GET", "/console/"))
    answers["session upload"] = _status(lambda: _session_upload(server, token))
    page, import_answer, job_end = _import_upload(rig, admin, small)
    answers["import page"] = page
    if import_answer is not None:
        answers["web import"] = import_answer
    rig.sleep(1.0)       # a refused write's clean-up is done before the answer; a second to be sure
    left = partial_files(instance)
    os.remove(filler)    # then the database can be read: the jobs a refusal left open
    db = instance.open_db()
    try:
        left["jobs_open"] = open_jobs(db)
    finally:
        db.close()
    partial = left["uploads"] + left["tmp"] + left["jobs_open"]
    return {"free_bytes": free_before, "answers": answers,
            "answers_500": sum(1 for s in answers.values() if s == 500),
            "config_ok": answers["config"] == 200 and answers["gallery"] == 200,
            "sign_in_ok": answers["clerk sign-in"] == 302, "import_job": job_end,
            "partial_files": partial, "left": _orphan_count(left),
            **({"tmp_files": left["tmp_files"]} if left["tmp_files"] else {})}


def _status(call):
    """The HTTP status of call() (its first element), or the name of the error it raised."""
    try:
        return call()[0]
    except Exception as e:
        return type(e).__name__


def _session_upload(server, token):
    """An unknown visitor's session with its snapshot, as a kiosk uploads it."""
    from recognition import models
    session = {"id": str(uuid.uuid4()), "citizen_key": None, "outcome": "unknown", "distance": 1.2,
               "margin": 0.01, "time_to_greet": None, "liveness": "not_run",
               "model": models.get(models.DEFAULT).id, "started_at": datetime.now(timezone.utc).isoformat()}
    body, content_type = multipart({"session": json.dumps(session)},
                                   [("snapshot", "face.jpg", _snapshot())], file_type="image/jpeg")
    return Browser(server).request("POST", "/api/v1/sessions", body, device_headers(token, content_type))


def _snapshot():
    """A real face as a kiosk crops it: a test photo at 320 px, a JPEG of some tens of KB."""
    from PIL import Image
    img = Image.open(image_files(os.path.join(PEOPLE, "rose_leslie"))[0]).convert("RGB")
    img.thumbnail((320, 320))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=85)
    return out.getvalue()


def _import_upload(rig, admin, small):
    """(status of the import page, of the upload or None, how its job ended or None): the upload
    is made when the page (and its CSRF token) came, an accepted upload's job waited for."""
    page_status = _status(lambda: admin.request("GET", "/imports/"))
    if page_status != 200:
        return page_status, None, None
    try:
        status, headers, _ = admin.post_files("/imports/", small.uploads(), admin.csrf("/imports/"))
    except Exception as e:
        return page_status, type(e).__name__, None
    location = headers.get("Location") or ""
    if status != 302 or "/imports/" not in location:
        return page_status, status, None
    job = int(location.rstrip("/").rsplit("/", 1)[1])
    try:
        row = _job_end(rig, admin, job, timeout=120)
    except RuntimeError as e:
        return page_status, status, {"error": str(e)}
    return page_status, status, {"status": row["status"], "error": (row["error"] or "")[:200]}


# --- part 4: the kiosk, its server killed at each point of a visit --------------------------------

# The 10 points of a visit the server is killed at: each of its requests, before the server
# sees it and after it answered (the answer lost on the way).
KILL_POINTS = [(suffix, when) for suffix in ("/sessions", "/liveness", "/casefile", "/casefile/details",
                                             "/ticket") for when in ("before", "after")]
WRONG_DIGITS = "0000"      # her phone on file ends 4321 (tests/helpers.py PHONE): one wrong try
VISIT_LIMIT_S = 240        # one visit, the clip to the kiosk's exit
KIOSK_CONFIG = {"SECOND_FACTOR_WAIT_S": 0,             # her one wrong try a visit, ten visits a day:
                "SECOND_FACTOR_CITIZEN_DAILY": 1000,   # neither may lock her details for the next
                "SECOND_FACTOR_DEVICE_DAILY": 1000}


def outbox_available():
    """Whether the device runtime has the outbox every report rides (device/store.py reports)."""
    from device import store, sync
    return hasattr(store.Store, "add_report") and hasattr(sync.Syncer, "add_report")


def part_kiosk(rig, args, files):
    if not outbox_available():
        return {"skipped": "not available: device/ has no outbox for liveness, second-factor and ticket reports"}
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    kiosk = KioskRig(rig)
    out = {"points": [], "server_start_s": kiosk.start_s}
    try:
        for suffix, when in KILL_POINTS:
            out["points"].append(kiosk.visit_killed_at(suffix, when))
    except OutOfTime:
        out["stopped"] = "deadline"
    finally:
        kiosk.close()
    out["registry"] = kiosk.registry_totals()
    points = out["points"]
    out["summary"] = {"points": len(points), "exactly_once": sum(p["exactly_once"] for p in points),
                      "killed": sum(p["killed"] is not None for p in points),
                      "ticket_on_screen": sum(p["ticket_step"] == "ticket_issued" for p in points),
                      "left_at_exit": sum(p["left_at_exit"] for p in points)}
    return out


class KioskRig:
    """Her registry served by a waitress process behind a KillProxy, and the real kiosk: the
    agent over the blinking clip, the case-file flow with tickets, its keypad presenter, its
    store (one file for every visit, as one kiosk's) and sync worker, all in this process."""

    def __init__(self, rig):
        import helpers
        from bench.faults_rig import KillProxy
        from db import open_db
        self.rig = rig
        self.instance = Instance(rig, os.path.join(rig.folder("kiosk"), "instance"), config=KIOSK_CONFIG)
        db = open_db(self.instance.database)          # created and migrated here
        try:
            self.her = helpers.enrol_her(db, name="Ms Lin", language="en")
            _, self.token = helpers.add_device(db, "kiosk-hall-a", site="Hall A")
        finally:
            db.close()
        self.clip = helpers.blinking_clip(os.path.join(rig.folder("clip"), "clip.mp4"))
        self.store_path = os.path.join(rig.folder("kiosk-store"), "kiosk.db")
        started = time.monotonic()
        self.server = Server(rig, self.instance, "kiosk-server").start()
        self.start_s = round(time.monotonic() - started, 1)
        self.proxy = KillProxy(self.server.port)
        self.restarted = threading.Event()
        self._prime_store()

    def _prime_store(self):
        """The kiosk's gallery, as after an earlier day online."""
        from device.client import ApiClient
        from device.events import EventLog
        from device.store import Store
        from device.sync import Syncer
        store = Store(self.store_path)
        try:
            Syncer(store, ApiClient(self.proxy.url, self.token), EventLog()).sync_gallery()
        finally:
            store.close()

    def kill_and_restart(self):
        """The kill: SIGKILL now (the proxy waits for nothing more), the restart in a second, a
        new process on the same port, as a supervisor (systemd) would."""
        process = self.server.process
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)

        def restart():
            self.rig.end_group(process)        # its face workers too
            time.sleep(1.0)
            try:
                self.server = Server(self.rig, self.instance, "kiosk-server", port=self.server.port).start()
            except Exception as e:              # reported by the visit that waits for it
                progress(f"kiosk: the server did not come back: {e!r}")
            self.restarted.set()
        self.restarted.clear()
        threading.Thread(target=restart, daemon=True).start()

    def visit_killed_at(self, suffix, when):
        """One visit with the server killed at the point; what the registry took of it."""
        self.rig.check()
        self._another_day()
        before = self._max_ticket()
        self.proxy.arm(suffix, when, self.kill_and_restart)
        events, typed, left = self._visit()
        if self.proxy.killed is not None:
            self.restarted.wait(self.rig.bounded(SERVER_BACK_S))
        left_after = self._deliver_rest() if left else 0
        greeted = [e for e in events if e["event"] == "greeted"]
        session_id = greeted[0]["session_id"] if greeted else None
        taken = self._taken(session_id, len(typed)) if session_id else {"why": "no greeting"}
        ticket_step = next((e["event"] for e in events if e["event"] in ("ticket_issued", "ticket_unavailable")), None)
        result = {"point": f"{when} {suffix}", "killed": self.proxy.killed, "ticket_step": ticket_step,
                  "digits_typed": len(typed), "left_at_exit": left, "left_after_restart": left_after,
                  "liveness_passed_on_device": any(e["event"] == "liveness_passed" for e in events),
                  "ticket_number": taken.get("ticket_number"), "new_ticket": taken.get("ticket_number") is not None
                  and int(taken["ticket_number"]) == before + 1, **taken}
        result["exactly_once"] = bool(session_id and result["killed"] and not taken.get("why") and not left_after)
        progress(f"kiosk: killed {when} {suffix}: {'exactly once' if result['exactly_once'] else 'NOT: ' + str(taken)}"
                 f" (ticket step {ticket_step}, {left} left in the outbox at exit)")
        return result

    def _visit(self):
        """The agent over the clip until it exits (it delivers what it can first): its events,
        the digits typed at the keypad, and how many sessions and reports it left waiting."""
        from device import client as client_module
        from device.agent import Agent
        from device.camera import open_source
        from device.casefile import CaseFileFlow
        from device.client import ApiClient
        from device.events import EventLog
        from device.store import Store
        from device.sync import Syncer
        from kiosk.casefile_screen import CaseFileDesk
        from kiosk.presenter import KioskCaseFilePresenter
        typed, events = [], []

        class Keypad(KioskCaseFilePresenter):
            """Her case file on screen: she types four wrong digits at the keypad."""
            def on_case_file(self, visit, summary):
                super().on_case_file(visit, summary)
                typed.append(self.desk.submit_digits(WRONG_DIGITS)["factor"]["status"])

        client_module.DETAILS_WAIT_S = UPLOAD_WAIT_S    # she waits at the keypad through a restart
        log = EventLog()
        log.add_listener(events.append)
        store = Store(self.store_path)
        client = ApiClient(self.proxy.url, self.token, timeout=5.0)
        syncer = Syncer(store, client, log, retry_s=0.5)
        flow = CaseFileFlow(Keypad(None, None, CaseFileDesk(client)), client, log, tickets=True,
                            upload_wait_s=UPLOAD_WAIT_S)
        agent = Agent(open_source(self.clip), store, syncer, log, flow)
        left = {}
        runner = threading.Thread(target=lambda: left.update(waiting=agent.run(exit_at_end=True)), daemon=True)
        try:
            runner.start()
            runner.join(self.rig.bounded(VISIT_LIMIT_S))
            if runner.is_alive():
                agent.stop()
                runner.join(60)
        finally:
            store.close()
        return events, typed, left.get("waiting", -1)

    def _another_day(self):
        """Her earlier passes moved out of the replay window: every visit replays the one clip,
        and the registry rightly fails a pass whose crops are the same pictures as another
        session's of hers within evidence.REPLAY_WINDOW_DAYS (server/casefile.py). So each
        visit stands for one on another day; without this every visit after the first was
        "liveness failed" and no kill point could be delivered exactly once."""
        from datetime import timedelta
        from db import transaction
        from server.evidence import REPLAY_WINDOW_DAYS
        from server.times import utc_stamp
        long_ago = utc_stamp(datetime.now(timezone.utc) - timedelta(days=REPLAY_WINDOW_DAYS + 1))
        db = self.instance.open_db()
        try:
            with transaction(db):
                db.execute("UPDATE liveness_signatures SET created_at = ? WHERE citizen_id = ?",
                           [long_ago, self.her])
        finally:
            db.close()

    def _deliver_rest(self):
        """What the kiosk left waiting, delivered as a restarted kiosk does: its store opened
        again and flushed once the server is back. How many still wait after that."""
        from device.client import ApiClient
        from device.events import EventLog
        from device.store import Store
        from device.sync import Syncer
        store = Store(self.store_path)
        try:
            syncer = Syncer(store, ApiClient(self.proxy.url, self.token), EventLog(), retry_s=0.5)
            delivered = self.rig.wait_for(lambda: syncer.flush_outbox() == 0, 60, every=1.0)
            return 0 if delivered else syncer.waiting()
        finally:
            store.close()

    def _taken(self, session_id, tries):
        """What the registry holds of one visit: each report once, or {"why": ...}."""
        db = self.instance.open_db()
        try:
            row = db.execute("SELECT liveness, ticket_number, factor_failures FROM sessions WHERE id = ?",
                             [session_id]).fetchone()
            if row is None:
                return {"why": "the session never reached the registry"}
            counts = {action: _audits(db, action, session_id) for action in
                      ("session.upload", "session.liveness", "ticket.issue", "casefile.second_factor_failed")}
            failures = db.execute("SELECT count(*) FROM factor_failures WHERE session_id = ?",
                                  [session_id]).fetchone()[0]
        finally:
            db.close()
        taken = {"liveness": row["liveness"], "ticket_number": row["ticket_number"],
                 "factor_failures": row["factor_failures"], "factor_failure_rows": failures, "audits": counts}
        wrong = [f"{a} {n}" for a, n in counts.items() if n != (tries if a.startswith("casefile") else 1)]
        if row["liveness"] != "passed":
            wrong.append(f"liveness {row['liveness']}")
        if row["ticket_number"] is None:
            wrong.append("no ticket")
        if row["factor_failures"] != tries or failures != tries:
            wrong.append(f"digit tries {row['factor_failures']}/{failures}, typed {tries}")
        if wrong:
            taken["why"] = "; ".join(wrong)
        return taken

    def _max_ticket(self):
        db = self.instance.open_db()
        try:
            return db.execute("SELECT coalesce(max(last_number), 0) FROM tickets").fetchone()[0]
        finally:
            db.close()

    def registry_totals(self):
        """Over every visit: sessions, and tickets issued (one a visit, numbered in order)."""
        db = self.instance.open_db()
        try:
            return {"sessions": db.execute("SELECT count(*) FROM sessions").fetchone()[0],
                    "tickets_issued": db.execute("SELECT count(*) FROM sessions WHERE ticket_number IS NOT NULL"
                                                 ).fetchone()[0],
                    "last_ticket": self._max_ticket()}
        finally:
            db.close()

    def close(self):
        self.proxy.close()
        self.server.stop()


SERVER_BACK_S = 120
UPLOAD_WAIT_S = 30.0       # how long a step of the visit waits for an answer: a restart on two busy cores


def _audits(db, action, session_id):
    rows = db.execute("SELECT target_id, detail FROM audit_log WHERE action = ?", [action]).fetchall()
    return sum(1 for r in rows if r["target_id"] == session_id or session_id in (r["detail"] or ""))


# --- the run ------------------------------------------------------------------------------------

def targets(parts, kills):
    met = {}
    imports = parts.get("imports", {}).get("summary")
    if imports:
        met["imports_equal_every_time"] = imports["ran"] == kills and imports["equal"] == kills
        met["imports_zero_orphans"] = not (imports["orphan_photos"] or imports["orphan_tmp"] or imports["uploads_left"])
    processes = parts.get("processes", {}).get("summary")
    if processes:
        for host, s in processes.items():
            met[f"processes_{host}_host_within_stale_limit"] = s["runs"] > 0 and s["within_stale_limit"] == s["runs"]
    disk = parts.get("disk", {}).get("summary")
    if disk:
        met["disk_zero_500s"] = disk["answers_500"] == 0
        met["disk_config_and_sign_in_work"] = disk["config_and_sign_in_ok"] == disk["levels"]
        met["disk_zero_partial_files"] = disk["partial_files"] == 0
    kiosk = parts.get("kiosk", {}).get("summary")
    if kiosk:
        met["kiosk_every_report_exactly_once"] = kiosk["points"] > 0 and kiosk["exactly_once"] == kiosk["points"]
    return met


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m bench.faults", description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=(*PARTS, "all"), default="all")
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs of imports (half CLI, half web)")
    parser.add_argument("--seed", type=int, default=1, help="seeds the moments of the kills")
    parser.add_argument("--runs", type=int, default=5, help="process kills per host kind (processes part)")
    parser.add_argument("--photos", default=PEOPLE, help="folder of <person>/<N>.jpg folders")
    parser.add_argument("--deadline-s", type=float, default=1200.0, help="the whole run's time limit")
    args = parser.parse_args(argv)
    if not 0 <= args.kills <= 200 or not 0 <= args.runs <= 20 or not 10 <= args.deadline_s <= 7200:
        parser.error("--kills 0..200, --runs 0..20, --deadline-s 10..7200")
    if not os.path.isdir(args.photos):
        parser.error(f"no folder {args.photos}")
    return args


PART_FUNCTIONS = {"imports": part_imports, "processes": part_processes, "disk": part_disk, "kiosk": part_kiosk}


def main(argv=None):
    args = parse_args(argv)
    started = time.monotonic()
    parts = PARTS if args.part == "all" else (args.part,)
    result = {"parts": {}, "seed": args.seed, "cores": os.cpu_count(), "load_before": os.getloadavg(),
              "photos": os.path.relpath(os.path.abspath(args.photos), ROOT)}
    with Rig(args.deadline_s) as rig:
        files = ImportFiles(rig.folder("files"), os.path.abspath(args.photos))
        for part in parts:
            progress(f"{part}: starting ({rig.left():.0f} s left of the deadline)")
            began = time.monotonic()
            try:
                result["parts"][part] = PART_FUNCTIONS[part](rig, args, files)
            except OutOfTime:
                result["parts"][part] = {"stopped": "deadline before it began"}
            except Exception as e:   # one part's failure is reported, the others still run
                progress(f"{part}: failed: {e!r}")
                result["parts"][part] = {"failed": f"{type(e).__name__}: {e}"[:1000]}
            result["parts"][part]["seconds"] = round(time.monotonic() - began, 1)
    result["targets_met"] = targets(result["parts"], args.kills)
    result["seconds"] = round(time.monotonic() - started, 1)
    result["load_after"] = os.getloadavg()
    print(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
