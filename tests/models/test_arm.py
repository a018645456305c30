"""Tests of adcorre.models.arm: the Keras port of the Amend Representation Module.

The reference is `arm_reference` (tests/): an independent NumPy transcription of the official
PyTorch module's arithmetic in NCHW.
"""

import importlib.util
import textwrap

import numpy as np
import pytest

import keras

from adcorre.models.arm import AmendRepresentation, pixel_shuffle
from arm_reference import (build_layer, numpy_of, random_params, reference_arm,
                           reference_pixel_shuffle_nchw, set_params, to_nhwc)
from helpers import run_python


# ---------------------------------------------------------------------------
# Official arithmetic
# ---------------------------------------------------------------------------
def test_pixel_shuffle_matches_torch_index_formula():
    rng = np.random.default_rng(0)
    for r, channels, (h, w) in ((2, 3, (3, 4)), (3, 2, (2, 2)), (16, 2, (2, 3))):
        x = rng.normal(size=(2, h, w, channels * r * r)).astype("float32")
        got = numpy_of(pixel_shuffle(x, r))
        assert got.shape == (2, h * r, w * r, channels)
        expected = np.empty_like(got)
        for hh in range(h):
            for ww in range(w):
                for c in range(channels):
                    for i in range(r):
                        for j in range(r):
                            source = x[:, hh, ww, c * r * r + i * r + j]
                            expected[:, hh * r + i, ww * r + j, c] = source
        np.testing.assert_array_equal(got, expected)
        # The NCHW reference used below agrees with the same formula.
        nchw = reference_pixel_shuffle_nchw(np.transpose(x, (0, 3, 1, 2)), r)
        np.testing.assert_array_equal(np.transpose(nchw, (0, 2, 3, 1)), expected)


@pytest.mark.parametrize("channels_in", [512, 2048])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_official_arithmetic(seed, channels_in):
    rng = np.random.default_rng(seed)
    channels = channels_in // 256
    params = random_params(rng, channels)
    layer = build_layer((1, 7, 7, channels_in), params, affinity="batch")
    for batch in (1, 2, 3, 4):
        x = rng.normal(size=(batch, channels_in, 7, 7))
        # Training: BN with batch statistics, affinity of this batch.
        expected, _ = reference_arm(x, params, training=True)
        got = numpy_of(layer(to_nhwc(x), training=True))
        assert got.shape == (batch, 121)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=2e-5)
        # Inference with affinity="batch": BN running statistics (as torch eval),
        # affinity still the current batch's mean (the official behaviour).
        set_params(layer, params)  # the training call moved the BN statistics
        expected, _ = reference_arm(x, params, training=False)
        got = numpy_of(layer(to_nhwc(x), training=False))
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=2e-5)


@pytest.mark.parametrize("spatial, features", [((3, 3), 9), ((3, 5), 21), ((4, 4), 25)])
def test_other_spatial_sizes(spatial, features):
    rng = np.random.default_rng(3)
    params = random_params(rng, 2)
    layer = build_layer((1,) + spatial + (512,), params, affinity="batch")
    x = rng.normal(size=(3, 512) + spatial)
    got = numpy_of(layer(to_nhwc(x), training=True))
    expected, _ = reference_arm(x, params, training=True)
    assert got.shape == (3, features)
    assert layer.compute_output_shape((None,) + spatial + (512,)) == (None, features)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=2e-5)


def test_non_default_geometry_matches_reference():
    rng = np.random.default_rng(4)
    params = random_params(rng, 3, kernel_size=6)
    layer = build_layer((1, 5, 4, 12), params, upscale_factor=2, kernel_size=6, stride=2,
                        affinity="batch")
    x = rng.normal(size=(2, 12, 5, 4))
    got = numpy_of(layer(to_nhwc(x), training=True))
    expected, _ = reference_arm(x, params, training=True, r=2, stride=2)
    assert got.shape == (2, 3 * 2)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=2e-5)


def test_default_kernel_init_is_torch_conv_default():
    # torch Conv2d: kaiming_uniform(a=sqrt(5)) -> U(-b, b), b = gain * sqrt(3 / fan_in)
    # with gain = sqrt(2 / (1 + a^2)) = sqrt(1/3): b = 1/sqrt(fan_in) = 1/32 for 32x32.
    keras.utils.set_random_seed(0)
    layer = build_layer((1, 7, 7, 512))
    kernel = numpy_of(layer.de_albino_kernel).ravel()
    bound = np.sqrt(2.0 / (1.0 + 5.0)) * np.sqrt(3.0 / (32 * 32))
    assert np.all(np.abs(kernel) <= bound)
    assert np.abs(kernel).max() > 0.95 * bound
    np.testing.assert_allclose(kernel.std(), bound / np.sqrt(3.0), rtol=0.1)
    assert abs(kernel.mean()) < 0.1 * bound
    np.testing.assert_array_equal(numpy_of(layer.alpha), [1.0])
    assert layer.batch_norm.epsilon == 1e-5 and layer.batch_norm.momentum == 0.9


# ---------------------------------------------------------------------------
# Affinity: batch independence and the moving estimate
# ---------------------------------------------------------------------------
def test_inference_is_batch_independent_with_moving_affinity():
    rng = np.random.default_rng(5)
    params = random_params(rng, 2)
    x = to_nhwc(rng.normal(size=(5, 512, 7, 7)))
    outputs = {}
    for mode in ("moving", "batch"):
        layer = build_layer((1, 7, 7, 512), params, affinity=mode)
        layer.moving_affinity.assign(rng.normal(size=(11, 11)))
        alone = numpy_of(layer(x[:1], training=False))[0]
        in_batch_a = numpy_of(layer(x[:3], training=False))[0]
        in_batch_b = numpy_of(layer(x[[3, 4, 0]], training=False))[2]
        outputs[mode] = (alone, in_batch_a, in_batch_b)
        if mode == "moving":
            np.testing.assert_allclose(alone, in_batch_a, rtol=1e-6, atol=1e-6)
            np.testing.assert_allclose(alone, in_batch_b, rtol=1e-6, atol=1e-6)
            expected, _ = reference_arm(np.transpose(x[:1], (0, 3, 1, 2)), params, training=False,
                                        affinity=numpy_of(layer.moving_affinity))
            np.testing.assert_allclose(alone, expected[0], rtol=1e-4, atol=2e-5)
        else:
            assert np.abs(alone - in_batch_a).max() > 1e-2
            assert np.abs(in_batch_a - in_batch_b).max() > 1e-2


@pytest.mark.parametrize("momentum", [0.9, 0.7])
def test_moving_affinity_follows_momentum_formula(momentum):
    rng = np.random.default_rng(6)
    params = random_params(rng, 2)
    layer = build_layer((1, 7, 7, 512), params, affinity_momentum=momentum)
    start = rng.normal(size=(11, 11))
    layer.moving_affinity.assign(start)
    x = rng.normal(size=(3, 512, 7, 7))
    numpy_of(layer(to_nhwc(x), training=True))
    _, extras = reference_arm(x, params, training=True)
    expected = momentum * start + (1.0 - momentum) * extras["batch_affinity"]
    moved = numpy_of(layer.moving_affinity)
    assert np.abs(moved - start).max() > 1e-3
    np.testing.assert_allclose(moved, expected, rtol=1e-5, atol=1e-5)
    # BN's own moving mean follows torch's running_mean rule (torch momentum 0.1).
    np.testing.assert_allclose(
        numpy_of(layer.batch_norm.moving_mean),
        0.9 * params["moving_mean"] + 0.1 * extras["mean"], rtol=1e-5, atol=1e-6)


def test_inference_and_frozen_layer_leave_moving_affinity_alone():
    rng = np.random.default_rng(7)
    params = random_params(rng, 2)
    layer = build_layer((1, 7, 7, 512), params)
    start = rng.normal(size=(11, 11)).astype("float32")
    layer.moving_affinity.assign(start)
    x = to_nhwc(rng.normal(size=(2, 512, 7, 7)))
    inference = numpy_of(layer(x, training=False))
    np.testing.assert_array_equal(numpy_of(layer.moving_affinity), start)
    # Frozen: behaves as inference, as Keras' BatchNormalization does when frozen.
    layer.trainable = False
    frozen = numpy_of(layer(x, training=True))
    np.testing.assert_array_equal(numpy_of(layer.moving_affinity), start)
    np.testing.assert_allclose(frozen, inference, rtol=1e-6, atol=1e-6)


def test_fit_updates_moving_affinity():
    """One step of keras' own trainer (graph mode) applies the moving-affinity update."""
    rng = np.random.default_rng(8)
    params = random_params(rng, 2)
    x = rng.normal(size=(4, 512, 3, 3))
    inputs = keras.Input((3, 3, 512))
    arm_layer = AmendRepresentation(name="arm")
    model = keras.Model(inputs, keras.layers.Dense(1)(arm_layer(inputs)))
    set_params(arm_layer, params)
    start = rng.normal(size=(3, 3))
    arm_layer.moving_affinity.assign(start)
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    model.fit(to_nhwc(x), np.zeros((4, 1), "float32"), batch_size=4, epochs=1, verbose=0,
              shuffle=False)
    _, extras = reference_arm(x, params, training=True)
    np.testing.assert_allclose(numpy_of(arm_layer.moving_affinity),
                               0.9 * start + 0.1 * extras["batch_affinity"], rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------
# Gradients
# ---------------------------------------------------------------------------
def _tf_or_skip():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("gradient tape test runs under the TensorFlow backend")
    import tensorflow as tf

    return tf


def test_gradients_flow_and_are_finite():
    tf = _tf_or_skip()
    rng = np.random.default_rng(9)
    layer = build_layer((1, 7, 7, 2048), random_params(rng, 8))
    x = tf.constant(to_nhwc(rng.normal(size=(3, 2048, 7, 7))))
    weights = tf.constant(rng.normal(size=(3, 121)).astype("float32"))
    variables = [layer.de_albino_kernel, layer.alpha, layer.batch_norm.gamma, layer.batch_norm.beta]
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x, training=True) * weights)
    grads = tape.gradient(loss, [v.value for v in variables])
    for variable, grad in zip(variables, grads):
        assert grad is not None, variable.path
        grad = grad.numpy()
        assert np.all(np.isfinite(grad)), variable.path
        assert np.abs(grad).max() > 1e-6, variable.path
    assert len(layer.trainable_weights) == 4


def test_gradients_match_finite_differences_float64():
    tf = _tf_or_skip()
    rng = np.random.default_rng(10)
    params = random_params(rng, 2)
    layer = build_layer((1, 3, 3, 512), params, dtype="float64")
    x_nchw = rng.normal(size=(3, 512, 3, 3))
    x = tf.constant(np.transpose(x_nchw, (0, 2, 3, 1)))
    weights = tf.constant(rng.normal(size=(3, 9)))

    def loss():
        return float(tf.reduce_sum(layer(x, training=True) * weights))

    with tf.GradientTape() as tape:
        value = tf.reduce_sum(layer(x, training=True) * weights)
    grad_kernel, grad_alpha = tape.gradient(
        value, [layer.de_albino_kernel.value, layer.alpha.value]
    )
    grad_kernel, grad_alpha = grad_kernel.numpy(), grad_alpha.numpy()

    # d loss / d alpha = sum_n,p weights[n, p] * affinity[p], known in closed form.
    _, extras = reference_arm(x_nchw, params, training=True, r=16, stride=8)
    closed_form = np.sum(weights.numpy() * extras["batch_affinity"].reshape(1, -1))
    np.testing.assert_allclose(grad_alpha[0], closed_form, rtol=1e-8, atol=1e-10)

    step = 1e-6
    alpha = params["alpha"]
    layer.alpha.assign([alpha + step])
    up = loss()
    layer.alpha.assign([alpha - step])
    down = loss()
    layer.alpha.assign([alpha])
    np.testing.assert_allclose(grad_alpha[0], (up - down) / (2 * step), rtol=1e-6, atol=1e-8)

    kernel = params["kernel"][:, :, None, None].copy()
    for u, v in ((0, 0), (5, 17), (16, 16), (31, 2)):
        bumped = kernel.copy()
        bumped[u, v, 0, 0] += step
        layer.de_albino_kernel.assign(bumped)
        up = loss()
        bumped[u, v, 0, 0] -= 2 * step
        layer.de_albino_kernel.assign(bumped)
        down = loss()
        layer.de_albino_kernel.assign(kernel)
        np.testing.assert_allclose(grad_kernel[u, v, 0, 0], (up - down) / (2 * step),
                                   rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------------------
# Serialisation
# ---------------------------------------------------------------------------
def test_get_config_round_trip():
    layer = AmendRepresentation(stride=4, alpha_initial=0.5, affinity="batch",
                                affinity_momentum=0.8, bn_momentum=0.95, name="arm_x")
    config = layer.get_config()
    clone = AmendRepresentation.from_config(config)
    assert clone.get_config() == config
    assert (clone.stride, clone.affinity, clone.affinity_momentum) == (4, "batch", 0.8)
    assert clone.batch_norm.momentum == 0.95
    revived = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(revived) is AmendRepresentation and revived.get_config() == config


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_saved_model_loads_back(tmp_path, suffix):
    rng = np.random.default_rng(11)
    inputs = keras.Input((3, 3, 512), name="features")
    arm_layer = AmendRepresentation(name="arm")
    model = keras.Model(inputs, keras.layers.Dense(4, name="head")(arm_layer(inputs)))
    set_params(arm_layer, random_params(rng, 2))
    arm_layer.moving_affinity.assign(rng.normal(size=(3, 3)))
    x = to_nhwc(rng.normal(size=(3, 512, 3, 3)))
    before = numpy_of(model(x, training=False))
    path = str(tmp_path / f"arm_model{suffix}")
    model.save(path)
    loaded = keras.models.load_model(path)
    loaded_arm = loaded.get_layer("arm")
    assert isinstance(loaded_arm, AmendRepresentation)
    np.testing.assert_array_equal(numpy_of(loaded_arm.moving_affinity),
                                  numpy_of(arm_layer.moving_affinity))
    np.testing.assert_array_equal(numpy_of(loaded(x, training=False)), before)


# ---------------------------------------------------------------------------
# Errors and mixed precision
# ---------------------------------------------------------------------------
def test_channels_not_divisible_is_a_clear_error():
    with pytest.raises(ValueError, match=r"divisible by upscale_factor\*\*2 = 256.*C_in=500"):
        AmendRepresentation()(keras.Input((7, 7, 500)))
    with pytest.raises(ValueError, match=r"divisible by upscale_factor\*\*2 = 256"):
        AmendRepresentation()(np.zeros((1, 7, 7, 300), "float32"))


def test_spatial_too_small_is_a_clear_error():
    with pytest.raises(ValueError, match=r"at least the kernel size 32.*\(1, 7\)"):
        AmendRepresentation()(keras.Input((1, 7, 512)))
    with pytest.raises(ValueError, match=r"static spatial size"):
        AmendRepresentation()(keras.Input((None, None, 512)))
    with pytest.raises(ValueError, match=r"channels-last feature map"):
        AmendRepresentation()(keras.Input((49, 512)))


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match=r"affinity"):
        AmendRepresentation(affinity="global")
    with pytest.raises(ValueError, match=r"affinity_momentum"):
        AmendRepresentation(affinity_momentum=1.5)
    with pytest.raises(ValueError, match=r"stride"):
        AmendRepresentation(stride=0)


@pytest.mark.parametrize("policy, atol", [("mixed_float16", 0.05), ("mixed_bfloat16", 0.25)])
def test_mixed_precision(policy, atol):
    rng = np.random.default_rng(12)
    params = random_params(rng, 2)
    x = rng.normal(size=(2, 512, 7, 7))
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        layer = build_layer((1, 7, 7, 512), params, affinity="batch")
        got = layer(to_nhwc(x), training=True)
    finally:
        keras.config.set_dtype_policy(previous)
    assert layer.compute_dtype == policy.split("_")[1]
    assert keras.backend.standardize_dtype(got.dtype) == policy.split("_")[1]
    assert all(w.dtype == "float32" for w in layer.weights)
    expected, extras = reference_arm(x, params, training=True)
    got = numpy_of(got).astype(np.float64)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, expected, atol=atol)
    np.testing.assert_allclose(numpy_of(layer.moving_affinity), 0.1 * extras["batch_affinity"],
                               atol=atol / 10)


# ---------------------------------------------------------------------------
# PyTorch (optional) and JAX (subprocess) cross-checks
# ---------------------------------------------------------------------------
def test_matches_pytorch_module_if_installed():
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class TorchARM(nn.Module):
        def __init__(self, channels):
            super().__init__()
            self.shuffle = nn.PixelShuffle(16)
            self.conv = nn.Conv2d(1, 1, kernel_size=32, stride=8, padding=0, bias=False)
            self.bn = nn.BatchNorm2d(channels)
            self.alpha = nn.Parameter(torch.ones(1))

        def forward(self, x):
            x = self.shuffle(x)
            n, c, h, w = x.shape
            x = self.conv(x.reshape(n * c, 1, h, w))
            x = self.bn(x.reshape(n, c, x.shape[-2], x.shape[-1]))
            affinity = x.mean(dim=(0, 1))
            return torch.flatten(x.mean(dim=1, keepdim=True) + self.alpha * affinity, 1)

    rng = np.random.default_rng(13)
    params = random_params(rng, 8)
    module = TorchARM(8).double()
    with torch.no_grad():
        module.conv.weight.copy_(torch.from_numpy(params["kernel"])[None, None])
        module.alpha.fill_(params["alpha"])
        module.bn.weight.copy_(torch.from_numpy(params["gamma"]))
        module.bn.bias.copy_(torch.from_numpy(params["beta"]))
        module.bn.running_mean.copy_(torch.from_numpy(params["moving_mean"]))
        module.bn.running_var.copy_(torch.from_numpy(params["moving_variance"]))
    layer = build_layer((1, 7, 7, 2048), params, affinity="batch")
    x = rng.normal(size=(3, 2048, 7, 7))
    module.train()
    expected = module(torch.from_numpy(x)).detach().numpy()
    got = numpy_of(layer(to_nhwc(x), training=True))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=2e-5)
    np.testing.assert_allclose(numpy_of(layer.batch_norm.moving_mean),
                               module.bn.running_mean.numpy(), rtol=1e-5, atol=1e-6)
    # Eval: Keras BN moving variance differs from torch's by Bessel's correction
    # (torch stores the unbiased variance), so give both the same running stats.
    set_params(layer, params)
    with torch.no_grad():
        module.bn.running_mean.copy_(torch.from_numpy(params["moving_mean"]))
        module.bn.running_var.copy_(torch.from_numpy(params["moving_variance"]))
    module.eval()
    expected = module(torch.from_numpy(x)).detach().numpy()
    got = numpy_of(layer(to_nhwc(x), training=False))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=2e-5)


_JAX_SCRIPT = textwrap.dedent(
    """
    import os, sys
    os.environ["KERAS_BACKEND"] = "jax"
    import numpy as np
    import keras
    from adcorre.models import arm
    assert keras.backend.backend() == "jax", keras.backend.backend()
    assert "tensorflow" not in sys.modules, "arm imported tensorflow"
    import jax
    import arm_reference as ref

    rng = np.random.default_rng(14)
    params = ref.random_params(rng, 8)
    layer = ref.build_layer((1, 7, 7, 2048), params, affinity="batch")
    x = rng.normal(size=(3, 2048, 7, 7))
    expected, extras = ref.reference_arm(x, params, training=True)
    got = np.asarray(layer(ref.to_nhwc(x), training=True))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=2e-5)
    np.testing.assert_allclose(np.asarray(layer.moving_affinity), 0.1 * extras["batch_affinity"],
                               rtol=1e-5, atol=1e-6)
    ref.set_params(layer, params)
    expected, _ = ref.reference_arm(x, params, training=False)
    got = np.asarray(layer(ref.to_nhwc(x), training=False))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=2e-5)

    # Gradient w.r.t. alpha through jax.grad, against its closed form.
    weights = rng.normal(size=(3, 121)).astype("float32")
    trainable = [v.value for v in layer.trainable_variables]
    frozen = [v.value for v in layer.non_trainable_variables]
    def loss(values):
        out, _ = layer.stateless_call(values, frozen, ref.to_nhwc(x), training=True)
        return (out * weights).sum()
    grads = jax.grad(loss)(trainable)
    alpha_index = [v.path for v in layer.trainable_variables].index(layer.alpha.path)
    _, extras = ref.reference_arm(x, params, training=True)
    closed_form = np.sum(weights * extras["batch_affinity"].reshape(1, -1))
    np.testing.assert_allclose(np.asarray(grads[alpha_index])[0], closed_form,
                               rtol=1e-4, atol=1e-4)
    for g in grads:
        assert np.all(np.isfinite(np.asarray(g))) and np.abs(np.asarray(g)).max() > 0

    # keras' JAX trainer (stateless, jit) carries the moving-affinity update out.
    xs = rng.normal(size=(4, 512, 3, 3))
    p2 = ref.random_params(rng, 2)
    inputs = keras.Input((3, 3, 512))
    arm_layer = arm.AmendRepresentation(name="arm")
    model = keras.Model(inputs, keras.layers.Dense(1)(arm_layer(inputs)))
    ref.set_params(arm_layer, p2)
    start = rng.normal(size=(3, 3))
    arm_layer.moving_affinity.assign(start)
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    model.fit(ref.to_nhwc(xs), np.zeros((4, 1), "float32"), batch_size=4, verbose=0, shuffle=False)
    _, extras = ref.reference_arm(xs, p2, training=True)
    np.testing.assert_allclose(np.asarray(arm_layer.moving_affinity),
                               0.9 * start + 0.1 * extras["batch_affinity"], rtol=1e-5, atol=1e-5)
    single = np.asarray(model.predict(ref.to_nhwc(xs[:1]), verbose=0))
    batch = np.asarray(model.predict(ref.to_nhwc(xs), verbose=0))
    np.testing.assert_allclose(single[0], batch[0], rtol=1e-5, atol=1e-5)
    assert "tensorflow" not in sys.modules, "tensorflow got imported under the JAX backend"
    print("JAX_OK")
    """
)


def test_runs_under_jax_backend_without_tensorflow():
    if importlib.util.find_spec("jax") is None:
        pytest.skip("jax is not installed (pip install jax to run the JAX backend check)")
    result = run_python(_JAX_SCRIPT, env={"KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"})
    assert result.returncode == 0 and "JAX_OK" in result.stdout, result.stderr[-4000:]
