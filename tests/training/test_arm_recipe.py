"""ARM's training recipe (`recipe="arm"`, sunmusik/Amend-Representation-Module src/train_raf-db.py).

The recipe's settings as TrainModel and the CLI resolve them; torch's Adam with coupled L2 weight
decay (`adam_optimizers.TorchAdam`) against a NumPy restatement of torch.optim.Adam's update and
against torch itself, alone and through the trainer's CE; the x0.9-per-epoch rate; the statistics
of ARM's augmentation (flip or noise, then random erasing) over many stateless-seeded draws; and a
short `resnet18_arm` training on SynthFER.
"""

import csv
import json
import math

import keras
import numpy as np
import pandas as pd
import pytest

from adcorre.data import input_pipeline
from adcorre.training.adam_optimizers import TorchAdam, make_optimizer
from adcorre.models.cnn_model import ScaleInputs
from adcorre.config import RECIPES, LearningConfig
from helpers import run_python
from adcorre.training.train_model import TrainModel


def numpy_of(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


# ---------------------------------------------------------------------------------- the recipe


def test_recipe_arm_is_train_raf_db():
    config = TrainModel(dataset_name="rafdb", recipe="arm").config
    # train_raf-db.py: ResNet18_ARM___RAF (pretrained=True), CrossEntropyLoss, Adam(weight_decay=
    # 1e-4) at torch's default lr 1e-3, ExponentialLR(gamma=0.9) per epoch, batch 256, 70 epochs,
    # Resize((224, 224)); dataset.py's basic_aug + RandomErasing.
    assert (config.recipe, config.arch, config.weights, config.input_size) == (
        "arm", "resnet18_arm", "imagenet", 224)
    assert (config.num_embeddings, config.use_adcorre, config.cross_entropy_weight) == (0, False, 1.0)
    assert (config.optimizer, config.learning_rate, config.weight_decay) == ("torch_adam", 1e-3, 1e-4)
    assert (config.lr_schedule, config.lr_decay_every, config.lr_decay_factor) == ("step", 1, 0.9)
    assert (config.batch_size, config.epochs, config.augmentation, config.mrr) == (
        256, 70, "arm", False)
    # The caller's settings win over the recipe's; the rest stays.
    scaled = TrainModel(dataset_name="rafdb", recipe="arm", batch_size=64, input_size=112,
                        weights=None).config
    assert (scaled.batch_size, scaled.input_size, scaled.weights) == (64, 112, None)
    assert (scaled.optimizer, scaled.weight_decay, scaled.lr_decay_factor) == ("torch_adam", 1e-4, 0.9)
    # The other recipes keep Keras' Adam without L2.
    for name in set(RECIPES) - {"arm"}:
        other = LearningConfig.from_recipe(name)
        assert (other.optimizer, other.weight_decay) == ("adam", 0.0)


def test_cli_recipe_arm(config_of_train_cli):
    config = config_of_train_cli(["--dataset", "rafdb", "--recipe", "arm", "--batch-size", "64"])
    assert (config.recipe, config.arch, config.batch_size, config.augmentation) == (
        "arm", "resnet18_arm", 64, "arm")
    config = config_of_train_cli(["--dataset", "rafdb", "--recipe", "arm", "--augment", "off",
                                  "--weights", "none"])
    assert (config.augmentation, config.weights) == (False, "none")


def test_recipe_weights_are_torchvisions_file_and_offline_says_which(monkeypatch, tmp_path):
    for variable in ("TORCH_HOME", "KERAS_HOME", "ADCORRE_HOME"):  # empty caches
        monkeypatch.setenv(variable, str(tmp_path / variable.lower()))
    monkeypatch.setenv("ADCORRE_WEIGHTS_MIRROR", "http://127.0.0.1:9/")  # offline
    with pytest.raises(RuntimeError, match="resnet18-f37072fd.pth") as raised:
        TrainModel(dataset_name="rafdb", recipe="arm").make_model("resnet18_arm")
    assert "weights=" in str(raised.value)


@pytest.mark.parametrize("settings, message", [
    (dict(weight_decay=1e-4), "torch_adam"),           # Keras' Adam has no coupled L2 here
    (dict(optimizer="sgd"), "adam"),
    (dict(optimizer="torch_adam", weight_decay=-1.0), "weight_decay"),
])
def test_bad_optimizer_settings_are_named(settings, message):
    with pytest.raises(ValueError, match=message):
        LearningConfig(**settings)


def test_bad_optimizer_arguments_are_named():
    with pytest.raises(ValueError, match="coupled_weight_decay"):
        TorchAdam(weight_decay=0.1)  # Keras' decoupled kind, refused
    with pytest.raises(ValueError, match="amsgrad"):
        TorchAdam(amsgrad=True)
    with pytest.raises(ValueError, match="torch_adam"):
        make_optimizer("adam", 1e-3, weight_decay=1e-4)
    with pytest.raises(ValueError, match="'arm'"):
        TrainModel(augmentation="armm")


# ------------------------------------------------------------------- torch's Adam, coupled L2


def torch_adam_reference(start, gradients, lr, weight_decay, betas=(0.9, 0.999), eps=1e-8):
    """torch.optim.Adam's update (its documented algorithm, amsgrad off), float64, per step."""
    w = start.astype(np.float64)
    m, v = np.zeros_like(w), np.zeros_like(w)
    for t, g in enumerate(gradients, start=1):
        g = g + weight_decay * w
        m = betas[0] * m + (1 - betas[0]) * g
        v = betas[1] * v + (1 - betas[1]) * g * g
        m_hat, v_hat = m / (1 - betas[0] ** t), v / (1 - betas[1] ** t)
        w = w - lr * m_hat / (np.sqrt(v_hat) + eps)
    return w


def _apply(optimizer, start, gradients):
    variable = keras.Variable(start)
    for gradient in gradients:
        optimizer.apply_gradients([(keras.ops.convert_to_tensor(gradient), variable)])
    return numpy_of(variable)


# Gradients of scale 1e-6 put torch's epsilon (after the bias correction) to the test, 1 the
# rest; weight decay 0.5 makes L2 a large part of the gradient, 1e-4 is the recipe's.
@pytest.mark.parametrize("scale", [1e-6, 1.0])
@pytest.mark.parametrize("weight_decay", [1e-4, 0.5])
def test_torch_adam_is_torchs_update(scale, weight_decay):
    rng = np.random.default_rng(7)
    start = rng.normal(size=(6, 5)).astype("float32")
    gradients = (rng.normal(size=(3, 6, 5)) * scale).astype("float32")
    expected = torch_adam_reference(start, gradients, 1e-3, weight_decay)
    ours = _apply(TorchAdam(1e-3, coupled_weight_decay=weight_decay), start, gradients)
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-6)
    if weight_decay == 0.5:
        # The reference tells the kinds apart: Keras' AdamW-style decay (same epsilon) misses it.
        decoupled = _apply(keras.optimizers.Adam(1e-3, epsilon=1e-8, weight_decay=weight_decay),
                           start, gradients)
        assert np.abs(decoupled - expected).max() > 1e-4
    if scale == 1e-6:
        # ... and so does Keras' epsilon placement (epsilon on the un-corrected sqrt(v)).
        keras_adam = _apply(keras.optimizers.Adam(1e-3, epsilon=1e-8), start, gradients)
        assert np.abs(keras_adam - expected).max() > 1e-5


def test_torch_adam_equals_torch_itself():
    torch = pytest.importorskip("torch", reason="torch is optional (pip install torch)")
    rng = np.random.default_rng(8)
    start = rng.normal(size=(4, 3)).astype("float32")
    gradients = (rng.normal(size=(4, 4, 3)) * 1e-3).astype("float32")
    parameter = torch.nn.Parameter(torch.tensor(start))
    optimizer = torch.optim.Adam([parameter], lr=1e-3, weight_decay=0.3)
    for gradient in gradients:
        parameter.grad = torch.tensor(gradient)
        optimizer.step()
    ours = _apply(TorchAdam(1e-3, coupled_weight_decay=0.3), start, gradients)
    np.testing.assert_allclose(ours, parameter.detach().numpy(), rtol=0, atol=1e-6)


@pytest.mark.parametrize("weight_decay", [1e-4, 0.1])
def test_recipe_training_steps_equal_torchs(weight_decay):
    """Two steps of the recipe's trainer (CE weight 1, TorchAdam) on a linear softmax classifier
    = torch's CrossEntropyLoss + Adam(weight_decay) on nn.Linear, kernel and bias (decayed too)."""
    torch = pytest.importorskip("torch", reason="torch is optional (pip install torch)")
    from adcorre.training.train_step import AdCorreTrainer

    rng = np.random.default_rng(9)
    images = rng.normal(size=(2, 12, 5)).astype("float32")
    labels = rng.integers(0, 7, (2, 12))
    kernel = rng.normal(size=(5, 7)).astype("float32") * 0.5
    bias = rng.normal(size=7).astype("float32") * 0.5

    config = TrainModel(dataset_name="rafdb", recipe="arm", weight_decay=weight_decay).config
    inputs = keras.Input((5,))
    network = keras.Model(inputs, keras.layers.Dense(7, activation="softmax", name="out")(inputs))
    network.get_layer("out").set_weights([kernel, bias])
    trainer = AdCorreTrainer(network, ce_weight=config.cross_entropy_weight,
                             use_adcorre=config.use_adcorre)
    trainer.compile(optimizer=make_optimizer(config.optimizer, config.learning_rate,
                                             weight_decay=config.weight_decay))
    for x, y in zip(images, labels):
        trainer.train_on_batch(x, y)

    linear = torch.nn.Linear(5, 7)
    with torch.no_grad():
        linear.weight.copy_(torch.tensor(kernel.T))
        linear.bias.copy_(torch.tensor(bias))
    optimizer = torch.optim.Adam(linear.parameters(), lr=1e-3, weight_decay=weight_decay)
    for x, y in zip(images, labels):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(linear(torch.tensor(x)), torch.tensor(y)).backward()
        optimizer.step()
    got_kernel, got_bias = network.get_layer("out").get_weights()
    np.testing.assert_allclose(got_kernel, linear.weight.detach().numpy().T, rtol=0, atol=1e-6)
    np.testing.assert_allclose(got_bias, linear.bias.detach().numpy(), rtol=0, atol=1e-6)


def test_torch_adam_serialises_and_runs_under_jax():
    optimizer = TorchAdam(2e-3, coupled_weight_decay=0.25)
    clone = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(clone, TorchAdam) and clone.coupled_weight_decay == 0.25
    assert clone.epsilon == 1e-8 and float(clone.learning_rate) == pytest.approx(2e-3)

    pytest.importorskip("jax", reason="jax is not installed")
    rng = np.random.default_rng(10)
    start = rng.normal(size=(3, 2)).astype("float32")
    gradients = rng.normal(size=(3, 3, 2)).astype("float32")
    run = run_python(f"""
        import keras, numpy as np
        from adcorre.training.adam_optimizers import TorchAdam
        assert keras.backend.backend() == "jax"
        variable = keras.Variable(np.array({start.tolist()}, "float32"))
        optimizer = TorchAdam(1e-2, coupled_weight_decay=0.5)
        for gradient in np.array({gradients.tolist()}, "float32"):
            optimizer.apply_gradients([(keras.ops.convert_to_tensor(gradient), variable)])
        print("RESULT", keras.ops.convert_to_numpy(variable).ravel().tolist())
    """, env={"KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"})
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads(run.stdout.split("RESULT", 1)[1].strip())
    expected = torch_adam_reference(start, gradients, 1e-2, 0.5)
    np.testing.assert_allclose(np.reshape(got, start.shape), expected, rtol=0, atol=1e-6)


# ------------------------------------------------------------------------------- the schedule


def test_rate_falls_by_0_9_after_every_epoch():
    schedule = TrainModel(dataset_name="rafdb", recipe="arm").learning_rate_schedule(
        steps_per_epoch=4)
    for step in range(0, 4 * 12):
        # ExponentialLR(gamma=0.9).step() after each epoch: epoch e (from 0) runs at 1e-3 * 0.9^e.
        assert float(schedule(step)) == pytest.approx(1e-3 * 0.9 ** (step // 4), rel=1e-6), step


# --------------------------------------------------------------------------- the augmentation


def _ramp(size):
    """A picture whose left and right differ (a flip shows), away from 0 and 255 (noise is not
    clipped), whose pixels are never the ImageNet mean colour (erasing shows)."""
    ramp = np.linspace(40, 215, size).round().astype(np.uint8)
    image = np.repeat(np.repeat(ramp[None, :, None], size, axis=0), 3, axis=2)
    image[..., 1] = 100
    return image


def _augmented(image, count, input_size, seed=0):
    frame = pd.DataFrame({"image": [image] * count, "label": [0] * count})
    dataset = input_pipeline.make_dataset(frame, input_size=input_size, batch_size=500,
                                          augment="arm", seed=seed, shuffle=False, validate="none")
    return np.concatenate([numpy_of(images) for images, _ in dataset])


def _within(rate, p, n):
    return abs(rate - p) <= 4 * math.sqrt(p * (1 - p) / n)  # four standard errors


@pytest.fixture(scope="module")
def arm_draws():
    image = _ramp(64)
    return image, _augmented(image, 2000, 64)


def test_arm_augmentation_flips_or_adds_noise_at_the_stated_rates(arm_draws):
    image, out = arm_draws
    n = len(out)
    erased = np.all(out == np.float32(input_pipeline.IMAGENET_MEAN_RGB), axis=-1)
    kept = ~erased
    unit = image.astype(np.float32) / 255.0
    plain = np.array([np.array_equal(o[k], unit[k]) for o, k in zip(out, kept)])
    flipped = np.array([np.array_equal(o[k], unit[:, ::-1][k]) for o, k in zip(out, kept)])
    noisy = ~plain & ~flipped
    # dataset.py: `random.uniform(0, 1) > 0.5` then `random.randint(0, 1)` picks one of two.
    assert _within(plain.mean(), 0.5, n) and _within(flipped.mean(), 0.25, n)
    assert _within(noisy.mean(), 0.25, n)
    # Never both: a noisy picture is the unflipped one plus noise.
    residual = [np.abs(o[k] * 255.0 - image[k]).mean() for o, k in zip(out[noisy], kept[noisy])]
    assert max(residual) < 10.0

    # add_gaussian_noise: + N(0, 30), clipped, truncated by astype(uint8): on integer pixels the
    # change is floor(N(0, 30)), of mean -0.5 and variance 30 + 1/12 (the truncation's share).
    changes = np.concatenate([(np.round(o * 255.0) - image)[k]
                              for o, k in zip(out[noisy], kept[noisy])])
    assert changes.mean() == pytest.approx(-0.5, abs=0.02)
    assert changes.std() == pytest.approx(math.sqrt(30 + 1 / 12), rel=0.01)
    assert np.array_equal(changes, np.round(changes))  # whole 0-255 steps, as uint8 pictures


def test_arm_augmentation_erases_the_stated_area_with_value_zero(arm_draws):
    _, out = arm_draws
    erased = np.all(out == np.float32(input_pipeline.IMAGENET_MEAN_RGB), axis=-1)
    has_erasure = erased.any(axis=(1, 2))
    assert _within(has_erasure.mean(), 0.5, len(out))  # RandomErasing's p = 0.5
    areas = []
    for mask in erased[has_erasure]:
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        # One rectangle, of aspect h / w in the default ratio (0.3, 3.3) up to a pixel.
        assert mask.sum() == len(rows) * len(cols)
        assert np.ptp(rows) + 1 == len(rows) and np.ptp(cols) + 1 == len(cols)
        assert 0.3 * (len(cols) - 1) - 1 <= len(rows) <= 3.3 * (len(cols) + 1) + 1
        areas.append(mask.mean())
    areas = np.array(areas)
    # scale=(0.02, 0.1): the area fraction is uniform on it; whole pixels move a 64 x 64
    # rectangle's area by at most (h + w + 1) pixels.
    assert areas.min() >= 0.015 and areas.max() <= 0.112
    assert areas.mean() == pytest.approx(0.06, abs=0.003)
    assert areas.std() == pytest.approx(0.08 / math.sqrt(12), rel=0.1)
    # torchvision erases with 0 after Normalize: the ImageNet mean, which the model's
    # ScaleInputs("torchvision") maps to 0.
    normalised = numpy_of(ScaleInputs("torchvision")(out[has_erasure][:4]))
    assert np.abs(normalised[erased[has_erasure][:4]]).max() < 1e-6


def test_arm_augmentation_is_repeatable_and_noises_before_the_resize(arm_draws):
    image, out = arm_draws
    np.testing.assert_array_equal(_augmented(image, 40, 64), out[:40])
    assert not np.array_equal(_augmented(image, 40, 64, seed=1), out[:40])
    # A flat 64 px picture trained at 32 px: noise added to the source pixels is averaged by
    # the antialiased 2x reduction, so what comes out is well below the std of 30 ** 0.5.
    flat = np.full((64, 64, 3), 120, np.uint8)
    small = _augmented(flat, 400, 32) * 255.0
    kept = ~np.all(small == np.float32(input_pipeline.IMAGENET_MEAN_RGB) * 255.0, axis=-1)
    spread = np.array([(s[k] - 120.0).std() for s, k in zip(small, kept)])
    noisy = spread > 0.1
    assert _within(noisy.mean(), 0.25, len(small))
    assert 1.0 < np.median(spread[noisy]) < 0.6 * math.sqrt(30)


# ------------------------------------------------------------------------ training resnet18_arm


def test_recipe_trains_resnet18_arm_on_synthfer(tmp_path):
    from adcorre.data.dataset_readers import read_split
    from adcorre.training.train_step import AdCorreTrainer

    # The recipe at 96 px from scratch: a fixed batch of SynthFER faces, fitted step by step.
    recipe = TrainModel(dataset_name="synth", recipe="arm", weights=None, input_size=96)
    keras.utils.set_random_seed(0)
    trainer = AdCorreTrainer(recipe.make_model("resnet18_arm"),
                             ce_weight=recipe.config.cross_entropy_weight,
                             use_adcorre=recipe.config.use_adcorre)
    trainer.compile(optimizer=make_optimizer("torch_adam", 1e-3, weight_decay=1e-4))
    faces = read_split("synth", None, "train", n=16, image_size=96, seed=3)
    images = np.stack(faces["image"]).astype("float32") / 255.0
    labels = faces["label"].to_numpy()
    losses = [float(trainer.train_on_batch(images, labels, return_dict=True)["loss"])
              for _ in range(8)]
    assert losses[0] == pytest.approx(math.log(7), abs=0.5)  # from scratch: about chance
    assert losses[-1] < 0.6 * losses[0], losses

    # The whole TrainModel run: files, the recipe in run_config.json, the rate per epoch.
    save_dir = tmp_path / "run"
    best = TrainModel(dataset_name="synth", recipe="arm", weights=None, input_size=96,
                      batch_size=16, epochs=2, synth_train_size=64, synth_test_size=16,
                      save_dir=str(save_dir), verbose=0).train()
    assert best and best.endswith(".h5")
    run_config = json.loads((save_dir / "run_config.json").read_text())
    assert (run_config["arch"], run_config["optimizer"], run_config["weight_decay"],
            run_config["augmentation"], run_config["ce_weight"]) == (
        "resnet18_arm", "torch_adam", 1e-4, "arm", 1.0)
    with open(save_dir / "log.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [float(row["learning_rate"]) for row in rows] == pytest.approx([1e-3, 9e-4], rel=1e-6)
    assert all(float(row["fd"]) == 0.0 for row in rows)  # CE alone
