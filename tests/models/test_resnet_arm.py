"""ARM's own network in Keras (`resnet18_arm`, `resnet18`) and the PyTorch checkpoints of it.

The PyTorch side is `torch_arm_reference`: torchvision's ResNet-18 and ARM's `Amend_raf`,
`ResNet18_ARM___RAF` and `ResNet18` restated with their module names, random weights and
random BatchNorm statistics, saved the way train_raf-db.py saves them. The Keras model must give
torch's probabilities to 1e-5 for every picture, the official network run on that picture
alone, while Keras predicts the pictures as one batch. Tests that need torch skip without it.
"""

import sys
import zipfile

import cv2
import keras
import numpy as np
import pytest

from adcorre.cli import convert
from adcorre.models import arm
from adcorre.models import torch_checkpoints
from adcorre.models import weights_io
from adcorre.models.cnn_model import CNNModel, ScaleInputs
from adcorre.config import RAFDB_TO_CANONICAL
from helpers import grace_hopper_path, run_python, skimage_data_path
from arm_reference import build_layer, random_params, reference_arm, to_nhwc

RAF_ORDER = ("Surprise", "Fear", "Disgust", "Happy", "Sad", "Anger", "Neutral")


# ------------------------------------------------------------------------------------- pictures


def _read_rgb(path):
    return cv2.cvtColor(cv2.imread(path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def pictures():
    """Real photographs at 224 px, uint8 RGB: Grace Hopper (whole, face, mirrored) and the
    scikit-image pictures that are installed."""
    grace = _read_rgb(grace_hopper_path())
    views = [grace, grace[60:380, 120:440], grace[:, ::-1]]
    for name in ("astronaut.png", "chelsea.png"):
        path = skimage_data_path(name, required=False)
        if path:
            views.append(_read_rgb(path))
    return np.stack([cv2.resize(view, (224, 224), interpolation=cv2.INTER_AREA) for view in views])


# ------------------------------------------------------------------------------ without torch


def test_scale_inputs_torchvision_is_imagenet_mean_and_std():
    image = np.random.default_rng(0).random((2, 3, 4, 3)).astype("float32")
    got = np.asarray(ScaleInputs("torchvision")(image))
    for channel, (mean, std) in enumerate(zip((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))):
        np.testing.assert_allclose(got[..., channel], (image[..., channel] - mean) / std,
                                   rtol=1e-6, atol=1e-6)


def test_resnet18_is_torchvisions_size_and_shape():
    model = CNNModel().get_model("resnet18", num_classes=7, weights=None)
    # torchvision's resnet18 has 11,689,512 parameters with its Linear(512, 1000) (513,000).
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == 11_689_512 - 513_000 + (512 * 7 + 7)
    assert model.get_layer("layer4_1_relu2").output.shape == (None, 7, 7, 512)
    assert model.get_layer("layer2_0_downsample_0").kernel.shape == (1, 1, 64, 128)
    assert model.get_layer("bn1").epsilon == 1e-5 and model.get_layer("bn1").momentum == 0.9
    # Outputs: the official network, probabilities only; ceil(size / 32) at other sizes.
    small = CNNModel().get_model("resnet18", weights=None, input_size=100)
    assert len(small.outputs) == 1 and small.get_layer("layer4_1_relu2").output.shape[1] == 4


def test_default_heads_and_adcorre_heads():
    official = CNNModel().get_model("resnet18_arm", weights=None)
    assert len(official.outputs) == 1 and official.get_layer("out").kernel.shape == (121, 7)
    assert official.get_layer("arm").affinity == "moving"
    probs = np.asarray(official(np.random.default_rng(1).random((2, 224, 224, 3), "float32")))
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-6)
    heads = CNNModel().get_model("resnet18_arm", weights=None, num_embeddings=3,
                                 embedding_size=16, arm_affinity="sample")
    assert len(heads.outputs) == 4 and heads.get_layer("dense").kernel.shape == (121, 16)
    assert heads.get_layer("arm").affinity == "sample"


def test_sample_affinity_is_the_official_layer_on_a_batch_of_one():
    rng = np.random.default_rng(2)
    params = random_params(rng, 2)
    x = rng.normal(size=(4, 512, 7, 7))
    layer = build_layer((1, 7, 7, 512), params, affinity="sample")
    layer.moving_affinity.assign(rng.normal(size=(11, 11)))  # must not be used
    together = np.asarray(layer(to_nhwc(x), training=False))
    for i in range(len(x)):
        alone, _ = reference_arm(x[i:i + 1], params, training=False)
        np.testing.assert_allclose(together[i], alone[0], rtol=1e-4, atol=2e-5)
    # The official batch map differs, so the test above can tell the two apart.
    batch, _ = reference_arm(x, params, training=False)
    assert np.abs(batch - together).max() > 1e-2
    # Training is the official batch arithmetic whatever the inference mode.
    trained, _ = reference_arm(x, params, training=True)
    np.testing.assert_allclose(np.asarray(layer(to_nhwc(x), training=True)), trained,
                               rtol=1e-4, atol=2e-5)


def test_sample_affinity_config_round_trip():
    layer = arm.AmendRepresentation(affinity="sample", name="arm")
    clone = arm.AmendRepresentation.from_config(layer.get_config())
    assert clone.affinity == "sample" and clone.get_config() == layer.get_config()


def test_imagenet_weights_name_torchvisions_file(monkeypatch, tmp_path):
    import urllib.request

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("ADCORRE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ADCORRE_WEIGHTS_MIRROR", raising=False)  # the official address

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(RuntimeError) as raised:
        CNNModel().get_model("resnet18_arm", weights="imagenet")
    message = str(raised.value)
    assert "resnet18-f37072fd.pth" in message
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in message
    assert "weights=" in message and str(tmp_path / "keras") in message
    assert str(tmp_path / "torch") in message and str(tmp_path / "home") in message


def test_trainer_trains_a_network_without_heads_with_cross_entropy():
    from adcorre.training.train_step import AdCorreTrainer

    keras.utils.set_random_seed(0)
    network = CNNModel().get_model("tiny", weights=None, input_size=32, num_embeddings=0)
    assert len(network.outputs) == 1
    trainer = AdCorreTrainer(network, ce_weight=2.0)
    images = np.random.default_rng(3).random((4, 32, 32, 3), dtype="float32")
    labels = np.array([0, 3, 3, 6])
    probs = np.asarray(trainer(images, training=False))
    loss = float(trainer.compute_loss(y=labels, y_pred=trainer(images, training=False),
                                      training=False))
    assert loss == pytest.approx(-2.0 * np.mean(np.log(probs[np.arange(4), labels])), rel=1e-5)
    trainer.compile(optimizer=keras.optimizers.Adam(1e-3))
    before = network.get_layer("out").get_weights()[0].copy()
    history = trainer.fit(images, labels, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0]) and history.history["fd"][0] == 0.0
    assert np.abs(network.get_layer("out").get_weights()[0] - before).max() > 0


def test_train_model_trains_resnet18_arm_with_cross_entropy_alone(tmp_path):
    from adcorre.training.train_model import TrainModel

    best = TrainModel(dataset_name="synth", synth_train_size=24, synth_test_size=8,
                      input_size=96, epochs=1, batch_size=8, weights=None, num_embeddings=0,
                      use_adcorre=False, save_dir=str(tmp_path), steps_per_epoch=2,
                      verbose=0).train(arch="resnet18_arm")
    model, info = weights_io.load_model(best)
    assert (info.kind, info.arch, info.num_embeddings) == ("project", "resnet18_arm", 0)
    assert model.get_layer("arm").affinity == "moving"


def test_torch_checkpoint_for_another_arch_is_refused(tmp_path):
    torch = pytest.importorskip("torch")
    path = str(tmp_path / "x.pth")
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, path)
    with pytest.raises(ValueError, match="PyTorch checkpoint.*resnet18.*not 'tiny'"):
        CNNModel().get_model("tiny", weights=path, input_size=32)


_JAX_SCRIPT = """
    import sys
    import numpy as np
    import keras
    from adcorre.models.cnn_model import CNNModel
    assert keras.backend.backend() == "jax"
    data = np.load(sys.argv[1])
    model = CNNModel().get_model("resnet18_arm", weights=None, input_size=96,
                                 arm_affinity="sample")
    model.load_weights(sys.argv[2])
    got = np.asarray(model(data["images"], training=False))
    np.testing.assert_allclose(got, data["probs"], rtol=1e-5, atol=1e-6)
    assert "tensorflow" not in sys.modules, "tensorflow was imported"
    print("JAX_OK")
"""


def test_runs_under_jax_like_tensorflow(tmp_path):
    pytest.importorskip("jax", reason="jax is not installed")
    keras.utils.set_random_seed(4)
    model = CNNModel().get_model("resnet18_arm", weights=None, input_size=96,
                                 arm_affinity="sample")
    images = np.random.default_rng(4).random((3, 96, 96, 3), dtype="float32")
    data, weights = str(tmp_path / "data.npz"), str(tmp_path / "model.weights.h5")
    np.savez(data, images=images, probs=np.asarray(model(images, training=False)))
    model.save_weights(weights)
    run = run_python(_JAX_SCRIPT, argv=[data, weights],
                     env={"KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"})
    assert run.returncode == 0 and "JAX_OK" in run.stdout, run.stderr[-3000:]


# --------------------------------------------------------------------------- against PyTorch


@pytest.fixture(scope="module")
def torch_files(tmp_path_factory):
    """The reference networks with random weights, and their files as the official code saves."""
    torch = pytest.importorskip("torch", reason="torch is optional (pip install torch)")
    import torch_arm_reference as ref

    nets = ref.networks(torch)
    folder = tmp_path_factory.mktemp("torch")
    arm_net = ref.randomise(torch, nets["arm"](), seed=0, alpha=0.7)
    state = arm_net.state_dict()
    optimizer = torch.optim.Adam(arm_net.parameters(), weight_decay=1e-4)
    files = {"checkpoint": str(folder / "epoch59_acc0.9205.pth"),
             "bare": str(folder / "arm_state_dict.pth"),
             "torchvision": str(folder / "resnet18-f37072fd.pth"),
             "official_resnet18": str(folder / "resnet18_raf.pth")}
    # As train_raf-db.py saves (its optimizer state comes along and is not read).
    torch.save({"iter": 59, "model_state_dict": state,
                "optimizer_state_dict": optimizer.state_dict()}, files["checkpoint"])
    # A bare state dict, in torch.save's legacy (pre-1.6) format.
    torch.save(state, files["bare"], _use_new_zipfile_serialization=False)
    torchvision_net = ref.randomise(torch, nets["resnet18"](), seed=1)
    torch.save(torchvision_net.state_dict(), files["torchvision"])
    baseline = ref.randomise(torch, nets["official_resnet18"](), seed=2)
    torch.save({"model_state_dict": baseline.state_dict()}, files["official_resnet18"])
    return {"torch": torch, "ref": ref, "arm_net": arm_net, "torchvision_net": torchvision_net,
            "official_resnet18_net": baseline, "state": state, "folder": folder, **files}


def _torch_probabilities(torch_files, module, pictures, together=False):
    """Softmax of torch's logits, each picture alone (batch of one) unless `together`."""
    torch, ref = torch_files["torch"], torch_files["ref"]
    x = ref.to_torch_input(torch, pictures)
    with torch.no_grad():
        if together:
            logits = module(x)
            return torch.softmax(logits[0] if isinstance(logits, tuple) else logits, -1).numpy()
        rows = []
        for i in range(len(x)):
            logits = module(x[i:i + 1])
            rows.append(torch.softmax(logits[0] if isinstance(logits, tuple) else logits, -1))
        return torch.cat(rows).numpy()


def _keras_probabilities(model, pictures):
    return np.asarray(model.predict(pictures.astype("float32") / 255.0, verbose=0))


def test_official_checkpoint_gives_torchs_probabilities_per_picture(torch_files, pictures):
    model, info = weights_io.load_model(torch_files["checkpoint"])
    assert (info.kind, info.arch, info.labels) == ("torch", "resnet18_arm", RAF_ORDER)
    assert (info.input_range, info.input_size, info.num_embeddings) == ((0.0, 1.0), (224, 224), 0)
    assert info.metadata["affinity"] == "sample" and model.get_layer("arm").affinity == "sample"
    expected = _torch_probabilities(torch_files, torch_files["arm_net"], pictures)
    # Neither uniform nor saturated, so equal probabilities mean equal logits.
    assert expected.max() < 0.9 and expected.min() > 1e-3
    got = _keras_probabilities(model, pictures)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(model.get_layer("arm").alpha.numpy(), [0.7], rtol=1e-7)


def test_bare_legacy_state_dict_loads_the_same(torch_files, pictures):
    with open(torch_files["bare"], "rb") as handle:
        assert handle.read(2) == b"\x80\x02"  # a pickle, not a zip archive
    model, info = weights_io.load_model(torch_files["bare"])
    assert info.metadata["container"] == "bare" and info.labels == RAF_ORDER
    expected = _torch_probabilities(torch_files, torch_files["arm_net"], pictures)
    got = _keras_probabilities(model, pictures)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # nn.DataParallel's "module." prefix, under a "state_dict" key.
    wrapped = _save(torch_files, "data_parallel.pth", {"state_dict": {
        f"module.{key}": value for key, value in torch_files["state"].items()}})
    model, info = weights_io.load_model(wrapped)
    assert info.metadata["container"] == "state_dict"
    np.testing.assert_array_equal(_keras_probabilities(model, pictures), got)


def test_official_batch_affinity_stays_available(torch_files, pictures):
    model, info = weights_io.load_model(torch_files["checkpoint"], arm_affinity="batch")
    assert info.metadata["affinity"] == "batch"
    together = _torch_probabilities(torch_files, torch_files["arm_net"], pictures, together=True)
    alone = _torch_probabilities(torch_files, torch_files["arm_net"], pictures)
    assert np.abs(together - alone).max() > 1e-3  # the official output depends on the batch
    np.testing.assert_allclose(_keras_probabilities(model, pictures), together, atol=1e-5)


def test_official_resnet18_class_loads_as_resnet18(torch_files, pictures):
    model, info = weights_io.load_model(torch_files["official_resnet18"])
    assert (info.arch, info.labels, "affinity" in info.metadata) == ("resnet18", RAF_ORDER, False)
    expected = _torch_probabilities(torch_files, torch_files["official_resnet18_net"], pictures)
    np.testing.assert_allclose(_keras_probabilities(model, pictures), expected, atol=1e-5)


def test_torchvision_state_dict_gives_the_same_feature_map(torch_files, pictures):
    torch = torch_files["torch"]
    network = torch_files["torchvision_net"]
    # As the backbone's initialisation: ARM and the classifier keep their own initialisation.
    keras.utils.set_random_seed(5)
    model = CNNModel().get_model("resnet18_arm", weights=torch_files["torchvision"])
    keras.utils.set_random_seed(5)
    fresh = CNNModel().get_model("resnet18_arm", weights=None)
    for name in ("arm", "out"):
        for ours, theirs in zip(model.get_layer(name).weights, fresh.get_layer(name).weights):
            np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    features = keras.Model(model.inputs, model.get_layer("layer4_1_relu2").output)
    got = np.asarray(features.predict(pictures.astype("float32") / 255.0, verbose=0))
    with torch.no_grad():
        expected = network.features(torch_files["ref"].to_torch_input(torch, pictures)).numpy()
    expected = expected.transpose(0, 2, 3, 1)
    assert got.shape == (len(pictures), 7, 7, 512)
    # float32 through 17 layers: rounding grows with the map's values (up to about 20 here).
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * np.abs(expected).max())
    # In float64 the rounding is gone and the arithmetic is the same to far below 1e-5.
    previous = keras.config.dtype_policy(), keras.config.floatx()
    keras.config.set_dtype_policy("float64")
    keras.config.set_floatx("float64")  # the input layer too
    try:
        model64 = CNNModel().get_model("resnet18", weights=torch_files["torchvision"])
    finally:
        keras.config.set_dtype_policy(previous[0])
        keras.config.set_floatx(previous[1])
    features64 = keras.Model(model64.inputs, model64.get_layer("layer4_1_relu2").output)
    got64 = np.asarray(features64([pictures[:2].astype("float64") / 255.0]))
    with torch.no_grad():
        x64 = torch_files["ref"].to_torch_input(torch, pictures[:2], dtype=torch.float64)
        expected64 = network.double().features(x64).numpy().transpose(0, 2, 3, 1)
        network.float()
    np.testing.assert_allclose(got64, expected64, rtol=0, atol=1e-9)
    # Loaded whole it is torchvision's ImageNet classifier: 1000 classes, names unknown.
    model, info = weights_io.load_model(torch_files["torchvision"])
    assert (info.arch, info.num_classes, info.labels[0]) == ("resnet18", 1000, "class_0")
    expected = _torch_probabilities(torch_files, network, pictures[:2])
    np.testing.assert_allclose(_keras_probabilities(model, pictures[:2]), expected, atol=1e-6)


def test_train_model_takes_torchvision_weights(torch_files):
    from adcorre.training.train_model import TrainModel

    network = TrainModel(weights=torch_files["torchvision"], input_size=224,
                         num_embeddings=2).make_model("resnet18_arm")
    state = torch_files["torchvision_net"].state_dict()
    np.testing.assert_array_equal(network.get_layer("conv1").kernel.numpy(),
                                  state["conv1.weight"].numpy().transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(network.get_layer("layer3_0_downsample_1").moving_variance,
                                  state["layer3.0.downsample.1.running_var"].numpy())
    assert len(network.outputs) == 3


def test_converted_model_saves_and_reloads_equal(torch_files, pictures, tmp_path):
    source, info = weights_io.load_model(torch_files["checkpoint"])
    expected = _keras_probabilities(source, pictures)
    h5 = str(tmp_path / "arm_rafdb.h5")
    assert convert.main([torch_files["checkpoint"], h5]) == 0
    path, _ = weights_io.convert(torch_files["checkpoint"], str(tmp_path / "arm_rafdb.keras"))
    for written in (h5, path):
        model, reloaded = weights_io.load_model(written)
        assert (reloaded.kind, reloaded.arch, reloaded.labels) == ("project", "resnet18_arm",
                                                                   RAF_ORDER)
        assert reloaded.input_range == (0.0, 1.0)
        assert reloaded.metadata["extra"]["converted_from"] == "epoch59_acc0.9205.pth"
        np.testing.assert_array_equal(_keras_probabilities(model, pictures), expected)
        plain = keras.models.load_model(written, compile=False)
        assert plain.get_layer("arm").affinity == "sample"
        np.testing.assert_array_equal(_keras_probabilities(plain, pictures), expected)
    # The official per-batch map, asked for when loading a converted file.
    model, _ = weights_io.load_model(h5, arm_affinity="batch")
    together = _torch_probabilities(torch_files, torch_files["arm_net"], pictures, together=True)
    np.testing.assert_allclose(_keras_probabilities(model, pictures), together, atol=1e-5)


def test_testmodels_reads_a_checkpoint(torch_files, pictures, capsys):
    import matplotlib.cbook

    from adcorre.inference.test_models import TestModels

    tester = TestModels(h5_address=torch_files["checkpoint"])
    assert tester.exps == list(RAF_ORDER)
    result = tester.recognize_fer(matplotlib.cbook.get_sample_data("grace_hopper.jpg",
                                                                  asfileobj=False))
    assert capsys.readouterr().out.strip() == result["label"]
    assert list(result["probabilities"]) == list(RAF_ORDER)
    assert result["label"] == max(result["probabilities"], key=result["probabilities"].get)
    expected = _torch_probabilities(torch_files, torch_files["arm_net"], pictures)
    np.testing.assert_allclose(tester.predict(pictures), expected, atol=1e-5)
    # evaluate: RAF-DB's code c is the checkpoint's output c - 1.
    mapping = tester._canonical_to_model_index()
    assert {code: mapping[canonical] for code, canonical in RAFDB_TO_CANONICAL.items()} == {
        code: code - 1 for code in RAFDB_TO_CANONICAL}


# ----------------------------------------------------------------------------------- bad files


def _save(torch_files, name, value, **kwargs):
    path = str(torch_files["folder"] / name)
    torch_files["torch"].save(value, path, **kwargs)
    return path


def _edited_state(torch_files, drop=(), add=None):
    state = {k: v for k, v in torch_files["state"].items() if k not in drop}
    state.update(add or {})
    return {"model_state_dict": state}


@pytest.mark.parametrize("case, message", [
    ("list", r"holds a list, not a state dict"),
    ("tensor", r"holds a Tensor, not a state dict"),
    ("foreign_key", r"key\(s\) the resnet18_arm network does not have: 'features\.9\.weight'"),
    ("missing_key", r"lacks 1 key\(s\).*'arm\.alpha'"),
    ("wrong_shape", r"key 'features\.4\.0\.conv1\.weight' has shape \(64, 64, 5, 5\).*"
                    r"expects \(64, 64, 3, 3\)"),
    ("not_a_tensor", r"key 'fc\.bias' holds a str, not a tensor"),
    ("unknown_network", r"none of the networks this loader knows \(keys encoder\.weight"),
])
def test_bad_checkpoints_fail_clearly(torch_files, case, message):
    torch = torch_files["torch"]
    state = torch_files["state"]
    value = {
        "list": [state["fc.weight"]],
        "tensor": state["fc.weight"],
        "foreign_key": _edited_state(torch_files, add={"features.9.weight": torch.zeros(3)}),
        "missing_key": _edited_state(torch_files, drop=("arm.alpha",)),
        "wrong_shape": _edited_state(
            torch_files, add={"features.4.0.conv1.weight": torch.zeros(64, 64, 5, 5)}),
        "not_a_tensor": _edited_state(torch_files, add={"fc.bias": "seven"}),
        "unknown_network": {"encoder.weight": torch.zeros(2)},
    }[case]
    path = _save(torch_files, f"{case}.pth", value)
    with pytest.raises(weights_io.WeightFileError, match=message) as raised:
        weights_io.load_model(path)
    assert path in str(raised.value)


class _Payload:
    """Unpickling it would open (create) the file it names."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_pickle_that_needs_code_is_refused_and_not_run(torch_files):
    marker = torch_files["folder"] / "UNPICKLED"
    path = _save(torch_files, "code.pth", {"model_state_dict": torch_files["state"],
                                           "hook": _Payload(str(marker))})
    with pytest.raises(weights_io.WeightFileError, match="needs code to unpickle") as raised:
        weights_io.load_model(path)
    assert path in str(raised.value) and "ran nothing" in str(raised.value)
    assert not marker.exists()


def test_truncated_and_corrupt_files(torch_files):
    with open(torch_files["checkpoint"], "rb") as handle:
        content = handle.read()
    cut = torch_files["folder"] / "cut.pth"
    cut.write_bytes(content[: len(content) // 2])
    with pytest.raises(weights_io.WeightFileError, match="not a PyTorch file.*truncated") as raised:
        weights_io.load_model(cut)
    assert str(cut) in str(raised.value)
    # A whole zip whose tensor data is damaged: torch's own reader fails, named with the file.
    damaged = torch_files["folder"] / "damaged.pth"
    with zipfile.ZipFile(torch_files["checkpoint"]) as source, \
            zipfile.ZipFile(damaged, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            target.writestr(item, data[:8] if "/data/" in item.filename else data)
    with pytest.raises(weights_io.WeightFileError, match="damaged.pth.*cannot be read"):
        weights_io.load_model(damaged)


def test_torchscript_archive_is_refused(torch_files):
    torch = torch_files["torch"]
    path = str(torch_files["folder"] / "scripted.pth")
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), path)
    with pytest.raises(weights_io.WeightFileError, match="TorchScript archive") as raised:
        weights_io.load_model(path)
    assert path in str(raised.value)


def test_a_checkpoint_without_torch_names_the_pip_command(torch_files, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now fails
    with pytest.raises(ImportError, match=r"pip install torch") as raised:
        weights_io.load_model(torch_files["checkpoint"])
    assert torch_files["checkpoint"] in str(raised.value)


def test_checkpoint_into_the_wrong_network_fails_clearly(torch_files):
    with pytest.raises(torch_checkpoints.CheckpointError, match="num_embeddings=0"):
        CNNModel().get_model("resnet18_arm", weights=torch_files["checkpoint"],
                             num_embeddings=7)
    with pytest.raises(torch_checkpoints.CheckpointError, match="build arch 'resnet18_arm'"):
        CNNModel().get_model("resnet18", weights=torch_files["checkpoint"])
    with pytest.raises(torch_checkpoints.CheckpointError,
                       match=r"'fc\.weight' has shape \(7, 121\)"):
        CNNModel().get_model("resnet18_arm", weights=torch_files["checkpoint"], num_classes=8)
