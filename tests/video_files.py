"""Test videos from real pictures (test helper).

The frames (real portraits pasted on a plain background, moving a little from frame to frame,
some frames without a face) and the writer are `adcorre.data.sample_faces`'s, which the benches
use too; `read_frames` is what a reader of the written file sees.
"""

import os

import cv2
import numpy as np

from adcorre.data.sample_faces import face_frames, write_video  # noqa: F401  (re-exported)
from adcorre.data import sample_faces


def sample_pictures():
    """Real portraits as uint8 RGB: grace_hopper, then astronaut where scikit-image has it."""
    return [portrait.image for portrait in sample_faces.portraits()[:2]]


def read_frames(path):
    """Every frame OpenCV decodes from `path`, as RGB (what a reader of the file sees)."""
    capture = cv2.VideoCapture(os.fspath(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    capture.release()
    return frames


def _face_patch(portrait, width, context=1.5):
    """A square of `portrait` around its face, `context` face widths wide, scaled so the face
    is `width` px wide."""
    face = portrait.face
    scale = width / face.width
    side = int(round(width * context))
    matrix = np.array([[scale, 0.0, side / 2.0 - scale * face.centre[0]],
                       [0.0, scale, side / 2.0 - scale * face.centre[1]]])
    return cv2.warpAffine(portrait.image, matrix, (side, side), flags=cv2.INTER_AREA,
                          borderMode=cv2.BORDER_REPLICATE)


def _place(canvas, patch, centre):
    """Pastes `patch` centred at `centre` (x, y), cut at the canvas' edges."""
    side = patch.shape[0]
    x0, y0 = int(round(centre[0] - side / 2.0)), int(round(centre[1] - side / 2.0))
    top, left = max(0, y0), max(0, x0)
    bottom, right = min(canvas.shape[0], y0 + side), min(canvas.shape[1], x0 + side)
    if bottom > top and right > left:
        canvas[top:bottom, left:right] = patch[top - y0:bottom - y0, left - x0:right - x0]


def people_frames(paths, size=(320, 240), face_width=64, seed=0):
    """Frames of real faces moving along paths, the later paths drawn in front of the earlier.

    Args:
        paths: one list per person (the portraits in turn: grace_hopper, astronaut, ...) of the
            face centre `(x, y)` in each frame, or None where that person is out of sight.
        size: `(width, height)` of the frames.
        face_width: width of each face in pixels.

    Returns:
        `(frames, truth, owners)`: RGB frames; per frame `{person: (cx, cy)}` of the faces drawn
        in it (a face covered by a later one is still listed); and per frame an int8 map of
        whose face each pixel shows (-1: none), the face being the square of `face_width`
        around its centre, so a face partly covered owns only what shows of it.
    """
    width, height = size
    rng = np.random.default_rng(seed)
    background = np.full((height, width, 3), (90, 110, 100), np.float32)
    background = np.clip(background + rng.normal(0, 6, background.shape), 0, 255).astype(np.uint8)
    patches = [_face_patch(portrait, face_width) for portrait in sample_faces.portraits()[:2]]
    frames, truth, owners = [], [], []
    for index in range(len(paths[0])):
        frame, seen = background.copy(), {}
        owner = np.full((height, width), -1, np.int8)
        for person, path in enumerate(paths):
            if path[index] is not None:
                patch = patches[person % len(patches)]
                _place(frame, patch, path[index])
                # The whole patch hides what is behind it; only its face square is this face.
                _place(owner, np.full(patch.shape[:2], -1, np.int8), path[index])
                _place(owner, np.full((face_width, face_width), person, np.int8), path[index])
                seen[person] = path[index]
        frames.append(frame)
        truth.append(seen)
        owners.append(owner)
    return frames, truth, owners


def whose(box, owner, least=0.25):
    """The person whose face shows most inside `box` (x, y, w, h) on an `owners` map, or None
    when none fills at least `least` of the box."""
    x, y, w, h = (int(round(v)) for v in box)
    inside = owner[max(0, y):y + h, max(0, x):x + w]
    counts = np.bincount(inside[inside >= 0].ravel().astype(np.int64))
    if not counts.size or counts.max() < least * w * h:
        return None
    return int(np.argmax(counts))
