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
    from recognition import models
    model = models.get("dlib")
    enrol = [("ann", "1.jpg"), ("ann", "2.jpg"), ("bo", "1.jpg")]
    gallery, ids = build_gallery(model, enrol, [np.zeros(128), np.full(128, 0.01), np.ones(128)])
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


def test_calibrate_per_group_and_every_model_in_one_run(tmp_path):
    """--calibrate chooses the threshold from the enrolled photos alone; group folders get
    their own figures, the top level keeps the shipped-point fields (the default model's);
    --face-model all adds each model's figures on the same photos."""
    from recognition import models
    dataset = tmp_path / "groups"
    shutil.copytree(PEOPLE, dataset / "first")
    shutil.copytree(PEOPLE, dataset / "second")
    out = subprocess.run([sys.executable, "-m", "bench.accuracy", str(dataset), "--calibrate",
                          "--face-model", "all", "--workers", "1"], cwd=ROOT, capture_output=True,
                         text=True, check=True, env=bench_env(tmp_path)).stdout
    result = json.loads(out)
    assert set(result["groups"]) == {"first", "second"}
    assert result["face_model"] == models.get(models.DEFAULT).id
    assert set(result["models"]) == {"mobilefacenet", "dlib"}
    for name, figures in result["models"].items():
        model = models.get(name)
        assert figures["face_model"] == model.id and set(figures["groups"]) == {"first", "second"}
        for one in (figures, *figures["groups"].values()):
            for key in ("correct", "wrong_person", "fpir", "genuine_probes", "impostor_probes"):
                assert key in one
            assert one["calibration"]["source"] == "prior"      # 4 or 8 people: too few to measure
            assert one["calibration"]["threshold"] <= model.bounds.threshold_ceiling
            assert one["wrong_person"] == 0
    assert result["groups"]["first"]["genuine_probes"] == 9
    # the better model names more of the same probes, at no cost in wrong names
    assert result["models"]["mobilefacenet"]["correct"] >= result["models"]["dlib"]["correct"]


def test_prior_measures_every_pair_of_different_people_on_each_model(tmp_path, monkeypatch):
    import os
    from bench import accuracy, prior
    from recognition import calibration, models
    dataset = tmp_path / "people"
    shutil.copytree(PEOPLE, dataset)
    refused = subprocess.run([sys.executable, "-m", "bench.prior", str(dataset), "--workers", "1"],
                             cwd=ROOT, capture_output=True, text=True, env=bench_env(tmp_path))
    assert refused.returncode == 2 and "at least 10" in refused.stderr   # 5 people: no curve
    monkeypatch.setenv("CIVIC_BENCH_WORK", str(tmp_path / "work"))
    monkeypatch.setattr(calibration, "MIN_PEOPLE", 3)
    monkeypatch.setattr("bench.encoding_cache.CACHE", os.path.join(tmp_path, "work", "cache.pkl"))
    for name in models.names():
        model = models.get(name)
        result = prior.run(str(dataset), accuracy.face_model(name), workers=1)
        assert result["people"] == 5 and result["pairs"] > 0 and result["face_model"] == model.id
        assert len(result["table"]) == len(model.grid)     # what recognition/models/priors/ holds
        assert result["table"] == sorted(result["table"])  # a bound rises with the distance


def test_a_prior_from_one_fold_measures_a_registry_of_the_other(tmp_path, monkeypatch):
    """--fold and --prior: the README's East-Asian figures come from a registry whose prior was
    measured on other people's faces, never on its own."""
    import os
    from bench import accuracy
    from recognition import models
    monkeypatch.setattr("bench.encoding_cache.WORK", str(tmp_path / "work"))
    model = models.get(models.DEFAULT)
    dataset = tmp_path / "people"
    for i in range(7):
        (dataset / f"person{i}").mkdir(parents=True)
    halves = [sorted(os.listdir(accuracy.fold_root(str(dataset), f"{k}/2"))) for k in (1, 2)]
    assert halves == [["person0", "person2", "person4", "person6"], ["person1", "person3", "person5"]]
    table = tmp_path / "prior.json"
    table.write_text(json.dumps({"face_model": model.id, "table": [1e-3] * len(model.grid)}))
    assert accuracy.read_prior(str(table), model).fmr_upper[0] == 1e-3
    table.write_text(json.dumps({"table": [1e-3] * 5}))
    with pytest.raises(ValueError, match="grid"):
        accuracy.read_prior(str(table), model)
    table.write_text(json.dumps({"face_model": models.get("dlib").id, "table": [1e-3] * len(model.grid)}))
    with pytest.raises(ValueError, match="measured on"):        # another model's scale
        accuracy.read_prior(str(table), model)
    refused = subprocess.run([sys.executable, "-m", "bench.accuracy", str(dataset), "--fold", "3/2"],
                             cwd=ROOT, capture_output=True, text=True, env=bench_env(tmp_path))
    assert refused.returncode == 2 and "K must be 1..N" in refused.stderr
