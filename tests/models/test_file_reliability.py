"""Careless or hostile input in model files: edited metadata, code, zip bombs: nothing is lost, no traceback (each written to fail
before its fix).
"""

import json
import os
import shutil
import tracemalloc
import warnings
import zipfile

import h5py
import pytest

from adcorre.models import weights_io


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
