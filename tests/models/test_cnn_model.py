"""cnn_model: output structure for every arch, unit-norm embeddings, saving, errors, JAX."""

import keras
import numpy as np
import pytest

from adcorre.models.cnn_model import ARCHES, CNNModel, L2Normalize, ScaleInputs
from helpers import run_python

SMALL_SIZE = {"xcp": 71, "xcp_arm": 71, "resnet": 32, "tiny": 32, "resnet18": 32,
              "resnet18_arm": 64}


@pytest.mark.parametrize("arch", ARCHES)
def test_outputs_and_unit_norm_embeddings(arch):
    model = CNNModel().get_model(arch, num_classes=8, weights=None, input_size=SMALL_SIZE[arch],
                                 num_embeddings=3, embedding_size=32)
    images = np.random.default_rng(0).random((2, SMALL_SIZE[arch], SMALL_SIZE[arch], 3), "float32")
    outputs = model(images, training=False)
    assert len(outputs) == 4
    probs = np.asarray(outputs[0])
    assert probs.shape == (2, 8)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
    for embedding in outputs[1:]:
        embedding = np.asarray(embedding)
        assert embedding.shape == (2, 32)
        np.testing.assert_allclose(np.linalg.norm(embedding, axis=-1), 1.0, rtol=1e-5)
    assert model.get_layer("out").units == 8
    assert [model.get_layer(n).units for n in ("dense", "dense_1", "dense_2")] == [32] * 3


def test_xception_is_the_paper_size():
    model = CNNModel().get_model("xcp", weights=None)
    # Xception without top (20.86 M) + 7 x Dense(2048 -> 256) + Dense(1792 -> 7).
    expected = 20_861_480 + 7 * (2048 * 256 + 256) + (7 * 256 * 7 + 7)
    assert model.count_params() == expected
    assert model.input_shape == (None, 224, 224, 3)
    assert len(model.outputs) == 8
    arm = CNNModel().get_model("xcp_arm", weights=None)
    assert arm.get_layer("dense").kernel.shape == (121, 256)


def test_official_graph_has_no_scaling_layer():
    official = CNNModel().get_model("tiny", weights=None, input_size=32, scale_inputs=False)
    assert not any(isinstance(layer, ScaleInputs) for layer in official.layers)
    ours = CNNModel().get_model("xcp", weights=None, input_size=71)
    assert ours.get_layer("scale_inputs").mode == "xception"


def test_l2_normalize_and_scale_inputs_arithmetic():
    x = np.array([[3.0, 4.0], [0.0, 0.0]], "float32")
    np.testing.assert_allclose(np.asarray(L2Normalize()(x)), [[0.6, 0.8], [0.0, 0.0]], atol=1e-7)
    image = np.random.default_rng(1).random((1, 2, 2, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(ScaleInputs("xception")(image)), image * 2 - 1, atol=1e-6)
    caffe = np.asarray(ScaleInputs("caffe")(image))
    expected = image[..., ::-1] * 255.0 - np.array([103.939, 116.779, 123.68])
    np.testing.assert_allclose(caffe, expected, rtol=1e-5, atol=1e-4)
    with pytest.raises(ValueError, match="mode"):
        ScaleInputs("torch")


@pytest.mark.parametrize("arch,suffix", [("tiny", ".keras"), ("tiny", ".h5"), ("xcp_arm", ".h5")])
def test_save_and_plain_load_round_trip(tmp_path, arch, suffix):
    size = SMALL_SIZE[arch]
    model = CNNModel().get_model(arch, weights=None, input_size=size, num_embeddings=2,
                                 embedding_size=8)
    images = np.random.default_rng(2).random((3, size, size, 3), "float32")
    expected = [np.asarray(o) for o in model(images, training=False)]
    path = str(tmp_path / f"model{suffix}")
    model.save(path)
    loaded = keras.models.load_model(path)
    for a, b in zip(expected, loaded(images, training=False)):
        np.testing.assert_allclose(a, np.asarray(b), rtol=1e-5, atol=1e-6)


# Keras warns about the skipped layers on its way to the mismatch error this test expects.
@pytest.mark.filterwarnings("ignore:Skipping nested container")
def test_weight_file_continues_training(tmp_path):
    model = CNNModel().get_model("tiny", weights=None, input_size=32)
    path = str(tmp_path / "w.weights.h5")
    model.save_weights(path)
    again = CNNModel().get_model("tiny", weights=path, input_size=32)
    for a, b in zip(model.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        CNNModel().get_model("tiny", weights=str(tmp_path / "missing.h5"), input_size=32)
    with pytest.raises(ValueError, match="Could not load"):
        CNNModel().get_model("tiny", weights=path, input_size=32, num_classes=8)


def test_clear_errors(monkeypatch, tmp_path):
    with pytest.raises(ValueError, match="arch"):
        CNNModel().get_model("vgg", weights=None)
    with pytest.raises(ValueError, match="input_size >= 71"):
        CNNModel().get_model("xcp", weights=None, input_size=48)
    with pytest.raises(ValueError, match="no ImageNet weights"):
        CNNModel().get_model("tiny", weights="imagenet")
    # Offline: the message names the file, where it was looked for (the cache, and Keras' own
    # folder, where a user may have it) and the weights=None way out; nothing is left behind.
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setenv("ADCORRE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ADCORRE_WEIGHTS_MIRROR", "http://127.0.0.1:9/")
    with pytest.raises(RuntimeError) as error:
        CNNModel().get_model("xcp", weights="imagenet", input_size=71)
    message = str(error.value)
    assert "xception_weights_tf_dim_ordering_tf_kernels_notop.h5" in message
    assert str(tmp_path) in message and "weights=None" in message
    assert str(tmp_path / "home" / "weights") in message and not (tmp_path / "home").exists()


def test_core_runs_under_jax_without_tensorflow():
    pytest.importorskip("jax", reason="jax is not installed")
    code = """
        import sys, numpy as np
        import keras
        assert keras.backend.backend() == "jax"
        from adcorre.models.cnn_model import CNNModel
        from adcorre.models import arm
        from adcorre.training import custom_loss
        model = CNNModel().get_model("xcp_arm", weights=None, input_size=71, num_embeddings=2,
                                     embedding_size=8)
        probs, *embeddings = model(np.zeros((2, 71, 71, 3), "float32"))
        loss = custom_loss.AdCorreLoss()(np.array([0, 1]), probs, embeddings)
        assert np.isfinite(float(loss["loss"]))
        assert "tensorflow" not in sys.modules, "tensorflow was imported"
        print("OK", probs.shape)
    """
    run = run_python(code, env={"KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"})
    assert run.returncode == 0, run.stderr[-3000:]
    assert "OK (2, 7)" in run.stdout
