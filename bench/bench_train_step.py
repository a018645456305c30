"""Benchmark: one Ad-Corre train step (forward, the full loss, backward, Adam) on this machine.

Rows: `--arch` (default `xcp`) at `--input-size` px for each batch size, compiled as a plain
TensorFlow graph or with XLA (`jit_compile=True`), in float32 or under the `mixed_bfloat16`
policy. Each row times `--steps` calls of `train_on_batch` on in-memory data after two warm-up
calls (the first one traces and compiles; its time is printed separately).

The last table checks that the adaptive attention map costs nothing measurable: the same
step with and without the in-graph confusion-count update (`AdaptiveAttentionMap.update_state`),
and with the official sliding window on top (omega recomputed every step from the last
`--attention-window` predictions: `update_window`), timed alternately so that machine noise hits
all alike.

Run: `python bench/bench_train_step.py` (about 8 minutes on 2 CPU cores at 224 px);
`--batch-sizes 8 --modes graph --policies float32` for a quick look.
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402


def make_trainer(arch, input_size, policy, jit_compile, count_confusions=True,
                 window_batches=None):
    """A compiled AdCorreTrainer around a freshly built network (weights=None)."""
    from adcorre.models.cnn_model import CNNModel
    from adcorre.training.train_step import AdCorreTrainer

    keras.mixed_precision.set_global_policy(policy)
    keras.utils.set_random_seed(0)
    network = CNNModel().get_model(arch, weights=None, input_size=input_size)
    trainer = AdCorreTrainer(network, attention_window_batches=window_batches)
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


def bench_attention_cost(arch, input_size, batch_size, rounds, window):
    """Median step time with and without the confusion-count update, and with the sliding
    window of `window` predictions, interleaved."""
    images, labels = batch(batch_size, input_size)
    window_batches = -(-window // batch_size)
    trainers = {
        "with update": make_trainer(arch, input_size, "float32", False, count_confusions=True),
        "without update": make_trainer(arch, input_size, "float32", False, count_confusions=False),
        "with window": make_trainer(arch, input_size, "float32", False,
                                    window_batches=window_batches),
    }
    for trainer in trainers.values():
        time_steps(trainer, images, labels, 2)  # trace and warm up
    times = {name: [] for name in trainers}
    for _ in range(rounds):
        for name, trainer in trainers.items():
            times[name] += time_steps(trainer, images, labels, 1)
    counted = trainers["with update"].attention.confusion_matrix().sum()
    return {name: statistics.median(values) for name, values in times.items()}, counted


def bench_window_update(batch_size, window, updates=1000, repeats=5):
    """Microseconds per update of the attention map alone, in one graph: the per-epoch counts
    (`update_state`) and the sliding window (`update_window`: the ring-buffer write and omega)."""
    import tensorflow as tf

    from adcorre.training.custom_loss import AdaptiveAttentionMap

    rng = np.random.default_rng(0)
    labels = tf.constant(rng.integers(0, 7, batch_size), tf.int32)
    probs = tf.constant(rng.random((batch_size, 7)), tf.float32)
    per_epoch = AdaptiveAttentionMap(7)
    windowed = AdaptiveAttentionMap(7, window_batches=-(-window // batch_size))

    @tf.function
    def counts():
        for _ in tf.range(updates):
            per_epoch.update_state(labels, probs)
        return per_epoch.counts.value

    @tf.function
    def sliding():
        for _ in tf.range(updates):
            windowed.update_window(labels, probs)
        return windowed.omega.value

    result = {}
    for name, function in (("update_state", counts), ("update_window", sliding)):
        function()  # trace
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            function()
            times.append(time.perf_counter() - start)
        result[name] = statistics.median(times) / updates * 1e6
    return result


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
    parser.add_argument("--attention-window", type=int, default=1000,
                        help="predictions in the sliding window (the official code: 1000)")
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
                                            args.attention_rounds, args.attention_window)
    with_update, without = medians["with update"], medians["without update"]
    windowed = medians["with window"]
    print(f"\nConfusion-count update, graph float32, batch {args.attention_batch}, "
          f"{args.attention_rounds} interleaved steps each (the update ran: the counts hold the "
          f"last step's {int(counted)} samples, train_on_batch resets metrics every call):")
    print(f"| {'step':15} | {'median s':>8} |")
    print(f"| {'-' * 15} | {'-' * 8} |")
    print(f"| {'with update':15} | {with_update:8.3f} |")
    print(f"| {'without update':15} | {without:8.3f} |")
    print(f"| {'with window':15} | {windowed:8.3f} |")
    print(f"ratio with / without: {with_update / without:.3f}; sliding window of "
          f"{args.attention_window} / per-epoch update: {windowed / with_update:.3f}")
    micro = bench_window_update(args.attention_batch, args.attention_window)
    print(f"The map's update alone, in one graph, batch {args.attention_batch}: update_state "
          f"{micro['update_state']:.1f} us, update_window ({args.attention_window} predictions) "
          f"{micro['update_window']:.1f} us; {micro['update_window'] * 1e-6 / without:.2e} of "
          f"a step")


if __name__ == "__main__":
    main()
