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
    parser.add_argument("--detectors", nargs="+", default=["blazeface", "haar"],
                        choices=["blazeface", "haar", "mtcnn"])
    args = parser.parse_args(argv)

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
