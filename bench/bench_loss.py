"""Benchmark: the Ad-Corre terms as one compiled graph vs the official NumPy way.

One evaluation = FD + MD + ED on a batch of `--batch` samples, `--k` embeddings of
`--dim` features, `--classes` classes. Rows of the table:

- official way: a re-statement of how the official code evaluates the terms (eager
  Python loops: `np.corrcoef` of each (n, d) embedding for FD, one `np.corrcoef` of the
  (k, d) matrix per sample for ED, `np.average` per embedding and class then
  `np.corrcoef` for MD), once on the model outputs as its train_step has them (eager
  tensors, with its eager TF glue: per-sample slicing, `tf.map_fn` over labels) and
  once on NumPy arrays already on the host (its lower bound). Neither yields a gradient.
  Both compute the DESIGN.md equations, so all rows print the same value.
- custom_loss in a `tf.function` graph (the CPU setting of this project), forward only,
  with XLA (`jit_compile=True`), forward + backward (gradient w.r.t. embeddings and
  probabilities), and R evaluations inside one graph call (the cost inside a train
  step, without the per-call dispatch overhead).

The second table puts the loss in proportion: forward + backward of the loss vs
forward + backward of Xception (224 px, weights=None) + GAP + k Dense(`--dim`) heads +
softmax. By default at `--model-batch 8`: at batch 50 one Xception step took 49 s and
8 GB of memory on the 2-core sandbox (the whole bench then runs about 2.5 minutes), so
the batch-50 share is also given with the Xception time scaled linearly, labelled as
such; `--model-batch 50` measures it directly.

Run: `python bench/bench_loss.py` (under a minute on 2 cores);
`--skip-model` for the loss table only.
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from adcorre.models.cnn_model import CNNModel  # noqa: E402
from adcorre.training.custom_loss import AdCorreLoss  # noqa: E402


# ----------------------------------------------------------------------------------
# The official way, re-stated (eager Python loops around NumPy). Two flavours:
# `official_*_eager` takes the model outputs as the official train_step has them
# (a list of eager tensors, labels and omega as tensors) and mixes eager TF ops with
# NumPy the way that code does; `official_*_numpy` is the same arithmetic on NumPy
# arrays already on the host (its lower bound). Both compute the DESIGN.md equations
# (present classes only for MD, omega[y_i] + omega[y_j] for FD), so their value can be
# checked against custom_loss.
# ----------------------------------------------------------------------------------
def official_fd_eager(embeddings, labels, omega):
    n = int(tf.shape(labels)[0])
    columns = tf.repeat(tf.expand_dims(labels, 0), repeats=[n], axis=0)
    rows = tf.repeat(tf.expand_dims(labels, -1), repeats=[n], axis=-1)
    phi = tf.cast(tf.where(rows - columns == 0, 1, -1), tf.float32)
    # Per-sample weights gathered one label at a time (the official map over labels).
    per_sample = tf.map_fn(lambda c: omega[c], labels, fn_output_signature=tf.float32)
    sample_weight = tf.repeat(tf.expand_dims(per_sample, 0), repeats=[n], axis=0)
    weights = (sample_weight + tf.transpose(sample_weight)) * (1.0 - tf.eye(n))
    correlations = [tf.cast(np.corrcoef(embeddings[l]), tf.float32) for l in range(len(embeddings))]
    return tf.reduce_mean(weights * tf.abs(phi - correlations))


def official_md_eager(embeddings, labels, num_classes):
    labels_np = np.asarray(labels)
    present = [c for c in range(num_classes) if np.any(labels_np == c)]
    if len(present) < 2:
        return tf.constant(0.0)
    class_maps = np.array([tf.cast(tf.where(labels == c, 1.0, 0.0), tf.float32) for c in present])
    means = np.array([[np.average(embeddings[l], axis=0, weights=class_maps[i])
                       for i in range(len(present))] for l in range(len(embeddings))])
    mask = 1.0 - tf.eye(len(present))
    return tf.reduce_mean([tf.reduce_sum(mask * (1.0 + tf.cast(np.corrcoef(means[l]), tf.float32)))
                           / tf.reduce_sum(mask) for l in range(len(embeddings))])


def official_ed_eager(embeddings):
    k = len(embeddings)
    stacked = tf.cast(embeddings, tf.float32)  # the list becomes one (k, n, d) tensor
    n = int(stacked.shape[1])
    per_sample = tf.cast([np.corrcoef(stacked[:, i, :]) for i in range(n)], tf.float32)
    mask = 1.0 - tf.eye(k)
    return tf.reduce_sum(mask * (1.0 + per_sample)) / (n * tf.reduce_sum(mask))


def official_terms_eager(embeddings, labels, omega, num_classes):
    return float(official_fd_eager(embeddings, labels, omega)
                 + official_md_eager(embeddings, labels, num_classes)
                 + official_ed_eager(embeddings))


def official_fd_numpy(embeddings, labels, omega):
    n = len(labels)
    phi = np.where(labels[:, None] - labels[None, :] == 0, 1.0, -1.0)
    sample_weight = np.array([omega[labels[i]] for i in range(n)])
    weights = (sample_weight[None, :] + sample_weight[:, None]) * (1.0 - np.eye(n))
    correlations = [np.corrcoef(embeddings[l]) for l in range(len(embeddings))]
    return float(np.mean([np.mean(weights * np.abs(phi - c)) for c in correlations]))


def official_md_numpy(embeddings, labels, num_classes):
    present = [c for c in range(num_classes) if np.any(labels == c)]
    if len(present) < 2:
        return 0.0
    class_maps = [np.where(labels == c, 1.0, 0.0) for c in present]
    means = np.array([[np.average(embeddings[l], axis=0, weights=class_maps[i])
                       for i in range(len(present))] for l in range(len(embeddings))])
    mask = 1.0 - np.eye(len(present))
    per_embedding = [np.sum(mask * (1.0 + np.corrcoef(means[l]))) / mask.sum()
                     for l in range(len(embeddings))]
    return float(np.mean(per_embedding))


def official_ed_numpy(embeddings):
    embeddings = np.asarray(embeddings)
    k, n = embeddings.shape[:2]
    per_sample = [np.corrcoef(embeddings[:, i, :]) for i in range(n)]
    mask = 1.0 - np.eye(k)
    return float(np.mean([np.sum(mask * (1.0 + c)) / mask.sum() for c in per_sample]))


def official_terms_numpy(embeddings, labels, omega, num_classes):
    return (official_fd_numpy(embeddings, labels, omega)
            + official_md_numpy(embeddings, labels, num_classes)
            + official_ed_numpy(embeddings))


# ----------------------------------------------------------------------------------
def time_ms(function, repeats, warmup=2):
    """Median and minimum wall time of `function()` in milliseconds."""
    for _ in range(warmup):
        function()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples), min(samples)


def correlation_terms(loss, embeddings, labels, omega):
    """FD + MD + ED of one embedding stack (k, n, d): the part the official code runs in NumPy."""
    return (loss.feature_discriminator(embeddings, labels, omega)
            + loss.mean_discriminator(embeddings, labels) + loss.embedding_discriminator(embeddings))


def loss_step_functions(loss, labels, probs, embeddings, omega):
    """Callables that run one evaluation and fetch the result to the host."""
    def terms(e):
        return correlation_terms(loss, e, labels, omega)

    graph_forward = tf.function(terms)
    xla_forward = tf.function(terms, jit_compile=True)

    @tf.function
    def graph_forward_backward(e, p):
        with tf.GradientTape() as tape:
            tape.watch([e, p])
            total = loss(labels, p, e, omega)["loss"]
        return tape.gradient(total, [e, p])

    return (lambda: graph_forward(embeddings).numpy(), lambda: xla_forward(embeddings).numpy(),
            lambda: [g.numpy() for g in graph_forward_backward(embeddings, probs)])


def in_graph_function(loss, labels, omega, stacks):
    """`stacks` (R, k, n, d): R independent evaluations inside one graph call, which is
    what the loss costs inside a train step (no per-call dispatch overhead)."""
    @tf.function
    def many(batch):
        return tf.add_n([correlation_terms(loss, batch[r], labels, omega)
                         for r in range(batch.shape[0])])

    return lambda: many(stacks).numpy()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--k", type=int, default=7)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--classes", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=50, help="timed loss evaluations")
    parser.add_argument("--in-graph", type=int, default=10,
                        help="evaluations per call for the in-graph row")
    parser.add_argument("--model-batch", type=int, default=8)
    parser.add_argument("--model-repeats", type=int, default=3)
    parser.add_argument("--skip-model", action="store_true")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)

    def unit_embeddings(n, copies=None):
        shape = (args.k, n, args.dim) if copies is None else (copies, args.k, n, args.dim)
        raw = rng.normal(size=shape)
        return (raw / np.linalg.norm(raw, axis=-1, keepdims=True)).astype(np.float32)

    labels_np = rng.integers(0, args.classes, args.batch).astype(np.int32)
    embeddings_np = unit_embeddings(args.batch)
    omega_np = rng.uniform(0.05, 1.0, args.classes).astype(np.float32)
    probs_np = rng.dirichlet(np.ones(args.classes), args.batch).astype(np.float32)

    loss = AdCorreLoss(num_classes=args.classes)
    labels, omega = tf.constant(labels_np), tf.constant(omega_np)
    embeddings, probs = tf.constant(embeddings_np), tf.constant(probs_np)
    embedding_list = [embeddings[l] for l in range(args.k)]  # as the model returns them
    graph_forward, xla_forward, graph_forward_backward = loss_step_functions(
        loss, labels, probs, embeddings, omega)
    stacks = tf.constant(unit_embeddings(args.batch, args.in_graph))
    in_graph = in_graph_function(loss, labels, omega, stacks)

    values = {
        "official eager": official_terms_eager(embedding_list, labels, omega, args.classes),
        "official NumPy": official_terms_numpy(embeddings_np.astype(np.float64), labels_np,
                                               omega_np, args.classes),
        "graph": float(graph_forward()),
        "XLA": float(xla_forward()),
    }
    print("FD+MD+ED values: " + ", ".join(f"{k} {v:.6f}" for k, v in values.items()))

    slow_repeats = max(5, args.repeats // 5)
    rows = [
        ("official way, eager tensors (no grad)",
         time_ms(lambda: official_terms_eager(embedding_list, labels, omega, args.classes),
                 slow_repeats)),
        ("official way, NumPy arrays (no grad)",
         time_ms(lambda: official_terms_numpy(embeddings_np, labels_np, omega_np, args.classes),
                 slow_repeats)),
        ("tf.function graph (fwd)", time_ms(graph_forward, args.repeats)),
        ("tf.function jit_compile (fwd)", time_ms(xla_forward, args.repeats)),
        ("tf.function graph (fwd+bwd, with CE)", time_ms(graph_forward_backward, args.repeats)),
    ]
    median, best = time_ms(in_graph, max(5, args.repeats // args.in_graph))
    rows.append((f"inside one graph ({args.in_graph} evals/call, fwd)",
                 (median / args.in_graph, best / args.in_graph)))
    eager_ms, numpy_ms = rows[0][1][0], rows[1][1][0]
    print(f"\nAd-Corre FD+MD+ED, batch {args.batch}, k {args.k}, d {args.dim}, "
          f"{args.classes} classes, {os.cpu_count()} CPU cores (ms per evaluation)")
    print(f"{'variant':44s} {'median':>8s} {'min':>8s} {'vs eager':>9s} {'vs NumPy':>9s}")
    for name, (median, best) in rows:
        print(f"{name:44s} {median:8.3f} {best:8.3f} {eager_ms / median:8.1f}x "
              f"{numpy_ms / median:8.1f}x")

    if args.skip_model:
        return
    print(f"\nbuilding xcp (weights=None): Xception + GAP + {args.k} Dense({args.dim}) heads ...",
          flush=True)
    model = CNNModel().get_model("xcp", num_classes=args.classes, weights=None,
                                 num_embeddings=args.k, embedding_size=args.dim)
    images = tf.constant(rng.uniform(size=(args.model_batch, 224, 224, 3)).astype(np.float32))
    model_labels = tf.constant(rng.integers(0, args.classes, args.model_batch).astype(np.int32))

    @tf.function
    def model_forward_backward(x):
        with tf.GradientTape() as tape:
            outputs = model(x, training=True)
            # A cheap scalar of every output, so that the whole network is differentiated.
            total = loss.cross_entropy(model_labels, outputs[0]) + tf.add_n(
                [tf.reduce_mean(o) for o in outputs[1:]])
        return tape.gradient(total, model.trainable_variables)

    small_embeddings = tf.constant(unit_embeddings(args.model_batch))
    small_probs = tf.constant(
        rng.dirichlet(np.ones(args.classes), args.model_batch).astype(np.float32))
    _, _, small_loss_fb = loss_step_functions(loss, model_labels, small_probs, small_embeddings,
                                              omega)
    start = time.perf_counter()
    model_ms, model_best = time_ms(lambda: [g.numpy() for g in model_forward_backward(images)],
                                   args.model_repeats, warmup=1)
    print(f"(Xception trace + {1 + args.model_repeats} steps took "
          f"{time.perf_counter() - start:.0f} s)")
    loss_small_ms, _ = time_ms(small_loss_fb, args.repeats)
    loss_full_ms = rows[4][1][0]
    model_full_ms = model_ms * args.batch / args.model_batch
    print(f"\nforward+backward, ms per step ({os.cpu_count()} CPU cores)")
    print(f"{'batch':>22s} {'Xception+heads':>15s} {'Ad-Corre loss':>14s} {'loss share':>11s}")
    print(f"{f'{args.model_batch} (measured)':>22s} {model_ms:15.1f} {loss_small_ms:14.3f} "
          f"{100 * loss_small_ms / (model_ms + loss_small_ms):10.3f}%")
    if args.model_batch != args.batch:
        label = f"{args.batch} (Xception scaled)"
        print(f"{label:>22s} {model_full_ms:15.1f} {loss_full_ms:14.3f} "
              f"{100 * loss_full_ms / (model_full_ms + loss_full_ms):10.3f}%")
    official_share = 100 * eager_ms / (model_full_ms + eager_ms)
    print(f"(the official way's terms, eager, would be {official_share:.2f}% of the "
          f"batch-{args.batch} step, without gradient; Xception min {model_best:.1f} ms)")


if __name__ == "__main__":
    main()
