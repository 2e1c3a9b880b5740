"""The registry's own false-match curve: the bound, the thresholds it allows, the server
running it (command, per-device threshold, bad input), and evidence across frames."""
import json
import math

import numpy as np
import pytest

import helpers
from helpers import add_device, enrol, greeted_payload, key_of, person_encoding, session_payload
from recognition import calibration as maths
from recognition import models
from recognition.decision import Policy, TrackVotes, decide
from recognition.gallery import Gallery
from server import calibration

# The maths is the same for every model; these tests run it on dlib's scale, where the
# shipped numbers were first measured (the MobileFaceNet registry is tested below).
DLIB = models.get("dlib")
MFN = models.get("mobilefacenet")
dlib_registry = pytest.mark.face_model("dlib")


def threshold(curve, n, target=0.005, ceiling=0.50, model=DLIB):
    return maths.threshold_for(curve, n, target, ceiling, model.bounds.threshold_floor)


def one_to_one(curve, model=DLIB):
    return maths.one_to_one_threshold(curve, maths.ONE_TO_ONE_FMR, model.bounds.one_to_one_ceiling,
                                      model.bounds.threshold_floor)


def lfw_fit():
    """dlib's published LFW fit alone, as a curve."""
    return maths.prior_curve(DLIB, rates=tuple(min(1.0, DLIB.fitted_fmr(t)) for t in DLIB.grid))


def spread_faces(n, distance, seed=0, dims=128):
    """n synthetic templates, every pair about `distance` apart (random directions)."""
    rng = np.random.default_rng(seed)
    directions = rng.normal(size=(n, dims))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    return directions * distance / math.sqrt(2)


def east_asian_like(pairs, seed=0):
    """Non-mated distances spread as the East-Asian calibration faces' bulk (about 0.62 +- 0.07)."""
    return np.clip(np.random.default_rng(seed).normal(0.62, 0.07, pairs), 0.42, None)


# --- the maths ----------------------------------------------------------------------------

def test_upper_bound_is_clopper_pearson():
    assert maths.upper_bound(0, 1000) == pytest.approx(1 - 0.05 ** (1 / 1000), rel=1e-6)
    assert maths.upper_bound(5, 1000) == pytest.approx(0.010476, rel=2e-3)  # published table value
    assert maths.upper_bound(0, 0) == 1.0
    # no matches in more comparisons bounds the rate lower: 0 is never taken at face value
    assert maths.upper_bound(0, 100) > maths.upper_bound(0, 10_000) > 0


def test_all_pairs_skip_a_citizens_own_templates_and_flagged_citizens():
    owners = [1, 1, 2, 3]
    matrix = np.vstack([np.zeros(128), np.zeros(128), np.ones(128) * 0.1, np.ones(128) * 0.2])
    distances = maths.enrolled_non_mated(DLIB, owners, matrix, block=2)
    assert len(distances) == 5                  # 6 pairs minus citizen 1 with itself
    assert len(maths.enrolled_non_mated(DLIB, owners, matrix, exclude={3})) == 2


def test_sampled_pairs_when_the_registry_is_large():
    owners = list(range(300))
    distances = maths.enrolled_non_mated(DLIB, owners, spread_faces(300, 0.8), max_pairs=5000)
    assert len(distances) == 5000 and abs(float(np.median(distances)) - 0.8) < 0.05


def test_a_registry_of_close_faces_gets_a_stricter_threshold_than_the_prior():
    close = maths.enrolled_non_mated(DLIB, range(60), spread_faces(60, 0.52))
    curve = maths.measure(DLIB, close, 60)
    assert curve.source == "measured"
    chosen = threshold(curve, 60, 0.005, 0.50)
    assert chosen < threshold(lfw_fit(), 60)
    assert 60 * maths.fmr_at(curve, chosen)[1] <= 0.005 or chosen == 0.30


def test_a_small_registry_of_distinct_faces_is_held_to_the_prior_not_the_floor():
    # 30 citizens are 435 pairs: by themselves they cannot show an FMR of 1e-4, and their own
    # bound alone kept the registry at the 0.30 floor, greeting one East-Asian photo in five.
    curve = maths.measure(DLIB, east_asian_like(435), 30)
    prior = threshold(maths.prior_curve(DLIB), 30)
    assert threshold(curve, 30) == prior > 0.30
    # the prior bounds the tail where the registry saw no pair this close
    assert all(own <= p for own, p, k in zip(curve.fmr_upper, maths.prior_curve(DLIB).fmr_upper,
                                             curve.matches) if k == 0)
    assert any("prior bounds it" in note for note in curve.as_dict()["notes"])


def test_a_small_registry_closer_than_the_prior_raises_the_prior():
    # The prior holds only while the registry's faces are no closer than the prior's: here
    # 6 of 435 pairs fall at 0.40, far more than the prior's rate there allows.
    distances = east_asian_like(435)
    distances[:6] = 0.40
    curve = maths.measure(DLIB, distances, 30)
    prior = maths.prior_curve(DLIB)
    assert threshold(curve, 30) < threshold(prior, 30)
    at_035 = DLIB.grid.index(0.35)
    assert curve.fmr_upper[at_035] > 3 * prior.fmr_upper[at_035]
    assert maths.lower_bound(6, 435) > prior.fmr_upper[DLIB.grid.index(0.40)]


def test_device_reports_of_far_strangers_never_lower_the_raised_prior():
    # Many clerk-closed sessions of far-away candidates add comparisons and no matches; the
    # prior's raise then fell back to 1 and the close registry's threshold loosened.
    distances = east_asian_like(435)
    distances[:6] = 0.40
    far = maths.Operational(tuple(((0.80, 0.81, 0.82, 0.83, 0.84), 29, True) for _ in range(100)))
    alone, with_reports = maths.measure(DLIB, distances, 30), maths.measure(DLIB, distances, 30, far)
    assert threshold(with_reports, 30) <= threshold(alone, 30)
    assert one_to_one(with_reports) <= one_to_one(alone)
    assert all(b >= a for a, b in zip(alone.fmr_upper, with_reports.fmr_upper))


def test_the_upper_bound_is_never_below_the_rate_measured():
    distances = east_asian_like(435)
    distances[:6] = 0.40
    curve = maths.measure(DLIB, distances, 30)
    assert all(upper >= rate for rate, upper in zip(curve.fmr, curve.fmr_upper))


def test_a_device_claiming_more_matches_than_comparisons_does_not_stop_calibration():
    # a per-site gallery of 2 citizens is 1 comparison a session, yet 5 candidates came
    claims = maths.Operational(tuple(((0.25,) * 5, 1, True) for _ in range(20)))
    curve = maths.measure(DLIB, east_asian_like(45), 10, claims)
    assert max(curve.fmr) <= 1.0 and threshold(curve, 10) == 0.30


def test_a_registry_of_millions_of_pairs_is_measured_without_summing_each_match():
    # an exact lower bound sums every match 80 times a point: 3 million pairs took 52 s
    curve = maths.measure(DLIB, np.random.default_rng(0).normal(0.55, 0.07, 3_000_000), 5000)
    matches, pairs = curve.matches[DLIB.grid.index(0.45)], curve.comparisons[0]
    assert matches > 300
    assert maths.lower_bound(matches, pairs) == pytest.approx(
        matches / pairs - 1.645 * math.sqrt(matches) / pairs, rel=0.01)


def test_a_large_registry_measures_a_looser_tail_than_the_prior_itself():
    faces = maths.enrolled_non_mated(DLIB, range(1500), spread_faces(1500, 0.85, seed=3))
    curve = maths.measure(DLIB, faces, 1500)
    assert threshold(curve, 1500) > threshold(maths.prior_curve(DLIB), 1500)


def test_lower_bound_is_clopper_pearson():
    assert maths.lower_bound(0, 100) == 0.0
    assert maths.lower_bound(1, 100) == pytest.approx(1 - 0.95 ** (1 / 100), rel=1e-6)
    assert maths.lower_bound(5, 100) < 0.05 < maths.upper_bound(5, 100)


def test_too_few_people_fall_back_to_the_prior_with_a_note():
    curve = maths.measure(DLIB, maths.enrolled_non_mated(DLIB, [1, 2, 3], spread_faces(3, 0.9)), 3)
    assert curve.source == "prior" and "prior" in curve.as_dict()["notes"][0]
    # the more cautious of the LFW fit and the East-Asian bound: the LFW fit alone allowed
    # 0.50 for 3 citizens and 0.395 for 1,000, where East-Asian strangers match far more often
    lfw = lfw_fit()
    assert all(p >= f for p, f in zip(curve.fmr_upper, lfw.fmr_upper))
    assert (threshold(lfw, 3), threshold(lfw, 1000)) == (0.50, 0.395)
    assert (threshold(curve, 3), threshold(curve, 1000)) == (0.395, 0.30)


def test_nan_and_inf_distances_are_dropped_and_the_maximum_is_never_exceeded():
    distances = np.concatenate([maths.enrolled_non_mated(DLIB, range(40), spread_faces(40, 1.2)),
                                [np.nan, np.inf, -1.0]])
    ops = maths.Operational((((float("nan"), float("inf")), 39, False),))
    curve = maths.measure(DLIB, distances, 40, ops)
    assert all(math.isfinite(u) for u in curve.fmr_upper)
    assert threshold(curve, 40, 0.005, 0.45) <= 0.45
    assert threshold(curve, 40, 0.5, 0.45) == 0.45   # a loose target: still the maximum


def test_device_reports_count_only_where_their_lists_are_complete():
    base = maths.enrolled_non_mated(DLIB, range(30), spread_faces(30, 1.0))
    near = maths.Operational(tuple(((0.35, 0.40, 0.41, 0.42), 29, True) for _ in range(50)))
    with_ops = maths.measure(DLIB, base, 30, near)
    without = maths.measure(DLIB, base, 30)
    assert with_ops.operational == 50 * 29
    # strangers' frames came within 0.42 of citizens: the threshold tightens accordingly
    assert threshold(with_ops, 30, 0.005, 0.5) < threshold(without, 30, 0.005, 0.5)
    assert with_ops.comparisons[-1] == without.comparisons[-1]  # beyond 0.42 the lists say nothing


def test_device_reports_of_far_candidates_never_loosen_the_curve():
    # a stolen token posting many sessions whose candidates are all far away: comparisons
    # with no match would otherwise lower the bound and loosen every threshold
    base = maths.enrolled_non_mated(DLIB, range(30), spread_faces(30, 0.9))
    far = maths.Operational(tuple(((4.0,) * 5, 29, True) for _ in range(300)))
    poisoned, clean = maths.measure(DLIB, base, 30, far), maths.measure(DLIB, base, 30)
    assert poisoned.operational == 300 * 29
    assert all(p >= c for p, c in zip(poisoned.fmr_upper, clean.fmr_upper))
    for size in (1, 30):
        assert threshold(poisoned, size) == threshold(clean, size)


# --- evidence across frames ---------------------------------------------------------------

def hovering_frames(centre, distance, count, seed):
    """Frames scattered around `centre`, each about `distance` from it (camera noise)."""
    return [centre + v for v in spread_faces(count, distance * math.sqrt(2), seed)]


def test_a_citizen_whose_frames_hover_above_the_threshold_is_named_on_their_mean():
    faces = spread_faces(3, 1.0, seed=1)
    gallery = Gallery.from_arrays(DLIB, ["a", "b", "c"], faces)
    policy = Policy(threshold=0.5, margin=0.06)
    votes, named_at = TrackVotes(), None
    for i, frame in enumerate(hovering_frames(faces[0], 0.53, 6, seed=2), start=1):
        single = decide(gallery, frame, policy)
        assert single.citizen_id is None and single.rule == "threshold"   # no frame passes alone
        votes.add(single, frame)
        verdict, decision = votes.verdict(policy, gallery)
        if verdict == "named":
            named_at = i
            break
    assert named_at is not None and named_at <= 3 and decision.citizen_id == "a"
    # without the evidence rule the same frames never name anyone
    plain = TrackVotes()
    for frame in hovering_frames(faces[0], 0.53, 6, seed=2):
        plain.add(decide(gallery, frame, policy), frame)
    assert plain.verdict(Policy(threshold=0.5, margin=0.06, evidence_frames=0), gallery)[0] == "unknown"


def test_a_stranger_hovering_near_a_citizen_is_still_refused():
    faces = spread_faces(3, 1.0, seed=1)
    gallery = Gallery.from_arrays(DLIB, ["a", "b", "c"], faces)
    stranger = faces[0] + spread_faces(1, 0.56 * math.sqrt(2), seed=5)[0]   # 0.56 from "a"
    policy = Policy(threshold=0.5, margin=0.06)
    votes = TrackVotes()
    verdicts = []
    for frame in hovering_frames(stranger, 0.2, 8, seed=6):
        votes.add(decide(gallery, frame, policy), frame)
        verdicts.append(votes.verdict(policy, gallery)[0])
    assert "named" not in verdicts and verdicts[-1] == "unknown"


def test_the_mean_keeps_the_margin_to_the_runner_up():
    a = spread_faces(1, 1.0, seed=3)[0]
    b = a + spread_faces(1, 0.05 * math.sqrt(2), seed=4)[0]    # a lookalike 0.05 away
    gallery = Gallery.from_arrays(DLIB, ["a", "b"], [a, b])
    policy = Policy(threshold=0.5, margin=0.06, min_frames=30)
    votes = TrackVotes()
    for frame in hovering_frames(a, 0.2, 6, seed=7):
        votes.add(decide(gallery, frame, policy), frame)
    assert votes.verdict(policy, gallery)[0] is None or votes.verdict(policy, gallery)[0] == "unknown"


# --- the server ---------------------------------------------------------------------------

@dlib_registry
def test_an_empty_registry_measures_the_prior_and_says_so(app, db, runner):
    result = runner.invoke(args=["calibrate"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["source"] == "prior" and report["notes"]
    assert all(row["threshold"] <= 0.50 for row in report["by_size"])
    assert calibration.latest_report(db)["measured_at"] == report["measured_at"]


@dlib_registry
def test_each_device_gets_the_threshold_for_its_own_gallery(app, db, client):
    for i, face in enumerate(spread_faces(40, 0.58, seed=9)):
        enrol(db, "barack_obama", name=f"市民{i}", encodings=[face])
    db.execute("UPDATE citizens SET district = 'south' WHERE id % 4 = 0")   # 10 of another site
    _, token = add_device(db, "kiosk-north", site="north")
    db.execute("INSERT INTO settings (key, value) VALUES ('gallery.by_site', 'true')")
    report = calibration.measure_registry(db)
    assert report["source"] == "measured" and report["pairs"] == 40 * 39 // 2
    assert report["devices"][0]["gallery_size"] == 30
    assert calibration.device_threshold(db)[1] == 40     # the clerk's "at most": every citizen
    config = client.get("/api/v1/config", headers=helpers.bearer(token)).get_json()
    assert config["calibrated"] is True and config["gallery_size"] == 30
    assert config["threshold"] == calibration.threshold_for_size(db, 30) <= 0.50
    assert config["threshold"] < threshold(lfw_fit(), 30)   # these faces are close: stricter
    assert calibration.threshold_for_size(db, 1000) <= config["threshold"]
    assert {"margin", "min_frames", "unknown_after", "evidence_frames"} <= set(config)


@dlib_registry
def test_device_reports_and_confirmed_greetings_reach_the_curve(app, db, client, token):
    ids = [enrol(db, "barack_obama", name=f"市民{i}", encodings=[face])
           for i, face in enumerate(spread_faces(12, 0.9, seed=11))]
    headers = helpers.bearer(token)
    others = [{"key": key_of(db, ids[i]), "distance": 0.45 + i / 100} for i in (1, 2, 3)]
    greeted = greeted_payload(db, ids[0], candidates=[{"key": key_of(db, ids[0]), "distance": 0.3}] + others)
    assert client.post("/api/v1/sessions", json=greeted, headers=headers).status_code in (200, 201)
    db.execute("UPDATE sessions SET review_status = 'confirmed'")
    nothing = session_payload(registry_id=greeted["registry_id"])     # a device that reports nothing
    assert client.post("/api/v1/sessions", json=nothing, headers=headers).status_code in (200, 201)
    report = calibration.measure_registry(db)
    assert report["operational_comparisons"] == 11 and report["genuine"] == 1
    assert sum(report["histogram"]["operational"]) == 3 and sum(report["histogram"]["genuine"]) == 1


@dlib_registry
def test_only_sessions_a_clerk_reviewed_reach_the_curve(app, db, client, token):
    ids = [enrol(db, "barack_obama", name=f"市民{i}", encodings=[face])
           for i, face in enumerate(spread_faces(12, 0.9, seed=11))]
    headers = helpers.bearer(token)
    far = [{"key": key_of(db, i), "distance": 4.0} for i in ids[:5]]
    for _ in range(3):    # a device's word alone: unknown visitors nobody has looked at
        payload = session_payload(outcome="unknown", candidates=far)
        assert client.post("/api/v1/sessions", json=payload, headers=headers).status_code == 201
    assert calibration.measure_registry(db)["operational_comparisons"] == 0
    db.execute("UPDATE sessions SET review_status = 'closed'")   # a clerk closed them
    assert calibration.measure_registry(db)["operational_comparisons"] == 3 * 11


def held_against(db, citizen_id, status="pending"):
    """A record an import held because its face matched citizen_id (a duplicate review)."""
    db.execute("INSERT INTO duplicate_reviews (id_number, record, encoding, face_model, match_citizen_id,"
               " distance, threshold, status, created_at) VALUES (?, '{}', ?, ?, ?, 0.2, 0.4, ?,"
               " '2026-01-01T00:00:00Z')",
               [f"held-{citizen_id}-{status}", DLIB.to_blob(np.zeros(128, np.float32)), DLIB.id,
                citizen_id, status])


@dlib_registry
def test_citizens_flagged_as_duplicates_are_left_out_until_an_admin_decides(app, db):
    ids = [enrol(db, "barack_obama", name=f"市民{i}", encodings=[face])
           for i, face in enumerate(spread_faces(12, 0.9, seed=12))]
    held_against(db, ids[0])
    held_against(db, ids[1], status="import")          # decided: another person
    report = calibration.measure_registry(db)
    assert report["people"] == 11 and report["flagged_left_out"] == 1


@dlib_registry
def test_all_citizens_flagged_fall_back_to_the_prior(app, db, client, auth):
    ids = [enrol(db, "barack_obama", name=f"市民{i}", encodings=[face])
           for i, face in enumerate(spread_faces(12, 0.5, seed=15))]
    for citizen_id in ids:
        held_against(db, citizen_id)
    report = calibration.measure_registry(db)
    assert report["source"] == "prior" and report["flagged_left_out"] == len(ids)
    assert report["registry"]["threshold"] <= 0.50
    auth.login("admin")
    zh = client.get("/admin/calibration", headers={"Accept-Language": "zh"}).get_data(as_text=True)
    assert "由先验决定" in zh and "位被标记为可能重复身份的市民未计入" in zh


def test_a_real_photo_pair_is_measured_with_the_real_encoder(app, db):
    enrol(db, "barack_obama")
    enrol(db, "rose_leslie")
    report = calibration.measure_registry(db)
    assert report["source"] == "prior"                      # two citizens: too small to measure
    assert sum(report["histogram"]["non_mated"]) == 1       # but their pair is shown
    model = helpers.MODEL
    distance = model.distance(person_encoding("barack_obama"), person_encoding("rose_leslie"))
    assert distance > model.bounds.duplicate_ceiling      # two people: not even held for review


# --- the page -----------------------------------------------------------------------------

@dlib_registry
def test_the_calibration_page_draws_the_curve_for_admins_only(app, db, client, auth, token):
    for i, face in enumerate(spread_faces(30, 0.62, seed=13)):
        enrol(db, "barack_obama", name=f"市民{i}", encodings=[face])
    auth.login("clerk")
    assert client.get("/admin/calibration").status_code == 403
    auth.logout()
    auth.login("admin")
    page = client.get("/admin/calibration", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "435 pairs of different citizens (30 people)" in page
    assert page.count("<svg") == 2 and "<polyline" in page and "<rect" in page
    assert 'data-device="kiosk-1"' in page                  # the threshold of each device
    zh = client.get("/admin/calibration", headers={"Accept-Language": "zh"}).get_data(as_text=True)
    assert "各阈值下的误匹配率" in zh and "按人脸库规模的阈值" in zh


@dlib_registry
def test_an_empty_registry_page_says_the_prior_decides(app, db, client, auth):
    auth.login("admin")
    page = client.get("/admin/calibration", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert 'id="prior-note"' in page and "Prior measured on East-Asian faces" in page
    response = client.post("/admin/calibration", data={"csrf_token": auth.csrf_token("/admin/calibration")})
    assert response.status_code == 302
    assert db.execute("SELECT count(*) FROM calibrations").fetchone()[0] == 2


@pytest.mark.browser
@pytest.mark.parametrize("name, spread", [
    pytest.param("mobilefacenet", 1.3, marks=pytest.mark.face_model("mobilefacenet")),
    pytest.param("dlib", 0.6, marks=dlib_registry)])
def test_calibration_page_in_chromium(app, db, live_server, chromium_page, face_model, name, spread):
    from browser import log_in, screenshot
    rng = np.random.default_rng(21)
    faces = spread_faces(45, spread, seed=14, dims=face_model.dims)
    for i, face in enumerate(faces + rng.normal(0, 0.02, faces.shape)):
        enrol(db, "barack_obama", name=f"市民{i}", encodings=[face])
    add_device(db, "kiosk-east", site="hall-a")
    log_in(chromium_page, live_server.url, "admin")
    chromium_page.goto(live_server.url + "/admin/calibration")
    assert chromium_page.locator("svg.chart").count() == 2
    assert chromium_page.locator("#by-device tr[data-device=kiosk-east]").count() == 1
    assert face_model.id in chromium_page.inner_text("#face-model")
    screenshot(chromium_page, f"admin_calibration_{name}")
