"""Benchmark: one Ad-Corre train step (forward, the full loss, backward, Adam) on this machine.

Rows: `--arch` (default `xcp`) at `--input-size` px for each batch size, compiled as a plain
TensorFlow graph or with XLA (`jit_compile=True`), in float32 or under the `mixed_bfloat16`
policy. Each row times `--steps` calls of `train_on_batch` on in-memory data after two warm-up
calls (the first one traces and compiles; its time is printed separately).

The last table checks that the adaptive attention map costs nothing measurable: the same
step with and without the in-graph confusion-count update (`AdaptiveAttentionMap.update_state`),
timed alternately so that machine noise hits both alike.

Run: `python bench/bench_train_step.py` (about 8 minutes on 2 CPU cores at 224 px);
`--batch-sizes 8 --modes graph --policies float32` for a quick look.
"""

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402


def make_trainer(arch, input_size, policy, jit_compile, count_confusions=True):
    """A compiled AdCorreTrainer around a freshly built network (weights=None)."""
    from cnn_model import CNNModel
    from train import AdCorreTrainer

    keras.mixed_precision.set_global_policy(policy)
    keras.utils.set_random_seed(0)
    network = CNNModel().get_model(arch, weights=None, input_size=input_size)
    trainer = AdCorreTrainer(network)
    if not count_confusions:
        # Bench-only switch: the step is traced after this, so the update never enters it.
        trainer.attention.update_state = lambda *args, **kwargs: None
    trainer.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=jit_compile)
    return trainer


def batch(batch_size, input_size, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.random((batch_size, input_size, input_size, 3), dtype=np.float32)
    labels = rng.integers(0, 7, batch_size).astype(np.int32)
    return images, labels


def time_steps(trainer, images, labels, steps):
    """Seconds of each of `steps` train_on_batch calls."""
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        trainer.train_on_batch(images, labels)
        times.append(time.perf_counter() - start)
    return times


def bench_row(arch, input_size, batch_size, mode, policy, steps):
    trainer = make_trainer(arch, input_size, policy, jit_compile=(mode == "xla"))
    images, labels = batch(batch_size, input_size)
    start = time.perf_counter()
    trainer.train_on_batch(images, labels)
    first = time.perf_counter() - start
    trainer.train_on_batch(images, labels)
    seconds = statistics.median(time_steps(trainer, images, labels, steps))
    return first, seconds


def bench_attention_cost(arch, input_size, batch_size, rounds):
    """Median step time with and without the confusion-count update, interleaved."""
    images, labels = batch(batch_size, input_size)
    trainers = {
        "with update": make_trainer(arch, input_size, "float32", False, count_confusions=True),
        "without update": make_trainer(arch, input_size, "float32", False, count_confusions=False),
    }
    for trainer in trainers.values():
        time_steps(trainer, images, labels, 2)  # trace and warm up
    times = {name: [] for name in trainers}
    for _ in range(rounds):
        for name, trainer in trainers.items():
            times[name] += time_steps(trainer, images, labels, 1)
    counted = trainers["with update"].attention.confusion_matrix().sum()
    return {name: statistics.median(values) for name, values in times.items()}, counted


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="xcp")
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[4, 8, 16])
    parser.add_argument("--modes", nargs="+", default=["graph", "xla"], choices=("graph", "xla"))
    parser.add_argument("--policies", nargs="+", default=["float32", "mixed_bfloat16"])
    parser.add_argument("--steps", type=int, default=3, help="timed steps per row (median)")
    parser.add_argument("--attention-batch", type=int, default=8)
    parser.add_argument("--attention-rounds", type=int, default=6,
                        help="interleaved steps of the confusion-count check (0 skips it)")
    args = parser.parse_args(argv)

    import tensorflow as tf

    devices = [d.device_type for d in tf.config.list_physical_devices()]
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, devices {devices}, "
          f"{os.cpu_count()} CPU cores; arch {args.arch} at {args.input_size} px, k = 7 heads")
    print(f"| {'batch':>5} | {'mode':5} | {'policy':14} | {'first call s':>12} | "
          f"{'s/step':>7} | {'img/s':>6} |")
    print(f"| {'-' * 5} | {'-' * 5} | {'-' * 14} | {'-' * 12} | {'-' * 7} | {'-' * 6} |")
    for batch_size in args.batch_sizes:
        for mode in args.modes:
            for policy in args.policies:
                try:
                    first, seconds = bench_row(args.arch, args.input_size, batch_size, mode,
                                               policy, args.steps)
                except Exception as error:  # e.g. out of memory at one size: report, go on
                    print(f"| {batch_size:5d} | {mode:5} | {policy:14} | failed: "
                          f"{type(error).__name__}: {str(error)[:80]}")
                    continue
                print(f"| {batch_size:5d} | {mode:5} | {policy:14} | {first:12.1f} | "
                      f"{seconds:7.2f} | {batch_size / seconds:6.2f} |", flush=True)
    keras.mixed_precision.set_global_policy("float32")
    if args.attention_rounds < 1:
        return

    medians, counted = bench_attention_cost(args.arch, args.input_size, args.attention_batch,
                                            args.attention_rounds)
    with_update, without = medians["with update"], medians["without update"]
    print(f"\nConfusion-count update, graph float32, batch {args.attention_batch}, "
          f"{args.attention_rounds} interleaved steps each (the update ran: the counts hold the "
          f"last step's {int(counted)} samples, train_on_batch resets metrics every call):")
    print(f"| {'step':15} | {'median s':>8} |")
    print(f"| {'-' * 15} | {'-' * 8} |")
    print(f"| {'with update':15} | {with_update:8.3f} |")
    print(f"| {'without update':15} | {without:8.3f} |")
    print(f"ratio with / without: {with_update / without:.3f}")


if __name__ == "__main__":
    main()
