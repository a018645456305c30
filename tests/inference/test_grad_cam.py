"""Grad-CAM (grad_cam, TestModels.explain, --explain): the feature map each arch is explained
on, the arithmetic against the closed form of a conv -> pooling -> softmax network, and where a
`tiny` model trained on SynthFER looks (on the face, not the background)."""


import cv2
import keras
import numpy as np
import pytest

from adcorre.inference import grad_cam
from adcorre.data import synth_faces
from adcorre.models import weights_io
from adcorre.models.cnn_model import ARCHES, CNNModel
from adcorre.models.registry import get_arch
from adcorre.cli import test as test_cli
from adcorre.inference.model_tester import TestModels
from helpers import run_python

SIZE = 40
# Two expressions told apart by the mouth and eyes (fast to learn from scratch).
CLASSES = (1, 3)  # Happy, Surprise
NAMES = ("Happy", "Surprise")




def _synth(count, seed):
    labels = np.resize(np.array(CLASSES), count)
    images, drawn = synth_faces.generate(count, image_size=SIZE, seed=seed, labels=labels)
    return images, np.searchsorted(CLASSES, drawn)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A `tiny` model (with its embedding heads) trained with CE on 2000 SynthFER faces."""
    keras.utils.set_random_seed(0)
    images, labels = _synth(2000, seed=1)
    model = CNNModel().get_model("tiny", num_classes=2, weights=None, input_size=SIZE,
                                 num_embeddings=2, embedding_size=16)
    for layer in model.layers:
        # From scratch, 300 steps: the moving statistics must follow the weights faster
        # than the default momentum 0.99 lets them.
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.8
    classifier = keras.Model(model.inputs, model.outputs[0])
    classifier.compile(keras.optimizers.Adam(2e-3), "sparse_categorical_crossentropy")
    classifier.fit(images.astype("float32") / 255.0, labels, batch_size=32, epochs=5, verbose=0)
    path = tmp_path_factory.mktemp("trained") / "synth_tiny.h5"
    return str(weights_io.save_model(model, path, labels=NAMES, arch="tiny"))


def _face_region(size):
    """SynthFER's face, from the generator's geometry: centred at (0.5, 0.47) of the picture
    (+-0.06), half as wide as the picture or more (0.25-0.33 of it per face half-width), 1.2-1.4
    times as tall as wide: this ellipse holds the face of every drawn person."""
    y, x = np.mgrid[0:size, 0:size] / size
    return ((x - 0.5) / 0.33) ** 2 + ((y - 0.47) / 0.4) ** 2 <= 1.0


def test_trained_model_looks_at_the_face(trained):
    tester = TestModels(trained, detector=None, verbose=False)
    images, labels = _synth(64, seed=99)
    probabilities = tester.predict(images)
    assert np.mean(np.argmax(probabilities, axis=1) == labels) >= 0.75  # it did learn
    heat = grad_cam.grad_cam(tester.model, tester.to_model_input(images))
    face = _face_region(SIZE)
    mass = (heat * face).sum(axis=(1, 2)) / np.maximum(heat.sum(axis=(1, 2)), 1e-12)
    peaks_on_face = np.mean([face.flat[np.argmax(h)] for h in heat])
    # Baseline: a heat map spread evenly puts face.mean() (0.42) of its mass on the face.
    assert mass.mean() >= face.mean() + 0.12, (mass.mean(), face.mean())
    assert peaks_on_face >= 0.6


def test_explain_writes_the_overlay(trained, tmp_path):
    tester = TestModels(trained, detector=None, verbose=False)
    images, _ = _synth(1, seed=7)
    picture = tmp_path / "face.png"
    cv2.imwrite(str(picture), cv2.cvtColor(images[0], cv2.COLOR_RGB2BGR))
    out = tmp_path / "cam.png"
    result = tester.explain(str(picture), out)
    assert result["layer"] == "tiny_relu3" and result["box"] is None
    assert result["heatmap"].shape == (SIZE, SIZE) and result["crop"].shape == (SIZE, SIZE, 3)
    # Scaled to a peak of 1 on the feature map, then upsampled (interpolation may lower it).
    assert 0.0 <= result["heatmap"].min() and 0.5 < result["heatmap"].max() <= 1.0
    assert result["label"] == tester.recognize_fer(str(picture))["label"]
    drawn = cv2.imread(str(out))
    assert drawn is not None and drawn.shape[1] > drawn.shape[0]


def test_closed_form_of_a_pooled_softmax_network():
    # conv (same size as the input) -> global average pooling -> Dense softmax: the gradient of
    # logit c w.r.t. A[i, j, k] is W[k, c] / (h w), so Grad-CAM = ReLU(A @ W[:, c]) / max.
    keras.utils.set_random_seed(3)
    image = keras.Input((6, 7, 3))
    features = keras.layers.Conv2D(5, 3, padding="same", activation="relu", name="conv")(image)
    pooled = keras.layers.GlobalAveragePooling2D()(features)
    for head in ("dense", "activation"):
        if head == "dense":
            output = keras.layers.Dense(4, activation="softmax", name="out")(pooled)
        else:
            logits = keras.layers.Dense(4, name="logits")(pooled)
            output = keras.layers.Activation("softmax")(logits)
        model = keras.Model(image, output)
        dense = model.get_layer("out" if head == "dense" else "logits")
        images = np.random.default_rng(0).random((3, 6, 7, 3)).astype("float32")
        maps = keras.Model(image, features).predict_on_batch(images)
        kernel = keras.ops.convert_to_numpy(dense.kernel)
        for chosen in (0, 2):
            expected = np.maximum(maps @ kernel[:, chosen], 0.0)
            peak = expected.reshape(3, -1).max(axis=1)[:, None, None]
            expected = np.divide(expected, peak, out=np.zeros_like(expected), where=peak > 0)
            got = grad_cam.grad_cam(model, images, class_index=chosen)
            np.testing.assert_allclose(got, expected, atol=1e-5)
        predicted = np.argmax(model.predict_on_batch(images), axis=1)
        np.testing.assert_allclose(grad_cam.grad_cam(model, images),
                                   grad_cam.grad_cam(model, images, class_index=predicted))


# The map each arch's pooling (or ARM) takes; arches added later are found without a table.
LAST_MAPS = {"tiny": "tiny_relu3", "xcp": "block14_sepconv2_act",
             "xcp_arm": "block14_sepconv2_act", "resnet": "conv5_block3_out"}
SMALL_SIZES = {"tiny": 32, "xcp": 71, "xcp_arm": 96, "resnet": 64}  # others: 112


@pytest.mark.parametrize("arch", ARCHES)
def test_every_arch_has_its_last_feature_map_found(arch):
    size = SMALL_SIZES.get(arch, 112)
    model = CNNModel().get_model(arch, num_classes=7, weights=None, input_size=size)
    layer = grad_cam.feature_map_layer(model)  # found in the graph, as for a foreign model
    if arch in LAST_MAPS:
        assert layer.name == LAST_MAPS[arch]
    # The registry's record names the same layer, which a model of a known arch is explained on.
    assert layer.name == get_arch(arch).feature_map
    assert grad_cam.feature_map_layer(model, arch) is layer
    assert len(layer.output.shape) == 4 and layer.output.shape[1] * layer.output.shape[2] > 1
    heat = grad_cam.grad_cam(model, np.random.default_rng(0).random((2, size, size, 3)))
    assert heat.shape == (2, size, size) and np.isfinite(heat).all()
    assert heat.min() >= 0.0 and heat.max() <= 1.0


def test_foreign_model_without_a_feature_map_is_a_clear_error(tmp_path, capsys):
    dense_only = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Flatten(),
                                   keras.layers.Dense(7, activation="softmax")])
    with pytest.raises(grad_cam.NoFeatureMapError, match=r"\(n, h, w, c\).*Dense, Flatten"):
        grad_cam.feature_map_layer(dense_only)
    path = tmp_path / "dense.keras"
    dense_only.save(path)
    picture = tmp_path / "grey.png"
    cv2.imwrite(str(picture), np.full((40, 40, 3), 90, np.uint8))
    code = test_cli.main(["--weights", str(path), "--labels", "fer2013", "--image", str(picture),
                   "--explain", str(tmp_path / "cam.png")])
    assert code == 2 and "Grad-CAM needs a convolutional feature map" in capsys.readouterr().err
    assert not (tmp_path / "cam.png").exists()


def test_a_1x1_map_is_not_a_feature_map():
    image = keras.Input((8, 8, 3))
    spatial = keras.layers.Conv2D(4, 3, padding="same", name="spatial")(image)
    squeezed = keras.layers.Conv2D(4, 8, name="one_by_one")(spatial)  # 1 x 1: nothing to locate
    output = keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(squeezed))
    assert grad_cam.feature_map_layer(keras.Model(image, output)).name == "spatial"


def test_a_foreign_classifier_is_explained_from_its_feature_map_on(fer_model):
    """The `fer` package's model (conv -> global average -> softmax): the gradient of class c's
    logit with respect to its last map A is 1 / hw on channel c, so the map is ReLU(A_c), scaled
    to a peak of 1. Differentiating the whole network from the input crashed TensorFlow here
    (oneDNN's convolution backward pass, double free); a child process survives if it does."""
    code = f"""
import cv2, numpy as np, keras
from adcorre.inference import grad_cam
from adcorre.models import weights_io
from helpers import grace_hopper_path
model, _ = weights_io.load_model({fer_model!r}, labels="fer2013")
picture = cv2.resize(cv2.imread(grace_hopper_path(), cv2.IMREAD_GRAYSCALE)[100:331, 149:380], (64, 64))
images = (picture.astype("float32") / 127.5 - 1.0)[None, :, :, None]
layer = grad_cam.feature_map_layer(model)
heat = grad_cam.grad_cam(model, images, class_index=6, layer=layer)
feature_map = keras.Model(model.inputs, layer.output)(images).numpy()[0, :, :, 6]
expected = np.maximum(feature_map, 0) / np.maximum(feature_map, 0).max()
expected = np.clip(cv2.resize(expected, (64, 64), interpolation=cv2.INTER_LINEAR), 0, 1)
np.testing.assert_allclose(heat[0], expected, atol=1e-5)
print("OK", layer.name, heat.shape)
"""
    run = run_python(code, env={"TF_ENABLE_ONEDNN_OPTS": "1", "CUDA_VISIBLE_DEVICES": ""})
    assert run.returncode == 0, run.stderr[-3000:]
    assert "OK conv2d_7 (1, 64, 64)" in run.stdout
