"""Expressions over many frames: videos, streams, webcams and folders of pictures, as tables.

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
| `person` | the person's id, the same in every frame (`people.PersonTracker`); <NA> for none |
| `x`, `y`, `w`, `h` | the face box in frame pixels (the part inside the frame); NaN when no face was found |
| `yaw`, `pitch`, `roll` | head pose in degrees (`face_mesh`); NaN without a face (yaw, pitch also without the mesh) |
| `label` | the most probable class |
| one column per class name | its probability, in the model's label order (`smooth`: averaged) |

For folders `frame` and `time_s` give way to `path`, `person` is not there, and an `error`
column holds why a picture could not be read (that picture gets one row with its error; the
batch goes on).

Videos may be files or `http(s)://` and `rtsp://` addresses (what OpenCV's FFmpeg reads). Their
rows are written to the CSV as they are analysed (a chunk of whole rows at a time), so the file
holds every row analysed whatever stops the run; memory stays flat with `return_table=False`.
Ctrl+C or SIGTERM ends a video with `VideoStopped` (a `KeyboardInterrupt`) that carries the rows
so far; the CSV and the annotated video hold them too.

This module takes the tester as an argument and never imports `test_models`.

Example (needs a model file and a video):

```python
from adcorre import TestModels
rows = TestModels(h5_address="model.h5").recognize_video("clip.mp4", csv_path="clip.csv")
rows[rows.person == 0].plot(x="time_s", y=["Happy", "Sad"])
```
"""

import contextlib
import math
import os
import re
import signal
import sys
import threading
import time
import warnings

import cv2
import numpy as np
import pandas as pd

from adcorre.atomic_files import atomic_path
from adcorre.data import pictures
from adcorre.errors import VideoError
from adcorre.inference.people import DEFAULT_MEMORY_S, PersonTracker, ProbabilitySmoother

VIDEO_KEY_COLUMNS = ("frame", "time_s")
POSE_COLUMNS = ("yaw", "pitch", "roll")
FACE_COLUMNS = ("face", "x", "y", "w", "h", *POSE_COLUMNS, "label")
PERSON_COLUMN = "person"
# What `time_s` assumes for a file that stores no usable frame rate (most cameras record 25-30).
ASSUMED_FPS = 25.0
# Frame rates a video plausibly has; outside them the file's rate is wrong (an MP4 whose frames
# last 0 s was read at 0.5 fps, its time_s running to 98 s for a 4 s clip).
PLAUSIBLE_FPS = (1.0, 240.0)
# Frames whose timestamps estimate the rate when the file's own is not plausible.
_TIMESTAMP_FRAMES = 12
# Crops per model call: large enough to amortise the call, small enough to keep latency low.
DEFAULT_BATCH_SIZE = 16
# Addresses `recognize_video` reads through OpenCV's FFmpeg (its build has these protocols).
STREAM_SCHEMES = ("http", "https", "rtsp")
# A stream that neither opens nor sends a frame for this long has stalled: the run ends there.
DEFAULT_STALL_TIMEOUT_S = 10.0
# Rows go to the CSV in chunks of whole rows: at most this many rows, or this many seconds, wait.
CSV_CHUNK_ROWS = 256
CSV_CHUNK_SECONDS = 1.0
# Writers for the annotated video, by file suffix (FOURCCs every OpenCV FFmpeg build encodes).
VIDEO_CODECS = {".mp4": "mp4v", ".mov": "mp4v", ".mkv": "mp4v", ".avi": "MJPG"}
# One colour per class index (RGB), for boxes and labels drawn on frames.
CLASS_COLOURS = ((200, 200, 200), (60, 200, 60), (70, 110, 230), (240, 200, 40),
                 (170, 80, 220), (120, 160, 40), (230, 60, 50), (240, 130, 200))


class VideoStopped(KeyboardInterrupt):
    """Ctrl+C (SIGINT) or SIGTERM stopped a video: the CSV and the annotated video hold what was
    analysed, and `table` the rows so far (no rows with `return_table=False`). A
    `KeyboardInterrupt`, so a caller that does not catch it stops as on any Ctrl+C."""

    def __init__(self, signal_number, message, table):
        super().__init__(message)
        self.signal_number, self.table = signal_number, table


# ------------------------------------------------------------------------------------ the core


def recognize_video(tester, video_path, csv_path=None, every=1, annotate_path=None,
                    detect_every=1, batch_size=DEFAULT_BATCH_SIZE, progress=False, smooth=0.0,
                    stall_timeout=DEFAULT_STALL_TIMEOUT_S, return_table=True):
    """One row per face per analysed frame of a video file or stream (see the module docstring).

    Args:
        tester: a `TestModels` (its detector, crop settings and model are used).
        video_path: a video file OpenCV's FFmpeg reader opens (mp4, avi, mkv, mov, ...), or an
            `http(s)://` or `rtsp://` address.
        csv_path: also write the rows to this CSV file (or writable text file object), as they
            are analysed: whatever stops the run, the file holds whole rows.
        every: analyse every n-th frame (1 = all).
        annotate_path: also write the video with boxes, persons and labels drawn (every frame;
            frames between analysed ones show the latest result). Suffix `.mp4`, `.mov`, `.mkv`
            or `.avi`.
        detect_every: run the face detector on every n-th analysed frame only and reuse its faces
            (boxes and eyes) on the analysed frames between; faster, but a moving face is cropped
            where it was. 1 (the default) detects on every frame, exactly as `recognize_faces`.
        batch_size: crops per model call (crops of several frames go together).
        progress: draw a progress bar on stderr (frames/s and the time left; for a stream
            without a frame count, frames and frames/s).
        smooth: seconds; each person's probabilities (and label) become their mean over the
            person's rows of the last `smooth` seconds (0, the default: each frame's own).
        stall_timeout: seconds; a stream that does not open, or sends no frame, for this long
            ends the run with the rows so far and one warning (files: unused).
        return_table: False returns the table without its rows (columns, dtypes and `attrs`
            only), so a long video runs in flat memory; the rows are in `csv_path`.

    Returns:
        pandas DataFrame; `attrs` holds `fps` (used for `time_s`), `frames_read`,
        `frames_analysed`, `rows`, `rows_with_face`, `people` (ids given) and `seconds`
        ({"detection", "model", "total"}).

    Raises:
        FileNotFoundError: no such file. VideoError: it cannot be opened or has no frame.
        VideoStopped: Ctrl+C or SIGTERM; it carries the rows so far (the CSV holds them).
            While the video runs in the main thread, SIGTERM's handler is this function's; the
            one before is put back at the end.
        A file or stream that breaks or stalls in the middle gives the rows up to there and
        one warning.
    """
    every = _positive_int(every, "every")
    detect_every = _positive_int(detect_every, "detect_every")
    people = _People(smooth)
    stall_timeout = _positive_seconds(stall_timeout, "stall_timeout")
    capture, fps, expected = open_video(video_path, stall_timeout)
    timings = {"detection": 0.0, "model": 0.0}
    start = time.perf_counter()
    bar = _Progress(expected, enabled=progress)
    counts = {"read": 0}
    output = _TableOutput(csv_path, _columns(VIDEO_KEY_COLUMNS, tester.exps, people=True),
                          keep=return_table)
    try:
        with _signals_stop(), output, _AnnotatedVideo(annotate_path, fps, tester.exps) as annotate:
            frames = _video_frames(capture, video_path, every, keep_all=annotate_path is not None,
                                   expected=expected, counts=counts,
                                   stall_timeout=stall_timeout if is_stream(video_path) else None)
            for index, picture, boxes, probabilities in recognised(
                    tester, frames, batch_size, detect_every, timings):
                ids = None
                if boxes is not None:
                    ids, probabilities = people.follow(index / fps, picture, boxes, probabilities)
                    output.add(_face_rows({"frame": index, "time_s": index / fps}, boxes,
                                          probabilities, tester.exps, ids))
                annotate(picture, boxes, probabilities, ids)
                bar.update(index + 1)
    except KeyboardInterrupt as stop:
        number = getattr(stop, "signal_number", signal.SIGINT)
        table = _finished(output, fps, counts, people, timings, start)
        where = (f"; the rows so far are in {printable_source(csv_path)!r}"
                 if _is_path(csv_path) else "")
        raise VideoStopped(number, f"{printable_source(video_path)!r} stopped by "
                           f"{signal.Signals(number).name} after {counts['read']} frames "
                           f"({output.frames} analysed){where}.", table) from None
    finally:
        capture.release()
        bar.close()
    return _finished(output, fps, counts, people, timings, start)


def _finished(output, fps, counts, people, timings, start):
    table = output.table()
    table.attrs.update(fps=fps, frames_read=counts["read"], frames_analysed=output.frames,
                       rows=output.rows, rows_with_face=output.rows_with_face,
                       people=people.tracker.next_id,
                       seconds=dict(timings, total=time.perf_counter() - start))
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


def _face_rows(key, boxes, probabilities, labels, people=None):
    """One row per face (the one place a face's row is built); `people`: each face's person id
    (video tables), None for tables without persons."""
    for face, (box, scores) in enumerate(zip(boxes, probabilities)):
        x, y, w, h = (math.nan,) * 4 if box is None else box
        person = {} if people is None else {PERSON_COLUMN: people[face]}
        # A face's box (`face_crops.FaceBox`) carries its head pose; NaN where none is known.
        pose = getattr(box, "pose", {})
        pose = {name: math.nan if pose.get(name) is None else pose[name] for name in POSE_COLUMNS}
        yield {**key, "face": face, **person, "x": x, "y": y, "w": w, "h": h, **pose,
               "label": labels[int(np.argmax(scores))],
               **{name: float(p) for name, p in zip(labels, scores)}}


def _columns(key_columns, labels, extra=(), people=False):
    face_columns = list(FACE_COLUMNS)
    if people:
        face_columns.insert(1, PERSON_COLUMN)
    return list(key_columns) + face_columns + list(labels) + list(extra)


def _typed(table, labels):
    """Fixed dtypes, whatever the rows held: boxes are float (NaN for "no face"), `person` an
    integer that may be missing (a whole frame's row)."""
    dtypes = {"frame": "int64", "time_s": "float64",
              "face": "Int64" if "error" in table else "int64", PERSON_COLUMN: "Int64",
              **{name: "float64" for name in ("x", "y", "w", "h", *POSE_COLUMNS, *labels)}}
    return table.astype({name: kind for name, kind in dtypes.items() if name in table})


def _table(rows, key_columns, labels, extra=()):
    return _typed(pd.DataFrame(rows, columns=_columns(key_columns, labels, extra)), labels)


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")
    return int(value)


def _positive_seconds(value, name):
    if (isinstance(value, bool) or not isinstance(value, (int, float, np.number))
            or not math.isfinite(value) or value <= 0):
        raise ValueError(f"{name} must be a number of seconds > 0, got {value!r}.")
    return float(value)


class _People:
    """The person of each face (`PersonTracker`) and, with `smooth` seconds, each person's
    probabilities averaged over time (`ProbabilitySmoother`)."""

    def __init__(self, smooth, memory_s=DEFAULT_MEMORY_S):
        self.smoother = ProbabilitySmoother(smooth)
        self.tracker = PersonTracker(memory_s)

    def follow(self, time_s, picture, boxes, probabilities):
        """`(ids, probabilities)` of one frame's faces (probabilities smoothed per person)."""
        ids = self.tracker.update(time_s, picture, boxes)
        if self.smoother.seconds:
            probabilities = np.array([self.smoother(person, time_s, scores)
                                      for person, scores in zip(ids, probabilities)])
        return ids, probabilities


class _TableOutput:
    """Context manager that takes rows frame by frame, writes them to a CSV in chunks of whole
    rows (header first), and keeps them (`keep`) for the table returned at the end.

    `target`: a path (created at the first chunk, so a video that never gave a row leaves no
    file), a writable text file object, or None. On leaving, the rows still waiting are written
    and a path's file is closed, whatever ended the run.
    """

    def __init__(self, target, columns, keep=True):
        self.target, self.columns, self.keep = target, columns, keep
        self.labels = columns[columns.index("label") + 1:]
        self.waiting, self.chunks, self.handle, self.header_written = [], [], None, False
        self.rows = self.rows_with_face = self.frames = 0
        self.last_write = time.monotonic()

    def __enter__(self):
        return self

    def add(self, rows):
        """Adds one frame's rows."""
        rows = list(rows)
        self.waiting.extend(rows)
        self.frames += 1
        self.rows += len(rows)
        self.rows_with_face += sum(not math.isnan(row["x"]) for row in rows)
        if (len(self.waiting) >= CSV_CHUNK_ROWS
                or time.monotonic() - self.last_write >= CSV_CHUNK_SECONDS):
            self._write()

    def _write(self):
        chunk = _typed(pd.DataFrame(self.waiting, columns=self.columns), self.labels)
        self.waiting, self.last_write = [], time.monotonic()
        if self.keep and len(chunk):
            self.chunks.append(chunk)
        if self.target is None:
            return
        if self.handle is None:
            self.handle = (self.target if hasattr(self.target, "write")
                           else open(self.target, "w", encoding="utf-8", newline=""))
        text = chunk.to_csv(index=False, header=not self.header_written)
        self.header_written = True
        self.handle.write(text)  # whole rows in one write: a stop never leaves half a row
        self.handle.flush()

    def __exit__(self, kind, error, trace):
        # A run that failed before its first row (no frame, a bad option) writes nothing.
        ended = error is None or issubclass(kind, KeyboardInterrupt)
        if self.waiting or (ended and self.target is not None and not self.header_written):
            self._write()
        if self.handle is not None and self.handle is not self.target:
            self.handle.close()
        return False

    def table(self):
        if not self.chunks:
            return _typed(pd.DataFrame(columns=self.columns), self.labels)
        return pd.concat(self.chunks, ignore_index=True) if len(self.chunks) > 1 else \
            self.chunks[0].copy()


def _is_path(target):
    return target is not None and not hasattr(target, "write")


@contextlib.contextmanager
def _signals_stop():
    """SIGTERM stops the run as Ctrl+C does (a `KeyboardInterrupt` raised where it is, which
    carries `signal_number`), so the rows so far are written. Handlers can only be set from
    the main thread; elsewhere the default stays."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(number, frame):
        interrupt = KeyboardInterrupt()
        interrupt.signal_number = number
        raise interrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# -------------------------------------------------------------------------------------- videos


def is_stream(source):
    """True for an address `recognize_video` reads as a stream (`STREAM_SCHEMES`)."""
    return isinstance(source, str) and source.split("://", 1)[0].lower() in STREAM_SCHEMES \
        and "://" in source


def printable_source(source):
    """A video source as messages show it: a path, or an address with its password (as in
    `rtsp://user:password@camera/`) replaced by `***`."""
    if not isinstance(source, (str, bytes, os.PathLike)):
        return str(source)
    text = os.fsdecode(source)
    return re.sub(r"^([a-zA-Z][a-zA-Z0-9+.-]*://[^/@:]*):[^/@]*@", r"\1:***@", text)


def open_video(path, stall_timeout=DEFAULT_STALL_TIMEOUT_S):
    """Opens a video file, or an `http(s)://` or `rtsp://` stream, for reading.

    Args:
        path: a file path or a stream address.
        stall_timeout: seconds a stream may take to open and, later, to send each frame (files:
            unused).

    Returns:
        `(capture, fps, frame_count)`: a `cv2.VideoCapture`, the frame rate (when the file's own
        is outside `PLAUSIBLE_FPS`: its frames' timestamps', else `ASSUMED_FPS`, with one
        warning) and the frame count its header announces (0 when unknown, as for live streams).
    """
    if is_stream(path):
        milliseconds = int(round(stall_timeout * 1000))
        capture = cv2.VideoCapture(path, cv2.CAP_FFMPEG,
                                   [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, milliseconds,
                                    cv2.CAP_PROP_READ_TIMEOUT_MSEC, milliseconds])
        if not capture.isOpened():
            raise VideoError(
                f"Cannot open stream {printable_source(path)!r}: no answer within "
                f"{stall_timeout:g} s, or not a video OpenCV's FFmpeg reads (check the address "
                "in a player, e.g. ffplay or VLC; an MP4 served over HTTP needs a server that "
                "answers Range requests).")
    else:
        path = _local_video(path)
        capture = cv2.VideoCapture(path)
        if not capture.isOpened():
            raise VideoError(
                f"Cannot open video {path!r}: OpenCV's FFmpeg reader does not recognise it (not "
                "a video, a codec FFmpeg lacks, or an MP4/MOV cut short, whose index is at the "
                "end).")
    fps = capture.get(cv2.CAP_PROP_FPS)
    if not (math.isfinite(fps) and PLAUSIBLE_FPS[0] <= fps <= PLAUSIBLE_FPS[1]):
        fps = _assumed_rate(path, fps) if is_stream(path) else _rate_from_timestamps(path, fps)
    expected = capture.get(cv2.CAP_PROP_FRAME_COUNT)
    return capture, float(fps), int(expected) if math.isfinite(expected) and expected > 0 else 0


def _local_video(path):
    path = os.fspath(path)
    if "://" in path and not os.path.exists(path):
        raise VideoError(f"Video {printable_source(path)!r}: expected a video file or an "
                         "address starting with "
                         f"{', '.join(s + '://' for s in STREAM_SCHEMES)}.")
    if not os.path.exists(path):
        raise FileNotFoundError(f"Video not found: {path!r}.")
    if not os.path.isfile(path):  # a folder, or a device or FIFO (/dev/zero) that never ends
        what = "a folder" if os.path.isdir(path) else "not a regular file (a device or FIFO)"
        raise VideoError(f"Video {path!r} is {what}; expected a video file (a camera is "
                         "--webcam INDEX).")
    return path


def _assumed_rate(address, stored):
    """A stream's rate when it states none plausible: `ASSUMED_FPS`, said once (a second
    connection to read timestamps would cost a live stream its start)."""
    said = f"{stored:g} fps" if math.isfinite(stored) and stored > 0 else "no frame rate"
    warnings.warn(f"Stream {printable_source(address)!r} states {said}; time_s assumes "
                  f"{ASSUMED_FPS:g} fps.", stacklevel=4)
    return ASSUMED_FPS


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


def _video_frames(capture, path, every, keep_all, expected, counts, stall_timeout=None):
    """Yields `(index, RGB frame, analyse)`; frames not analysed are only decoded (and yielded)
    when `keep_all` (the annotated video needs them). `counts["read"]`: frames read so far.

    With `stall_timeout` (streams), a read that waited that long ends the frames: OpenCV's
    FFmpeg gave up on the stream, and what it returned then was decoded from a part of a frame.
    """
    index, stalled = 0, False
    while True:
        analyse = index % every == 0
        tick = time.monotonic()
        if analyse or keep_all:
            ok, frame = capture.read()
        else:
            ok, frame = capture.grab(), None
        if stall_timeout is not None and time.monotonic() - tick >= 0.95 * stall_timeout:
            stalled = True
            break
        if not ok:
            break
        index += 1
        counts["read"] = index
        if frame is not None:
            yield index - 1, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), analyse
    if index == 0:
        what = (f"sent no frame within {stall_timeout:g} s" if stalled
                else "has no frame OpenCV can decode")
        raise VideoError(f"Video {printable_source(path)!r} {what}.")
    if stalled:
        warnings.warn(f"Stream {printable_source(path)!r} stalled: no frame for "
                      f"{stall_timeout:g} s after frame {index - 1}; the rows stop there.",
                      stacklevel=2)
    elif index < expected:
        cause = ("the stream ended early" if stall_timeout is not None
                 else "the file is truncated or damaged")
        what = "Stream" if stall_timeout is not None else "Video"
        warnings.warn(
            f"{what} {printable_source(path)!r} broke off after frame {index - 1}: {index} of the "
            f"{expected} frames its header announces could be decoded ({cause}); the rows "
            "stop there.", stacklevel=2)


class _AnnotatedVideo:
    """Context manager: a callable that draws results on frames and writes them (or a no-op).
    A run stopped by Ctrl+C or SIGTERM keeps the frames written so far."""

    def __init__(self, path, fps, labels):
        self.path, self.fps, self.labels = path, fps, labels
        self.writer, self.last = None, (None, None, None)

    def __enter__(self):
        if self.path is None:
            return lambda picture, boxes, probabilities, people=None: None
        suffix = os.path.splitext(os.fspath(self.path))[1].lower()
        if suffix not in VIDEO_CODECS:
            raise VideoError(f"Annotated video {os.fspath(self.path)!r}: expected a suffix among "
                             f"{', '.join(VIDEO_CODECS)}.")
        self._atomic = atomic_path(self.path)
        self.temporary = self._atomic.__enter__()
        return self.write

    def write(self, picture, boxes, probabilities, people=None):
        if boxes is not None:
            self.last = (boxes, probabilities, people)
        frame = cv2.cvtColor(picture, cv2.COLOR_RGB2BGR)
        boxes, probabilities, people = self.last
        draw_results(frame, boxes, probabilities, self.labels, bgr=True, people=people)
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
        stopped = kind is not None and issubclass(kind, KeyboardInterrupt)
        failed = None if stopped and self.writer is not None else error
        if failed is None and self.writer is None:
            failed = VideoError(f"No frame to write to {os.fspath(self.path)!r}.")
        # On failure the temporary file goes and the destination is left as it was.
        self._atomic.__exit__(type(failed) if failed else None, failed, trace)
        if failed is not None and error is None:
            raise failed
        return False


def draw_results(frame, boxes, probabilities, labels, bgr=False, people=None):
    """Draws each face's box and `#person label probability` on a frame (uint8, in place).

    A result without a box (no face: the whole frame was classified) is written in the top-left
    corner. Colours follow `CLASS_COLOURS` by class index.

    Args:
        frame: uint8 (h, w, 3), RGB, or BGR when `bgr` (OpenCV's own order).
        boxes: list of `(x, y, w, h)` or None, as `crops_of` returns; None draws nothing.
        probabilities: (len(boxes), classes).
        labels: class names.
        people: each box's person id (None: no person drawn).
    """
    if boxes is None:
        return frame
    thickness = max(1, round(min(frame.shape[:2]) / 240))
    scale = 0.5 * thickness
    people = [None] * len(boxes) if people is None else people
    for box, scores, person in zip(boxes, probabilities, people):
        best = int(np.argmax(scores))
        colour = CLASS_COLOURS[best % len(CLASS_COLOURS)]
        colour = colour[::-1] if bgr else colour
        text = f"{labels[best]} {scores[best]:.2f}"
        if person is not None:
            text = f"#{person} {text}"
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
    """`[=====.....] frame 120/250  31.2 frames/s  0:04 left` on stderr (a stream without a
    frame count: `frame 1234  25.0 frames/s  0:49 so far`), redrawn at most twice a second."""

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
        elapsed = max(now - self.start, 1e-9)
        rate = self.done / elapsed
        if self.total:
            width = 30
            filled = min(width, width * self.done // self.total)
            left = max(0, self.total - self.done) / rate if rate > 0 else math.inf
            return (f"[{'=' * filled}{'.' * (width - filled)}] frame {self.done}/{self.total} "
                    f"{rate:5.1f} frames/s  {_clock(left)} left ")
        return f"frame {self.done} {rate:5.1f} frames/s  {_clock(elapsed)} so far "

    def close(self):
        if self.enabled and self.done:
            sys.stderr.write("\r" + self.text(time.perf_counter()) + "\n")
            sys.stderr.flush()


def _clock(seconds):
    """`0:04`, `12:30`, `1:02:03`; `?` while unknown."""
    if not math.isfinite(seconds):
        return "?"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


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


def recognize_stream(tester, capture, show=None, csv_path=None, max_frames=None, smooth=0.0):
    """Live recognition: every frame of `capture` analysed at once, its results shown.

    The rows are those of `recognize_video`, `person` included (`frame` counts from 0; `time_s`
    is clock time since the first frame, as a camera's nominal frame rate is rarely its real
    one). It stops when the capture ends, `show` returns True, after `max_frames`, or on Ctrl+C
    or SIGTERM; the rows read until then are kept, and written to the CSV as they come.

    Args:
        tester: a `TestModels`.
        capture: an opened `cv2.VideoCapture` (or anything with `read()` -> `(ok, BGR frame)`).
        show: called with each annotated BGR frame; returns True to stop (`show_in_window()`).
        csv_path: also write the rows to this CSV file (or writable text file object).
        max_frames: stop after this many frames.
        smooth: seconds over which each person's probabilities are averaged (0: none).

    Returns:
        pandas DataFrame, as `recognize_video`'s.
    """
    people = _People(smooth)
    output = _TableOutput(csv_path, _columns(VIDEO_KEY_COLUMNS, tester.exps, people=True))
    index, start, stop = 0, None, False
    try:
        with _signals_stop(), output:
            while not stop and (max_frames is None or index < max_frames):
                ok, frame = capture.read()
                if not ok:
                    break
                now = time.perf_counter()
                start = now if start is None else start
                picture = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                for _, _, boxes, probabilities in recognised(
                        tester, [(index, picture, True)], 1, 1, {}):
                    ids, probabilities = people.follow(now - start, picture, boxes,
                                                       probabilities)
                    output.add(_face_rows({"frame": index, "time_s": now - start}, boxes,
                                          probabilities, tester.exps, ids))
                    if show is not None:
                        stop = bool(show(draw_results(frame, boxes, probabilities, tester.exps,
                                                      bgr=True, people=ids)))
                index += 1
    except KeyboardInterrupt:
        pass
    finally:
        release = getattr(capture, "release", None)
        if release is not None:
            release()
    table = output.table()
    table.attrs.update(frames_read=index, frames_analysed=output.frames, rows=output.rows,
                       rows_with_face=output.rows_with_face, people=people.tracker.next_id)
    return table
