"""Tests of custom_loss: every term against an independent NumPy statement of the
DESIGN.md equations, gradients against central finite differences, degenerate
batches, dynamic batch size under XLA, half-precision inputs, the adaptive attention
map (alone, under tf.distribute and inside Keras `fit`) and the JAX backend."""

import importlib.util
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from adcorre.errors import SettingError
from adcorre.training.custom_loss import AdaptiveAttentionMap, AdCorreLoss
from helpers import run_python

EPS = keras.config.epsilon()
NUM_CLASSES = 7


# --------------------------------------------------------------------------------------
# Independent NumPy statement of the equations (float64, loops, np.corrcoef).
# --------------------------------------------------------------------------------------
def ref_corm(rows):
    """Pearson correlations between rows; a constant row correlates 0 with everything."""
    rows = np.atleast_2d(np.asarray(rows, dtype=np.float64))
    live = np.flatnonzero(np.ptp(rows, axis=1) > 0)
    out = np.zeros((len(rows), len(rows)))
    if len(live) == 1:
        out[live[0], live[0]] = 1.0
    elif len(live) > 1:
        out[np.ix_(live, live)] = np.corrcoef(rows[live])
    return out


def ref_fd(emb, labels, omega):
    k, n, _ = emb.shape
    total = 0.0
    for l in range(k):
        corm = ref_corm(emb[l])
        s = 0.0
        for i in range(n):
            for j in range(n):
                if i == j:
                    continue
                phi = 1.0 if labels[i] == labels[j] else -1.0
                s += (omega[labels[i]] + omega[labels[j]]) * abs(phi - corm[i, j])
        total += s / n ** 2
    return total / k


def ref_md(emb, labels):
    present = sorted(set(int(c) for c in labels))
    if len(present) < 2:
        return 0.0
    total = 0.0
    for l in range(emb.shape[0]):
        means = np.array([emb[l][labels == c].mean(axis=0) for c in present])
        corm = ref_corm(means)
        m = len(present)
        values = [1.0 + corm[a, b] for a in range(m) for b in range(m) if a != b]
        total += np.mean(values)
    return total / emb.shape[0]


def ref_ed(emb):
    k, n, _ = emb.shape
    if k == 1:
        return 0.0
    total = 0.0
    for i in range(n):
        corm = ref_corm(emb[:, i, :])
        total += np.mean([1.0 + corm[a, b] for a in range(k) for b in range(k) if a != b])
    return total / n


def ref_ce(labels, probs):
    probs = np.asarray(probs, np.float64)
    probs = np.clip(probs / probs.sum(axis=1, keepdims=True), EPS, 1.0)
    return float(np.mean([-np.log(probs[i, labels[i]]) for i in range(len(labels))]))


def softmax(x):
    x = np.asarray(x, np.float64)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def make_batch(seed, k, n, d=16, skewed=True):
    """Unbalanced labels (classes 4..6 absent when skewed), random embeddings/logits/omega."""
    rng = np.random.default_rng(seed)
    if skewed:
        labels = rng.choice(NUM_CLASSES, size=n, p=[0.45, 0.25, 0.2, 0.1, 0.0, 0.0, 0.0])
    else:
        labels = rng.integers(0, NUM_CLASSES, size=n)
    emb = rng.normal(size=(k, n, d))
    logits = rng.normal(size=(n, NUM_CLASSES))
    omega = rng.uniform(0.05, 1.0, size=NUM_CLASSES)
    return labels.astype(np.int32), emb, logits, omega


def numpy_of(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


# --------------------------------------------------------------------------------------
# Values against the reference.
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k", [1, 3, 7])
@pytest.mark.parametrize("n", [1, 2, 5, 50])
def test_terms_match_numpy_reference(seed, k, n):
    labels, emb, logits, omega = make_batch(seed, k, n, skewed=seed != 2)
    probs = softmax(logits)
    loss = AdCorreLoss(num_classes=NUM_CLASSES, ce_weight=3.0, fd_weight=0.5, md_weight=2.0,
                       ed_weight=1.5)
    stacked = emb.astype(np.float32)
    as_list = [e for e in stacked]

    fd = numpy_of(loss.feature_discriminator(as_list, labels, omega.astype(np.float32)))
    md = numpy_of(loss.mean_discriminator(as_list, labels))
    ed = numpy_of(loss.embedding_discriminator(as_list))
    ce = numpy_of(loss.cross_entropy(labels, probs.astype(np.float32)))
    expected = {"fd": ref_fd(emb, labels, omega), "md": ref_md(emb, labels),
                "ed": ref_ed(emb), "ce": ref_ce(labels, probs)}
    np.testing.assert_allclose(fd, expected["fd"], rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(md, expected["md"], rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(ed, expected["ed"], rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(ce, expected["ce"], rtol=2e-5, atol=2e-6)

    # Stacked (k, n, d) input and (n, 1) labels give the same numbers as a list and (n,).
    total = loss(labels[:, None], probs.astype(np.float32), stacked, omega=omega.astype(np.float32))
    for name in ("fd", "md", "ed", "ce"):
        np.testing.assert_allclose(numpy_of(total[name]), expected[name], rtol=2e-5, atol=2e-6)
    expected_total = (3.0 * expected["ce"] + 0.5 * expected["fd"] + 2.0 * expected["md"]
                      + 1.5 * expected["ed"])
    np.testing.assert_allclose(numpy_of(total["loss"]), expected_total, rtol=2e-5, atol=2e-6)
    fd_stacked = loss.feature_discriminator(stacked, labels[:, None], omega)
    np.testing.assert_allclose(numpy_of(fd_stacked), fd, rtol=1e-6, atol=1e-7)


def test_reference_is_not_trivially_satisfied():
    """The batches used above give clearly non-zero, distinct terms (the test can fail)."""
    labels, emb, _, omega = make_batch(0, 3, 50)
    values = [ref_fd(emb, labels, omega), ref_md(emb, labels), ref_ed(emb)]
    assert all(v > 0.1 for v in values)
    # omega matters: doubling it doubles FD, and MD/ED ignore it.
    loss = AdCorreLoss()
    fd1 = numpy_of(loss.feature_discriminator(emb.astype(np.float32), labels, omega))
    fd2 = numpy_of(loss.feature_discriminator(emb.astype(np.float32), labels, 2 * omega))
    np.testing.assert_allclose(fd2, 2 * fd1, rtol=1e-5)


def test_default_omega_is_one_plus_epsilon():
    labels, emb, logits, _ = make_batch(3, 3, 10)
    loss = AdCorreLoss()
    expected = ref_fd(emb, labels, np.full(NUM_CLASSES, 1.0 + EPS))
    np.testing.assert_allclose(numpy_of(loss.feature_discriminator(emb.astype(np.float32), labels)),
                               expected, rtol=2e-5)
    terms = loss(labels, softmax(logits).astype(np.float32), emb.astype(np.float32))
    np.testing.assert_allclose(numpy_of(terms["fd"]), expected, rtol=2e-5)
    expected_total = ((50.0 / 7.0) * ref_ce(labels, softmax(logits)) + expected
                      + ref_md(emb, labels) + ref_ed(emb))
    np.testing.assert_allclose(numpy_of(terms["loss"]), expected_total, rtol=2e-5)


def test_ed_and_md_on_hand_made_batch():
    """Two embeddings that are exact negatives of each other: COR = -1, so ED = 0;
    two classes whose means are proportional: COR = +1, so MD = 2."""
    base = np.array([[1.0, 2.0, 4.0, 0.0], [3.0, -1.0, 0.0, 2.0]], np.float32)
    loss = AdCorreLoss(num_classes=3)
    ed = loss.embedding_discriminator([base, -base])
    np.testing.assert_allclose(numpy_of(ed), 0.0, atol=1e-6)
    emb = np.stack([base[0], 2.0 * base[0] + 1.0])[None]
    md = loss.mean_discriminator(emb, np.array([0, 2]))
    np.testing.assert_allclose(numpy_of(md), 2.0, atol=1e-6)


# --------------------------------------------------------------------------------------
# Gradients.
# --------------------------------------------------------------------------------------
def central_differences(function, x, step=1e-6):
    x = np.array(x, dtype=np.float64)
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        plus, minus = x.copy(), x.copy()
        plus[index] += step
        minus[index] -= step
        grad[index] = (function(plus) - function(minus)) / (2 * step)
    return grad


@pytest.mark.parametrize("seed", [0, 1])
def test_gradients_match_finite_differences_of_the_reference(seed):
    """Analytic gradients (tf.GradientTape, float64 path) equal central differences
    of the independent NumPy reference."""
    labels, emb, logits, omega = make_batch(seed, 3, 6, d=5, skewed=False)
    loss = AdCorreLoss(num_classes=NUM_CLASSES, ce_weight=2.0)
    e = tf.constant(emb)
    z = tf.constant(logits)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([e, z])
        terms = loss(labels, tf.nn.softmax(z), e, omega=omega)
    assert terms["fd"].dtype == tf.float64
    checks = {
        "fd": lambda x: ref_fd(x, labels, omega),
        "md": lambda x: ref_md(x, labels),
        "ed": ref_ed,
    }
    for name, reference in checks.items():
        analytic = tape.gradient(terms[name], e).numpy()
        numeric = central_differences(reference, emb)
        assert np.abs(numeric).max() > 1e-3, name
        np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-7, err_msg=name)
    analytic = tape.gradient(terms["ce"], z).numpy()
    numeric = central_differences(lambda x: ref_ce(labels, softmax(x)), logits)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-8)


def test_float32_gradient_matches_float64_gradient():
    """The float32 path used in training has the float64 path's gradient."""
    labels, emb, logits, omega = make_batch(4, 7, 12)
    loss = AdCorreLoss()
    grads = []
    for dtype in (tf.float32, tf.float64):
        e = tf.constant(emb, dtype=dtype)
        with tf.GradientTape() as tape:
            tape.watch(e)
            probs = softmax(logits).astype(dtype.as_numpy_dtype)
            total = loss(labels, probs, e, omega=omega)["loss"]
        grads.append(tape.gradient(total, e).numpy())
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-3, atol=1e-5)


# --------------------------------------------------------------------------------------
# Degenerate batches.
# --------------------------------------------------------------------------------------
def _degenerate_cases():
    rng = np.random.default_rng(7)
    emb = rng.normal(size=(3, 6, 8))
    constant_rows = emb.copy()
    constant_rows[:, 1, :] = 0.25  # every embedding of sample 1 is constant
    constant_rows[0, 4, :] = -1.0  # and one embedding of sample 4
    return {
        "constant_rows": (constant_rows, np.array([0, 1, 1, 2, 0, 3])),
        "all_constant": (np.ones((3, 6, 8)), np.array([0, 1, 1, 2, 0, 3])),
        "all_zero": (np.zeros((3, 6, 8)), np.array([0, 1, 1, 2, 0, 3])),
        "one_class": (emb, np.full(6, 4)),
        "n_equals_1": (emb[:, :1], np.array([2])),
        "absent_classes": (emb, np.array([6, 6, 0, 0, 6, 0])),
        "k_equals_1": (emb[:1], np.array([0, 1, 1, 2, 0, 3])),
        "duplicate_rows": (np.repeat(emb[:, :1], 6, axis=1), np.array([0, 1, 1, 2, 0, 3])),
    }


@pytest.mark.parametrize("case", sorted(_degenerate_cases()))
def test_degenerate_batches_finite_values_and_gradients(case):
    emb, labels = _degenerate_cases()[case]
    n = emb.shape[1]
    logits = np.random.default_rng(1).normal(size=(n, NUM_CLASSES))
    omega = np.linspace(0.1, 1.0, NUM_CLASSES)
    loss = AdCorreLoss()
    e = tf.constant(emb, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(e)
        terms = loss(labels, softmax(logits).astype(np.float32), e, omega=omega)
    gradient = tape.gradient(terms["loss"], e).numpy()
    assert np.all(np.isfinite(gradient)), case
    for name in terms:
        assert np.isfinite(numpy_of(terms[name])), (case, name)
    np.testing.assert_allclose(numpy_of(terms["fd"]), ref_fd(emb, labels, omega),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(numpy_of(terms["md"]), ref_md(emb, labels), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(numpy_of(terms["ed"]), ref_ed(emb), rtol=1e-4, atol=1e-5)
    if case in ("one_class", "n_equals_1"):
        assert numpy_of(terms["md"]) == 0.0
    if case == "k_equals_1":
        assert numpy_of(terms["ed"]) == 0.0
    if case == "n_equals_1":
        assert numpy_of(terms["fd"]) == 0.0


# --------------------------------------------------------------------------------------
# Graph mode, XLA, dtypes.
# --------------------------------------------------------------------------------------
def test_dynamic_batch_size_under_xla():
    loss = AdCorreLoss()
    k, d = 3, 8

    @tf.function(jit_compile=True, input_signature=[
        tf.TensorSpec((None,), tf.int32), tf.TensorSpec((None, NUM_CLASSES), tf.float32),
        tf.TensorSpec((k, None, d), tf.float32), tf.TensorSpec((NUM_CLASSES,), tf.float32)])
    def step(labels, probs, emb, omega):
        with tf.GradientTape() as tape:
            tape.watch(emb)
            terms = loss(labels, probs, emb, omega)
        return terms, tape.gradient(terms["loss"], emb)

    for n in (1, 2, 5, 50):
        labels, emb, logits, omega = make_batch(n, k, n, d=d)
        probs = softmax(logits).astype(np.float32)
        terms, gradient = step(labels, probs, emb.astype(np.float32), omega.astype(np.float32))
        assert gradient.shape == (k, n, d)
        assert np.all(np.isfinite(gradient.numpy()))
        np.testing.assert_allclose(terms["fd"].numpy(), ref_fd(emb, labels, omega),
                                   rtol=2e-5, atol=2e-6)
        np.testing.assert_allclose(terms["md"].numpy(), ref_md(emb, labels), rtol=2e-5, atol=2e-6)
        np.testing.assert_allclose(terms["ed"].numpy(), ref_ed(emb), rtol=2e-5, atol=2e-6)
        np.testing.assert_allclose(terms["ce"].numpy(), ref_ce(labels, probs), rtol=2e-5, atol=2e-6)
    assert step.experimental_get_tracing_count() == 1


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_inputs_give_float32_terms(dtype):
    labels, emb, logits, omega = make_batch(5, 3, 20)
    half_emb = tf.cast(emb, dtype)
    half_probs = tf.cast(softmax(logits), dtype)
    loss = AdCorreLoss()
    terms = loss(labels, half_probs, [half_emb[i] for i in range(3)], omega=tf.cast(omega, dtype))
    for name in ("fd", "md", "ed", "ce"):
        assert terms[name].dtype == tf.float32, name
    # Same numbers as the float32 computation on the (exactly representable) rounded inputs.
    rounded_emb = tf.cast(half_emb, tf.float32).numpy().astype(np.float64)
    rounded_probs = tf.cast(half_probs, tf.float32).numpy().astype(np.float64)
    rounded_omega = tf.cast(tf.cast(omega, dtype), tf.float32).numpy().astype(np.float64)
    np.testing.assert_allclose(terms["fd"].numpy(), ref_fd(rounded_emb, labels, rounded_omega),
                               rtol=2e-5)
    np.testing.assert_allclose(terms["md"].numpy(), ref_md(rounded_emb, labels), rtol=2e-5)
    np.testing.assert_allclose(terms["ed"].numpy(), ref_ed(rounded_emb), rtol=2e-5)
    np.testing.assert_allclose(terms["ce"].numpy(), ref_ce(labels, rounded_probs), rtol=2e-5)


# --------------------------------------------------------------------------------------
# Bad input and serialisation.
# --------------------------------------------------------------------------------------
def test_bad_input_raises_clear_errors():
    """Each one error of the family naming what was expected (also the ValueError it was)."""
    loss = AdCorreLoss()
    emb = np.zeros((3, 4, 8), np.float32)
    labels = np.array([0, 1, 2, 3])
    with pytest.raises(SettingError, match=r"shape \(k, n, d\)"):
        loss.embedding_discriminator(np.zeros((2, 3, 4, 8), np.float32))
    with pytest.raises(SettingError, match=r"embeddings\[1\]"):
        loss.embedding_discriminator([emb[0], emb[1, :3]])
    with pytest.raises(SettingError, match="empty list"):
        loss.embedding_discriminator([])
    with pytest.raises(SettingError, match=r"\(n,\) or \(n, 1\)"):
        loss.mean_discriminator(emb, np.zeros((4, 2), np.int32))
    with pytest.raises(SettingError, match=r"omega.*\(7,\)"):
        loss.feature_discriminator(emb, labels, np.ones(5))
    with pytest.raises(SettingError, match=r"probs.*\(n, 7\)"):
        loss.cross_entropy(labels, np.ones((4, 6)) / 6)
    with pytest.raises(SettingError, match="num_classes"):
        AdCorreLoss(num_classes=0)
    with pytest.raises(SettingError, match="num_classes"):
        AdaptiveAttentionMap(num_classes=0)
    with pytest.raises(SettingError, match="window_batches must be None or >= 1, got 0"):
        AdaptiveAttentionMap(window_batches=0)
    with pytest.raises(SettingError, match="update_window needs window_batches"):
        AdaptiveAttentionMap(num_classes=4).update_window(labels, labels)


def test_serialisation_round_trip():
    loss = AdCorreLoss(num_classes=8, ce_weight=2.5, fd_weight=0.0, epsilon=1e-6)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert isinstance(restored, AdCorreLoss)
    assert restored.get_config() == loss.get_config()
    attention = AdaptiveAttentionMap(num_classes=8, epsilon=1e-3, name="att")
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(attention))
    assert isinstance(restored, AdaptiveAttentionMap)
    assert restored.num_classes == 8 and restored.epsilon == 1e-3 and restored.name == "att"
    np.testing.assert_allclose(numpy_of(restored.omega), np.full(8, 1.001, np.float32))


# --------------------------------------------------------------------------------------
# Adaptive attention map.
# --------------------------------------------------------------------------------------
def ref_counts(labels, predictions, num_classes, weights=None):
    counts = np.zeros((num_classes, num_classes))
    weights = np.ones(len(labels)) if weights is None else weights
    for true, predicted, weight in zip(labels, predictions, weights):
        counts[true, predicted] += weight
    return counts


def ref_omega(counts, eps):
    omega = np.empty(len(counts))
    for c in range(len(counts)):
        total = counts[c].sum()
        omega[c] = (1.0 - counts[c, c] / total + eps) if total > 0 else 1.0 + eps
    return omega


def test_attention_map_counts_refresh_and_reset():
    rng = np.random.default_rng(0)
    attention = AdaptiveAttentionMap(num_classes=5)
    np.testing.assert_allclose(numpy_of(attention.omega), np.full(5, 1.0 + EPS, np.float32))
    assert not attention.omega.trainable
    labels_all, predicted_all = [], []
    for n in (7, 1, 12):
        # Class 4 never occurs as a true label: its omega stays 1 + eps.
        labels = rng.integers(0, 4, n)
        probs = softmax(rng.normal(size=(n, 5)))
        attention.update_state(labels[:, None], probs)
        labels_all.extend(labels)
        predicted_all.extend(probs.argmax(axis=1))
    counts = ref_counts(labels_all, predicted_all, 5)
    np.testing.assert_array_equal(attention.confusion_matrix(), counts)
    np.testing.assert_allclose(numpy_of(attention.result()), np.trace(counts) / counts.sum(),
                               rtol=1e-6)

    omega = attention.refresh()
    assert omega.shape == (5,) and omega.dtype == np.float32
    np.testing.assert_allclose(omega, ref_omega(counts, EPS), rtol=1e-6)
    np.testing.assert_allclose(omega[4], 1.0 + EPS)
    np.testing.assert_allclose(numpy_of(attention.omega), omega)
    np.testing.assert_array_equal(attention.confusion_matrix(), np.zeros((5, 5)))
    assert numpy_of(attention.result()) == 0.0

    # Keras' per-epoch reset zeros the counts and keeps omega.
    attention.update_state(np.array([0, 1]), np.array([1, 1]))
    attention.reset_state()
    np.testing.assert_array_equal(attention.confusion_matrix(), np.zeros((5, 5)))
    np.testing.assert_allclose(numpy_of(attention.omega), omega)
    # A refresh with no counts at all gives back 1 + eps everywhere.
    np.testing.assert_allclose(attention.refresh(), np.full(5, 1.0 + EPS, np.float32))


def test_attention_map_sample_weight_integer_predictions_and_graph():
    attention = AdaptiveAttentionMap(num_classes=3, epsilon=0.01)
    labels = np.array([0, 0, 1, 2, 2, 2])
    predicted = np.array([0, 1, 1, 2, 0, 2])
    weights = np.array([1.0, 2.0, 0.5, 1.0, 0.0, 3.0])

    @tf.function
    def update(y, p, w):
        attention.update_state(y, p, sample_weight=w)

    update(tf.constant(labels), tf.constant(predicted), tf.constant(weights))
    counts = ref_counts(labels, predicted, 3, weights)
    np.testing.assert_allclose(attention.confusion_matrix(), counts)
    np.testing.assert_allclose(attention.refresh(), ref_omega(counts, 0.01), rtol=1e-6)


def test_attention_map_omega_feeds_the_loss():
    attention = AdaptiveAttentionMap(num_classes=NUM_CLASSES)
    labels, emb, logits, _ = make_batch(8, 3, 30, skewed=False)
    attention.update_state(labels, softmax(logits))
    omega = attention.refresh()
    loss = AdCorreLoss()
    np.testing.assert_allclose(
        numpy_of(loss.feature_discriminator(emb.astype(np.float32), labels, attention.omega)),
        ref_fd(emb, labels, omega.astype(np.float64)), rtol=2e-5)


def _run_for_result(script, env):
    """Runs `script` in a child Python; returns the JSON it printed after "RESULT "."""
    result = run_python(script, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT "):])


MIRRORED_SCRIPT = """
import json
import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from adcorre.training.custom_loss import AdaptiveAttentionMap
from counting_model import Counting

strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
out = {"replicas": strategy.num_replicas_in_sync}

# 1. strategy.run directly: each replica counts its own batch, reads see the sum.
with strategy.scope():
    attention = AdaptiveAttentionMap(num_classes=4)
labels = [np.array([0, 0, 1, 3, 3]), np.array([3, 2, 1, 1, 0])]
predicted = [np.array([0, 1, 1, 3, 0]), np.array([3, 2, 0, 1, 0])]
values = strategy.experimental_distribute_values_from_function(
    lambda ctx: (tf.constant(labels[ctx.replica_id_in_sync_group]),
                 tf.one_hot(predicted[ctx.replica_id_in_sync_group], 4)))

@tf.function
def step(batch):
    def replica_fn(y, p):
        attention.update_state(y, p)
        return tf.identity(attention.omega)  # what the loss reads inside a replica
    return strategy.run(replica_fn, args=batch)

before = step(values)
local = strategy.experimental_local_results
out["omega_in_replicas_before"] = [v.numpy().tolist() for v in local(before)]
out["counts"] = attention.confusion_matrix().tolist()
out["refreshed"] = attention.refresh().tolist()
out["counts_after_refresh"] = attention.confusion_matrix().tolist()
after = step(values)
out["omega_in_replicas_after"] = [v.numpy().tolist() for v in local(after)]
attention.reset_state()
out["omega_after_reset"] = np.asarray(attention.omega.numpy()).tolist()

# 2. As a tracked metric of a model trained by fit (Keras runs train_step per replica
#    and resets metrics at the epoch start). lr = 0 keeps predictions fixed.
rng = np.random.default_rng(0)
x = rng.normal(size=(48, 6)).astype("float32")
y = rng.integers(0, 4, 48).astype("int32")
with strategy.scope():
    model = Counting(num_classes=4)
    model(x[:1])
    model.compile(optimizer=keras.optimizers.SGD(0.0))
model.attention.update_state(np.array([0, 1]), np.array([1, 1]))
out["fit_omega_set"] = model.attention.refresh().tolist()
model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
out["fit_counts"] = model.attention.confusion_matrix().tolist()
out["fit_omega_after"] = np.asarray(model.attention.omega.numpy()).tolist()
out["fit_predicted"] = model.predict(x, verbose=0).argmax(axis=1).tolist()
out["fit_y"] = y.tolist()
print("RESULT " + json.dumps(out))
"""


def test_attention_map_sums_over_mirrored_replicas():
    out = _run_for_result(MIRRORED_SCRIPT,
                          {"KERAS_BACKEND": "tensorflow", "CUDA_VISIBLE_DEVICES": ""})
    assert out["replicas"] == 2
    labels = [0, 0, 1, 3, 3, 3, 2, 1, 1, 0]
    predicted = [0, 1, 1, 3, 0, 3, 2, 0, 1, 0]
    counts = ref_counts(labels, predicted, 4)
    np.testing.assert_array_equal(out["counts"], counts)
    np.testing.assert_allclose(out["refreshed"], ref_omega(counts, EPS), rtol=1e-6)
    np.testing.assert_array_equal(out["counts_after_refresh"], np.zeros((4, 4)))
    for replica_omega in out["omega_in_replicas_before"]:
        np.testing.assert_allclose(replica_omega, np.full(4, 1.0 + EPS), rtol=1e-7)
    for replica_omega in out["omega_in_replicas_after"]:
        np.testing.assert_allclose(replica_omega, out["refreshed"], rtol=1e-7)
    np.testing.assert_allclose(out["omega_after_reset"], out["refreshed"], rtol=1e-7)

    fit_counts = ref_counts(out["fit_y"], out["fit_predicted"], 4)
    assert fit_counts.sum() == 48
    np.testing.assert_array_equal(out["fit_counts"], fit_counts)
    np.testing.assert_allclose(out["fit_omega_after"], out["fit_omega_set"], rtol=1e-7)


JAX_SCRIPT = """
import json
import sys
import numpy as np
from adcorre.training.custom_loss import AdaptiveAttentionMap, AdCorreLoss

out = {"tensorflow_imported": "tensorflow" in sys.modules}
import jax
import keras

out["backend"] = keras.backend.backend()
data = np.load(BATCH_PATH)
loss = AdCorreLoss()
labels, emb, probs, omega = data["labels"], data["emb"], data["probs"], data["omega"]
terms = loss(labels, probs, [e for e in emb], omega=omega)
out["terms"] = {k: float(v) for k, v in terms.items()}

@jax.jit
def total(e, y, p, w):
    return loss(y, p, e, omega=w)["loss"]

out["grad"] = np.asarray(jax.grad(total)(emb, labels, probs, omega)).tolist()
attention = AdaptiveAttentionMap(num_classes=7)
attention.update_state(labels, probs)
out["counts"] = attention.confusion_matrix().tolist()
out["omega"] = attention.refresh().tolist()

# As a tracked metric of a model trained by fit: the JAX trainer threads metric
# variables through its stateless train step (lr = 0 keeps predictions fixed).
from counting_model import Counting

rng = np.random.default_rng(0)
x = rng.normal(size=(40, 5)).astype("float32")
y = rng.integers(0, 7, 40).astype("int32")
model = Counting(num_classes=7)
model(x[:1])
model.compile(optimizer=keras.optimizers.SGD(0.0))
model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
out["fit_counts"] = model.attention.confusion_matrix().tolist()
out["fit_predicted"] = np.asarray(model.predict(x, verbose=0)).argmax(axis=1).tolist()
out["fit_y"] = y.tolist()
out["tensorflow_imported_at_end"] = "tensorflow" in sys.modules
print("RESULT " + json.dumps(out))
"""


def test_jax_backend_matches_reference(tmp_path):
    if importlib.util.find_spec("jax") is None:
        pytest.skip("jax is not installed: the JAX backend check needs `pip install jax`")
    labels, emb, logits, omega = make_batch(11, 4, 9, d=12)
    emb = emb.astype(np.float32)
    probs = softmax(logits).astype(np.float32)
    omega = omega.astype(np.float32)
    path = tmp_path / "batch.npz"
    np.savez(path, labels=labels, emb=emb, probs=probs, omega=omega)
    script = JAX_SCRIPT.replace("BATCH_PATH", repr(str(path)))
    out = _run_for_result(script, {"KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"})
    assert out["backend"] == "jax"
    assert not out["tensorflow_imported"], "custom_loss imported tensorflow under the JAX backend"
    assert not out["tensorflow_imported_at_end"]
    emb64, omega64 = emb.astype(np.float64), omega.astype(np.float64)
    expected = {"fd": ref_fd(emb64, labels, omega64), "md": ref_md(emb64, labels),
                "ed": ref_ed(emb64), "ce": ref_ce(labels, probs)}
    for name, value in expected.items():
        np.testing.assert_allclose(out["terms"][name], value, rtol=2e-5, atol=2e-6, err_msg=name)

    # The JAX gradient equals the TensorFlow one.
    e = tf.constant(emb)
    with tf.GradientTape() as tape:
        tape.watch(e)
        total = AdCorreLoss()(labels, probs, e, omega=omega)["loss"]
    np.testing.assert_allclose(out["grad"], tape.gradient(total, e).numpy(), rtol=1e-4, atol=1e-6)
    counts = ref_counts(labels, probs.argmax(axis=1), 7)
    np.testing.assert_array_equal(out["counts"], counts)
    np.testing.assert_allclose(out["omega"], ref_omega(counts, EPS), rtol=1e-6)
    fit_counts = ref_counts(out["fit_y"], out["fit_predicted"], 7)
    assert fit_counts.sum() == 40
    np.testing.assert_array_equal(out["fit_counts"], fit_counts)
