"""Real photographs of faces, and scenes composed from them, with where each face is.

The project can reach no face dataset, but the libraries it installs ship a few real
photographs: matplotlib's grace_hopper.jpg (a runtime dependency), and, where scikit-image is
installed (the tests' and benches' extra), its astronaut.png, camera.png and the 100 small
faces of `lfw_subset.npy` (Labeled Faces in the Wild, 25 x 25 grey). This module knows where
the face and the eyes are in each, and composes pictures from them whose faces are known:

- `single_face_pictures(size)`: one face per picture, at several sizes, turned (roll up to
  45 degrees), mirrored, partly hidden (a bar over the eyes' line or the mouth), darkened, grey;
- `group_picture(size, count, seed)`: many faces, 40 px wide up to a third of the picture,
  some turned or partly hidden, on a textured background;
- `face_frames(count, size)`: video frames of a portrait drifting across a background, some
  without a face (the tests' and `bench/bench_video.py`'s clips).

Each known face is a `TrueFace` (centre, width, the eyes where known); `matches(found, truth)`
pairs detected boxes with them: the box centre inside the face's square and its width within
a factor of 2, so detectors whose boxes frame the face differently all count.

Example:
>>> picture, faces = group_picture((1280, 720), count=12, seed=0)
>>> picture.shape, len(faces)
((720, 1280, 3), 12)
"""

import dataclasses
import functools
import importlib.util
import math
import os

import cv2
import numpy as np

from adcorre.errors import VideoError


@dataclasses.dataclass(frozen=True)
class TrueFace:
    """Where a face is in a picture: `centre` (x, y) and `width` in pixels; the eye centres
    (picture left first) where the source says them, else None."""

    centre: tuple
    width: float
    eyes: tuple = None

    @property
    def box(self):
        """`(x, y, w, h)` of the face's square."""
        half = self.width / 2.0
        return (self.centre[0] - half, self.centre[1] - half, self.width, self.width)


@dataclasses.dataclass(frozen=True)
class Portrait:
    """A real photograph (uint8 RGB) and its one face."""

    name: str
    image: np.ndarray
    face: TrueFace


# The faces of the shipped portraits, measured by hand on the pictures at their own size:
# (file, centre, width, eyes).
_PORTRAITS = {
    "grace_hopper": ("matplotlib", (266.0, 222.0), 180.0, ((225.0, 193.0), (306.0, 193.0))),
    "astronaut": ("skimage", (223.0, 120.0), 92.0, ((202.0, 102.0), (247.0, 103.0))),
    # The cameraman's face is turned away (about 60 degrees of yaw) and small.
    "camera": ("skimage", (232.0, 155.0), 62.0, ((235.0, 147.0), (248.0, 146.0))),
}


def skimage_data_folder():
    """scikit-image's data folder, or None where scikit-image is not installed."""
    spec = importlib.util.find_spec("skimage")
    folder = spec and spec.origin and os.path.join(os.path.dirname(spec.origin), "data")
    return folder if folder and os.path.isdir(folder) else None


@functools.lru_cache(maxsize=None)
def portraits():
    """The real portraits this machine has (grace_hopper always; astronaut, camera with
    scikit-image), as `Portrait`s."""
    import matplotlib.cbook

    found = []
    for name, (source, centre, width, eyes) in _PORTRAITS.items():
        if source == "matplotlib":
            path = matplotlib.cbook.get_sample_data(f"{name}.jpg", asfileobj=False)
        else:
            folder = skimage_data_folder()
            path = folder and os.path.join(folder, f"{name}.png")
        if not path or not os.path.isfile(path):
            continue
        image = cv2.cvtColor(cv2.imread(path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        image.setflags(write=False)
        found.append(Portrait(name, image, TrueFace(centre, width, eyes)))
    return tuple(found)


@functools.lru_cache(maxsize=None)
def small_faces():
    """LFW's 100 face crops (25 x 25 grey, upright, the face filling about 80 % of the width)
    as uint8 RGB; an empty tuple without scikit-image."""
    folder = skimage_data_folder()
    path = folder and os.path.join(folder, "lfw_subset.npy")
    if not path or not os.path.isfile(path):
        return ()
    faces = np.load(path)[:100]  # the first 100 are faces, the other 100 are not
    return tuple(cv2.cvtColor(np.round(face * 255).astype(np.uint8), cv2.COLOR_GRAY2RGB)
                 for face in faces)


# ------------------------------------------------------------------------ placing faces


def _background(size, rng):
    """A textured background (width, height): soft colour gradients, blobs and noise."""
    width, height = size
    low = rng.uniform(40, 200, (3, 3, 3)).astype(np.float32)
    back = cv2.resize(low, (width, height), interpolation=cv2.INTER_CUBIC)
    for _ in range(12):
        centre = (int(rng.uniform(0, width)), int(rng.uniform(0, height)))
        axes = (int(rng.uniform(20, width / 4)), int(rng.uniform(20, height / 4)))
        cv2.ellipse(back, centre, axes, float(rng.uniform(0, 180)), 0, 360,
                    tuple(float(v) for v in rng.uniform(30, 220, 3)), -1)
    back = cv2.GaussianBlur(back, (0, 0), 3)
    back += rng.normal(0, 5, back.shape).astype(np.float32)
    return np.clip(back, 0, 255).astype(np.uint8)


def _paste(canvas, portrait, face, centre, width, angle=0.0, hide=None, context=1.6):
    """Pastes a rotated square of `portrait` around `face` (context x its width) so that the
    face lands at `centre` with `width` px; returns the `TrueFace` placed. `hide`: None,
    "eyes" or "mouth" covers that part with a dark bar."""
    scale = width / face.width
    side = int(round(width * context))
    # The source square, rotated by `angle` about the face centre, mapped onto the patch.
    matrix = cv2.getRotationMatrix2D(face.centre, angle, scale)
    matrix[:, 2] += np.array([side / 2.0, side / 2.0]) - face.centre
    patch = cv2.warpAffine(portrait, matrix, (side, side), flags=cv2.INTER_AREA if scale < 1
                           else cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    eyes = None
    if face.eyes is not None:
        eyes = tuple(tuple(float(v) for v in matrix @ np.array([ex, ey, 1.0]))
                     for ex, ey in face.eyes)
    if hide is not None:
        # Bars in the face's own frame: across the eyes' line, or over the mouth.
        down = 0.0 if hide == "eyes" else 0.28
        height = 0.16 if hide == "eyes" else 0.2
        bar = np.array([[-0.45, down - height / 2], [0.45, down - height / 2],
                        [0.45, down + height / 2], [-0.45, down + height / 2]])
        if hide == "eyes" and face.eyes is not None:
            eye_y = (face.eyes[0][1] + face.eyes[1][1]) / 2 - face.centre[1]
            bar[:, 1] += eye_y / face.width
        rotation = cv2.getRotationMatrix2D((0, 0), angle, width)[:, :2]
        corners = bar @ rotation.T + side / 2.0
        cv2.fillConvexPoly(patch, np.round(corners).astype(np.int32), (25, 25, 30))
    x0, y0 = int(round(centre[0] - side / 2.0)), int(round(centre[1] - side / 2.0))
    top, left = max(0, y0), max(0, x0)
    bottom, right = min(canvas.shape[0], y0 + side), min(canvas.shape[1], x0 + side)
    canvas[top:bottom, left:right] = patch[top - y0:bottom - y0, left - x0:right - x0]
    placed_eyes = None if eyes is None else tuple((ex + x0, ey + y0) for ex, ey in eyes)
    return TrueFace((float(centre[0]), float(centre[1])), float(width), placed_eyes)


def _small_face_portrait(face):
    """An LFW crop as a `Portrait`-like source: the face fills 80 % of its 25 px."""
    return face, TrueFace((12.0, 13.0), 20.0)


def single_face_pictures(size=(640, 480)):
    """Pictures of `size` (width, height) with one known face each: every portrait upright at
    three sizes (a fifth, two fifths and three quarters of the height), turned by -45, -30,
    -15, 15, 30 and 45 degrees, mirrored, with the eyes' line or the mouth hidden, darkened
    and grey.

    Returns:
        list of `(name, picture uint8 RGB, [TrueFace])`.
    """
    width, height = size
    pictures = []
    for index, portrait in enumerate(portraits()):
        rng = np.random.default_rng(index)
        back = _background(size, rng)
        centre = (width / 2.0, height / 2.0)
        variants = [(f"{fraction:.2f} of the height", dict(width=fraction * height))
                    for fraction in (0.2, 0.4, 0.75)]
        variants += [(f"turned {angle:+d}", dict(width=0.4 * height, angle=angle))
                     for angle in (-45, -30, -15, 15, 30, 45)]
        variants += [("eyes hidden", dict(width=0.4 * height, hide="eyes")),
                     ("mouth hidden", dict(width=0.4 * height, hide="mouth")),
                     ("mirrored", dict(width=0.4 * height, mirror=True)),
                     ("dark", dict(width=0.4 * height, dark=True)),
                     ("grey", dict(width=0.4 * height, grey=True))]
        for name, options in variants:
            canvas = back.copy()
            source = portrait.image
            face = portrait.face
            if options.pop("mirror", False):
                source = source[:, ::-1]
                cx = source.shape[1] - 1 - face.centre[0]
                eyes = tuple(sorted((source.shape[1] - 1 - x, y) for x, y in face.eyes))
                face = TrueFace((cx, face.centre[1]), face.width, eyes)
            dark = options.pop("dark", False)
            grey = options.pop("grey", False)
            truth = _paste(canvas, np.ascontiguousarray(source), face, centre, **options)
            if dark:
                canvas = (canvas.astype(np.float32) * 0.35).astype(np.uint8)
            if grey:
                canvas = cv2.cvtColor(cv2.cvtColor(canvas, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
            pictures.append((f"{portrait.name}, {name}", canvas, [truth]))
    return pictures


def group_picture(size=(1280, 720), count=20, seed=0, min_width=40, max_width=None):
    """A picture of `size` (width, height) with `count` known faces that do not overlap.

    Faces come from the portraits (turned up to 30 degrees either way, one in four partly
    hidden) and, up to 60 px, from LFW's small faces (upright), with widths drawn log-uniformly from
    `min_width` to `max_width` (default a third of the height), on a textured background.

    Returns:
        `(picture uint8 RGB, [TrueFace])`; fewer faces when they do not fit.
    """
    width, height = size
    rng = np.random.default_rng(seed)
    canvas = _background(size, rng)
    max_width = max_width or height / 3.0
    large = [(p.image, p.face) for p in portraits()]
    small = [_small_face_portrait(face) for face in small_faces()]
    placed, taken = [], []
    for attempt in range(count * 200):
        if len(placed) == count:
            break
        face_width = float(np.exp(rng.uniform(np.log(min_width), np.log(max_width))))
        side = face_width * 1.6
        cx = rng.uniform(side / 2, width - side / 2)
        cy = rng.uniform(side / 2, height - side / 2)
        if any(abs(cx - ox) < (side + oside) / 2 and abs(cy - oy) < (side + oside) / 2
               for ox, oy, oside in taken):
            continue
        # LFW's 25 px faces only up to 3 times their size (blur beyond); portraits at any.
        portrait_source = not small or face_width > 60 or rng.uniform() < 0.4
        pool = large if portrait_source else small
        image, face = pool[int(rng.integers(len(pool)))]
        angle = float(rng.uniform(-30, 30)) if portrait_source else 0.0
        hide = None
        if portrait_source and rng.uniform() < 0.25:
            hide = "eyes" if rng.uniform() < 0.5 else "mouth"
        placed.append(_paste(canvas, image, face, (cx, cy), face_width, angle, hide))
        taken.append((cx, cy, side))
    return canvas, placed


def matches(boxes, truth):
    """Pairs detected `(x, y, w, h)` boxes with `TrueFace`s, each used once.

    A box matches a face when its centre lies inside the face's square and its width is
    within a factor of 2 of the face's (boxes of different detectors frame a face
    differently: Haar's and BlazeFace's are wider than YuNet's).

    Returns:
        `(found, false_alarms)`: faces matched, boxes left over.
    """
    used, found = set(), 0
    for face in truth:
        for index, (x, y, w, h) in enumerate(boxes):
            if index in used:
                continue
            cx, cy = x + w / 2.0, y + h / 2.0
            inside = (abs(cx - face.centre[0]) <= face.width / 2
                      and abs(cy - face.centre[1]) <= face.width / 2)
            if inside and 0.5 <= max(w, h) / face.width <= 2.0:
                used.add(index)
                found += 1
                break
    return found, len(boxes) - len(used)


# ------------------------------------------------------------------------------ video frames


def face_frames(count, size=(320, 240), empty_every=5, seed=0):
    """`count` RGB frames of `size` (width, height): a portrait (the portraits in turn) at a
    drifting position on a grey-green background; every `empty_every`-th frame (0, 5, 10, ...
    with 5) has no face."""
    width, height = size
    rng = np.random.default_rng(seed)
    background = np.zeros((height, width, 3), np.uint8)
    background[:] = (90, 110, 100)
    background = np.clip(background + rng.normal(0, 6, background.shape), 0, 255).astype(np.uint8)
    # The portrait fills 85 % of the frame height; it slides right 2 px a frame.
    scaled = []
    for portrait in portraits()[:2]:
        factor = 0.85 * height / portrait.image.shape[0]
        scaled.append(cv2.resize(portrait.image, None, fx=factor, fy=factor,
                                 interpolation=cv2.INTER_AREA))
    frames = []
    for index in range(count):
        frame = background.copy()
        if empty_every and index % empty_every == 0:
            frames.append(frame)
            continue
        portrait = scaled[index % len(scaled)]
        ph, pw = portrait.shape[:2]
        x = min(width - pw, max(0, (width - pw) // 2 - 20 + 2 * index % 40))
        y = (height - ph) // 2
        frame[y:y + ph, x:x + pw] = portrait[:, :min(pw, width - x)]
        frames.append(frame)
    return frames


def write_video(path, frames, fps=25.0, codec="mp4v"):
    """Encodes RGB frames into `path` (the suffix picks the container); returns `path`."""
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(os.fspath(path), cv2.VideoWriter_fourcc(*codec), fps, (width, height))
    if not writer.isOpened():
        raise VideoError(f"OpenCV cannot write {path} with codec {codec}")
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def eye_level_angle(left, right):
    """Degrees the line from `left` to `right` eye makes with the horizontal."""
    return math.degrees(math.atan2(right[1] - left[1], right[0] - left[0]))
