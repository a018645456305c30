"""The Amend Representation Module (ARM) as a Keras 3 layer.

ARM (Shi, Zhu & Liang, "Learning to Amend Facial Expression Representation via
De-albino and Affinity", arXiv 2103.10189) replaces the global pooling at the end
of a CNN backbone. For a 7x7 feature map with C_in channels it

1. rearranges the channels into space with a PixelShuffle of factor 16, in PyTorch's
   channel order: C = C_in / 256 maps of 112x112;
2. convolves every one of those maps with the same single-channel 32x32 "de-albino"
   kernel (stride 8, no padding, no bias): C maps of 11x11;
3. batch-normalises the C maps;
4. returns the mean over the C maps plus `alpha` times the "affinity" map (the mean
   of the normalised maps over the batch and the channels), flattened: 121 features.

Only `keras.ops` is used, so the layer runs under every Keras backend (JAX included)
and TensorFlow is never imported here. `arm_layers`, `set_arm_affinity` and the
`arm_affinity` block find and switch the ARM layers of a loaded model (a checkpoint's
`arm_affinity=`, ARM's evaluation protocol).
"""

import contextlib

from adcorre import runtime  # noqa: F401  (Keras loads without TensorFlow's start-up noise)
import keras
from keras import ops

from adcorre.settings import ARM_AFFINITY_MODES as AFFINITY_MODES
from adcorre.errors import SettingError


def pixel_shuffle(inputs, upscale_factor):
    """PyTorch's `nn.PixelShuffle` for channels-last tensors.

    PyTorch reads channel `c * r * r + i * r + j` of the input into the sub-pixel
    `(i, j)` of output channel `c`:
    `out[n, h * r + i, w * r + j, c] = in[n, h, w, c * r * r + i * r + j]`.
    `tf.nn.depth_to_space` reads `(i * r + j) * C + c` instead, so it would scramble
    weights ported from PyTorch; hence this reshape/transpose version.

    Args:
        inputs: a tensor `(n, h, w, C * r * r)` with static `h`, `w` and channels.
        upscale_factor: the factor `r`.

    Returns:
        A tensor `(n, h * r, w * r, C)`.

    Example:
    >>> x = np.arange(4.0).reshape(1, 1, 1, 4)
    >>> keras.ops.convert_to_numpy(pixel_shuffle(x, 2))[0, :, :, 0]
    array([[0., 1.],
           [2., 3.]])
    """
    r = int(upscale_factor)
    _, h, w, channels_in = inputs.shape
    channels = channels_in // (r * r)
    # (n, h, w, C, i, j) -> (n, h, i, w, j, C): rows then columns of the sub-pixels.
    x = ops.reshape(inputs, (-1, h, w, channels, r, r))
    x = ops.transpose(x, (0, 1, 4, 2, 5, 3))
    return ops.reshape(x, (-1, h * r, w * r, channels))


@keras.saving.register_keras_serializable(package="adcorre")
class AmendRepresentation(keras.layers.Layer):
    """Amend Representation Module: de-albino kernel, batch norm and affinity.

    The arithmetic is the official PyTorch module's, ported to channels-last:
    `PixelShuffle(r)`, one shared single-channel `Conv2D(kernel_size, stride,
    "valid", no bias)` applied to each of the `C = C_in / r**2` maps,
    `BatchNormalization` over the C maps, then
    `mean_over_channels(y) + alpha * affinity`, flattened.

    In training (`training=True` and the layer trainable) the affinity is the mean
    of the batch-normalised maps over the batch and the channels, as in the
    official code, and a moving estimate of it is updated like BN's moving
    statistics: `moving = m * moving + (1 - m) * batch_affinity`. In inference,
    `affinity="moving"` (default) uses that estimate, so a sample's output does not
    depend on the other samples of its batch; `affinity="batch"` keeps the official
    behaviour of averaging over the current batch in inference too;
    `affinity="sample"` uses each picture's own map (the mean over its channels),
    which is the official network run on a batch of one: also batch independent, and
    what a model converted from a PyTorch checkpoint uses, since checkpoints hold no
    moving estimate. The estimate starts at zeros. A frozen layer (`trainable=False`)
    runs as in inference, like Keras' `BatchNormalization`. Keras' batch norm stores
    the biased batch variance in its moving variance where PyTorch stores the unbiased
    one (a factor
    `N / (N - 1)`, `N = n * out_h * out_w`); the normalisation itself is the same.

    Mixed precision: the shuffle and the convolution run in the layer's compute
    dtype; batch norm, the affinity and the moving estimate are kept in the
    variable dtype (float32 under `"mixed_float16"`/`"mixed_bfloat16"`), and the
    output is cast back to the compute dtype.

    Args:
        upscale_factor: PixelShuffle factor `r`; `C_in` must be divisible by `r**2`.
        kernel_size: side of the square de-albino kernel.
        stride: stride of the de-albino convolution.
        alpha_initial: initial value of the learnable scalar `alpha`.
        affinity: `"moving"`, `"batch"` or `"sample"`: which affinity map inference uses.
        affinity_momentum: momentum `m` of the moving affinity estimate.
        bn_momentum: Keras momentum of the batch norm (PyTorch's 0.1 is Keras' 0.9).
        bn_epsilon: batch norm epsilon (PyTorch's default 1e-5).
        kernel_initializer: initialiser of the de-albino kernel. `None` gives
            PyTorch's default `Conv2d` initialisation, `kaiming_uniform(a=sqrt(5))`,
            i.e. `U(-1/sqrt(fan_in), 1/sqrt(fan_in))` with `fan_in = kernel_size**2`.
        **kwargs: base `Layer` arguments (`name`, `dtype`, `trainable`, ...).

    Returns:
        A tensor `(n, out_h * out_w)` where `out = (side * r - kernel_size) // stride + 1`
        per spatial side: 121 features for a 7x7 input with the defaults.

    Example:
    >>> layer = AmendRepresentation()
    >>> features = np.random.rand(2, 7, 7, 2048).astype("float32")
    >>> tuple(layer(features, training=False).shape)
    (2, 121)
    """

    def __init__(
        self,
        upscale_factor=16,
        kernel_size=32,
        stride=8,
        alpha_initial=1.0,
        affinity="moving",
        affinity_momentum=0.9,
        bn_momentum=0.9,
        bn_epsilon=1e-5,
        kernel_initializer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for arg_name, value in (
            ("upscale_factor", upscale_factor),
            ("kernel_size", kernel_size),
            ("stride", stride),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"AmendRepresentation expects `{arg_name}` to be a positive int, "
                    f"got {value!r}."
                )
        if affinity not in AFFINITY_MODES:
            raise ValueError(
                f"AmendRepresentation expects `affinity` in {AFFINITY_MODES}, got {affinity!r}."
            )
        if not 0.0 <= affinity_momentum <= 1.0:
            raise ValueError(
                "AmendRepresentation expects `affinity_momentum` in [0, 1], "
                f"got {affinity_momentum!r}."
            )
        self.upscale_factor = upscale_factor
        self.kernel_size = kernel_size
        self.stride = stride
        self.alpha_initial = float(alpha_initial)
        self.affinity = affinity
        self.affinity_momentum = float(affinity_momentum)
        self.bn_momentum = float(bn_momentum)
        self.bn_epsilon = float(bn_epsilon)
        if kernel_initializer is None:
            # VarianceScaling(1/3, fan_in, uniform) has limit sqrt(3 * (1/3) / fan_in)
            # = 1/sqrt(fan_in): exactly PyTorch's kaiming_uniform(a=sqrt(5)) default.
            kernel_initializer = keras.initializers.VarianceScaling(
                scale=1.0 / 3.0, mode="fan_in", distribution="uniform"
            )
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        # Batch norm runs in the variable dtype (float32 under mixed precision):
        # the maps it sees are few and small, and the affinity is a mean of them.
        self.batch_norm = keras.layers.BatchNormalization(
            axis=-1,
            momentum=self.bn_momentum,
            epsilon=self.bn_epsilon,
            dtype=self.dtype_policy.variable_dtype,
            name="batch_norm",
        )

    def _output_grid(self, height, width):
        """Spatial size of the de-albino output, with one clear error when too small."""
        r, k, s = self.upscale_factor, self.kernel_size, self.stride
        if height is None or width is None:
            raise ValueError(
                "AmendRepresentation needs a static spatial size (h, w) to size its "
                f"affinity map; got input spatial size ({height}, {width})."
            )
        if height * r < k or width * r < k:
            raise ValueError(
                f"AmendRepresentation needs the shuffled map (h * {r}, w * {r}) to be at "
                f"least the kernel size {k} on each side, i.e. h and w >= {-(-k // r)}; "
                f"got input spatial size ({height}, {width}) -> ({height * r}, {width * r})."
            )
        return (height * r - k) // s + 1, (width * r - k) // s + 1

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                "AmendRepresentation expects a channels-last feature map (n, h, w, C_in); "
                f"got input shape {tuple(input_shape)}."
            )
        _, height, width, channels_in = input_shape
        factor = self.upscale_factor**2
        if channels_in is None or channels_in % factor != 0:
            raise ValueError(
                "AmendRepresentation expects the channel count C_in to be divisible by "
                f"upscale_factor**2 = {factor} (e.g. 512 or 2048 with upscale_factor=16); "
                f"got C_in={channels_in} in input shape {tuple(input_shape)}."
            )
        out_h, out_w = self._output_grid(height, width)
        channels = channels_in // factor
        self.de_albino_kernel = self.add_weight(
            name="de_albino_kernel",
            shape=(self.kernel_size, self.kernel_size, 1, 1),
            initializer=self.kernel_initializer,
        )
        # alpha and the moving affinity are used after batch norm, in the variable
        # dtype, so they are never rounded to float16.
        self.alpha = self.add_weight(
            name="alpha",
            shape=(1,),
            initializer=keras.initializers.Constant(self.alpha_initial),
            autocast=False,
        )
        self.batch_norm.build((None, out_h, out_w, channels))
        self.moving_affinity = self.add_weight(
            name="moving_affinity",
            shape=(out_h, out_w),
            initializer="zeros",
            trainable=False,
            autocast=False,
        )
        self.input_spec = keras.InputSpec(ndim=4, axes={1: height, 2: width, 3: channels_in})

    def call(self, inputs, training=None):
        _, height, width, channels_in = inputs.shape
        channels = channels_in // self.upscale_factor**2
        shuffled = pixel_shuffle(inputs, self.upscale_factor)
        # One kernel shared by all channels: fold the channels into the batch so a
        # single-channel convolution sees every map separately.
        planes = ops.transpose(shuffled, (0, 3, 1, 2))
        side_h, side_w = height * self.upscale_factor, width * self.upscale_factor
        planes = ops.reshape(planes, (-1, side_h, side_w, 1))
        planes = ops.conv(
            planes,
            self.de_albino_kernel,
            strides=self.stride,
            padding="valid",
            data_format="channels_last",
        )
        out_h, out_w = planes.shape[1], planes.shape[2]
        maps = ops.reshape(planes, (-1, channels, out_h, out_w))
        maps = ops.transpose(maps, (0, 2, 3, 1))

        # A frozen layer behaves as in inference, like Keras' own BatchNormalization.
        use_batch_stats = bool(training) and self.trainable
        normalised = self.batch_norm(maps, training=use_batch_stats)
        normalised = ops.cast(normalised, self.variable_dtype)

        # The affinity map, (1, out_h, out_w) shared by the batch or (n, out_h, out_w).
        channel_mean = ops.mean(normalised, axis=-1)
        if use_batch_stats or self.affinity == "batch":
            affinity = ops.mean(channel_mean, axis=0, keepdims=True)
        elif self.affinity == "sample":
            affinity = channel_mean
        else:
            affinity = ops.cast(self.moving_affinity, self.variable_dtype)[None]
        if use_batch_stats:
            m = self.affinity_momentum
            batch_affinity = ops.stop_gradient(affinity[0])
            self.moving_affinity.assign(
                ops.cast(self.moving_affinity, self.variable_dtype) * m
                + batch_affinity * (1.0 - m)
            )

        alpha = ops.cast(self.alpha, self.variable_dtype)
        amended = channel_mean + alpha * affinity
        outputs = ops.reshape(amended, (-1, out_h * out_w))
        return ops.cast(outputs, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        out_h, out_w = self._output_grid(input_shape[1], input_shape[2])
        return (input_shape[0], out_h * out_w)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "upscale_factor": self.upscale_factor,
                "kernel_size": self.kernel_size,
                "stride": self.stride,
                "alpha_initial": self.alpha_initial,
                "affinity": self.affinity,
                "affinity_momentum": self.affinity_momentum,
                "bn_momentum": self.bn_momentum,
                "bn_epsilon": self.bn_epsilon,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config


# ------------------------------------------------------------------ the ARM layers of a model


def arm_layers(model):
    """The `AmendRepresentation` layers of a Keras model (none for other models).

    Example:
    >>> arm_layers(object())
    []
    """
    flatten = getattr(model, "_flatten_layers", None)
    if flatten is None:  # not a Keras model (an export run by another runtime)
        return []
    return [layer for layer in flatten(include_self=False)
            if isinstance(layer, AmendRepresentation)]


def set_arm_affinity(model, mode):
    """Sets every ARM layer's inference affinity; the model must not have run yet (a traced
    function keeps the mode it was traced with; `arm_affinity` below drops it).

    Example:
    >>> set_arm_affinity(object(), "sample")
    """
    _check_mode(mode)
    for layer in arm_layers(model):
        layer.affinity = mode


@contextlib.contextmanager
def arm_affinity(model, mode):
    """Runs the block with every ARM layer of `model` using the inference affinity `mode`.

    The model's traced predict function is dropped on the way in and out, so predictions in
    the block follow `mode` and those after it the layers' own modes again. ARM's authors
    score their test set with `"batch"`: each batch's mean map (src/test_raf-db.py).

    Args:
        model: a Keras model (one without ARM layers is left as it is).
        mode: one of `AFFINITY_MODES`.

    Example:
    >>> with arm_affinity(object(), "batch"):
    ...     pass
    """
    _check_mode(mode)
    layers = arm_layers(model)
    saved = [layer.affinity for layer in layers]
    for layer in layers:
        layer.affinity = mode
    if layers:
        model.predict_function = None
    try:
        yield model
    finally:
        for layer, previous in zip(layers, saved):
            layer.affinity = previous
        if layers:
            model.predict_function = None


def _check_mode(mode):
    if mode not in AFFINITY_MODES:
        raise SettingError(f"arm affinity must be one of {AFFINITY_MODES}, got {mode!r}.")
