"""Careless or hostile input to training: pictures TensorFlow cannot decode, resumes: nothing is lost, no traceback (each written to fail
before its fix).
"""

import json
import os
import shutil
import warnings

import cv2
import numpy as np
import pytest

from adcorre.data import dataset_readers
from adcorre.data import input_pipeline
from adcorre.data import pictures
from adcorre.data import synth_faces
from adcorre.models.cnn_model import CNNModel
from adcorre.config import EXPRESSIONS_7


def _noise_scan(path, seed=0):
    """Rewrites a JPEG's entropy-coded scan with random bytes: its markers, headers and end
    marker stay valid (the header check passes, OpenCV decodes garbage), TensorFlow fails."""
    data = open(path, "rb").read()
    sos = data.index(b"\xff\xda")
    start = sos + 2 + int.from_bytes(data[sos + 2:sos + 4], "big")
    end = data.rindex(b"\xff\xd9")
    noise = np.random.default_rng(seed).integers(0, 256, end - start, dtype=np.uint8).tobytes()
    with open(path, "wb") as handle:
        handle.write(data[:start] + noise + data[end:])
    return path


# ----------------------------------------------------- data loss: images that fail to decode


@pytest.fixture(scope="module")
def noisy_rafdb(tmp_path_factory):
    """A SynthFER RAF-DB layout with one noise-scan JPEG in each split, and a run trained on it."""
    from adcorre.training.train_model import TrainModel

    root = tmp_path_factory.mktemp("noisy")
    data = synth_faces.write_dataset(str(root / "raf"), layout="rafdb", n=100, image_size=32,
                                     test_fraction=0.3, seed=5)
    bad_train = _noise_scan(dataset_readers.read_split("rafdb", data, "train")["image"][3])
    bad_test = _noise_scan(dataset_readers.read_split("rafdb", data, "test")["image"][4])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        best = TrainModel(dataset_name="rafdb", data_dir=data, weights=None, epochs=2,
                          batch_size=8, input_size=32, save_dir=str(root / "run"), seed=0,
                          augmentation=False, verbose=0, recipe="synth_demo").train(arch="tiny")
    with open(root / "run" / "training_state.json") as handle:
        state = json.load(handle)
    return data, bad_train, bad_test, best, state, [str(w.message) for w in caught]


def test_noise_scan_jpeg_passes_the_header_check_but_not_tensorflow(noisy_rafdb):
    import tensorflow as tf

    _, bad_train, _, _, _, _ = noisy_rafdb
    assert pictures._check_file(bad_train) is None  # the premise: headers and markers are fine
    assert cv2.imread(bad_train) is not None
    with pytest.raises(tf.errors.InvalidArgumentError):
        tf.io.decode_jpeg(tf.io.read_file(bad_train))


def test_training_skips_and_names_an_image_tensorflow_cannot_decode(noisy_rafdb):
    data, bad_train, bad_test, best, state, messages = noisy_rafdb
    assert best is not None and os.path.exists(best)
    assert state["skipped_images"] == {"train": 1, "test": 1}
    named = [m for m in messages if "Skipped 1 of" in m]
    assert len(named) == 2 and bad_train in named[0] + named[1] and bad_test in named[0] + named[1]
    # Every epoch trained every one of its full batches: 69 readable images, batch 8 -> 8.
    assert state["steps_per_epoch"] == 69 // 8
    assert [h["attention_samples"] for h in state["history"]] == [8 * 8, 8 * 8]


def test_keras_is_told_how_many_batches_an_epoch_has(noisy_rafdb):
    _, _, _, _, _, messages = noisy_rafdb
    assert not [m for m in messages if "ran out of data" in m], messages


def test_evaluate_counts_and_aligns_an_image_that_fails_to_decode(noisy_rafdb, tester):
    data, _, bad_test, _, _, _ = noisy_rafdb
    frame = dataset_readers.read_split("rafdb", data, "test")
    with pytest.warns(pictures.BadImageWarning, match=os.path.basename(bad_test)):
        summary = tester.evaluate("rafdb", data, "test", batch_size=8)
    assert summary["skipped_images"] == 1 and summary["num_samples"] == len(frame) - 1 == 29
    # Supports are the labels of the 29 other rows, counted from the frame by hand.
    kept = frame[frame["image"] != bad_test]["label"].to_numpy()
    to_model = {i: i for i in range(7)}
    expected = np.bincount([to_model[v] for v in kept], minlength=7)
    assert summary["confusion_matrix"].sum(axis=1).tolist() == expected.tolist()


def test_a_run_counts_faces_skipped_for_their_box_in_skipped_images(tmp_path):
    """Issue 31: AffectNet boxes outside their picture were cropped to a sliver and trained on;
    now the reader skips them and the run counts them with every other skipped face."""
    import csv

    from adcorre.training.train_model import TrainModel

    data = synth_faces.write_dataset(str(tmp_path / "affectnet"), layout="affectnet", n=60,
                                     image_size=32, seed=6)
    for name, rows_outside in (("training.csv", (1, 2)), ("validation.csv", (3,))):
        path = os.path.join(data, name)
        with open(path, newline="") as handle:
            rows = list(csv.reader(handle))
        for row in rows_outside:
            rows[row][2] = "5000"  # face_y far below the picture
        with open(path, "w", newline="") as handle:
            csv.writer(handle).writerows(rows)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        TrainModel(dataset_name="affectnet", data_dir=data, weights=None, epochs=1, batch_size=8,
                   input_size=32, save_dir=str(tmp_path / "run"), seed=0, augmentation=False,
                   verbose=0, recipe="synth_demo").train(arch="tiny")
    with open(tmp_path / "run" / "training_state.json") as handle:
        state = json.load(handle)
    assert state["skipped_images"] == {"train": 2, "test": 1}
    assert len([w for w in caught if "whose face box in" in str(w.message)]) == 2


def test_epoch_end_scores_each_prediction_against_its_own_label(tmp_path):
    """An image that stops decoding after the run checked it: EpochEnd still aligns."""
    import keras

    from adcorre.training.callbacks import EpochEnd
    from adcorre.training.train_step import AdCorreTrainer

    frame = dataset_readers.read_split("rafdb", synth_faces.write_dataset(
        str(tmp_path / "raf"), layout="rafdb", n=40, image_size=32, test_fraction=0.5, seed=2),
        "test")
    network = CNNModel().get_model("tiny", weights=None, input_size=32, num_embeddings=1,
                                   embedding_size=4)
    trainer = AdCorreTrainer(network)
    trainer.compile(optimizer="adam")
    dataset = input_pipeline.make_dataset(frame, input_size=32, batch_size=6, return_index=True,
                                          num_batches=4, validate="none")
    _noise_scan(frame["image"][7])  # breaks after the dataset was built
    callback = EpochEnd({}, dataset, frame["label"].to_numpy(), str(tmp_path), "rafdb",
                        EXPRESSIONS_7, "tiny", chief=False)
    callback.set_model(trainer)
    with pytest.warns(pictures.BadImageWarning,
                      match="1 of 20 test images.*" + os.path.basename(frame["image"][7])):
        probabilities, labels = callback._score_test_split()
    # Reference: the same network on the other 19 pictures, read independently, in order.
    rows = [i for i in range(20) if i != 7]
    pixels = np.stack([cv2.cvtColor(cv2.imread(frame["image"][i]), cv2.COLOR_BGR2RGB)
                       for i in rows]).astype("float32") / 255.0
    expected = keras.ops.convert_to_numpy(network(pixels)[0])
    np.testing.assert_allclose(probabilities, expected, atol=2e-2)
    assert labels.tolist() == frame["label"].to_numpy()[rows].tolist()


# ----------------------------------------------------------------------- training: resuming


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished 1-epoch run of the tiny arch on SynthFER."""
    from adcorre.training.train_model import TrainModel

    save_dir = str(tmp_path_factory.mktemp("finished") / "run")
    TrainModel(**_RUN, epochs=1, save_dir=save_dir).train(arch="tiny")
    return save_dir


_RUN = dict(dataset_name="synth", weights=None, batch_size=16, input_size=32,
            synth_train_size=96, synth_test_size=32, seed=0, verbose=0)


def test_resume_under_another_batch_size_is_refused_naming_the_flag(finished_run, tmp_path):
    from adcorre.training.train_model import TrainModel

    save_dir = str(tmp_path / "run")
    shutil.copytree(finished_run, save_dir)
    with pytest.raises(ValueError, match=r"--batch-size 16 \(now 12\)"):
        TrainModel(**{**_RUN, "batch_size": 12}, epochs=2, save_dir=save_dir).train(arch="tiny")
    with pytest.raises(ValueError, match=r"--seed 0 \(now 3\).*--save-dir"):
        TrainModel(**{**_RUN, "seed": 3}, epochs=2, save_dir=save_dir).train(arch="tiny")
    with pytest.raises(ValueError, match=r"another training split \(96 images, now 112"):
        TrainModel(**{**_RUN, "synth_train_size": 112}, epochs=2,
                   save_dir=save_dir).train(arch="tiny")


def test_finished_run_continues_to_more_epochs(finished_run, tmp_path, capsys):
    from adcorre.training.train_model import TrainModel

    save_dir = str(tmp_path / "run")
    shutil.copytree(finished_run, save_dir)
    before = json.load(open(os.path.join(save_dir, "training_state.json")))
    TrainModel(**_RUN, epochs=3, save_dir=save_dir).train(arch="tiny")
    assert f"Resuming {save_dir} at epoch 2, batch 0" in capsys.readouterr().out
    state = json.load(open(os.path.join(save_dir, "training_state.json")))
    assert [h["epoch"] for h in state["history"]] == [1, 2, 3]
    assert state["history"][0] == before["history"][0]
    with open(os.path.join(save_dir, "log.csv")) as handle:
        lines = handle.read().splitlines()
    assert len(lines) == 4 and lines[0].startswith(("epoch,", "accuracy,"))
    assert sum(line == lines[0] for line in lines) == 1  # one header: one history
    # Asked again for 3 epochs: nothing to do, and it says so.
    TrainModel(**_RUN, epochs=3, save_dir=save_dir).train(arch="tiny")
    assert "has finished its 3 epochs already" in capsys.readouterr().out
    assert len(open(os.path.join(save_dir, "log.csv")).read().splitlines()) == 4


def test_empty_rafdb_label_file_is_named_empty(tmp_path):
    data = synth_faces.write_dataset(str(tmp_path / "raf"), layout="rafdb", n=10, image_size=32)
    label_file = os.path.join(data, "EmoLabel", "list_patition_label.txt")
    open(label_file, "w").close()
    with pytest.raises(dataset_readers.DatasetFormatError, match="the file is empty") as raised:
        dataset_readers.read_split("rafdb", data, "train")
    assert label_file in str(raised.value)
    with open(label_file, "w") as handle:
        handle.write("train_00001.jpg 3\n")
    with pytest.raises(dataset_readers.DatasetFormatError, match="none of the test split"):
        dataset_readers.read_split("rafdb", data, "test")
