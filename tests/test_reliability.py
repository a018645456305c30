"""Issue 14: what a careless or hostile user feeds the project. Nothing is lost, no traceback.

One test (or one small group) per item of the issue, each written to fail before its fix, then
three inputs the issue does not name (a FIFO among a dataset's images, a PNG whose text chunk
PIL refuses ahead of a decompression bomb, label files that are not UTF-8 text or CSV).
"""

import json
import os
import shutil
import struct
import threading
import tracemalloc
import warnings
import zipfile
import zlib

import cv2
import h5py
import numpy as np
import pytest

import dataset_readers
import face_crops
import input_pipeline
import pictures
import synth_faces
import weights_io
from cnn_model import CNNModel
from config import EXPRESSIONS_7
from helpers import grace_hopper_path, load_cli_module, run_python
from picture_files import write_grey_jpeg, write_grey_png

T = load_cli_module()


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


# ------------------------------------------------------------------------- data loss: export


def test_export_never_deletes_what_it_did_not_write(tester, tiny_file, tmp_path, monkeypatch,
                                                     capsys):
    work = tmp_path / "work"
    work.mkdir()
    (work / "notes.txt").write_text("mine")
    monkeypatch.chdir(work)
    # The reported case: --out . emptied the current folder.
    assert T.main(["--weights", tiny_file, "--export", "saved_model", "--out", "."]) == 2
    assert "current folder" in capsys.readouterr().err
    assert (work / "notes.txt").read_text() == "mine"

    # A folder that is not an export, even with --overwrite; a user's <out>.json.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileExistsError, match="not empty and not an earlier export.*notes.txt"):
        tester.export(str(work), "saved_model", overwrite=True)
    (tmp_path / "served.json").write_text('{"my": "settings"}')
    with pytest.raises(FileExistsError, match="served.json.*not an export's description"):
        tester.export(str(tmp_path / "served"), "saved_model")
    assert json.loads((tmp_path / "served.json").read_text()) == {"my": "settings"}
    assert sorted(os.listdir(work)) == ["notes.txt"]

    # An earlier export of the same model is replaced; of another model only on purpose.
    (tmp_path / "served.json").unlink()
    out = str(tmp_path / "served")
    tester.export(out, "saved_model")
    tester.export(out, "saved_model")
    assert os.path.isfile(os.path.join(out, "saved_model.pb"))
    other = weights_io.save_model(tester.model, str(tmp_path / "other.h5"), labels=EXPRESSIONS_7)
    assert T.main(["--weights", other, "--export", "saved_model", "--out", out]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert T.main(["--weights", other, "--export", "saved_model", "--out", out,
                   "--overwrite"]) == 0
    assert json.load(open(out + ".json"))["source"] == os.path.abspath(other)
    # A file that an export did not write is never replaced.
    (tmp_path / "model.tflite").write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="not an earlier export"):
        tester.export(str(tmp_path / "model.tflite"), "tflite", overwrite=True)
    assert (tmp_path / "model.tflite").read_bytes() == b"precious"


# ----------------------------------------------------- data loss: images that fail to decode


@pytest.fixture(scope="module")
def noisy_rafdb(tmp_path_factory):
    """A SynthFER RAF-DB layout with one noise-scan JPEG in each split, and a run trained on it."""
    from train import TrainModel

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


def test_epoch_end_scores_each_prediction_against_its_own_label(tmp_path):
    """An image that stops decoding after the run checked it: EpochEnd still aligns."""
    import keras

    from trainer import AdCorreTrainer, EpochEnd

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


# ------------------------------------------------------ one bad picture must not end a batch


def test_cli_streams_a_folder_and_goes_on_after_bad_pictures(tiny_file, tmp_path, monkeypatch,
                                                             capsys):
    shutil.copy(grace_hopper_path(), tmp_path / "a_grace.jpg")
    cv2.imwrite(str(tmp_path / "b_wide.png"), np.full((1, 5000), 90, np.uint8))
    cv2.imwrite(str(tmp_path / "c_tall.png"), np.full((5000, 1), 90, np.uint8))
    (tmp_path / "d_broken.jpg").write_bytes(b"\xff\xd8\xff" + bytes(20))
    shutil.copy(grace_hopper_path(), tmp_path / "e_grace.jpg")
    printed_before = []
    recognize = T.TestModels.recognize_fer

    def spy(self, path):  # what had been printed when each picture's turn came
        printed_before.append(capsys.readouterr().out)
        return recognize(self, path)

    monkeypatch.setattr(T.TestModels, "recognize_fer", spy)
    assert T.main(["--weights", tiny_file, "--image", str(tmp_path)]) == 1
    out = "".join(printed_before) + capsys.readouterr().out
    lines = out.strip().splitlines()
    assert len(lines) == 6 and lines[0].split()[:4] == ["picture", "label", "prob", "box"]
    # Streamed: a picture's line is out before the next picture is read.
    assert "a_grace.jpg" in printed_before[1] and "d_broken.jpg" in printed_before[4]
    # 5000 x 1 and 1 x 5000: no face can fit, so the whole picture is classified.
    for line in lines[2:4]:
        assert line.split()[1] in EXPRESSIONS_7 and "none (whole picture)" in line
    assert "d_broken.jpg" in lines[4] and "error: " in lines[4] and "Traceback" not in out
    assert lines[5].split()[1] in EXPRESSIONS_7

    # JSON lines: one object per picture, errors included.
    monkeypatch.setattr(T.TestModels, "recognize_fer", recognize)
    assert T.main(["--weights", tiny_file, "--image", str(tmp_path), "--json"]) == 1
    rows = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [os.path.basename(r["picture"]) for r in rows] == sorted(os.listdir(tmp_path))
    assert ["error" in r for r in rows] == [False, False, False, True, False]


@pytest.mark.parametrize("shape", [(1, 5000), (5000, 1)])
def test_detector_finds_nothing_in_a_strip_instead_of_crashing(shape):
    assert face_crops.FaceDetector().detect(np.full(shape + (3,), 90, np.uint8)) == []


@pytest.mark.parametrize("margin", ["-0.5", "-1", "1e6", "nan", "x"])
def test_margin_outside_0_to_2_is_one_usage_error(margin, tiny_file, grace_file, capsys):
    with pytest.raises(SystemExit) as exited:
        T.main(["--weights", tiny_file, "--image", grace_file, f"--margin={margin}"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "margin must be a number from 0 to 2" in err and "Traceback" not in err


@pytest.fixture(scope="module")
def grace_file():
    return grace_hopper_path()


def test_margin_is_checked_by_the_api_too(tiny_file, grace_file):
    face = face_crops.Face(box=(10, 10, 50, 50))
    picture = np.zeros((100, 100, 3), np.uint8)
    for margin in (-0.5, -1, 1e6):
        with pytest.raises(ValueError, match="from 0 to 2"):
            face_crops.crop_face(picture, face, 32, margin=margin)
        with pytest.raises(ValueError, match="from 0 to 2"):
            T.TestModels(tiny_file, margin=margin)
    for margin in (0, 2):  # the bounds themselves are fine
        assert face_crops.crop_face(picture, face, 32, margin=margin).shape == (32, 32, 3)
    # The checked value is the one used: a margin the check accepts as text crops as its number.
    ramp = np.repeat(np.arange(100, dtype=np.uint8)[None, :, None], 100, axis=0).repeat(3, axis=2)
    np.testing.assert_array_equal(face_crops.crop_face(ramp, face, 32, margin="0.3"),
                                  face_crops.crop_face(ramp, face, 32, margin=0.3))


def test_16_bit_grey_png_is_scaled_on_the_reduced_path(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 65536, (120, 160), dtype=np.uint16)
    deep, flat = str(tmp_path / "deep.png"), str(tmp_path / "flat.png")
    cv2.imwrite(deep, pixels)
    cv2.imwrite(flat, (pixels >> 8).astype(np.uint8))
    # reduce_above under the picture's size takes the reader for pictures over 16 MP.
    for source in (deep, open(deep, "rb").read()):
        reduced = pictures.read_picture(source, reduce_above=4800)
        reference = pictures.read_picture(flat, reduce_above=4800)
        assert reduced.shape == reference.shape == (60, 80, 3)
        assert np.abs(reduced.astype(int) - reference.astype(int)).max() <= 1
        assert 100 < reduced.mean() < 155  # not a white square
    np.testing.assert_array_equal(pictures.read_picture(deep), np.repeat(
        (pixels >> 8).astype(np.uint8)[..., None], 3, axis=2))


def test_bytes_get_the_bomb_guard_and_exif_orientation(tmp_path):
    from PIL import Image

    bomb = open(write_grey_png(str(tmp_path / "bomb.png"), 12000, 12000), "rb").read()
    with pytest.raises(pictures.PictureError, match="12000 x 12000 PNG"):
        pictures.read_picture(bomb)
    pixels = np.random.default_rng(1).integers(0, 256, (60, 40, 3), dtype=np.uint8)
    picture = Image.fromarray(pixels)
    exif = picture.getexif()
    exif[0x0112] = 6
    path = str(tmp_path / "turned.jpg")
    picture.save(path, exif=exif, quality=95)
    from_bytes = pictures.read_picture(open(path, "rb").read())
    assert from_bytes.shape == (40, 60, 3)
    np.testing.assert_array_equal(from_bytes, pictures.read_picture(path))


def test_huge_jpeg_bytes_are_decoded_reduced_in_bounded_memory(tmp_path):
    path = write_grey_jpeg(str(tmp_path / "huge.jpg"), 20000, 20000)
    script = (
        "import resource, pictures\n"
        f"data = open({path!r}, 'rb').read()\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "image = pictures.read_picture(data)\n"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(image.shape[0], image.shape[1], (after - before) // 1024)\n")
    run = run_python(script, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    height, width, grown_mb = map(int, run.stdout.split())
    assert height * width <= pictures.REDUCE_ABOVE_PIXELS * 1.01 and height == width > 1000
    assert grown_mb < 400  # a full decode takes 1.2 GB


def test_a_folder_given_as_a_picture_is_named_a_folder(tester, tmp_path):
    with pytest.raises(pictures.ImageDecodeError, match="is a folder, not a picture"):
        tester.recognize_fer(str(tmp_path))


# ------------------------------------------------------------------------- files and metadata


def _edited_metadata(tiny_file, tmp_path, edit):
    path = str(tmp_path / "edited.h5")
    shutil.copy(tiny_file, path)
    with h5py.File(path, "a") as file:
        metadata = json.loads(file.attrs[weights_io.METADATA_ATTRIBUTE])
        file.attrs[weights_io.METADATA_ATTRIBUTE] = edit(metadata)
    return path


def _without(key):
    return lambda m: json.dumps({k: v for k, v in m.items() if k != key})


def _with(**fields):
    return lambda m: json.dumps({**m, **fields})


@pytest.mark.parametrize("edit, field", [
    (_without("labels"), "labels"),
    (_with(labels="Neutral,Happy,Sad,Surprise,Fear,Disgust,Anger"), "labels"),
    (_with(labels=["Neutral", 3, "Sad", "Surprise", "Fear", "Disgust", "Anger"]), "labels"),
    (_with(input_range="0,1"), "input_range"),
    (_with(input_range=[1.0, 0.0]), "input_range"),
    (_with(input_range=[0.0, float("nan")]), "input_range"),
    (_with(arch="vgg"), "arch"),
    (_with(input_size=[0, 32]), "input_size"),
    (_with(version=99), "version"),
    (lambda m: json.dumps(m)[:-5], "not valid JSON"),
    (lambda m: "[1, 2]", "list JSON"),
])
def test_corrupt_or_hand_edited_metadata_names_the_file_and_field(tiny_file, tmp_path, edit,
                                                                  field):
    path = _edited_metadata(tiny_file, tmp_path, edit)
    for read in (weights_io.load_model, weights_io.read_metadata):
        with pytest.raises(weights_io.WeightFileError, match=field) as raised:
            read(path)
        assert path in str(raised.value)


def _code_marker_lambda(marker):
    # Would leave a file behind if any loader ever ran it.
    return eval(f"lambda t: (open({marker!r}, 'w').close(), t)[1]")


def _assert_refused_unrun(path, marker):
    if os.path.exists(marker):  # left by building the model
        os.remove(marker)
    with pytest.raises(weights_io.WeightFileError, match="Lambda layers, which hold Python"):
        weights_io.load_model(path)
    assert not os.path.exists(marker)


def test_lambda_inside_a_time_distributed_wrapper_is_refused(tmp_path):
    import keras

    marker = str(tmp_path / "ran")
    inputs = keras.Input((2, 8, 8, 3))
    x = keras.layers.TimeDistributed(keras.layers.Lambda(_code_marker_lambda(marker)))(inputs)
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, keras.layers.Dense(7, activation="softmax")(x))
    for suffix in (".keras", ".h5"):
        path = str(tmp_path / f"wrapped{suffix}")
        model.save(path)
        _assert_refused_unrun(path, marker)


def test_unknown_layer_inside_bidirectional_is_refused_by_name(tmp_path):
    import keras

    class MirrorCell(keras.layers.Layer):  # known while the model is built, not at loading
        def __init__(self, units=3, **kwargs):
            super().__init__(**kwargs)
            self.units, self.state_size = units, units

        def call(self, inputs, states):
            return inputs[..., :self.units], states

        def get_config(self):
            return {**super().get_config(), "units": self.units}

    path = str(tmp_path / "bidirectional.keras")
    with keras.utils.custom_object_scope({"MirrorCell": MirrorCell}):
        inputs = keras.Input((4, 3))
        x = keras.layers.Bidirectional(keras.layers.RNN(MirrorCell()))(inputs)
        keras.Model(inputs, keras.layers.Dense(7, activation="softmax")(x)).save(path)
    with pytest.raises(weights_io.WeightFileError, match="neither built into Keras.*MirrorCell"):
        weights_io.load_model(path)


def test_lambda_in_a_tf_keras_wrapper_is_refused(tmp_path):
    tf_keras = pytest.importorskip("tf_keras")
    marker = str(tmp_path / "ran")
    inputs = tf_keras.Input((4, 3))
    x = tf_keras.layers.TimeDistributed(tf_keras.layers.Lambda(_code_marker_lambda(marker)))(inputs)
    x = tf_keras.layers.Bidirectional(tf_keras.layers.LSTM(2))(x)
    model = tf_keras.Model(inputs, tf_keras.layers.Dense(7, activation="softmax")(x))
    path = str(tmp_path / "tf_keras.h5")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf_keras' note that HDF5 is its legacy format
        model.save(path)
    _assert_refused_unrun(path, marker)


def test_config_that_unpacks_to_100_mb_is_refused_with_little_memory(tmp_path):
    path = str(tmp_path / "bomb.keras")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("config.json", "w") as member:
            member.write(b"{")
            for _ in range(100):
                member.write(b" " * 2**20)
            member.write(b"}")
        archive.writestr("metadata.json", "{}")
    assert os.path.getsize(path) < 500_000
    tracemalloc.start()
    try:
        with pytest.raises(weights_io.WeightFileError, match="config.json unpacks to 100 MB.*32 MB"):
            weights_io.load_model(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20, peak


# ----------------------------------------------------------------------- training: resuming


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished 1-epoch run of the tiny arch on SynthFER."""
    from train import TrainModel

    save_dir = str(tmp_path_factory.mktemp("finished") / "run")
    TrainModel(**_RUN, epochs=1, save_dir=save_dir).train(arch="tiny")
    return save_dir


_RUN = dict(dataset_name="synth", weights=None, batch_size=16, input_size=32,
            synth_train_size=96, synth_test_size=32, seed=0, verbose=0)


def test_resume_under_another_batch_size_is_refused_naming_the_flag(finished_run, tmp_path):
    from train import TrainModel

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
    from train import TrainModel

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


# ------------------------------------------------------ three inputs the issue does not name


def test_a_fifo_among_a_datasets_images_is_skipped_not_waited_on(tmp_path):
    data = synth_faces.write_dataset(str(tmp_path / "raf"), layout="rafdb", n=10, image_size=32)
    fifo = os.path.join(data, "Image", "aligned", "train_00002_aligned.jpg")
    os.remove(fifo)
    os.mkfifo(fifo)
    frame = dataset_readers.read_split("rafdb", data, "train")
    result = {}
    worker = threading.Thread(target=lambda: result.update(
        out=pictures.validate_images(frame, warn=False)), daemon=True)
    worker.start()
    worker.join(30)
    if worker.is_alive():  # opening the FIFO blocks; a writer that opens and closes frees it
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(10)
        pytest.fail("the header check waited on a FIFO")
    good, skipped = result["out"]
    assert skipped == [(fifo, "not a regular file")] and len(good) == len(frame) - 1
    with pytest.raises(pictures.ImageDecodeError, match="not a regular file"):
        pictures.read_picture(fifo)


def _chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(
        ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def test_png_bomb_behind_a_text_chunk_pil_refuses_is_still_refused(tmp_path):
    from PIL import Image

    # 12000 x 12000 black grey pixels after a zTXt chunk that unpacks to 4 MB: PIL will not
    # open the file at all, OpenCV would decode all 144 MP of it.
    compressor = zlib.compressobj(9)
    pixels = b"".join(compressor.compress(bytes(12001)) for _ in range(12000)) + compressor.flush()
    data = (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 12000, 12000, 8, 0, 0, 0, 0))
            + _chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(bytes(4 << 20), 9))
            + _chunk(b"IDAT", pixels) + _chunk(b"IEND", b""))
    assert len(data) < 500_000
    path = tmp_path / "bomb.png"
    path.write_bytes(data)
    with pytest.raises(ValueError):  # the premise
        Image.open(str(path))
    for source in (str(path), data):
        with pytest.raises(pictures.PictureError, match="12000 x 12000 PNG"):
            pictures.read_picture(source)


@pytest.mark.parametrize("layout, name", [
    ("rafdb", "EmoLabel/list_patition_label.txt"),
    ("affectnet", "training.csv"),
    ("fer2013", "fer2013.csv"),
])
def test_label_file_that_is_not_utf8_text_names_the_file(layout, name, tmp_path):
    data = synth_faces.write_dataset(str(tmp_path / layout), layout=layout, n=12, image_size=32)
    path = os.path.join(data, *name.split("/"))
    with open(path, "wb") as handle:  # e.g. a photo saved under the label file's name
        handle.write(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4)
    with pytest.raises(dataset_readers.DatasetFormatError, match="not UTF-8 text") as raised:
        dataset_readers.read_split(layout, data, "train")
    assert path in str(raised.value)


def test_csv_with_an_overlong_field_names_the_file_and_line(tmp_path):
    data = synth_faces.write_dataset(str(tmp_path / "fer"), layout="fer2013", n=12)
    path = os.path.join(data, "fer2013.csv")
    with open(path, "a") as handle:
        handle.write('0,"' + "1 " * 100_000 + '",Training\n')
    with pytest.raises(dataset_readers.DatasetFormatError, match="line 14.*cannot be read as CSV"):
        dataset_readers.read_split("fer2013", data, "train")
