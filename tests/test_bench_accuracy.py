"""bench.accuracy: the dataset protocol and the JSON fields other tools read."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import PEOPLE

pytestmark = pytest.mark.video

ROOT = Path(__file__).resolve().parents[1]


def bench_env(tmp_path):
    """The bench's work folder (encoding cache, symlinks) in tmp_path, not in the checkout."""
    import os
    return {**os.environ, "CIVIC_BENCH_WORK": str(tmp_path / "work")}


def test_protocol_every_fifth_person_is_an_impostor(tmp_path):
    from bench.accuracy import dataset_plan
    root = tmp_path / "set"
    for i in range(1, 11):
        (root / f"p{i:02d}").mkdir(parents=True)
        for name in ("10.jpg", "2.jpg", "1.jpg"):
            (root / f"p{i:02d}" / name).write_bytes(b"x")
    (tmp_path / "identities_unknown_probes").mkdir()
    (tmp_path / "identities_unknown_probes" / "a.jpg").write_bytes(b"x")
    enrol, genuine, impostor = dataset_plan(str(root))
    assert [p for p, _ in enrol] == ["p01", "p02", "p03", "p04", "p06", "p07", "p08", "p09"]
    assert all(path.endswith("/1.jpg") for _, path in enrol)  # natural sort: 1 < 2 < 10
    assert {p for p, _ in impostor} == {"p05", "p10", None}
    assert len(genuine) == 16 and len(impostor) == 7
    enrol, genuine, _ = dataset_plan(str(root), enrol_photos=2)     # an ID photo and a capture
    assert [path.rsplit("/", 1)[1] for p, path in enrol if p == "p01"] == ["1.jpg", "2.jpg"]
    assert len(enrol) == 16 and len(genuine) == 8


def test_a_second_enrolled_photo_is_the_same_citizen():
    import numpy as np
    from bench.accuracy import build_gallery
    enrol = [("ann", "1.jpg"), ("ann", "2.jpg"), ("bo", "1.jpg")]
    gallery, ids = build_gallery(enrol, [np.zeros(128), np.full(128, 0.01), np.ones(128)])
    assert ids == {"ann": 1, "bo": 2}
    best, runner_up = gallery.nearest_two(np.full(128, 0.01))
    assert (best.citizen_id, runner_up.citizen_id) == (1, 2)    # never ann against herself


def test_bench_prints_policy_and_naive_figures(tmp_path):
    dataset = tmp_path / "people"
    shutil.copytree(PEOPLE, dataset)
    out = subprocess.run([sys.executable, "-m", "bench.accuracy", str(dataset), "--workers", "1"],
                         cwd=ROOT, capture_output=True, text=True, check=True, env=bench_env(tmp_path)).stdout
    result = json.loads(out)
    for key in ("correct", "wrong_person", "miss", "fpir", "enrolled", "genuine_probes",
                "impostor_probes"):
        assert key in result and key in result["naive"]
    assert result["enrolled"] == 4                       # rose_leslie (5th) is the impostor
    assert result["impostor_probes"] == 2
    assert result["wrong_person"] == 0 and result["impostor_named"] == 0
    assert result["correct"] + result["miss"] == result["genuine_probes"] == 9
    assert set(result["expected_fpir_at_gallery_size"]) == {"1000", "10000", "100000"}


def test_calibrate_per_group(tmp_path):
    """--calibrate chooses the threshold from the enrolled photos alone; group folders get
    their own figures, the top level keeps the shipped-point fields."""
    dataset = tmp_path / "groups"
    shutil.copytree(PEOPLE, dataset / "first")
    shutil.copytree(PEOPLE, dataset / "second")
    out = subprocess.run([sys.executable, "-m", "bench.accuracy", str(dataset), "--calibrate",
                          "--workers", "1"], cwd=ROOT, capture_output=True, text=True, check=True,
                         env=bench_env(tmp_path)).stdout
    result = json.loads(out)
    assert set(result["groups"]) == {"first", "second"}
    for figures in (result, *result["groups"].values()):
        for key in ("correct", "wrong_person", "fpir", "genuine_probes", "impostor_probes"):
            assert key in figures
        assert figures["calibration"]["source"] == "prior"      # 4 or 8 people: too few to measure
        assert figures["calibration"]["threshold"] <= 0.50 and figures["wrong_person"] == 0
    assert result["groups"]["first"]["genuine_probes"] == 9


def test_centring_removes_what_every_face_shares():
    """bench.separation's centred lever: a part common to every template (one population's
    look) no longer counts, and the distances keep the shipped thresholds' scale."""
    import numpy as np
    from bench.separation import centring
    rng = np.random.default_rng(1)
    people = rng.normal(0, 0.05, (6, 128))
    shared = np.full(128, 0.1)
    moved = {}
    for name, offset in (("alone", np.zeros(128)), ("with shared part", shared)):
        move = centring([*(people + offset), "no face found"])
        moved[name] = np.stack([move(p + offset) for p in people])
        assert move("no face found") == "no face found"
    assert np.allclose(moved["alone"], moved["with shared part"])      # the shared part counts for nothing
    radius = np.median(np.linalg.norm(people - people.mean(0), axis=1))
    assert np.allclose(np.linalg.norm(moved["alone"], axis=1), radius)


def test_separation_runs_each_lever_beside_the_shipped_templates(tmp_path):
    """The shipped lever is bench.accuracy --calibrate's point on the same photos; every lever
    prints its calibrated point and its best point on the probes."""
    dataset = tmp_path / "groups"
    shutil.copytree(PEOPLE, dataset / "first")
    run = dict(cwd=ROOT, capture_output=True, text=True, check=True, env=bench_env(tmp_path))
    separation = json.loads(subprocess.run(
        [sys.executable, "-m", "bench.separation", str(dataset), "--workers", "1"], **run).stdout)
    accuracy = json.loads(subprocess.run(
        [sys.executable, "-m", "bench.accuracy", str(dataset / "first"), "--calibrate", "--workers", "1"],
        **run).stdout)
    first = separation["groups"]["first"]
    assert (first["enrolled"], first["genuine_probes"], first["impostor_probes"]) == (4, 9, 2)
    assert set(first["levers"]) == {"shipped", "mirror", "centred", "mirror_centred"}
    shipped = first["levers"]["shipped"]["calibrated"]
    assert shipped["threshold"] == accuracy["calibration"]["threshold"]
    assert (shipped["correct"], shipped["wrong_person"]) == (accuracy["correct"], accuracy["wrong_person"])
    for lever in first["levers"].values():
        assert lever["calibrated"]["wrong_person"] == 0 and lever["calibrated"]["correct"] >= 5


def test_prior_measures_every_pair_of_different_people_beside_the_lfw_fit(tmp_path, monkeypatch):
    import os
    from bench import prior
    from recognition import calibration
    dataset = tmp_path / "people"
    shutil.copytree(PEOPLE, dataset)
    refused = subprocess.run([sys.executable, "-m", "bench.prior", str(dataset), "--workers", "1"],
                             cwd=ROOT, capture_output=True, text=True, env=bench_env(tmp_path))
    assert refused.returncode == 2 and "at least 10" in refused.stderr   # 5 people: no curve
    monkeypatch.setenv("CIVIC_BENCH_WORK", str(tmp_path / "work"))
    monkeypatch.setattr(calibration, "MIN_PEOPLE", 3)
    monkeypatch.setattr("bench.encoding_cache.CACHE", os.path.join(tmp_path, "work", "cache.pkl"))
    result = prior.run(str(dataset), workers=1)
    assert result["people"] == 5 and result["pairs"] > 0
    assert len(result["table"]) == len(calibration.GRID)         # what recognition/priors.py holds
    assert result["table"] == sorted(result["table"])            # a bound rises with the distance
    assert {"lfw_fit", "measured"} <= set(result["thresholds"][1])


def test_a_prior_from_one_fold_measures_a_registry_of_the_other(tmp_path, monkeypatch):
    """--fold and --prior: the README's East-Asian figures come from a registry whose prior was
    measured on other people's faces, never on its own."""
    import os
    from bench import accuracy
    from recognition import calibration
    monkeypatch.setattr("bench.encoding_cache.WORK", str(tmp_path / "work"))
    dataset = tmp_path / "people"
    for i in range(7):
        (dataset / f"person{i}").mkdir(parents=True)
    halves = [sorted(os.listdir(accuracy.fold_root(str(dataset), f"{k}/2"))) for k in (1, 2)]
    assert halves == [["person0", "person2", "person4", "person6"], ["person1", "person3", "person5"]]
    shipped = calibration.EAST_ASIAN_FMR_UPPER
    table = tmp_path / "prior.json"
    table.write_text(json.dumps({"table": [1e-3] * len(calibration.GRID)}))
    monkeypatch.setattr(calibration, "EAST_ASIAN_FMR_UPPER", shipped)
    accuracy.use_prior(str(table))
    assert calibration.prior_curve().fmr_upper[0] == 1e-3
    table.write_text(json.dumps({"table": [1e-3] * 5}))
    with pytest.raises(ValueError, match="grid"):
        accuracy.use_prior(str(table))
    refused = subprocess.run([sys.executable, "-m", "bench.accuracy", str(dataset), "--fold", "3/2"],
                             cwd=ROOT, capture_output=True, text=True, env=bench_env(tmp_path))
    assert refused.returncode == 2 and "K must be 1..N" in refused.stderr
