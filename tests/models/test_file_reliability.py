"""Careless or hostile input in model files: edited metadata, code, zip bombs, layer lists that
lie. Nothing is lost, no traceback (each test written to fail before its fix).
"""

import json
import os
import shutil
import tracemalloc
import warnings
import zipfile

import h5py
import keras
import pytest

from adcorre.models import file_checks, weights_io


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


# ------------------------------------------------------- archives and layer lists that lie


def _tiny_keras(folder):
    from adcorre.config import EXPRESSIONS_7
    from adcorre.models.cnn_model import CNNModel

    model = CNNModel().get_model("tiny", weights=None, input_size=32, num_embeddings=2,
                                 embedding_size=8)
    return weights_io.save_model(model, os.path.join(folder, "tiny.keras"), labels=EXPRESSIONS_7,
                                 arch="tiny")


def test_an_archive_that_unpacks_past_the_cap_is_refused_before_anything_unpacks(
        tmp_path, monkeypatch):
    """Members beside the config (each under Keras' own per-member bomb floor) that unpack to
    more than the cap: refused from the directory, Keras never called, nothing written."""
    path = _tiny_keras(str(tmp_path))
    monkeypatch.setattr(file_checks, "MAX_ARCHIVE_BYTES", 40 * 2**20)
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        for index in range(3):  # 3 x 16 MB of zeros: a few KB on disk
            archive.writestr(f"assets/filler_{index}.bin", bytes(16 * 2**20))

    def never(*args, **kwargs):
        raise AssertionError("Keras was asked to unpack the archive")

    monkeypatch.setattr(keras.models, "load_model", never)
    with pytest.raises(weights_io.WeightFileError, match=r"unpack to \d+ MB.*Refused before "
                                                         r"anything was unpacked"):
        weights_io.load_model(path)


def test_an_archive_with_too_many_members_is_refused(tmp_path, monkeypatch):
    path = _tiny_keras(str(tmp_path))
    with zipfile.ZipFile(path, "a") as archive:
        for index in range(file_checks.MAX_ARCHIVE_MEMBERS):
            archive.writestr(f"assets/{index}.txt", b"")
    with pytest.raises(weights_io.WeightFileError, match=r"lists \d+ members"):
        weights_io.load_model(path)


def test_a_failed_unpacking_leaves_no_temporary_folder(tmp_path, monkeypatch):
    """Keras unpacks the archive into a temporary folder and, when the unpacking itself fails
    (a full disk), does not remove it: the loader's own folder goes, whatever happens."""
    import errno
    import tempfile

    from keras.src.utils import file_utils

    path = _tiny_keras(str(tmp_path))
    system_temp = tmp_path / "system_temp"
    system_temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_temp))

    def disk_full(archive, folder):
        with open(os.path.join(folder, "half_unpacked.bin"), "wb") as handle:
            handle.write(bytes(2**20))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(file_utils, "extract_open_archive", disk_full)
    with pytest.raises(weights_io.WeightFileError, match="No space left on device"):
        weights_io.load_model(path)
    assert list(system_temp.iterdir()) == []
    assert tempfile.tempdir == str(system_temp)  # put back as it was


def test_an_h5_layer_list_naming_one_layer_twice_is_refused_naming_it(tiny_file, tmp_path):
    """The two heads have the same shapes: a list naming the first twice would load the first
    head's weights into the second without a word."""
    path = str(tmp_path / "twice.h5")
    shutil.copy(tiny_file, path)
    with h5py.File(path, "a") as file:
        group = file["model_weights"]
        names = [n.decode() if isinstance(n, bytes) else n for n in group.attrs["layer_names"]]
        assert "dense" in names and "dense_1" in names
        group.attrs["layer_names"] = [n.encode() for n in
                                      ("dense" if n == "dense_1" else n for n in names)]
    with pytest.raises(weights_io.WeightFileError,
                       match=r"twice.h5'?: its layer list names the layer 'dense' 2 times"):
        weights_io.load_model(path)


def test_an_h5_layer_list_naming_a_missing_layer_is_refused(tiny_file, tmp_path):
    path = str(tmp_path / "missing.h5")
    shutil.copy(tiny_file, path)
    with h5py.File(path, "a") as file:
        group = file["model_weights"]
        group.attrs["layer_names"] = [n if isinstance(n, bytes) else n.encode() for n in
                                      group.attrs["layer_names"]] + [b"ghost"]
    with pytest.raises(weights_io.WeightFileError, match="names 'ghost', which the file does not"):
        weights_io.load_model(path)
