"""Training: learning on SynthFER, Xception step, distribution, resume, attention refresh."""

import json
import os
import signal
import time

import numpy as np
import pytest

from helpers import run_python, start_python

EPOCHS, SIZE = 6, 64
CPU_ONLY = {"CUDA_VISIBLE_DEVICES": ""}  # every child process of this file trains on the CPU


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One short CPU training run of the tiny arch on SynthFER, shared by several tests."""
    from adcorre.training.train_model import TrainModel

    save_dir = str(tmp_path_factory.mktemp("tiny_run"))
    # From scratch, the network sits at the class prior for a few hundred steps before it
    # learns (longer with augmentation, see README "Training from scratch"); 6 x 160 steps
    # leave a margin. SynthFER draws its own nuisances, so no augmentation (the CLI default).
    trainer = TrainModel(dataset_name="synth", weights=None, epochs=EPOCHS, batch_size=50,
                         input_size=SIZE, save_dir=save_dir, synth_train_size=8000,
                         synth_test_size=400, lr=1e-3, lr_decay_every=100, seed=1,
                         augmentation=False, verbose=0)
    best = trainer.train(arch="tiny")
    with open(os.path.join(save_dir, "training_state.json")) as handle:
        state = json.load(handle)
    return save_dir, best, state


def test_tiny_learns_well_above_chance(tiny_run):
    save_dir, best, state = tiny_run
    from adcorre import data as data_helper

    test = data_helper.read_split("synth", None, "test", n=400, image_size=SIZE, seed=1)
    majority = np.bincount(test["label"].to_numpy()).max() / len(test)
    assert state["best_accuracy"] > majority + 0.15, (state["best_accuracy"], majority)
    mean_class = max(h["test_mean_class_accuracy"] for h in state["history"])
    assert mean_class > 2.0 / 7.0
    assert os.path.basename(best).startswith("synth_") and "_AC_" in best and best.endswith(".h5")
    assert os.path.exists(best)


def test_epoch_outputs_and_best_kept(tiny_run):
    save_dir, best, state = tiny_run
    files = sorted(os.listdir(save_dir))
    h5 = [f for f in files if f.endswith(".h5")]
    # The best and the latest epoch are kept; every kept .h5 has its confusion matrix beside it.
    assert 1 <= len(h5) <= 2
    for name in h5:
        stem = name[:-3]
        assert stem + ".txt" in files and stem + ".png" in files
        accuracy = float(stem.split("_AC_")[1])
        epoch = int(stem.split("_")[1])
        recorded = [h for h in state["history"] if h["epoch"] == epoch][0]
        assert accuracy == pytest.approx(recorded["test_accuracy"], abs=1e-4)
    assert "log.csv" in files and "tensorboard" in files
    header = open(os.path.join(save_dir, "log.csv")).readline().strip().split(",")
    for column in ("loss", "ce", "fd", "md", "ed", "accuracy", "test_accuracy", "omega_happy"):
        assert column in header
    assert not any(column.startswith("val_") for column in header)  # no empty columns
    # The backup left is the last epoch end's, what a run with more epochs continues from.
    with open(os.path.join(save_dir, "backup", "backup_position.json")) as handle:
        assert (json.load(handle)["epoch"], len(os.listdir(os.path.join(save_dir, "backup")))) \
            == (EPOCHS, 2)


def test_best_file_loads_and_matches_reported_accuracy(tiny_run):
    save_dir, best, state = tiny_run
    from adcorre import data as data_helper
    from adcorre.models import weights_io

    model, info = weights_io.load_model(best)
    assert tuple(info.labels) == ("Neutral", "Happy", "Sad", "Surprise", "Fear", "Disgust", "Anger")
    test = data_helper.read_split("synth", None, "test", n=400, image_size=SIZE, seed=1)
    dataset = data_helper.make_dataset(test, input_size=SIZE, training=False, batch_size=64)
    probs = model.predict(dataset, verbose=0)[0]
    accuracy = np.mean(np.argmax(probs, -1) == test["label"].to_numpy())
    assert accuracy == pytest.approx(state["best_accuracy"], abs=1e-4)


def test_attention_map_changes_between_epochs(tiny_run):
    _, _, state = tiny_run
    omegas = [np.array([h[k] for k in sorted(h) if k.startswith("omega_")]) for h in state["history"]]
    assert len(omegas) == EPOCHS
    # Before the first refresh omega is 1 + eps for every class; afterwards it follows the
    # confusion matrix, so it moves below 1 for learnt classes and changes epoch to epoch.
    assert np.all(omegas[0] <= 1.0 + 1e-6) and np.any(omegas[0] < 0.99)
    assert not np.allclose(omegas[0], omegas[-1])


def test_trainer_loss_equals_adcorre_equation():
    """The trainer's loss is ce_weight * CE + FD + MD + ED of its own outputs."""
    import keras

    from adcorre.models.cnn_model import CNNModel
    from adcorre.training.custom_loss import AdCorreLoss
    from adcorre.training.train_step import AdCorreTrainer

    keras.utils.set_random_seed(0)
    network = CNNModel().get_model("tiny", weights=None, input_size=32, num_embeddings=3,
                                   embedding_size=16)
    trainer = AdCorreTrainer(network, ce_weight=2.0)
    images = np.random.default_rng(0).random((6, 32, 32, 3), dtype="float32")
    labels = np.array([0, 1, 1, 2, 6, 6])
    outputs = trainer(images, training=False)
    total = float(trainer.compute_loss(y=labels, y_pred=outputs, training=False))
    reference = AdCorreLoss(ce_weight=2.0)(labels, outputs[0], list(outputs[1:]))
    assert total == pytest.approx(float(reference["loss"]), rel=1e-5)
    baseline = AdCorreTrainer(network, ce_weight=2.0, use_adcorre=False)
    ce_only = float(baseline.compute_loss(y=labels, y_pred=outputs, training=False))
    assert ce_only == pytest.approx(2.0 * float(reference["ce"]), rel=1e-5)


def test_one_xception_train_step():
    import keras

    from adcorre.models.cnn_model import CNNModel
    from adcorre.training.train_step import AdCorreTrainer

    network = CNNModel().get_model("xcp", weights=None, input_size=71)
    trainer = AdCorreTrainer(network)
    trainer.compile(optimizer=keras.optimizers.Adam(1e-3))
    images = np.random.default_rng(0).random((4, 71, 71, 3), dtype="float32")
    labels = np.array([0, 1, 1, 3])
    before = [w.copy() for w in network.get_layer("out").get_weights()]
    history = trainer.fit(images, labels, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    after = network.get_layer("out").get_weights()
    assert any(not np.allclose(a, b) for a, b in zip(before, after))
    assert trainer.attention.confusion_matrix().sum() == 4


MIRRORED_SCRIPT = """
import os, json
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras, numpy as np
from adcorre.models.cnn_model import CNNModel
from adcorre.training.train_step import AdCorreTrainer

rng = np.random.default_rng(0)
images = rng.random((8, 32, 32, 3), dtype="float32")
labels = np.array([0, 1, 2, 1, 0, 6, 6, 3], dtype="int32")
results = {}
for name, devices in (("one", ["/cpu:0"]), ("two", ["/cpu:0", "/cpu:1"])):
    keras.utils.set_random_seed(0)
    strategy = tf.distribute.MirroredStrategy(devices)
    with strategy.scope():
        network = CNNModel().get_model("tiny", weights=None, input_size=32, num_embeddings=3,
                                       embedding_size=16, dropout=0.0)
        # BatchNorm statistics are per replica by design; freeze them so both runs compute
        # the same function and only the loss distribution is compared.
        for layer in network.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False
        trainer = AdCorreTrainer(network, adcorre_batch=os.environ["ADCORRE_BATCH"])
        trainer.compile(optimizer=keras.optimizers.SGD(0.1))
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(8)
    history = trainer.fit(dataset, epochs=1, verbose=0)
    results[name] = {"loss": history.history["loss"][0],
                     "weights": [w.tolist() for w in network.get_layer("out").get_weights()],
                     "counts": trainer.attention.confusion_matrix().tolist()}
print("RESULT" + json.dumps(results))
"""


@pytest.mark.parametrize("adcorre_batch", ["global", "local"])
def test_mirrored_two_devices_match_one_device(adcorre_batch):
    run = run_python(MIRRORED_SCRIPT, env={**CPU_ONLY, "ADCORRE_BATCH": adcorre_batch}, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads(run.stdout.split("RESULT", 1)[1])
    one, two = results["one"], results["two"]
    assert np.sum(two["counts"]) == 8 and np.allclose(one["counts"], two["counts"])
    if adcorre_batch == "global":
        # Same global batch, same loss and the same update, whatever the replica count.
        assert two["loss"] == pytest.approx(one["loss"], rel=1e-5)
        for a, b in zip(one["weights"], two["weights"]):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    else:
        # Per-replica correlation terms see half batches: a different objective.
        assert two["loss"] != pytest.approx(one["loss"], rel=1e-4)


MULTI_WORKER_SCRIPT = """
import os, sys
from adcorre.training.train_model import TrainModel
best = TrainModel(dataset_name="synth", weights=None, epochs=1, batch_size=16, input_size=32,
                  save_dir=sys.argv[1], synth_train_size=128, synth_test_size=64, seed=0,
                  verbose=0).train(arch="tiny")
print("BEST", best)
"""


def _free_ports(count):
    import socket

    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_multi_worker_two_processes_complete_an_epoch(tmp_path):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    processes = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        processes.append(start_python(MULTI_WORKER_SCRIPT, argv=[tmp_path / f"worker{index}"],
                                      env={**CPU_ONLY, "TF_CONFIG": tf_config}))
    outputs = [p.communicate(timeout=600) for p in processes]
    for process, (out, err) in zip(processes, outputs):
        assert process.returncode == 0, err[-3000:]
    assert "MultiWorkerMirroredStrategy (2 replicas)" in outputs[0][0]
    chief_files = os.listdir(tmp_path / "worker0")
    assert any(f.endswith(".h5") for f in chief_files)
    # Only the chief writes model files.
    assert not any(f.endswith(".h5") for f in os.listdir(tmp_path / "worker1"))


RESUME_SCRIPT = """
import sys
from adcorre.training.train_model import TrainModel
best = TrainModel(dataset_name="synth", weights=None, epochs=2, batch_size=16, input_size=32,
                  save_dir=sys.argv[1], synth_train_size=1600, synth_test_size=64, seed=0,
                  backup_every=10, verbose=0).train(arch="tiny")
print("BEST", best)
"""


def test_killed_mid_epoch_resumes_and_finishes(tmp_path):
    save_dir = tmp_path / "run"
    process = start_python(RESUME_SCRIPT, argv=[save_dir], env=CPU_ONLY)
    position_file = save_dir / "backup" / "backup_position.json"
    deadline = time.time() + 300
    position = None
    while time.time() < deadline and process.poll() is None:
        if position_file.exists():
            try:
                position = json.loads(position_file.read_text())
            except ValueError:
                position = None  # caught between write and rename of another file
            if position and position["epoch"] == 0 and position["batch"] >= 20:
                break
        time.sleep(0.2)
    assert process.poll() is None, "the run finished before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    position = json.loads(position_file.read_text())
    assert position["epoch"] == 0 and 0 < position["batch"] < 100
    assert not list(save_dir.glob("*.h5"))  # killed before the first epoch ended

    resumed = run_python(RESUME_SCRIPT, argv=[save_dir], env=CPU_ONLY, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"Resuming {save_dir} at epoch 1, batch {position['batch']}" in resumed.stdout
    state = json.loads((save_dir / "training_state.json").read_text())
    assert [h["epoch"] for h in state["history"]] == [1, 2]  # counted from 1, as printed
    # The interrupted epoch's omega rests on all its 100 x 16 predictions: those counted before
    # the kill travel in the backup and are added back after Keras' epoch-start reset.
    assert [h["attention_samples"] for h in state["history"]] == [1600, 1600]
    assert os.path.exists(state["best_path"])
    # The last epoch end's backup stays: a later run with more epochs continues from it.
    final = json.loads(position_file.read_text())
    assert (final["epoch"], final["batch"]) == (2, 0)
    assert sorted(os.listdir(save_dir / "backup")) == sorted([position_file.name, final["weights"]])


def test_backup_round_trip_carries_the_attention_map(tmp_path):
    from adcorre.training.resume import ResumableBackup
    from helpers import tiny_trainer as trainer

    source = trainer()
    source.attention.update_state(np.array([0, 1, 1, 2]), np.eye(7)[[0, 1, 2, 2]])
    omega = source.attention.refresh()  # recall 1, 0.5, 0 -> omega 0, 0.5, 1 (+ eps)
    source.attention.update_state(np.array([3, 3, 6]), np.eye(7)[[3, 4, 6]])
    source.network.get_layer("out").kernel.assign(
        np.full(source.network.get_layer("out").kernel.shape, 0.25, "float32"))
    backup = ResumableBackup(str(tmp_path / "backup"), chief=True)
    backup.set_model(source)
    backup._save(2, 30)
    backup._save(2, 40)  # a newer backup replaces the older weights file
    assert sorted(os.listdir(tmp_path / "backup")) == ["backup_epoch2_batch40.weights.h5",
                                                       "backup_position.json"]

    target = trainer()
    restore = ResumableBackup(str(tmp_path / "backup"), chief=True)
    restore.set_model(target)
    assert restore.load(target) == (2, 40)
    np.testing.assert_allclose(target.attention.omega.numpy(), omega)
    np.testing.assert_allclose(target.network.get_layer("out").kernel.numpy(), 0.25)
    target.attention.reset_state()  # what Keras does at the start of the resumed epoch
    restore.on_epoch_begin(2)
    np.testing.assert_array_equal(target.attention.confusion_matrix(),
                                  source.attention.confusion_matrix())
    assert target.attention.confusion_matrix().sum() == 3


def test_bad_arguments_raise_clear_errors():
    from adcorre.training.train_model import TrainModel

    with pytest.raises(ValueError, match="dataset_name"):
        TrainModel(dataset_name="imagenet")
    with pytest.raises(ValueError, match="arch"):
        TrainModel(dataset_name="synth", weights=None).train(arch="vgg")
    with pytest.raises(ValueError, match="batch_size"):
        TrainModel(dataset_name="synth", batch_size=1)


def test_cli_help_lists_options():
    run = run_python(script="train.py", argv=["--help"], env=CPU_ONLY, timeout=120)
    assert run.returncode == 0
    for flag in ("--dataset", "--data-dir", "--arch", "--epochs", "--mrr", "--mixed-precision",
                 "--save-dir", "--ce-only", "--adcorre-batch"):
        assert flag in run.stdout


def test_cli_trains_on_a_rafdb_layout_skipping_bad_images(tmp_path):
    from adcorre.data import synth_faces

    data = tmp_path / "rafdb"
    synth_faces.write_dataset(str(data), layout="rafdb", n=150, image_size=48, seed=3)
    images = sorted((data / "Image" / "aligned").glob("train_*.jpg"))
    truncated, missing = images[0], images[1]
    truncated.write_bytes(truncated.read_bytes()[:300])
    missing.unlink()
    save_dir = tmp_path / "run"
    run = run_python(
        script="train.py",
        argv=["--dataset", "rafdb", "--data-dir", data, "--arch", "tiny", "--weights", "none",
              "--epochs", "1", "--batch-size", "16", "--input-size", "48", "--save-dir", save_dir],
        env=CPU_ONLY, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    # One warning for the split, naming both files and why.
    assert run.stderr.count("Skipped 2 of 120 images") == 1, run.stderr[-3000:]
    assert truncated.name in run.stderr and "truncated JPEG" in run.stderr
    assert missing.name in run.stderr and "missing" in run.stderr
    state = json.loads((save_dir / "training_state.json").read_text())
    assert state["skipped_images"] == {"train": 2, "test": 0}
    assert state["steps_per_epoch"] == 118 // 16
    assert f"Best model: {state['best_path']} " in run.stdout
    assert os.path.exists(state["best_path"])


def test_cli_reports_a_missing_dataset_in_one_line(tmp_path):
    run = run_python(
        script="train.py",
        argv=["--dataset", "rafdb", "--data-dir", tmp_path / "absent", "--arch", "tiny",
              "--weights", "none"],
        env=CPU_ONLY, timeout=300)
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    assert "rafdb data folder not found" in run.stderr and "absent" in run.stderr


def test_no_mid_epoch_backup_on_an_epochs_last_batch(tmp_path):
    from adcorre.training.resume import ResumableBackup

    backup = ResumableBackup(str(tmp_path), every_steps=5)
    saved = []
    backup._save = lambda epoch, batch: saved.append((epoch, batch))
    backup.set_params({"steps": 10})
    backup.on_epoch_begin(0)
    for batch in range(10):
        backup.on_train_batch_end(batch)
    backup.on_epoch_end(0)
    assert saved == [(0, 5), (1, 0)]
    # A resumed epoch: 5 batches done before the kill, Keras sees the remaining 5 as 0..4.
    saved.clear()
    backup.epoch, backup.batch_offset = 1, 5
    backup.set_params({"steps": 5})
    backup.on_epoch_begin(1)
    for batch in range(5):
        backup.on_train_batch_end(batch)
    backup.on_epoch_end(1)
    assert saved == [(2, 0)]
