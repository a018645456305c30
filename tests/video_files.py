"""Writes test videos with OpenCV from real pictures (test and bench helper).

`face_frames` pastes real portraits (matplotlib's grace_hopper.jpg, scikit-image's astronaut
when it is installed) onto a plain background, moving a little from frame to frame, with some
frames left without a face; `write_video` encodes frames with OpenCV's FFmpeg writer.
"""

import os

import cv2
import numpy as np
from helpers import grace_hopper_path, skimage_data_path


def sample_pictures():
    """Real portraits as uint8 RGB: grace_hopper, then astronaut where scikit-image has it."""
    found = [grace_hopper_path(), skimage_data_path("astronaut.png", required=False)]
    found = [path for path in found if path]
    return [cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB) for path in found]


def face_frames(count, size=(320, 240), portraits=None, empty_every=5, seed=0):
    """`count` RGB frames of `size` (width, height): a portrait at a drifting position on a
    grey-green background; every `empty_every`-th frame (0, 5, 10, ... with 5) has no face."""
    width, height = size
    portraits = sample_pictures() if portraits is None else portraits
    rng = np.random.default_rng(seed)
    background = np.zeros((height, width, 3), np.uint8)
    background[:] = (90, 110, 100)
    background = np.clip(background + rng.normal(0, 6, background.shape), 0, 255).astype(np.uint8)
    # The portrait fills 85 % of the frame height; it slides right 2 px a frame.
    scaled = []
    for portrait in portraits:
        factor = 0.85 * height / portrait.shape[0]
        scaled.append(cv2.resize(portrait, None, fx=factor, fy=factor,
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
        raise RuntimeError(f"OpenCV cannot write {path} with codec {codec}")
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


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
