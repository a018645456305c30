"""Test videos from real pictures (test helper).

The frames (real portraits pasted on a plain background, moving a little from frame to frame,
some frames without a face) and the writer are `adcorre.data.sample_faces`'s, which the benches
use too; `read_frames` is what a reader of the written file sees.
"""

import os

import cv2

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
