"""The face engine on real photos: loading odd files, the quality gate, the decision policy."""
import io

import numpy as np
import pytest
from PIL import Image

from conftest import FACES, PEOPLE, person_photo
from recognition import PhotoRejected, calibration, images, models, quality
from recognition.decision import FrameDecision, Policy, TrackVotes, decide
from recognition.gallery import Gallery

MODEL = models.get(models.DEFAULT)


@pytest.fixture(scope="module", params=list(models.names()))
def model(request):
    """Each face model: the decision rules hold on either's distances."""
    return models.get(request.param)


@pytest.fixture(scope="module")
def encodings(model):
    """One enrolment template per test person, plus every other photo as a probe."""
    out = {}
    for person_dir in sorted(PEOPLE.iterdir()):
        for path in sorted(person_dir.glob("*.jpg")):
            rgb = images.load_image(path)
            out[(person_dir.name, path.name)] = quality.enrolment_template(rgb, model).encoding
    return out


def policy_of(model, n=4):
    """The prior's operating point of the model for a gallery of n."""
    return Policy.for_model(model, n)


def jpeg_bytes(rgb, **save_args):
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", **save_args)
    return buffer.getvalue()


def test_truncated_jpeg_is_refused():
    data = person_photo("joe_biden").read_bytes()
    with pytest.raises(PhotoRejected, match="truncated or corrupt"):
        images.load_image(data[: len(data) // 2])


def test_text_file_is_not_an_image():
    with pytest.raises(PhotoRejected, match="not an image"):
        images.load_image(b"id_number,name\n1,2\n")


def test_decompression_bomb_is_refused_before_decoding():
    # A 20000x20000 PNG compresses to a few hundred KB but would take 1.2 GB decoded.
    buffer = io.BytesIO()
    Image.new("L", (20000, 20000)).save(buffer, "PNG")
    with pytest.raises(PhotoRejected, match="too large"):
        images.load_image(buffer.getvalue())


def test_a_48_megapixel_phone_photo_is_read_at_a_smaller_scale_and_enrols():
    """8000x6000 (a phone's high-resolution mode): over the 40 MP limit, so the JPEG is
    decoded at half scale straight from the file; the face is found as in the original."""
    photo = Image.open(person_photo("kit_harington", 1)).convert("RGB").resize((8000, 6000))
    buffer = io.BytesIO()
    photo.save(buffer, "JPEG", quality=80)
    rgb = images.load_image(buffer.getvalue())
    assert rgb.shape[:2] == (3000, 4000)
    assert quality.enrolment_template(rgb, MODEL).encoding.shape == (MODEL.dims,)
    as_png = io.BytesIO()
    Image.new("RGB", (8000, 6000)).save(as_png, "PNG")       # no reduced decoding for PNG
    with pytest.raises(PhotoRejected, match="too large"):
        images.load_image(as_png.getvalue())


def test_a_200_megapixel_phone_photo_is_read_at_a_quarter_scale():
    """16320x12240 (a phone's 200 MP mode): PIL's own bomb guard refused it inside
    Image.open, before draft mode could read it small."""
    buffer = io.BytesIO()
    Image.new("L", (16320, 12240), 128).save(buffer, "JPEG")
    assert images.load_image(buffer.getvalue()).shape == (3060, 4080, 3)


def test_a_large_phone_photo_with_a_multi_picture_block_is_read_at_a_smaller_scale():
    # PIL opens a phone's JPEG with an MPF block (a depth map, a preview) as "MPO"
    buffer = io.BytesIO()
    Image.new("L", (8000, 6000), 100).save(buffer, "MPO", save_all=True,
                                            append_images=[Image.new("L", (64, 48), 50)])
    assert images.load_image(buffer.getvalue()).shape == (3000, 4000, 3)


@pytest.mark.parametrize("name", ["damaged.tif", "damaged.avif"])
def test_a_photo_that_crashes_its_decoder_is_refused_as_corrupt(name):
    # PIL's TIFF and AVIF plugins raise TypeError and RuntimeError on these: one such photo
    # stopped a whole import and was a 500 on the admin's form
    with pytest.raises(PhotoRejected, match="truncated or corrupt"):
        images.load_image(FACES / "edge" / name)


@pytest.mark.parametrize("kind", ["DDS", "SPIDER", "QOI"])
def test_formats_no_camera_writes_are_not_photos(kind):
    buffer = io.BytesIO()
    Image.open(person_photo("kit_harington", 1)).convert("RGB").resize((64, 64)).save(buffer, kind)
    with pytest.raises(PhotoRejected, match="not an image file"):
        images.load_image(buffer.getvalue())


def test_oversized_file_is_refused(tmp_path):
    with pytest.raises(PhotoRejected, match="larger than"):
        images.load_image(b"\xff" * 2048, max_bytes=1024)


def test_rgba_png_enrols():
    rgb = images.load_image(FACES / "edge" / "32bit_rgba.png")
    assert rgb.dtype == np.uint8 and rgb.shape[2] == 3
    assert quality.enrolment_template(rgb, MODEL).encoding.shape == (MODEL.dims,)


@pytest.mark.parametrize("bits", [16, 12, 10])
def test_16_bit_greyscale_png_enrols(bits):
    """16-bit PNGs, also those holding 10- or 12-bit values (scanners), load as bright as
    they were taken, not nearly black."""
    grey = np.asarray(Image.open(person_photo("joe_biden", 2)).convert("L"), dtype=np.uint16)
    grey = (grey.astype(np.uint32) * (2 ** bits - 1) // 255).astype(np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(grey).save(buffer, "PNG")
    rgb = images.load_image(buffer.getvalue())
    assert rgb.max() > 200  # scaled down from its bit depth, not clipped to white or black
    quality.enrolment_template(rgb, MODEL)


def test_exif_orientation_is_applied():
    upright = images.load_image(person_photo("kit_harington", 3))
    # The camera stored the pixels turned; EXIF orientation 6 says "turn 90 degrees clockwise".
    stored = np.ascontiguousarray(np.rot90(upright, 1))
    exif = Image.Exif()
    exif[0x0112] = 6
    loaded = images.load_image(jpeg_bytes(stored, exif=exif.tobytes()))
    assert loaded.shape == upright.shape
    a = quality.enrolment_template(upright, MODEL).encoding
    b = quality.enrolment_template(loaded, MODEL).encoding
    assert np.linalg.norm(a - b) < 0.15


@pytest.mark.parametrize("name", ["kit_with_rose.jpg", "obama_and_biden.jpg", "two_people.jpg"])
def test_group_photos_are_rejected_not_guessed(name):
    with pytest.raises(PhotoRejected, match="faces found; the photo must show exactly one person"):
        quality.enrolment_template(images.load_image(FACES / "group" / name), MODEL)


@pytest.mark.parametrize("name", ["obama_partial_face.jpg", "obama_partial_face2.jpg"])
def test_cut_off_faces_are_rejected(name):
    with pytest.raises(PhotoRejected, match="cut off"):
        quality.enrolment_template(images.load_image(FACES / "edge" / name), MODEL)


def test_photo_without_a_face_is_rejected():
    with pytest.raises(PhotoRejected, match="no face"):
        quality.enrolment_template(np.full((400, 300, 3), 180, np.uint8), MODEL)


def test_tiny_face_is_rejected():
    rgb = images.load_image(person_photo("joe_biden", 2))
    small, _ = images.scaled_to_fit(rgb, 110)
    with pytest.raises(PhotoRejected, match="too small|no face"):
        quality.enrolment_template(small, MODEL)


def test_blurred_photo_is_rejected():
    import cv2
    rgb = images.load_image(person_photo("joe_biden", 2))
    with pytest.raises(PhotoRejected, match="blurry|no face"):
        quality.enrolment_template(cv2.GaussianBlur(rgb, (0, 0), 9), MODEL)


def test_template_blob_round_trip(model):
    vector = np.random.default_rng(1).normal(size=model.dims).astype(np.float32)
    assert np.array_equal(model.from_blob(model.to_blob(vector)), vector)
    with pytest.raises(ValueError):
        model.from_blob(b"\x00" * 100)
    other = next(m for m in models.PROFILES.values() if m.dims != model.dims)
    with pytest.raises(ValueError):        # another model's template is never read as this one's
        model.from_blob(other.to_blob(np.zeros(other.dims)))


def gallery_of(encodings, people, model):
    gallery = Gallery(model)
    for citizen_id, person in enumerate(people, start=1):
        gallery.add(citizen_id, encodings[(person, "1.jpg")])
    return gallery


def test_genuine_probe_is_named(encodings, model):
    people = ["alex_lacamoire", "barack_obama", "joe_biden", "kit_harington"]
    gallery, policy = gallery_of(encodings, people, model), policy_of(model)
    decision = decide(gallery, encodings[("barack_obama", "3.jpg")], policy)
    assert decision.citizen_id == 2
    assert decision.distance < policy.threshold and decision.margin > policy.margin


def test_stranger_is_unknown_under_the_policy(encodings, model):
    gallery = gallery_of(encodings, ["alex_lacamoire", "barack_obama", "joe_biden", "kit_harington"], model)
    for index in (1, 2):
        assert decide(gallery, encodings[("rose_leslie", f"{index}.jpg")],
                      policy_of(model)).citizen_id is None


def test_lookalike_within_the_margin_is_unknown(encodings, model):
    # Two citizens enrolled with nearly the same template: the probe is close to both, so no name.
    gallery = Gallery(model)
    obama = encodings[("barack_obama", "1.jpg")]
    gallery.add(1, obama)
    gallery.add(2, obama + 0.002)
    decision = decide(gallery, encodings[("barack_obama", "2.jpg")], policy_of(model))
    assert decision.citizen_id is None and decision.margin < policy_of(model).margin


def test_runner_up_is_another_citizen_not_a_second_template(encodings, model):
    gallery = Gallery(model)
    gallery.add(1, encodings[("barack_obama", "1.jpg")])
    gallery.add(1, encodings[("barack_obama", "2.jpg")])
    gallery.add(2, encodings[("joe_biden", "1.jpg")])
    best, runner_up = gallery.nearest_two(encodings[("barack_obama", "3.jpg")])
    assert best.citizen_id == 1 and runner_up.citizen_id == 2


def test_removed_citizen_is_never_named(encodings, model):
    gallery = gallery_of(encodings, ["barack_obama", "joe_biden"], model)
    gallery.remove(1)
    assert decide(gallery, encodings[("barack_obama", "3.jpg")], policy_of(model)).citizen_id is None


def test_track_names_only_after_agreeing_frames():
    policy = Policy(threshold=0.5, margin=0.06, min_frames=3, unknown_after=6)
    votes = TrackVotes()
    for citizen in (7, 7):
        votes.add(FrameDecision(citizen, 0.3, 0.2))
        assert votes.verdict(policy) == (None, None)
    votes.add(FrameDecision(7, 0.25, 0.2))
    verdict, best = votes.verdict(policy)
    assert verdict == "named" and best.citizen_id == 7 and best.distance == 0.25


def test_track_with_disagreeing_frames_ends_unknown():
    policy = Policy(threshold=0.5, margin=0.06, min_frames=3, unknown_after=6)
    votes = TrackVotes()
    for citizen in (7, 8, 7, None, 8, 7):
        votes.add(FrameDecision(citizen, 0.4, 0.1))
    assert votes.verdict(policy) == ("unknown", None)


def test_threshold_tightens_as_the_gallery_grows(model):
    bounds = model.bounds
    sizes = [1, 10, 100, 1_000, 10_000, 100_000]
    thresholds = [Policy.for_model(model, n).threshold for n in sizes]
    assert thresholds == sorted(thresholds, reverse=True)
    assert thresholds[0] <= bounds.threshold_ceiling      # never looser than the setting
    assert thresholds[-1] >= bounds.threshold_floor       # never so tight nobody is recognised
    prior = calibration.prior_curve(model)
    for n, t in zip(sizes[:4], thresholds[:4]):           # within the FPIR budget where it can be
        assert t == bounds.threshold_floor or n * calibration.fmr_at(prior, t)[1] <= 0.005


def test_a_match_acceptable_in_a_small_gallery_is_unknown_in_a_large_one(encodings, model):
    probe = encodings[("barack_obama", "3.jpg")]
    small = gallery_of(encodings, ["barack_obama", "joe_biden"], model)
    distance = decide(small, probe, policy_of(model, 2)).distance
    # a gallery big enough that the threshold drops below this probe's distance
    n = next((n for n in (10, 100, 1_000, 10_000, 100_000)
              if Policy.for_model(model, n).threshold < distance), None)
    if n is None:
        pytest.skip(f"{model.name} names this probe at every gallery size (distance {distance:.2f})")
    rng = np.random.default_rng(3)
    strangers = rng.normal(size=(n, model.dims)).astype(np.float32)
    strangers *= 1.5 / np.linalg.norm(strangers, axis=1, keepdims=True)  # far from everyone
    large = Gallery.from_arrays(model, np.arange(3, n + 3), strangers)
    large.add(1, encodings[("barack_obama", "1.jpg")])
    assert decide(small, probe, policy_of(model, 2)).citizen_id == 1
    assert decide(large, probe, Policy.for_model(model, n + 1)).citizen_id is None
