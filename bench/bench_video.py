"""Frames/s of `TestModels.recognize_video` on a 640x480 video, and where the time goes.

Writes a 640x480 test video (10 s at 25 fps: real portraits, grace_hopper.jpg and skimage's
astronaut, pasted on a background and drifting, one frame in 10 without a face), then runs
`recognize_video` on it for the `tiny` arch (64 px, the demo's size) and `xcp` (Xception,
224 px), random weights, and reports frames/s against the real-time target (25 frames/s), with
the seconds spent in detection + alignment and in the model. Variants: every frame analysed
(the default, equal to `recognize_faces` per frame), one model call per frame (batch 1, no
batching across frames), and the explicit `detect_every` option (detector on every n-th frame,
faces reused between).

Run: `python bench/bench_video.py [--seconds 10] [--archs tiny xcp]` (about 2 minutes on 2 cores).
"""

import argparse
import os
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--archs", nargs="+", default=["tiny", "xcp"], choices=sorted(INPUT_SIZES))
    args = parser.parse_args(argv)

    try:
        import video_files  # the tests' clip writer (real portraits): tests/ on PYTHONPATH
    except ImportError:
        parser.error("run as PYTHONPATH=tests python bench/bench_video.py (it writes its clip "
                     "with the tests' tests/video_files.py)")
    from bench_inference import random_tester  # bench/ is the script folder: on sys.path

    load = os.getloadavg()[0]
    print(f"cores: {os.cpu_count()}, load average (1 min) at start: {load:.2f}")
    with tempfile.TemporaryDirectory() as folder:
        video = video_files.write_video(
            os.path.join(folder, "clip.mp4"),
            video_files.face_frames(int(args.seconds * 25), size=(640, 480), empty_every=10))
        short = video_files.write_video(os.path.join(folder, "warm.mp4"),
                                        video_files.face_frames(20, size=(640, 480)))
        print(f"video: 640x480, {int(args.seconds * 25)} frames at 25 fps ({args.seconds:g} s)\n")
        print(f"| arch | variant | frames/s | vs {TARGET_FPS:g} fps | detection + alignment s | "
              "model s | faces found |")
        print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
        for arch in args.archs:
            tester = random_tester(arch, folder, INPUT_SIZES[arch])
            for batch_size in (1, 16):  # traces the model for both batch shapes
                tester.recognize_video(short, batch_size=batch_size)
            variants = [("every frame (default, batch 16)", {}),
                        ("every frame, batch 1", {"batch_size": 1}),
                        ("detect_every=3", {"detect_every": 3}),
                        ("every=2", {"every": 2})]
            for name, options in variants:
                result = _run(tester, video, **options)
                print(f"| {arch} | {name} | {result['fps']:.1f} | {result['fps'] / TARGET_FPS:.2f}x"
                      f" | {result['detection']:.2f} | {result['model']:.2f} | "
                      f"{result['faces']}/{result['frames']} |")
    print(f"\nload average (1 min) at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
