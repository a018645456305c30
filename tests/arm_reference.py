"""An independent NumPy transcription of the official ARM module's arithmetic (NCHW).

PixelShuffle by PyTorch's index formula, one shared single-channel cross-correlation,
BatchNorm2d normalising with the biased batch variance (training) or the running statistics
(eval), then mean over channels plus alpha times the mean over batch and channels. No TensorFlow
import, so the JAX child process of tests/models/test_arm.py imports it too.
"""

import keras
import numpy as np

from adcorre.models.arm import AmendRepresentation


def reference_pixel_shuffle_nchw(x, r):
    """torch PixelShuffle: out[n, c, h*r+i, w*r+j] = in[n, c*r*r + i*r + j, h, w]."""
    n, channels_in, h, w = x.shape
    channels = channels_in // (r * r)
    out = np.empty((n, channels, h * r, w * r), dtype=x.dtype)
    for c in range(channels):
        for i in range(r):
            for j in range(r):
                out[:, c, i::r, j::r] = x[:, c * r * r + i * r + j, :, :]
    return out


def reference_conv_nchw(x, kernel, stride):
    """The same (k, k) cross-correlation kernel on every channel, no padding, no bias."""
    k = kernel.shape[0]
    windows = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))
    windows = windows[:, :, ::stride, ::stride]
    return np.einsum("ncijuv,uv->ncij", windows, kernel)


def reference_arm(x_nchw, params, *, training, r=16, stride=8, eps=1e-5, affinity=None):
    """Official ARM forward in float64. Returns (features (n, oh*ow), extras dict).

    `affinity`: None averages the normalised maps over batch and channels (the
    official behaviour); an (oh, ow) array replaces that map (the moving estimate).
    """
    x = np.asarray(x_nchw, dtype=np.float64)
    maps = reference_conv_nchw(reference_pixel_shuffle_nchw(x, r), params["kernel"], stride)
    if training:
        mean = maps.mean(axis=(0, 2, 3))
        var = maps.var(axis=(0, 2, 3))  # biased, as BatchNorm2d normalises with
    else:
        mean, var = params["moving_mean"], params["moving_variance"]
    normalised = (maps - mean[None, :, None, None]) / np.sqrt(var[None, :, None, None] + eps)
    gamma, beta = params["gamma"][None, :, None, None], params["beta"][None, :, None, None]
    normalised = normalised * gamma + beta
    batch_affinity = normalised.mean(axis=(0, 1))
    used = batch_affinity if affinity is None else np.asarray(affinity, np.float64)
    out = normalised.mean(axis=1) + params["alpha"] * used[None]
    extras = {"batch_affinity": batch_affinity, "mean": mean, "var": var}
    return out.reshape(out.shape[0], -1), extras


def random_params(rng, channels, kernel_size=32):
    return {
        "kernel": rng.normal(0.0, 0.05, (kernel_size, kernel_size)),
        "alpha": float(rng.uniform(-2.0, 2.0)),
        "gamma": rng.uniform(0.5, 1.5, channels),
        "beta": rng.normal(0.0, 0.5, channels),
        "moving_mean": rng.normal(0.0, 0.2, channels),
        "moving_variance": rng.uniform(0.5, 2.0, channels),
    }


def set_params(layer, params):
    """Writes reference parameters into a built AmendRepresentation."""
    layer.de_albino_kernel.assign(params["kernel"][:, :, None, None])
    layer.alpha.assign(np.reshape(params["alpha"], layer.alpha.shape))
    layer.batch_norm.gamma.assign(params["gamma"])
    layer.batch_norm.beta.assign(params["beta"])
    layer.batch_norm.moving_mean.assign(params["moving_mean"])
    layer.batch_norm.moving_variance.assign(params["moving_variance"])


def build_layer(shape_nhwc, params=None, **kwargs):
    layer = AmendRepresentation(**kwargs)
    layer.build((None,) + tuple(shape_nhwc[1:]))
    if params is not None:
        set_params(layer, params)
    return layer


def to_nhwc(x_nchw):
    return np.ascontiguousarray(np.transpose(x_nchw, (0, 2, 3, 1))).astype("float32")


def numpy_of(tensor):
    return keras.ops.convert_to_numpy(tensor)
