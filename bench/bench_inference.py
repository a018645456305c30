"""Latency of `TestModels.recognize_fer` and throughput of Xception prediction.

Measures, on matplotlib's grace_hopper.jpg:
- recognize_fer end to end, and its two parts (detection + alignment; the model call including
  input conversion), p50 / p95 over repeated calls after a warm-up, for the `tiny` arch and for
  `xcp` (Xception, the paper's model), both at 224 px with random weights, with the default
  detector (BlazeFace) and with Haar; beside them the model's own `predict_on_batch` on the
  same crop, already converted, and the ratio of the whole path to it (goal for `xcp`: at
  most 1.3x). The variants take turns call by call, so load changes touch all alike;
- the face detectors alone on the same picture;
- Xception predict throughput at 224 px in graph mode (`model.predict`), batch 1 to 32.

Run: `python bench/bench_inference.py [--repeats 20] [--threads 2]` (about 3 minutes on 2 cores).
"""

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def random_tester(arch, folder, input_size=224):
    """`TestModels` on a randomly initialised `arch`, saved as train.py saves models in `folder`."""
    from adcorre.models import weights_io
    from adcorre.models.cnn_model import CNNModel
    from adcorre.config import EXPRESSIONS_7
    from adcorre.inference.model_tester import TestModels

    model = CNNModel().get_model(arch, num_classes=7, weights=None, input_size=input_size)
    path = weights_io.save_model(model, os.path.join(folder, f"{arch}.h5"), labels=EXPRESSIONS_7,
                                 arch=arch)
    return TestModels(path, verbose=False)


def configure_threads(threads):
    """Sizes TensorFlow's and OpenCV's thread pools; returns the `tensorflow` module."""
    import cv2
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    cv2.setNumThreads(threads)
    return tf


def percentiles(values):
    values = np.asarray(values) * 1000.0
    return np.percentile(values, 50), np.percentile(values, 95)


def bench_recognize(tester, detectors, picture, repeats):
    """p50 / p95 of recognize_fer per detector (total, detection, model) and of the model's
    own `predict_on_batch` on the crop, calls interleaved."""
    import keras

    from adcorre.inference import face_crops

    image = face_crops.read_picture(picture)
    crop = {}
    for name, detector in detectors.items():
        tester.detector = detector
        _, crops, _ = tester._largest_face(image)
        crop[name] = tester.to_model_input(crops)
        for _ in range(3):  # traces the predict function, warms caches
            tester.recognize_fer(picture)
            tester.model.predict_on_batch(crop[name])
    times = {name: ([], [], [], []) for name in detectors}
    for _ in range(repeats):
        for name, detector in detectors.items():
            tester.detector = detector
            total, detection, model, alone = times[name]
            start = time.perf_counter()
            tester.recognize_fer(picture)
            total.append(time.perf_counter() - start)
            detection.append(tester.timings["detection"])
            model.append(tester.timings["model"])
            start = time.perf_counter()
            keras.ops.convert_to_numpy(tester.model.predict_on_batch(crop[name])[0])
            alone.append(time.perf_counter() - start)
    return {name: [percentiles(values) for values in lists] for name, lists in times.items()}


def bench_detector(method, picture, repeats):
    from adcorre.inference import face_crops

    try:
        detector = face_crops.FaceDetector(method)
    except ImportError:
        return "(not installed)"
    image = face_crops.read_picture(picture)
    detector.detect(image)
    times = []
    for _ in range(max(5, repeats // 2) if method == "mtcnn" else repeats):
        start = time.perf_counter()
        detector.detect(image)
        times.append(time.perf_counter() - start)
    p50, p95 = percentiles(times)
    return f"{p50:7.1f} {p95:7.1f}"


def bench_throughput(model, batch_size, images, calls=3):
    """Images/s of `model.predict` over `images`: median of `calls` after a full warm-up call."""
    model.predict(images, batch_size=batch_size, verbose=0)  # traces, fills caches
    seconds = []
    for _ in range(calls):
        start = time.perf_counter()
        model.predict(images, batch_size=batch_size, verbose=0)
        seconds.append(time.perf_counter() - start)
    return len(images) / statistics.median(seconds)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2, help="TensorFlow and OpenCV threads")
    args = parser.parse_args(argv)

    import matplotlib.cbook

    tf = configure_threads(args.threads)

    picture = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    print(f"{os.cpu_count()} CPUs visible, {args.threads} threads; TensorFlow {tf.__version__}; "
          f"picture {picture.rsplit(os.sep, 1)[-1]}; {args.repeats} calls after 3 warm-up calls; "
          f"load average {os.getloadavg()[0]:.1f} (other work on the machine slows every number)\n")

    images = np.random.default_rng(0).uniform(size=(64, 224, 224, 3)).astype("float32")
    from adcorre.inference import face_crops

    detectors = {name: face_crops.FaceDetector(name) for name in ("blazeface", "haar")}
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for arch in ("tiny", "xcp"):
            tester = random_tester(arch, folder)
            for name, parts in bench_recognize(tester, detectors, picture, args.repeats).items():
                rows.append((arch, name, *parts))
        print("recognize_fer latency (ms), 224 px input; 'predict' is the model's own "
              "predict_on_batch on the converted crop")
        print("| arch | detector | total p50 / p95 | detection + alignment p50 / p95 | "
              "model p50 / p95 | predict p50 / p95 | total / predict (p50) |")
        print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
        for arch, name, total, detection, model_time, alone in rows:
            print(f"| {arch} | {name} | {total[0]:.1f} / {total[1]:.1f} | {detection[0]:.1f} / "
                  f"{detection[1]:.1f} | {model_time[0]:.1f} / {model_time[1]:.1f} | "
                  f"{alone[0]:.1f} / {alone[1]:.1f} | {total[0] / alone[0]:.2f}x |")

        print("\nface detection alone (ms), same picture")
        print(f"{'detector':<9} {'p50':>7} {'p95':>7}")
        for method in ("blazeface", "haar", "mtcnn"):
            print(f"{method:<9} " + bench_detector(method, picture, args.repeats))

        print("\nXception (xcp) predict throughput at 224 px, graph mode "
              f"({len(images)} images per call, median of 3 calls)")
        print(f"{'batch':>5} {'images/s':>9}")
        for batch_size in (1, 8, 16, 32):
            print(f"{batch_size:>5} {bench_throughput(tester.model, batch_size, images):9.1f}")


if __name__ == "__main__":
    main()
