"""Expressions over many frames: videos, webcams and folders of pictures, as tables.

Every frame (or picture) goes through the tester's own path, the one `TestModels.recognize_faces`
takes: `tester.detect` finds the faces, `tester.crops_of` aligns and crops them, `tester.predict`
classifies. A frame without a face is classified whole, as `recognize_fer` does. The only
difference is batching: the crops of several frames share one model call, which changes nothing
but speed (the models run in inference mode, where a picture's result does not depend on the
rest of its batch; the tests allow 1e-5 of float noise).

Tables are pandas DataFrames, one row per face per analysed frame, largest face first:

| column | holds |
| --- | --- |
| `frame` | index of the frame in the file (webcam: frames since the start) |
| `time_s` | `frame / fps` (webcam: seconds since the first frame, by the clock) |
| `face` | 0 = the largest face (or the whole frame when none was found), 1, 2, ... |
| `x`, `y`, `w`, `h` | the face box in frame pixels (the part inside the frame); NaN when no face was found |
| `yaw`, `pitch`, `roll` | head pose in degrees (`face_mesh`); NaN without a face (yaw, pitch also without the mesh) |
| `label` | the most probable class |
| one column per class name | its probability, in the model's label order |

For folders `frame` and `time_s` give way to `path`, and an `error` column holds why a picture
could not be read (that picture gets one row with its error; the batch goes on).

This module takes the tester as an argument and never imports `test_models`.

Example (needs a model file and a video):

```python
from adcorre import TestModels
rows = TestModels(h5_address="model.h5").recognize_video("clip.mp4", csv_path="clip.csv")
rows[rows.face == 0].plot(x="time_s", y=["Happy", "Sad"])
```
"""

import math
import os
import sys
import time
import warnings

import cv2
import numpy as np
import pandas as pd

from adcorre.atomic_files import atomic_path
from adcorre.data import pictures
from adcorre.errors import VideoError

VIDEO_KEY_COLUMNS = ("frame", "time_s")
POSE_COLUMNS = ("yaw", "pitch", "roll")
FACE_COLUMNS = ("face", "x", "y", "w", "h", *POSE_COLUMNS, "label")
# What `time_s` assumes for a file that stores no usable frame rate (most cameras record 25-30).
ASSUMED_FPS = 25.0
# Frame rates a video plausibly has; outside them the file's rate is wrong (an MP4 whose frames
# last 0 s was read at 0.5 fps, its time_s running to 98 s for a 4 s clip).
PLAUSIBLE_FPS = (1.0, 240.0)
# Frames whose timestamps estimate the rate when the file's own is not plausible.
_TIMESTAMP_FRAMES = 12
# Crops per model call: large enough to amortise the call, small enough to keep latency low.
DEFAULT_BATCH_SIZE = 16
# Writers for the annotated video, by file suffix (FOURCCs every OpenCV FFmpeg build encodes).
VIDEO_CODECS = {".mp4": "mp4v", ".mov": "mp4v", ".mkv": "mp4v", ".avi": "MJPG"}
# One colour per class index (RGB), for boxes and labels drawn on frames.
CLASS_COLOURS = ((200, 200, 200), (60, 200, 60), (70, 110, 230), (240, 200, 40),
                 (170, 80, 220), (120, 160, 40), (230, 60, 50), (240, 130, 200))


# ------------------------------------------------------------------------------------ the core


def recognize_video(tester, video_path, csv_path=None, every=1, annotate_path=None,
                    detect_every=1, batch_size=DEFAULT_BATCH_SIZE, progress=False):
    """One row per face per analysed frame of a video file (see the module docstring).

    Args:
        tester: a `TestModels` (its detector, crop settings and model are used).
        video_path: a video file OpenCV's FFmpeg reader opens (mp4, avi, mkv, mov, ...).
        csv_path: also write the rows to this CSV file (atomically).
        every: analyse every n-th frame (1 = all).
        annotate_path: also write the video with boxes and labels drawn (every frame; frames
            between analysed ones show the latest result). Suffix `.mp4`, `.mov`, `.mkv` or `.avi`.
        detect_every: run the face detector on every n-th analysed frame only and reuse its faces
            (boxes and eyes) on the analysed frames between; faster, but a moving face is cropped
            where it was. 1 (the default) detects on every frame, exactly as `recognize_faces`.
        batch_size: crops per model call (crops of several frames go together).
        progress: draw a progress bar with frames/s on stderr.

    Returns:
        pandas DataFrame; `attrs` holds `fps` (used for `time_s`), `frames_read`,
        `frames_analysed` and `seconds` ({"detection", "model", "total"}).

    Raises:
        FileNotFoundError: no such file. VideoError: it cannot be opened or has no frame.
        A file that breaks in the middle gives the rows up to the break and one warning.
    """
    every = _positive_int(every, "every")
    detect_every = _positive_int(detect_every, "detect_every")
    capture, fps, expected = open_video(video_path)
    timings = {"detection": 0.0, "model": 0.0}
    start = time.perf_counter()
    bar = _Progress(expected, enabled=progress)
    rows, counts = [], {"read": 0}
    try:
        frames = _video_frames(capture, video_path, every, keep_all=annotate_path is not None,
                               expected=expected, counts=counts)
        results = recognised(tester, frames, batch_size, detect_every, timings)
        with _AnnotatedVideo(annotate_path, fps, tester.exps) as annotate:
            for index, picture, boxes, probabilities in results:
                if boxes is not None:
                    rows.extend(_face_rows({"frame": index, "time_s": index / fps}, boxes,
                                           probabilities, tester.exps))
                annotate(picture, boxes, probabilities)
                bar.update(index + 1)
    finally:
        capture.release()
        bar.close()
    table = _table(rows, VIDEO_KEY_COLUMNS, tester.exps)
    table.attrs.update(fps=fps, frames_read=counts["read"],
                       frames_analysed=int(table["frame"].nunique()),
                       seconds=dict(timings, total=time.perf_counter() - start))
    if csv_path:
        write_csv(table, csv_path)
    return table


def recognize_pictures(tester, paths, csv_path=None, batch_size=DEFAULT_BATCH_SIZE):
    """One row per face per picture; a picture that cannot be read gets one row with its error.

    Args:
        tester: a `TestModels`.
        paths: picture files.
        csv_path: also write the rows to this CSV file (atomically).
        batch_size: crops per model call.

    Returns:
        pandas DataFrame with `path`, the face columns, one probability column per class and
        `error` (empty unless the picture could not be read).
    """
    rows = []
    for path, boxes, outcome in recognize_each(tester, paths, batch_size=batch_size):
        # A name that is not UTF-8 (a Latin-1 é on Linux) is written as its bytes show it: the
        # CSV is UTF-8 text, and the file itself was read all the same.
        name = pictures.printable_path(path)
        if boxes is None:
            rows.append({"path": name, "error": str(outcome)})
        else:
            rows.extend({**row, "error": ""} for row in _face_rows(
                {"path": name}, boxes, outcome, tester.exps))
    table = _table(rows, ("path",), tester.exps, extra=("error",))
    table["error"] = table["error"].fillna("")
    if csv_path:
        write_csv(table, csv_path)
    return table


def recognize_each(tester, sources, largest_only=False, batch_size=DEFAULT_BATCH_SIZE):
    """Recognises the faces of many pictures, the crops of several pictures per model call.

    Each picture is read, detected and cropped exactly as `TestModels.recognize_faces` does
    (with `largest_only`, as `recognize_fer`: the largest face only); a picture without a face
    is classified whole. A picture that cannot be read does not stop the others.

    Args:
        tester: a `TestModels`.
        sources: paths, encoded bytes or arrays (grey, RGB or RGBA).
        largest_only: keep only the largest face of each picture.
        batch_size: crops per model call; results come out a batch at a time, in input order.

    Yields:
        `(source, boxes, probabilities)`: `boxes` a list (`[None]` for the whole picture) and
        `probabilities` (len(boxes), classes); or `(source, None, error)` for a picture that
        could not be read (`error` the exception, a user error naming the picture).
    """
    sources, errors = list(sources), {}

    def readable():
        for index, source in enumerate(sources):
            try:
                yield index, pictures.read_picture(source), True
            except (OSError, ValueError, cv2.error) as error:  # reading errors name the file
                errors[index] = error
                yield index, None, False

    items = recognised(tester, readable(), batch_size, 1, {}, largest_only=largest_only)
    for (index, _, boxes, probabilities), source in zip(items, sources):
        yield (source, None, errors[index]) if boxes is None else (source, boxes, probabilities)


def write_csv(table, path):
    """Writes a table as CSV (no index) atomically; `pandas.read_csv` reads it back equal."""
    with atomic_path(path) as temporary:
        table.to_csv(temporary, index=False)
    return path


def recognised(tester, items, batch_size, detect_every, timings, largest_only=False):
    """Recognises the faces of a stream of pictures, several pictures per model call.

    Args:
        tester: a `TestModels`.
        items: iterable of `(key, picture, analyse)`; pictures with `analyse` False pass
            through unanalysed (frames kept only for the annotated video, unreadable pictures).
        batch_size: crops per model call.
        detect_every: run the detector on every n-th analysed picture, reusing its faces between.
        timings: a dict whose `detection` and `model` seconds are added to.
        largest_only: keep only the largest face of each picture (as `recognize_fer`).

    Yields:
        `(key, picture, boxes, probabilities)` in input order; `boxes` is a list (`None` for the
        whole picture) or None for an unanalysed item, `probabilities` (len(boxes), classes).
    """
    batch_size = _positive_int(batch_size, "batch_size")
    pending, crops, faces, analysed = [], [], [], 0
    for key, picture, analyse in items:
        if not analyse:
            pending.append((key, picture, None, 0))
            if not crops:  # nothing waits for the model: pass it through now
                yield from _classify(tester, pending, crops, timings)
                pending = []
            continue
        tick = time.perf_counter()
        if analysed % detect_every == 0:
            faces = tester.detect(picture)
        analysed += 1
        picture_crops, boxes = tester.crops_of(picture, faces[:1] if largest_only else faces)
        timings["detection"] = timings.get("detection", 0.0) + time.perf_counter() - tick
        pending.append((key, picture, boxes, len(boxes)))
        crops.extend(picture_crops)
        if len(crops) >= batch_size:
            yield from _classify(tester, pending, crops, timings)
            pending, crops = [], []
    yield from _classify(tester, pending, crops, timings)


def _classify(tester, pending, crops, timings):
    if crops:
        tick = time.perf_counter()
        probabilities = tester.predict(np.stack(crops))
        timings["model"] = timings.get("model", 0.0) + time.perf_counter() - tick
    start = 0
    for key, picture, boxes, count in pending:
        yield key, picture, boxes, (None if boxes is None else probabilities[start:start + count])
        start += count


def _face_rows(key, boxes, probabilities, labels):
    for face, (box, scores) in enumerate(zip(boxes, probabilities)):
        x, y, w, h = (math.nan,) * 4 if box is None else box
        # A face's box (`face_crops.FaceBox`) carries its head pose; NaN where none is known.
        pose = getattr(box, "pose", {})
        pose = {name: math.nan if pose.get(name) is None else pose[name] for name in POSE_COLUMNS}
        yield {**key, "face": face, "x": x, "y": y, "w": w, "h": h, **pose,
               "label": labels[int(np.argmax(scores))],
               **{name: float(p) for name, p in zip(labels, scores)}}


def _table(rows, key_columns, labels, extra=()):
    columns = list(key_columns) + list(FACE_COLUMNS) + list(labels) + list(extra)
    table = pd.DataFrame(rows, columns=columns)
    # Fixed dtypes, whatever the rows held: boxes are float (NaN for "no face").
    dtypes = {"frame": "int64", "time_s": "float64", "face": "Int64" if extra else "int64",
              **{name: "float64" for name in ("x", "y", "w", "h", *POSE_COLUMNS, *labels)}}
    return table.astype({name: kind for name, kind in dtypes.items() if name in table})


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")
    return int(value)


# -------------------------------------------------------------------------------------- videos


def open_video(path):
    """Opens a video file for reading.

    Returns:
        `(capture, fps, frame_count)`: a `cv2.VideoCapture`, the frame rate (when the file's own
        is outside `PLAUSIBLE_FPS`: its frames' timestamps', else `ASSUMED_FPS`, with one
        warning) and the frame count its header announces (0 when unknown).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"Video not found: {path!r}.")
    if not os.path.isfile(path):  # a folder, or a device or FIFO (/dev/zero) that never ends
        what = "a folder" if os.path.isdir(path) else "not a regular file (a device or FIFO)"
        raise VideoError(f"Video {path!r} is {what}; expected a video file (a camera is "
                         "--webcam INDEX).")
    capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        raise VideoError(
            f"Cannot open video {path!r}: OpenCV's FFmpeg reader does not recognise it (not a "
            "video, a codec FFmpeg lacks, or an MP4/MOV cut short, whose index is at the end).")
    fps = capture.get(cv2.CAP_PROP_FPS)
    if not (math.isfinite(fps) and PLAUSIBLE_FPS[0] <= fps <= PLAUSIBLE_FPS[1]):
        fps = _rate_from_timestamps(path, fps)
    expected = capture.get(cv2.CAP_PROP_FRAME_COUNT)
    return capture, float(fps), int(expected) if math.isfinite(expected) and expected > 0 else 0


def _rate_from_timestamps(path, stored):
    """The frame rate of the first frames' timestamps, or `ASSUMED_FPS`; one warning says which
    (`stored`, the file's own rate, is outside `PLAUSIBLE_FPS`)."""
    probe = cv2.VideoCapture(path)
    stamps = []
    try:
        while len(stamps) < _TIMESTAMP_FRAMES and probe.grab():
            stamps.append(probe.get(cv2.CAP_PROP_POS_MSEC))
    finally:
        probe.release()
    said = f"{stored:g} fps" if math.isfinite(stored) and stored > 0 else "no frame rate"
    steps = np.diff(stamps)
    if len(steps) and (steps > 0).all():
        rate = 1000.0 / float(np.mean(steps))
        if PLAUSIBLE_FPS[0] <= rate <= PLAUSIBLE_FPS[1]:
            warnings.warn(f"Video {path!r} stores {said}; time_s follows its frames' timestamps "
                          f"instead ({rate:.3g} fps).", stacklevel=4)
            return rate
    warnings.warn(f"Video {path!r} stores {said} and its frames' timestamps give none between "
                  f"{PLAUSIBLE_FPS[0]:g} and {PLAUSIBLE_FPS[1]:g} fps; time_s assumes "
                  f"{ASSUMED_FPS:g} fps.", stacklevel=4)
    return ASSUMED_FPS


def _video_frames(capture, path, every, keep_all, expected, counts):
    """Yields `(index, RGB frame, analyse)`; frames not analysed are only decoded (and yielded)
    when `keep_all` (the annotated video needs them). `counts["read"]`: frames read so far."""
    index = 0
    while True:
        analyse = index % every == 0
        if analyse or keep_all:
            ok, frame = capture.read()
        else:
            ok, frame = capture.grab(), None
        if not ok:
            break
        index += 1
        counts["read"] = index
        if frame is not None:
            yield index - 1, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), analyse
    if index == 0:
        raise VideoError(f"Video {path!r} has no frame OpenCV can decode.")
    if index < expected:
        warnings.warn(
            f"Video {path!r} broke off after frame {index - 1}: {index} of the {expected} frames "
            "its header announces could be decoded (the file is truncated or damaged); the rows "
            "stop there.", stacklevel=2)


class _AnnotatedVideo:
    """Context manager: a callable that draws results on frames and writes them (or a no-op)."""

    def __init__(self, path, fps, labels):
        self.path, self.fps, self.labels = path, fps, labels
        self.writer, self.last = None, (None, None)

    def __enter__(self):
        if self.path is None:
            return lambda picture, boxes, probabilities: None
        suffix = os.path.splitext(os.fspath(self.path))[1].lower()
        if suffix not in VIDEO_CODECS:
            raise VideoError(f"Annotated video {os.fspath(self.path)!r}: expected a suffix among "
                             f"{', '.join(VIDEO_CODECS)}.")
        self._atomic = atomic_path(self.path)
        self.temporary = self._atomic.__enter__()
        return self.write

    def write(self, picture, boxes, probabilities):
        if boxes is not None:
            self.last = (boxes, probabilities)
        frame = cv2.cvtColor(picture, cv2.COLOR_RGB2BGR)
        draw_results(frame, *self.last, self.labels, bgr=True)
        if self.writer is None:
            codec = VIDEO_CODECS[os.path.splitext(self.temporary)[1].lower()]
            self.writer = cv2.VideoWriter(self.temporary, cv2.VideoWriter_fourcc(*codec), self.fps,
                                          (frame.shape[1], frame.shape[0]))
            if not self.writer.isOpened():
                raise VideoError(
                    f"OpenCV cannot write {os.fspath(self.path)!r} with codec {codec}.")
        self.writer.write(frame)

    def __exit__(self, kind, error, trace):
        if self.path is None:
            return False
        if self.writer is not None:
            self.writer.release()
        failed = error
        if failed is None and self.writer is None:
            failed = VideoError(f"No frame to write to {os.fspath(self.path)!r}.")
        # On failure the temporary file goes and the destination is left as it was.
        self._atomic.__exit__(type(failed) if failed else None, failed, trace)
        if failed is not None and error is None:
            raise failed
        return False


def draw_results(frame, boxes, probabilities, labels, bgr=False):
    """Draws each face's box and `label probability` on a frame (uint8, in place).

    A result without a box (no face: the whole frame was classified) is written in the top-left
    corner. Colours follow `CLASS_COLOURS` by class index.

    Args:
        frame: uint8 (h, w, 3), RGB, or BGR when `bgr` (OpenCV's own order).
        boxes: list of `(x, y, w, h)` or None, as `crops_of` returns; None draws nothing.
        probabilities: (len(boxes), classes).
        labels: class names.
    """
    if boxes is None:
        return frame
    thickness = max(1, round(min(frame.shape[:2]) / 240))
    scale = 0.5 * thickness
    for box, scores in zip(boxes, probabilities):
        best = int(np.argmax(scores))
        colour = CLASS_COLOURS[best % len(CLASS_COLOURS)]
        colour = colour[::-1] if bgr else colour
        text = f"{labels[best]} {scores[best]:.2f}"
        if box is None:
            origin = (8, 8 + int(22 * scale))
            text += " (whole frame)"
        else:
            x, y, w, h = (int(v) for v in box)
            cv2.rectangle(frame, (x, y), (x + w, y + h), colour, thickness, cv2.LINE_AA)
            origin = (x, max(int(22 * scale), y - 6))
        cv2.putText(frame, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0),
                    thickness + 2, cv2.LINE_AA)
        cv2.putText(frame, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thickness,
                    cv2.LINE_AA)
    return frame


class _Progress:
    """`frame 120/250  48 %  31.2 frames/s` on stderr, redrawn at most twice a second."""

    def __init__(self, total, enabled):
        self.total, self.enabled = total, enabled
        self.start = self.shown = time.perf_counter()
        self.done = 0

    def update(self, done):
        self.done = done
        now = time.perf_counter()
        if self.enabled and now - self.shown >= 0.5:
            self.shown = now
            sys.stderr.write("\r" + self.text(now))
            sys.stderr.flush()

    def text(self, now):
        rate = self.done / max(now - self.start, 1e-9)
        if self.total:
            width = 30
            filled = min(width, width * self.done // self.total)
            return (f"[{'=' * filled}{'.' * (width - filled)}] frame {self.done}/{self.total} "
                    f"{rate:5.1f} frames/s")
        return f"frame {self.done} {rate:5.1f} frames/s"

    def close(self):
        if self.enabled and self.done:
            sys.stderr.write("\r" + self.text(time.perf_counter()) + "\n")
            sys.stderr.flush()


# ------------------------------------------------------------------------------------- webcams


def open_webcam(camera=0):
    """Opens a camera for the live window, after checking that a window can be shown.

    Raises:
        VideoError: this OpenCV build has no GUI (the headless wheel), there is no display,
            or no camera answers at `camera`; each message says what is missing and the fix.
    """
    _require_display()
    capture = cv2.VideoCapture(camera)
    if not capture.isOpened():
        raise VideoError(
            f"No camera at index {camera}: OpenCV could not open it. Check that a camera is "
            "connected and free (on Linux /dev/video*, readable by you), or try another index "
            "(--webcam 1).")
    return capture


def _require_display():
    gui = [line.split(":", 1)[1].strip() for line in cv2.getBuildInformation().splitlines()
           if line.strip().startswith("GUI:")]
    if gui and gui[0].upper() == "NONE":
        raise VideoError(
            f"This OpenCV ({cv2.__version__}, the headless wheel) cannot open windows, which the "
            "live webcam view needs. Install the GUI wheel in its place: pip uninstall "
            "opencv-python-headless && pip install 'opencv-python>=4.10,<5'.")
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY")
                                                 or os.environ.get("WAYLAND_DISPLAY")):
        raise VideoError(
            "No display for the live webcam window (neither DISPLAY nor WAYLAND_DISPLAY is set): "
            "run it on a desktop session, or with ssh -X.")


def show_in_window(title="Ad-Corre (q or Esc quits)"):
    """A `show` callback for `recognize_stream`: an OpenCV window; True once the user quits."""

    def show(frame_bgr):
        cv2.imshow(title, frame_bgr)
        key = cv2.waitKey(1) & 0xFF
        closed = cv2.getWindowProperty(title, cv2.WND_PROP_VISIBLE) < 1
        if key in (ord("q"), 27) or closed:
            cv2.destroyWindow(title)
            return True
        return False

    return show


def recognize_stream(tester, capture, show=None, csv_path=None, max_frames=None):
    """Live recognition: every frame of `capture` analysed at once, its results shown.

    The rows are those of `recognize_video` (`frame` counts from 0; `time_s` is clock time since
    the first frame, as a camera's nominal frame rate is rarely its real one). It stops when the
    capture ends, `show` returns True, after `max_frames`, or on Ctrl+C; the rows read until then
    are kept and written.

    Args:
        tester: a `TestModels`.
        capture: an opened `cv2.VideoCapture` (or anything with `read()` -> `(ok, BGR frame)`).
        show: called with each annotated BGR frame; returns True to stop (`show_in_window()`).
        csv_path: also write the rows to this CSV file (atomically).
        max_frames: stop after this many frames.

    Returns:
        pandas DataFrame, as `recognize_video`'s.
    """
    rows, index, start, stop = [], 0, None, False
    try:
        while not stop and (max_frames is None or index < max_frames):
            ok, frame = capture.read()
            if not ok:
                break
            now = time.perf_counter()
            start = now if start is None else start
            picture = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            for _, _, boxes, probabilities in recognised(
                    tester, [(index, picture, True)], 1, 1, {}):
                rows.extend(_face_rows({"frame": index, "time_s": now - start}, boxes,
                                       probabilities, tester.exps))
                if show is not None:
                    stop = bool(show(draw_results(frame, boxes, probabilities, tester.exps,
                                                  bgr=True)))
            index += 1
    except KeyboardInterrupt:
        pass
    finally:
        release = getattr(capture, "release", None)
        if release is not None:
            release()
    table = _table(rows, VIDEO_KEY_COLUMNS, tester.exps)
    if csv_path:
        write_csv(table, csv_path)
    return table
