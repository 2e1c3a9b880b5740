"""dlib's ResNet 128-d face model (face_recognition_models): selectable, no longer the default.

Trained and usually quoted on LFW, mostly Western faces (99.38 % on LFW pairs). On
East-Asian faces different people come far closer: at a false-match rate of 1e-4 it accepts
52 % of same-person pairs (MobileFaceNet: 91 %), so a registry on it greets about half of
its Chinese citizens at a safe point. Kept for registries enrolled on it (until
`flask --app app reencode --model mobilefacenet`) and as the benchmarks' baseline.
"""
import importlib.util
import os

from .. import engine
from .profile import Bounds, FaceModel

# log10 FMR = FMR_LOG10_AT_0 + FMR_LOG10_SLOPE * t: a public fit over all 81.9 million pairs
# of LFW (13k photos, 5.7k people), FMR ~ 3.6e-5 at 0.45 and ~ 2.5e-4 at 0.50. On East-Asian
# faces the measured rate is 250-320 times this, so it is only ever one side of a maximum.
FMR_LOG10_AT_0 = -12.0
FMR_LOG10_SLOPE = 16.8


def _package_file(name):
    """A file of face_recognition_models, found without importing it (it imports the slow,
    deprecated pkg_resources)."""
    spec = importlib.util.find_spec("face_recognition_models")
    folder = list(spec.submodule_search_locations)[0] if spec else ""
    return os.path.join(folder, "models", name)


class DlibResNet(FaceModel):
    name = "dlib"
    title = "dlib ResNet 128-d, face_recognition_models"
    dims = 128
    sha256 = "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30"
    alignment = "dlib's 5-point landmarks -> dlib's own 150x150 chip"
    bounds = Bounds(
        threshold_floor=0.30, threshold_ceiling=0.50, threshold_range=(0.20, 0.60),
        margin=0.06, margin_range=(0.0, 0.30),
        one_to_one_ceiling=0.45, one_to_one_range=(0.30, 0.55),
        # face_recognition's 1:1 tolerance: past it even the same person's photos rarely
        # fall, and different people's start to in bulk (on LFW ~ 1 pair in 100)
        duplicate_ceiling=0.60,
        # one face's frames stay within ~0.28 of each other (the test clip, the shared video);
        # two East-Asian people are 0.44 apart or more in 99 of 100 pairs
        same_face=0.40,
        # its templates are not normalised (about unit length): 4 leaves room for any two,
        # the histograms stop at 1.2, past every pair of faces seen
        max_reported=4.0,
        grid=(0.20, 0.90, 0.005), histogram_step=0.02, histogram_max=1.2, tick=0.1)
    max_tail_slope = FMR_LOG10_SLOPE
    naive_tolerance = 0.6            # face_recognition's compare_faces default

    def __init__(self, landmarks="small"):
        super().__init__()
        self.landmarks = landmarks   # "large" (68 points) only for the bench's comparison

    @property
    def file(self):
        return _package_file("dlib_face_recognition_resnet_model_v1.dat")

    def _open(self):
        return engine.dlib_encoder(self.file)

    def _encode(self, net, rgb, locations, jitters):
        return [engine.dlib_encode(net, rgb, engine.face_landmarks(rgb, location, model=self.landmarks),
                                   jitters) for location in locations]

    def fitted_fmr(self, t):
        return 10 ** (FMR_LOG10_AT_0 + FMR_LOG10_SLOPE * t)


MODEL = DlibResNet()
