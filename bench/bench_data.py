"""Data benchmark: SynthFER generation speed and tf.data pipeline throughput.

1. SynthFER faces/s at 112 px on one core (the process pinned to one CPU,
   OpenCV single-threaded).
2. Input pipeline images/s on 2 cores: a SynthFER RAF-DB layout of JPEG files
   is written to a temporary folder, read with `read_split`, and
   `make_dataset` decodes, resizes to 224 and batches 32; measured in
   training mode (augmentation + shuffle), without augmentation, in
   evaluation mode, and training from the in-memory cache.

Usage: python bench/bench_data.py [--n 2000] [--batches 60] [--cores 2]
"""

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


_ALL_CPUS = sorted(os.sched_getaffinity(0))


def _pin(cores):
    chosen = set(_ALL_CPUS[:cores])
    os.sched_setaffinity(0, chosen)
    return len(chosen)


def bench_synth(n, size, repeats=3):
    import cv2

    from adcorre.data import synth_faces

    cv2.setNumThreads(1)
    synth_faces.generate(20, size, seed=0)  # warm-up
    rates = []
    for r in range(repeats):
        start = time.perf_counter()
        synth_faces.generate(n, size, seed=100 + r)
        rates.append(n / (time.perf_counter() - start))
    return max(rates), sorted(rates)[len(rates) // 2]


def bench_pipeline(frame, cores, batches, **kwargs):
    import tensorflow as tf

    from adcorre import data as data_helper

    ds = data_helper.make_dataset(frame, input_size=224, batch_size=32, seed=0, validate="none",
                                  **kwargs).repeat()
    options = tf.data.Options()
    options.threading.private_threadpool_size = cores
    ds = ds.with_options(options)
    iterator = iter(ds)
    for _ in range(5):  # warm-up: tracing, autotune, file cache
        next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * 32 / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="faces written for the pipeline")
    parser.add_argument("--synth-n", type=int, default=1000, help="faces per generation timing")
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()

    # SynthFER on one core, before TensorFlow starts its thread pools.
    _pin(1)
    best, median = bench_synth(args.synth_n, 112)
    cores = _pin(args.cores)

    from adcorre import data as data_helper
    from adcorre.data import synth_faces

    with tempfile.TemporaryDirectory() as root:
        start = time.perf_counter()
        synth_faces.write_dataset(root, layout="rafdb", n=args.n, image_size=112, seed=0,
                                  test_fraction=0.0)
        write_s = time.perf_counter() - start
        frame = data_helper.read_split("rafdb", root, "train")
        start = time.perf_counter()
        good, skipped = data_helper.validate_images(frame)
        validate_rate = len(frame) / (time.perf_counter() - start)
        rows = [
            ("train: decode+augment+resize 224", dict(training=True)),
            ("train, no augmentation", dict(training=True, augment=False)),
            ("eval: decode+resize 224, in order", dict(training=False)),
        ]
        results = [(name, bench_pipeline(good, cores, args.batches, **kw)) for name, kw in rows]

    print(f"\nSynthFER generation, 112 px, 1 core: {best:.0f} faces/s (best of 3; median {median:.0f})")
    print(f"writing the RAF-DB layout ({args.n} JPEGs, 112 px): {args.n / write_s:.0f} faces/s")
    print(f"validate_images (header check): {validate_rate:.0f} files/s, {len(skipped)} skipped\n")
    print(f"tf.data pipeline, {cores} cores, batch 32, 224x224, {args.batches} batches after warm-up")
    print(f"| {'mode':<40} | {'images/s':>9} | {'vs train':>8} |")
    print(f"| {'-' * 40} | {'-' * 9} | {'-' * 8} |")
    base = results[0][1]
    for name, rate in results:
        print(f"| {name:<40} | {rate:9.0f} | {rate / base:7.2f}x |")


if __name__ == "__main__":
    main()
