"""Ad-Corre's recipe as the official code ran it: the learning-rate schedules (against Keras 2's
own `Adam(decay=...)`, across a resume, in log.csv and TensorBoard), the CE weight derived from
the class count, the official FD / MD / ED arithmetic against NumPy restatements of the official
custom_loss.py, and the official sliding attention window against a restatement of its history
lists (eager, in a Keras train step, under JAX and under a 2-device MirroredStrategy)."""

import csv
import importlib.util
import json
import os

import keras
import numpy as np
import pytest

from adcorre.config import LearningConfig, official_ce_weight
from adcorre.training.custom_loss import AdaptiveAttentionMap, AdCorreLoss
from helpers import run_python
from adcorre.training.learning_schedules import EpochStepDecay, last_step_rate, make_schedule

EPS = keras.config.epsilon()


# --------------------------------------------------------------------------------------
# The official arithmetic, restated in NumPy from aliprf/Ad-Corre's custom_loss.py and train.py
# (loops, np.corrcoef, np.average), float64.
# --------------------------------------------------------------------------------------
def official_fd(embeddings, labels):
    """correlation_loss_multi: mean over (k, n, n) of |Phi - corrcoef|, no weights."""
    delta = labels[:, None] - labels[None, :]
    phi = np.where(delta == 0, 1.0, -1.0)
    correlations = np.array([np.corrcoef(e) for e in embeddings])
    return np.mean(np.abs(phi[None] - correlations))


def official_md(embeddings, labels, num_classes):
    """mean_embedding_loss_distance: class members weigh 1, the others K.epsilon()."""
    c_map = np.array([np.where(labels == c, 1.0, EPS) for c in range(num_classes)])
    means = np.array([[np.average(e, axis=0, weights=c_map[c]) for c in range(num_classes)]
                      for e in embeddings])
    return np.mean([(1 - np.eye(num_classes)) * (1 + np.corrcoef(m)) for m in means])


def official_ed(embeddings):
    """embedding_loss_distance: np.corrcoef of each sample's k x d rows, mean over n x k x k."""
    k, n, _ = embeddings.shape
    per_sample = np.array([np.corrcoef(embeddings[:, i, :]) for i in range(n)])
    return np.mean((1 - np.eye(k)) * (1 + per_sample))


def official_ce(labels, probs, num_classes):
    """cross_entropy_loss: -mean over n x C of one_hot * log(clipped p)."""
    one_hot = np.eye(num_classes)[labels]
    probs = np.clip(probs / probs.sum(axis=-1, keepdims=True), EPS, 1.0)
    return -np.mean(one_hot * np.log(probs))


def official_window_omegas(batches, num_classes, history_frame):
    """train.py's _update_all_labels_arrays + update_confusion_matrix, then 1 - CONFM[c, c].

    Before each step the oldest batch goes once the history holds `history_frame` labels; the
    step's batch is appended and the row-normalised confusion matrix (an unseen class's row 0)
    gives omega.
    """
    true_history, predicted_history, omegas = [], [], []
    for true, predicted in batches:
        if len(true_history) >= history_frame:
            true_history, predicted_history = (true_history[len(true):],
                                               predicted_history[len(true):])
        true_history += list(true)
        predicted_history += list(predicted)
        counts = np.zeros((num_classes, num_classes))
        for t, p in zip(true_history, predicted_history):
            counts[t, p] += 1
        support = counts.sum(axis=1)
        recall = np.divide(np.diag(counts), support, out=np.zeros(num_classes),
                           where=support > 0)
        omegas.append(1.0 - recall)
    return omegas


def random_batch(seed, k=7, n=24, d=32, num_classes=7, all_present=True):
    rng = np.random.default_rng(seed)
    if all_present:
        labels = np.concatenate([np.arange(num_classes), rng.integers(0, num_classes, n - num_classes)])
    else:  # classes 4.. absent
        labels = rng.integers(0, 4, n)
    embeddings = rng.normal(size=(k, n, d))
    probs = rng.dirichlet(np.ones(num_classes), size=n)
    return labels.astype(np.int32), embeddings, probs


def numpy_of(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


# --------------------------------------------------------------------------------------
# Learning-rate schedules.
# --------------------------------------------------------------------------------------
def test_inverse_time_steps_like_keras2_adam_with_decay():
    """Keras 3 Adam + the inverse-time schedule = Keras 2's Adam(lr, decay=...), step for step:
    the first step runs at lr (t = 0), the rate then falls as lr / (1 + decay * t)."""
    import tensorflow as tf
    import tf_keras

    decay = 0.25  # large, so that five steps show it
    rng = np.random.default_rng(0)
    start = rng.normal(size=(4, 3)).astype("float32")
    gradients = rng.normal(size=(5, 4, 3)).astype("float32")

    ours = keras.Variable(start)
    optimizer = keras.optimizers.Adam(make_schedule("inverse_time", 1e-3, decay=decay))
    theirs = tf.Variable(start)
    keras2 = tf_keras.optimizers.legacy.Adam(1e-3, decay=decay)
    for t, gradient in enumerate(gradients):
        assert float(optimizer.learning_rate) == pytest.approx(1e-3 / (1 + decay * t), rel=1e-6)
        optimizer.apply_gradients([(tf.constant(gradient), ours)])
        keras2.apply_gradients([(tf.constant(gradient), theirs)])
        np.testing.assert_allclose(numpy_of(ours), theirs.numpy(), rtol=1e-6, atol=1e-8)
        assert last_step_rate(optimizer) == pytest.approx(1e-3 / (1 + decay * t), rel=1e-6)


def test_schedules_give_the_rate_after_t_steps():
    official = make_schedule("inverse_time", 1e-3)  # the official decay, 1e-5 per step
    for t in (0, 1, 1234, 100_000, 368_100):
        assert float(official(t)) == pytest.approx(1e-3 / (1 + 1e-5 * t), rel=1e-6)

    step = make_schedule("step", 1e-3, steps_per_epoch=7, every_epochs=5, factor=0.1)
    for t in range(0, 7 * 16):
        expected = 1e-3 * 0.1 ** ((t // 7) // 5)
        # Bit for bit the float32 a per-epoch Python float gave the optimizer before.
        assert np.float32(step(t)) == np.float32(expected), t
    arm = make_schedule("step", 1e-3, steps_per_epoch=3, every_epochs=1, factor=0.9)
    assert [round(float(arm(t)), 9) for t in (0, 2, 3, 6)] == [1e-3, 1e-3, 9e-4, 8.1e-4]


def test_schedules_serialise_and_bad_settings_fail():
    schedule = EpochStepDecay(1e-3, steps_per_epoch=10, every_epochs=2, factor=0.5)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
    assert isinstance(restored, EpochStepDecay) and restored.get_config() == schedule.get_config()
    optimizer = keras.optimizers.Adam.from_config(keras.optimizers.Adam(schedule).get_config())
    optimizer.iterations.assign(20)  # epoch 2: one x0.5
    assert float(optimizer.learning_rate) == pytest.approx(5e-4)
    with pytest.raises(ValueError, match="inverse_time"):
        make_schedule("cosine", 1e-3)
    with pytest.raises(ValueError, match="steps_per_epoch"):
        make_schedule("step", 1e-3, steps_per_epoch=0)
    with pytest.raises(ValueError, match="lr_schedule"):
        LearningConfig(lr_schedule="exponential")
    with pytest.raises(ValueError, match="loss_arithmetic"):
        LearningConfig(loss_arithmetic="keras")
    with pytest.raises(ValueError, match="attention_window"):
        LearningConfig(attention_window=0)


def test_recipes_pick_their_schedules():
    assert LearningConfig.from_recipe("adcorre").lr_schedule == "inverse_time"
    assert LearningConfig.from_recipe("adcorre").lr_decay == 1e-5
    demo = LearningConfig.from_recipe("synth_demo")
    assert (demo.lr_schedule, demo.lr_decay_every, demo.lr_decay_factor) == ("step", 6, 0.1)


def _small_trainer(schedule, **trainer_settings):
    from adcorre.models.cnn_model import CNNModel
    from adcorre.training.train_step import AdCorreTrainer

    keras.utils.set_random_seed(0)
    network = CNNModel().get_model("tiny", weights=None, input_size=32, num_embeddings=2,
                                   embedding_size=8, dropout=0.0)
    trainer = AdCorreTrainer(network, **trainer_settings)
    trainer.compile(optimizer=keras.optimizers.Adam(schedule))
    trainer(np.zeros((1, 32, 32, 3), "float32"))
    trainer.optimizer.build(trainer.trainable_variables)
    return trainer


def test_a_resumed_run_continues_the_step_count(tmp_path):
    from adcorre.training.resume import ResumableBackup

    decay = 0.05
    rng = np.random.default_rng(1)
    images = rng.random((7, 8, 32, 32, 3), dtype="float32")
    labels = rng.integers(0, 7, (7, 8)).astype("int32")
    source = _small_trainer(make_schedule("inverse_time", 1e-3, decay=decay))
    for t in range(5):
        source.train_on_batch(images[t], labels[t])
    backup = ResumableBackup(str(tmp_path / "backup"))
    backup.set_model(source)
    backup._save(0, 5)

    resumed = _small_trainer(make_schedule("inverse_time", 1e-3, decay=decay))
    assert int(numpy_of(resumed.optimizer.iterations)) == 0
    assert ResumableBackup(str(tmp_path / "backup")).load(resumed) == (0, 5)
    assert int(numpy_of(resumed.optimizer.iterations)) == 5
    assert last_step_rate(resumed.optimizer) == pytest.approx(1e-3 / (1 + decay * 4), rel=1e-6)
    assert float(resumed.optimizer.learning_rate) == pytest.approx(1e-3 / (1 + decay * 5), rel=1e-6)
    # The next steps are the ones the uninterrupted run takes.
    for t in (5, 6):
        source.train_on_batch(images[t], labels[t])
        resumed.train_on_batch(images[t], labels[t])
    np.testing.assert_allclose(numpy_of(resumed.network.get_layer("out").kernel),
                               numpy_of(source.network.get_layer("out").kernel), rtol=1e-5,
                               atol=1e-7)


def _tensorboard_scalars(folder, tag):
    import tensorflow as tf

    values = {}
    for root, _, files in os.walk(folder):
        for name in files:
            for event in tf.compat.v1.train.summary_iterator(os.path.join(root, name)):
                for value in event.summary.value:
                    if value.tag == tag:
                        values[event.step] = float(tf.make_ndarray(value.tensor))
    return values


@pytest.mark.parametrize("recipe", ["adcorre", "synth_demo"])
def test_log_csv_learning_rate_is_the_last_steps_rate(recipe, tmp_path):
    from adcorre.training.train_model import TrainModel

    save_dir = tmp_path / "run"
    settings = dict(lr_decay=0.01) if recipe == "adcorre" else dict(lr_decay_every=1,
                                                                    lr_decay_factor=0.5)
    TrainModel(dataset_name="synth", recipe=recipe, weights=None, epochs=2, batch_size=16,
               input_size=32, save_dir=str(save_dir), synth_train_size=96, synth_test_size=32,
               augmentation=False, verbose=0, **settings).train(arch="tiny")
    steps = 96 // 16
    if recipe == "adcorre":
        expected = [1e-3 / (1 + 0.01 * ((epoch + 1) * steps - 1)) for epoch in range(2)]
    else:
        expected = [1e-3, 5e-4]
    with open(save_dir / "log.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [float(row["learning_rate"]) for row in rows] == pytest.approx(expected, rel=1e-6)
    logged = _tensorboard_scalars(save_dir / "tensorboard", "epoch_learning_rate")
    assert [logged[epoch] for epoch in (1, 2)] == pytest.approx(expected, rel=1e-6)
    run_config = json.loads((save_dir / "run_config.json").read_text())
    assert run_config["ce_weight"] == pytest.approx(50 / 7)
    assert run_config["lr_schedule"] == ("inverse_time" if recipe == "adcorre" else "step")


def test_cli_flags_reach_the_training_config(config_of_train_cli):
    config = config_of_train_cli(["--dataset", "rafdb", "--lr-schedule", "step", "--lr-decay",
                                  "2e-5", "--loss-arithmetic", "official",
                                  "--attention-window", "1000"])
    assert (config.recipe, config.lr_schedule, config.lr_decay, config.loss_arithmetic,
            config.attention_window) == ("adcorre", "step", 2e-5, "official", 1000)
    config = config_of_train_cli(["--dataset", "rafdb"])
    assert (config.lr_schedule, config.loss_arithmetic,
            config.attention_window) == ("inverse_time", "paper", None)


# --------------------------------------------------------------------------------------
# The CE weight.
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("num_classes", [7, 8])
def test_ce_weight_is_derived_from_the_class_count(num_classes):
    assert official_ce_weight(num_classes) == pytest.approx(50.0 / num_classes)
    loss = AdCorreLoss(num_classes=num_classes)
    assert loss.ce_weight == pytest.approx(50.0 / num_classes)
    labels, _, probs = random_batch(3, num_classes=num_classes)
    # The weighted per-sample CE is the official 50 x (mean over n x C).
    np.testing.assert_allclose(loss.ce_weight * numpy_of(loss.cross_entropy(labels, probs)),
                               50.0 * official_ce(labels, probs, num_classes), rtol=1e-6)
    config = LearningConfig(dataset_name="affectnet",
                            ds_type="train" if num_classes == 8 else "train_7")
    assert config.ce_weight is None
    assert config.cross_entropy_weight == pytest.approx(50.0 / num_classes)
    assert LearningConfig(ce_weight=3.0).cross_entropy_weight == 3.0
    assert AdCorreLoss(num_classes=num_classes, ce_weight=2.0).ce_weight == 2.0


# --------------------------------------------------------------------------------------
# The official FD / MD / ED arithmetic, and its factors to the paper's.
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k", [3, 7])
@pytest.mark.parametrize("all_present", [True, False])
def test_official_arithmetic_matches_the_official_code(seed, k, all_present):
    labels, embeddings, probs = random_batch(seed, k=k, all_present=all_present)
    loss = AdCorreLoss(num_classes=7, arithmetic="official")
    omega = np.random.default_rng(seed).uniform(0.1, 1.0, 7)  # ignored: the official FD has none
    np.testing.assert_allclose(numpy_of(loss.feature_discriminator(embeddings, labels, omega)),
                               official_fd(embeddings, labels), rtol=1e-5)
    np.testing.assert_allclose(numpy_of(loss.mean_discriminator(embeddings, labels)),
                               official_md(embeddings, labels, 7), rtol=1e-5)
    np.testing.assert_allclose(numpy_of(loss.embedding_discriminator(embeddings)),
                               official_ed(embeddings), rtol=1e-5)
    terms = loss(labels, probs, embeddings, omega=omega)
    expected = (50.0 * official_ce(labels, probs, 7) + official_fd(embeddings, labels)
                + official_md(embeddings, labels, 7) + official_ed(embeddings))
    np.testing.assert_allclose(numpy_of(terms["loss"]), expected, rtol=1e-5)
    assert AdCorreLoss.from_config(loss.get_config()).arithmetic == "official"


@pytest.mark.parametrize("k", [3, 7])
def test_paper_terms_are_constant_multiples_of_the_official_ones(k):
    labels, embeddings, _ = random_batch(5, k=k, all_present=True)
    paper, official = AdCorreLoss(), AdCorreLoss(arithmetic="official")
    # ED: a mean over k(k-1) pairs against one over k^2 entries.
    np.testing.assert_allclose(numpy_of(paper.embedding_discriminator(embeddings)),
                               k / (k - 1) * official_ed(embeddings), rtol=1e-6)
    # MD with every class present: 42 pairs against 49 entries (the eps-weighted means differ
    # from the class means by O(eps)).
    np.testing.assert_allclose(numpy_of(paper.mean_discriminator(embeddings, labels)),
                               7 / 6 * official_md(embeddings, labels, 7), rtol=1e-5)
    np.testing.assert_allclose(numpy_of(paper.mean_discriminator(embeddings, labels)),
                               7 / 6 * numpy_of(official.mean_discriminator(embeddings, labels)),
                               rtol=1e-5)
    # FD: the official one is the paper's with omega = 1/2 for every class, so the paper's
    # before the first refresh (omega = 1 + eps) is 2 (1 + eps) times it.
    np.testing.assert_allclose(numpy_of(paper.feature_discriminator(embeddings, labels,
                                                                    np.full(7, 0.5))),
                               official_fd(embeddings, labels), rtol=1e-6)
    np.testing.assert_allclose(numpy_of(paper.feature_discriminator(embeddings, labels)),
                               2 * (1 + EPS) * official_fd(embeddings, labels), rtol=1e-6)
    # With classes absent the official MD keeps them (at the batch mean): no constant factor.
    labels, embeddings, _ = random_batch(5, k=k, all_present=False)
    ratio = (numpy_of(paper.mean_discriminator(embeddings, labels))
             / official_md(embeddings, labels, 7))
    assert abs(ratio - 7 / 6) > 0.05


@pytest.mark.parametrize("num_classes", [7, 8])
def test_paper_md_is_c_over_c_minus_1_times_the_official(num_classes):
    """The MD ratio follows the class count C (C(C-1) pairs against C^2 entries), not k."""
    labels, embeddings, _ = random_batch(6, k=4, num_classes=num_classes)
    paper = AdCorreLoss(num_classes=num_classes)
    official = AdCorreLoss(num_classes=num_classes, arithmetic="official")
    ratio = num_classes / (num_classes - 1)  # 7/6 or 8/7
    np.testing.assert_allclose(numpy_of(paper.mean_discriminator(embeddings, labels)),
                               ratio * official_md(embeddings, labels, num_classes), rtol=1e-5)
    np.testing.assert_allclose(numpy_of(paper.mean_discriminator(embeddings, labels)),
                               ratio * numpy_of(official.mean_discriminator(embeddings, labels)),
                               rtol=1e-5)


def test_bad_arithmetic_is_named():
    with pytest.raises(ValueError, match="arithmetic must be one of"):
        AdCorreLoss(arithmetic="keras2")


# --------------------------------------------------------------------------------------
# The official sliding attention window.
# --------------------------------------------------------------------------------------
def _window_batches(seed, count=12, batch=5, num_classes=7):
    rng = np.random.default_rng(seed)
    # Classes 5 and 6 appear only early, so the window forgets them.
    batches = []
    for step in range(count):
        high = num_classes if step < 3 else 5
        true = rng.integers(0, high, batch)
        predicted = np.where(rng.random(batch) < 0.6, true, rng.integers(0, num_classes, batch))
        batches.append((true.astype("int32"), predicted.astype("int32")))
    return batches


@pytest.mark.parametrize("compiled", [False, True])
def test_attention_window_matches_the_official_history(compiled):
    import tensorflow as tf

    batches = _window_batches(0)
    expected = official_window_omegas(batches, 7, history_frame=20)  # 4 batches of 5
    attention = AdaptiveAttentionMap(num_classes=7, window_batches=4)
    update = tf.function(attention.update_window) if compiled else attention.update_window
    for (true, predicted), omega in zip(batches, expected):
        np.testing.assert_allclose(numpy_of(update(true, predicted)), omega + EPS, atol=1e-6)
        np.testing.assert_allclose(numpy_of(attention.omega), omega + EPS, atol=1e-6)
    # The epoch's refresh leaves the window's omega alone; Keras' epoch-start reset keeps it.
    attention.reset_state()
    np.testing.assert_allclose(attention.refresh(), expected[-1] + EPS, atol=1e-6)
    assert int(numpy_of(attention.window_position)) == len(batches)
    with pytest.raises(ValueError, match="window_batches"):
        AdaptiveAttentionMap(num_classes=7).update_window(batches[0][0], batches[0][1])


def test_trainer_feeds_the_window_to_fd_every_step():
    from adcorre.models.cnn_model import CNNModel
    from adcorre.training.train_step import AdCorreTrainer

    keras.utils.set_random_seed(0)
    network = CNNModel().get_model("tiny", weights=None, input_size=32, num_embeddings=3,
                                   embedding_size=16)
    trainer = AdCorreTrainer(network, attention_window_batches=2)
    rng = np.random.default_rng(2)
    seen = []
    for step in range(4):
        images = rng.random((6, 32, 32, 3), dtype="float32")
        labels = rng.integers(0, 7, 6).astype("int32")
        outputs = trainer(images, training=False)
        seen.append((labels, np.argmax(numpy_of(outputs[0]), axis=-1)))
        omega = official_window_omegas(seen, 7, history_frame=12)[-1] + EPS
        total = float(trainer.compute_loss(y=labels, y_pred=outputs, training=True))
        reference = AdCorreLoss()(labels, outputs[0], list(outputs[1:]), omega=omega)
        assert total == pytest.approx(float(reference["loss"]), rel=1e-5), step


def test_backup_carries_the_window(tmp_path):
    from adcorre.training.resume import ResumableBackup

    source = _small_trainer(1e-3, attention_window_batches=3)
    for true, predicted in _window_batches(4, count=5):
        source.attention.update_window(true, predicted)
    backup = ResumableBackup(str(tmp_path / "backup"))
    backup.set_model(source)
    backup._save(1, 5)
    target = _small_trainer(1e-3, attention_window_batches=3)
    ResumableBackup(str(tmp_path / "backup")).load(target)
    np.testing.assert_array_equal(numpy_of(target.attention.window_counts),
                                  numpy_of(source.attention.window_counts))
    assert int(numpy_of(target.attention.window_position)) == 5


WINDOW_SCRIPT = """
import json, os
import numpy as np
if os.environ["KERAS_BACKEND"] == "tensorflow":
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from adcorre.models.cnn_model import CNNModel
from adcorre.training.train_step import AdCorreTrainer
from adcorre.training.learning_schedules import make_schedule
from adcorre.training.custom_loss import AdCorreLoss

rng = np.random.default_rng(0)
images = rng.random((24, 32, 32, 3), dtype="float32")
labels = rng.integers(0, 7, 24).astype("int32")
emb = np.random.default_rng(1).normal(size=(3, 10, 16))
batch_labels = np.concatenate([np.arange(7), [0, 1, 2]]).astype("int32")
official = AdCorreLoss(arithmetic="official")
out = {"backend": keras.backend.backend(),
       "md": float(official.mean_discriminator(emb, batch_labels)),
       "ed": float(official.embedding_discriminator(emb)),
       "step_rates": [float(make_schedule("step", 1e-3, 4, every_epochs=1, factor=0.5)(t))
                      for t in (0, 3, 4, 8)]}

def fit(devices, adcorre_batch):
    keras.utils.set_random_seed(0)
    def build():
        network = CNNModel().get_model("tiny", weights=None, input_size=32, num_embeddings=3,
                                       embedding_size=16, dropout=0.0)
        for layer in network.layers:  # per-replica BN statistics would make the runs differ
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False
        trainer = AdCorreTrainer(network, adcorre_batch=adcorre_batch, attention_window_batches=2)
        trainer.compile(optimizer=keras.optimizers.SGD(make_schedule("inverse_time", 0.1)))
        return trainer
    if devices is None:
        trainer = build()
        trainer.fit(images, labels, batch_size=8, epochs=1, verbose=0, shuffle=False)
    else:
        strategy = tf.distribute.MirroredStrategy(devices)
        with strategy.scope():
            trainer = build()
        dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(8)
        trainer.fit(dataset, epochs=1, verbose=0)
    attention = trainer.attention
    return {"counts": np.asarray(attention.window_counts).tolist(),
            "position": int(np.asarray(attention.window_position)),
            "omega": np.asarray(attention.omega).tolist()}

if out["backend"] == "jax":
    out["plain"] = fit(None, "global")
else:  # (one process runs one mode: a second mode's collectives would reuse instance keys)
    out["one"], out["two"] = fit(["/cpu:0"], "global"), fit(["/cpu:0", "/cpu:1"], "global")
print("RESULT " + json.dumps(out))
"""


def _window_run(backend):
    run = run_python(WINDOW_SCRIPT, env={"KERAS_BACKEND": backend, "JAX_PLATFORMS": "cpu",
                                         "CUDA_VISIBLE_DEVICES": ""}, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    return json.loads(run.stdout.split("RESULT ", 1)[1])


def _check_arithmetic(out):
    emb = np.random.default_rng(1).normal(size=(3, 10, 16))
    labels = np.concatenate([np.arange(7), [0, 1, 2]])
    assert out["md"] == pytest.approx(official_md(emb, labels, 7), rel=1e-5)
    assert out["ed"] == pytest.approx(official_ed(emb), rel=1e-5)
    assert out["step_rates"] == pytest.approx([1e-3, 1e-3, 5e-4, 2.5e-4], rel=1e-6)


def test_window_and_official_arithmetic_under_jax():
    if importlib.util.find_spec("jax") is None:
        pytest.skip("jax is not installed (requirements-dev.txt)")
    out = _window_run("jax")
    assert out["backend"] == "jax"
    _check_arithmetic(out)
    # Keras' stateless JAX step carried the window: 3 steps, the last 2 batches of 8 kept.
    assert out["plain"]["position"] == 3 and np.sum(out["plain"]["counts"]) == 16


def test_window_is_global_under_two_replicas():
    out = _window_run("tensorflow")
    _check_arithmetic(out)
    one, two = out["one"], out["two"]
    # Both replicas put the whole global batch of 8 in the window: the same as one device.
    assert two["position"] == one["position"] == 3 and np.sum(two["counts"]) == 16
    np.testing.assert_allclose(two["counts"], one["counts"])
    np.testing.assert_allclose(two["omega"], one["omega"])
