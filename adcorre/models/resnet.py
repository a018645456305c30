"""ResNet-18 laid out as torchvision lays it out, in Keras (channels-last).

ARM's authors built their network on `torchvision.models.resnet18`, so a checkpoint of theirs
only gives the same numbers on a backbone with torchvision's arithmetic:

- conv1 7x7 stride 2 with 3 pixels of zero padding on every side, BatchNorm, ReLU, max-pool
  3x3 stride 2 with 1 pixel of padding;
- layer1..layer4, two BasicBlocks each (3x3 convs with 1 pixel of padding; the first block of
  layer2..layer4 has stride 2 and a 1x1 stride-2 conv + BatchNorm shortcut, `downsample`);
- BatchNorm epsilon 1e-5 and momentum 0.1 in torch's convention (Keras' 0.9); no conv biases.

Keras' `padding="same"` pads a stride-2 layer asymmetrically (nothing before, one pixel after),
where torch pads symmetrically, so every padding here is an explicit `ZeroPadding2D` followed by
a `"valid"` layer. Layer names follow torchvision's module paths with `_` for `.` (`conv1`,
`bn1`, `layer2_0_conv1`, `layer2_0_downsample_0`, ...), so that weights map mechanically.

Only Keras layers are used: the module runs under every Keras backend (JAX included).
"""

from adcorre import runtime  # noqa: F401  (Keras loads without TensorFlow's start-up noise)
import keras
from keras import layers

# torch's BatchNorm2d defaults: eps 1e-5, momentum 0.1 (Keras counts momentum the other way).
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9
# Output channels of layer1..layer4.
STAGE_WIDTHS = (64, 128, 256, 512)
BLOCKS_PER_STAGE = 2


def torch_conv_initializer():
    """torchvision's ResNet conv init: `kaiming_normal_(mode="fan_out", nonlinearity="relu")`."""
    return keras.initializers.VarianceScaling(
        scale=2.0, mode="fan_out", distribution="untruncated_normal")


def _conv(x, filters, kernel_size, stride, padding, name):
    """`nn.Conv2d(..., padding=padding, bias=False)`: explicit symmetric zero padding."""
    if padding:
        x = layers.ZeroPadding2D(padding, name=f"{name}_pad")(x)
    return layers.Conv2D(filters, kernel_size, strides=stride, padding="valid", use_bias=False,
                         kernel_initializer=torch_conv_initializer(), name=name)(x)


def _batch_norm(x, name):
    return layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name)(x)


def _basic_block(x, filters, stride, name):
    """torchvision's `BasicBlock`: conv-bn-relu-conv-bn, plus the (projected) input, relu."""
    shortcut = x
    y = _conv(x, filters, 3, stride, 1, f"{name}_conv1")
    y = _batch_norm(y, f"{name}_bn1")
    y = layers.ReLU(name=f"{name}_relu1")(y)
    y = _conv(y, filters, 3, 1, 1, f"{name}_conv2")
    y = _batch_norm(y, f"{name}_bn2")
    if stride != 1 or x.shape[-1] != filters:
        shortcut = _conv(x, filters, 1, stride, 0, f"{name}_downsample_0")
        shortcut = _batch_norm(shortcut, f"{name}_downsample_1")
    y = layers.Add(name=f"{name}_add")([y, shortcut])
    return layers.ReLU(name=f"{name}_relu2")(y)


def resnet18_features(inputs):
    """torchvision's ResNet-18 up to layer4 (before the average pool), on a channels-last tensor.

    Args:
        inputs: a Keras tensor `(n, h, w, 3)`, already normalised as the weights expect
            (torchvision's: ImageNet mean and std, see `cnn_model.ScaleInputs("torchvision")`).

    Returns:
        The layer4 feature map, `(n, ceil(h / 32), ceil(w / 32), 512)`: 7 x 7 at 224 px.

    Example:
    >>> image = keras.Input((224, 224, 3))
    >>> backbone = keras.Model(image, resnet18_features(image))
    >>> backbone.output_shape, backbone.count_params()
    ((None, 7, 7, 512), 11186112)
    """
    x = _conv(inputs, 64, 7, 2, 3, "conv1")
    x = _batch_norm(x, "bn1")
    x = layers.ReLU(name="relu")(x)
    # Zeros as padding give torch's -inf padding here: after the ReLU every window holds a
    # real value >= 0, so a padded zero never wins the max.
    x = layers.ZeroPadding2D(1, name="maxpool_pad")(x)
    x = layers.MaxPooling2D(3, strides=2, padding="valid", name="maxpool")(x)
    for stage, filters in enumerate(STAGE_WIDTHS, start=1):
        for block in range(BLOCKS_PER_STAGE):
            stride = 2 if stage > 1 and block == 0 else 1
            x = _basic_block(x, filters, stride, f"layer{stage}_{block}")
    return x
